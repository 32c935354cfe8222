"""`config check` refuses every input `run` would refuse, with the same FILE:LINE line,
and `run` refuses it before anything starts (no anvil, no database, no socket): database
paths, a public API without a long token, the devnet state cache, chain ids and block
ranges out of range, a keystore that does not unlock. Also: warnings for secret files
others can read, new databases created 0600, and `warden run --devnet` running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from executor.signer import write_keystore
from indexer.migrations import open_database
from warden.app.settings import ConfigError, load_config
from warden.devnet import DEVNET_KEYS, free_port

REPO = Path(__file__).resolve().parents[3]
FACTORY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
RELAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PROD = f'chain:\n  rpc: ["https://rpc.example"]\n  chain_id: 1\n  factory: "{FACTORY}"\n'
DRY = f'executor:\n  relayer: "{RELAYER}"\n'


def prepare(tmp: Path) -> None:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "idle.yaml").write_bytes((REPO / "config/rules/idle.yaml").read_bytes())
    (tmp / "a-directory").mkdir(exist_ok=True)
    (tmp / "notes.txt").write_text("not a database\n")
    write_keystore(tmp / "relayer.json", DEVNET_KEYS[1], "right", kdf_iterations=2)
    (tmp / "relayer.json").chmod(0o600)


# (config text, the problem: "LINE: key: start of the message")
REFUSED = [
    ("database: a-directory\n", "1: database: {dir}/a-directory is a directory"),
    ("database: nowhere/warden.sqlite\n", "1: database: the directory {dir}/nowhere does not"),
    ("database: notes.txt/warden.sqlite\n", "1: database: the directory {dir}/notes.txt is not a"),
    ("database: notes.txt\n", "1: database: {dir}/notes.txt is not a SQLite database"),
    ("api:\n  host: 0.0.0.0\n  token: ''\n", "3: api.token: is empty"),
    ("api:\n  token: '  '\n", "2: api.token: is empty"),
    ("api:\n  host: 0.0.0.0\n", "1: api.token: required because api.host '0.0.0.0' is not"),
    ("api:\n  host: '::'\n  token: short-but-set\n", "3: api.token: too short for an API"),
    ("devnet:\n  state_cache: cache.json\n", "2: devnet.state_cache: not supported yet"),
    ("backups:\n  keep: 0\n", "2: backups.keep: 0 — keep 1 to 1,000 backups"),
    ("backups:\n  keep: 1001\n", "2: backups.keep: 1001 — keep 1 to 1,000 backups"),
    ("backups:\n  directory: nowhere\n", "2: backups.directory: {dir}/nowhere does not exist"),
    ("backups:\n  directory: notes.txt\n", "2: backups.directory: {dir}/notes.txt is not a dir"),
    ("chain:\n  chain_id: 0\n", "2: chain.chain_id: must be at least 1"),
    (f"chain:\n  chain_id: {2**63}\n", "2: chain.chain_id: must be at most 4,503,599,627,370,476"),
    (f"chain:\n  start_block: {2**64}\n", "2: chain.start_block: must be at most"),
    ("chain:\n  start_block: -1\n", "2: chain.start_block: must be at least 0"),
    (f"chain:\n  reorg_window: {10**12}\n", "2: chain.reorg_window: must be at most"),
    ("chain:\n  retry_attempts: 100000\n", "2: chain.retry_attempts: must be at most 1,000"),
    ("chain:\n  concurrency: 0\n", "2: chain.concurrency: must be at least 1"),
    ("chain:\n  new_heads: http://node:8545\n", '2: chain.new_heads: expected "auto"'),
    ("chain:\n  new_heads: 'ws://'\n", '2: chain.new_heads: expected "auto"'),
    ("chain:\n  new_heads: true\n", "2: chain.new_heads:"),
    (
        "executor:\n  keystore: relayer.json\n  password_env: KS_PW\n",
        "2: executor.keystore: cannot decrypt the relayer keystore",
    ),
    ("api:\n  read_connections: 0\n", "2: api.read_connections: 0 — use 1 to 64 connections"),
    ("api:\n  read_connections: 65\n", "2: api.read_connections: 65 — use 1 to 64"),
    ("api:\n  read_queue: -1\n", "2: api.read_queue: -1 — use 0 to 100,000 waiting"),
    ("api:\n  port: 8081\n  read_wait: 0\n", "3: api.read_wait: 0 seconds — it must be above 0"),
    ("api:\n  read_wait: 61\n", "2: api.read_wait: 61 s — use above 0 and at most 60 s"),
    ("api:\n  read_wait: soon\n", "2: api.read_wait:"),
]
PASSWORD = {"KS_PW": "wrong"}


def test_the_api_read_settings_reach_the_config(tmp_path: Path) -> None:
    prepare(tmp_path)
    path = tmp_path / "warden.yaml"
    path.write_text("api:\n  read_connections: 2\n  read_queue: 0\n  read_wait: 0.5\n")
    api = load_config(path, {}).api
    assert (api.read_connections, api.read_queue, api.read_wait) == (2, 0, 0.5)
    defaults = load_config(tmp_path / "warden.yaml", {"WARDEN_API__READ_CONNECTIONS": "8"}).api
    assert defaults.read_connections == 8  # an environment override, like any key


def expected(tmp: Path, problem: str) -> str:
    return f"{tmp / 'warden.yaml'}:{problem.replace('{dir}', str(tmp))}"


def warden(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize(("text", "problem"), REFUSED, ids=range(len(REFUSED)))
def test_check_refuses_with_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    prepare(tmp_path)
    path = tmp_path / "warden.yaml"
    path.write_text(text)
    try:
        cfg = load_config(path, PASSWORD)
        cfg.unlock(PASSWORD)  # what `config check --unlock` and `run` add
    except ConfigError as exc:
        assert any(p.startswith(expected(tmp_path, problem)) for p in exc.problems), exc.problems
        assert "Traceback" not in str(exc)
    else:
        pytest.fail("accepted")


@pytest.mark.parametrize(
    "index",
    [0, 1, 3, 4, 6, 7, 8, 10, 16],
    ids=["dir", "no-parent", "not-sqlite", "empty-token", "no-token", "short-token",
         "state-cache", "chain-id", "wrong-password"],
)  # fmt: skip
def test_check_and_run_refuse_alike_before_anything_starts(tmp_path: Path, index: int) -> None:
    """Devnet mode (no rpc): a `run` that got past the config would start anvil, deploy
    and log `devnet:`; it must exit 2 first, with the same line as `config check`."""
    text, problem = REFUSED[index]
    prepare(tmp_path)
    config = tmp_path / "warden.yaml"
    config.write_text(text + "devnet:\n  activity: false\n" * ("devnet:" not in text))
    line = expected(tmp_path, problem)
    checked = warden("config", "check", str(config), "--unlock", env=PASSWORD)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert any(s.startswith(line) for s in checked.stderr.splitlines()), checked.stderr
    ran = warden("run", "--config", str(config), env=PASSWORD)
    assert ran.returncode == 2, ran.stderr
    assert any(s.strip().startswith(line) for s in ran.stderr.splitlines()), ran.stderr
    assert "Traceback" not in ran.stderr and "devnet:" not in ran.stderr
    assert not (tmp_path / "warden.sqlite").exists()


def test_a_long_token_on_a_public_host_is_accepted(tmp_path: Path) -> None:
    prepare(tmp_path)
    path = tmp_path / "warden.yaml"
    path.write_text("api:\n  host: 0.0.0.0\n  token: '${T}'\n")
    assert load_config(path, {"T": "x" * 32}).api.host == "0.0.0.0"
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"T": "x" * 31})
    assert caught.value.problems == [
        f"{path}:3: api.token: too short for an API beyond loopback: 31 characters, at least "
        "32 are needed — generate one with `openssl rand -hex 32`"
    ]


def test_secret_files_readable_by_others_are_warned_about(tmp_path: Path) -> None:
    prepare(tmp_path)
    (tmp_path / "pw.txt").write_text("right\n")
    path = tmp_path / "warden.yaml"
    path.write_text(PROD + "executor:\n  keystore: relayer.json\n  password_file: pw.txt\n")
    for mode in (0o600, 0o400):
        (tmp_path / "relayer.json").chmod(mode)
        (tmp_path / "pw.txt").chmod(mode)
        assert load_config(path, {}).warnings() == []
    (tmp_path / "relayer.json").chmod(0o644)
    (tmp_path / "pw.txt").chmod(0o640)
    warnings = load_config(path, {}).warnings()
    assert [w.split(":")[0] for w in warnings] == ["executor.keystore", "executor.password_file"]
    assert "mode 644" in warnings[0] and "mode 640" in warnings[1]
    checked = warden("config", "check", str(path), "--unlock", env={})
    assert checked.returncode == 0, checked.stderr
    assert "warning: executor.keystore:" in checked.stdout
    assert f"relayer address: {RELAYER}" in checked.stdout


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_new_databases_and_their_wal_are_private(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        db = await open_database(tmp_path / "w.sqlite")
        await db.execute("CREATE TABLE t (x)")
        await db.execute("INSERT INTO t VALUES (1)")
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir() if p.name[0] == "w"}
        await db.close()
    finally:
        os.umask(old)
    assert modes == {"w.sqlite": 0o600, "w.sqlite-wal": 0o600, "w.sqlite-shm": 0o600}


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    db = await open_database(path)
    await db.close()
    path.chmod(0o640)
    db = await open_database(path)
    await db.close()
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.chain
def test_run_devnet_runs_until_sigterm(tmp_path: Path) -> None:
    """`warden run --devnet` on a production config (its rpc ignored): it starts anvil,
    deploys, logs that it is running, and stops in order on SIGTERM with exit 0."""
    prepare(tmp_path)
    config = tmp_path / "warden.yaml"
    config.write_text(
        PROD + DRY + f"database: {tmp_path / 'w.sqlite'}\napi:\n  port: {free_port()}\n"
        "devnet:\n  activity: false\n  block_time: 1\n"
    )
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "warden", "run", "--devnet", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 180  # a hang guard: anvil and the deployment first
        while "warden running" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "chain 31337 via http://127.0.0.1:" in text and "Traceback" not in text
    assert "database closed" in text and (tmp_path / "w.sqlite").stat().st_mode & 0o777 == 0o600
