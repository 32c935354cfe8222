"""End to end through the real `warden run` process on the shared anvil: stop-loss,
take-profit, sweep, expiry and idle cleanup each close their session on chain with the
owner refunded; the API reports each with its reason; a kill -9 and restart mid-way
changes nothing; SIGHUP with a broken rule file keeps the old rules; SIGTERM stops in
order with exit 0; JSON logs never show the key. The main scenario runs on SQLite and on
PostgreSQL (`database:` a URL to a fresh database of the suite's server)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._chain import Chain, CloseReason
from tests._db import rows
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import RELAYER_KEY
from warden.devnet import DEVNET_KEYS, Anvil, free_port

ROOT = Path(__file__).resolve().parents[3]
DAY = 86_400
DEVNET_OPERATOR_KEY = DEVNET_KEYS[1]  # what `make run` exports


def write_config(
    tmp: Path, anvil: Anvil, stack: Stack, start: int, port: int, database: str | None = None
) -> Path:
    """`database`: a path or a postgresql:// URL (default: warden.sqlite beside it)."""
    rules = tmp / "rules"
    shutil.copytree(ROOT / "config/rules", rules)
    config = tmp / "warden.yaml"
    config.write_text(
        f"""
chain:
  rpc: ["{anvil.url}"]
  chain_id: 31337
  factory: "{stack.factory.address}"
  start_block: {start}
  confirmations: 0
  poll_interval: 0.2
  retry_initial: 0.05
database: "{database or tmp / "warden.sqlite"}"
rules:
  files: [{rules}]
executor:
  raw_key: "${{WARDEN_TEST_KEY}}"
  min_relayer_balance: "0.01 ether"
  replace_after_blocks: 2
api:
  port: {port}
logging:
  json: true
"""
    )
    return config


class Proc:
    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        env = {**os.environ, "WARDEN_TEST_KEY": RELAYER_KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warden", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
            env=env,
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args], capture_output=True, text=True, timeout=60
    )


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def closed(port: int, wallet: str) -> bool:
    return bool(get(port, f"/sessions/{wallet}")["session"]["status"] == "closed")


def reason_on_chain(session: Session) -> int:
    (log,) = session.wallet.events.Closed().get_logs(from_block=session.receipt["blockNumber"])
    return int(log["args"]["reason"])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `database:` holds: a SQLite path, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "warden.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


def test_every_rule_closes_through_the_daemon_process_and_a_restart_changes_nothing(
    database: str,
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    port = free_port()
    config = write_config(tmp_path, anvil, stack, start, port, database)
    log = tmp_path / "daemon.log"
    now = fresh_chain.now()
    loss, win, revoked = (make_session(policy="") for _ in range(3))
    expiring = make_session(policy="", expiry=now + 3_600)
    idle = make_session(policy="", expiry=now + 30 * DAY)
    owner_start = fresh_chain.balance(stack.token, roles.owner)

    daemon = Proc(config, log)
    try:
        wait_for(lambda: get(port, "/ready")["ready"] is True, "ready")
        fresh_chain.send(loss.wallet.functions.withdraw(850 * TOKEN), roles.owner)
        fresh_chain.send(stack.token.functions.transfer(win.wallet.address, 2_500 * TOKEN),
                         roles.owner)  # fmt: skip
        fresh_chain.send(win.wallet.functions.sync(), roles.owner)  # a win: 3,475 ≥ 3,000
        wait_for(lambda: closed(port, loss.wallet.address), "stop-loss close")
        wait_for(lambda: closed(port, win.wallet.address), "take-profit close")

        # kill -9 mid-way, then a restart on the same database.
        assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
        daemon = Proc(config, log)
        wait_for(lambda: get(port, "/ready")["ready"] is True, "ready after restart")

        # A broken rule file on SIGHUP: the old rules keep running.
        broken = tmp_path / "rules" / "zz-broken.yaml"
        broken.write_text("rules:\n  - name: oops\n    when: balance <= 24h\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keep running" in log.read_text(), "reload refusal")
        broken.unlink()

        fresh_chain.send(revoked.wallet.functions.revoke(), roles.owner)
        wait_for(lambda: closed(port, revoked.wallet.address), "sweep")
        fresh_chain.mine(now + 2 * DAY)  # past the expiry of one, 24 h idle for the other
        wait_for(lambda: closed(port, expiring.wallet.address), "expiry close")
        wait_for(lambda: closed(port, idle.wallet.address), "idle close")
        wait_for(lambda: get(port, "/status")["intents"]["confirmed"] == 5, "5 confirmed intents")
        status = get(port, "/status")
        shown = cli("status", "--url", f"http://127.0.0.1:{port}")
        assert shown.returncode == 0 and "confirmed 5" in shown.stdout, shown
    finally:
        code = daemon.stop()
    assert code == 0

    expected = [
        (loss, "stop_loss", CloseReason.STOP_LOSS),
        (win, "take_profit", CloseReason.TAKE_PROFIT),
        (revoked, "swept", CloseReason.SWEPT),
        (expiring, "expired", CloseReason.EXPIRED),
        (idle, "idle", CloseReason.IDLE),
    ]
    db = database
    for session, reason, code_ in expected:
        assert reason_on_chain(session) == code_
        found = rows(db, "SELECT reason, state FROM intents WHERE wallet = ?",
                     session.wallet.address)  # fmt: skip
        assert found == [(reason, "confirmed")]  # one firing, one transaction, confirmed
    assert status["intents"]["confirmed"] == 5 and status["intents"]["pending"] == 0
    # Withdrew 850, paid 2,500 in, of which the sync took the inflow's 1 % fee (25);
    # refunds 150 + 3,475 + 3 x 1,000: every other token came back.
    assert fresh_chain.balance(stack.token, roles.owner) - owner_start == 4_975 * TOKEN

    inspected = cli("inspect", loss.wallet.address, "--db", db)
    assert inspected.returncode == 0, inspected.stderr
    assert "[closed · stop_loss]" in inspected.stdout
    assert "stop-loss: close (stop_loss) → confirmed" in inspected.stdout
    (mined_hash,) = rows(db, "SELECT mined_hash FROM jobs j JOIN intents i ON i.job_id = j.id "
                              "WHERE i.wallet = ?", loss.wallet.address)[0]  # fmt: skip
    assert f"tx {mined_hash}" in inspected.stdout and "Withdrawn" in inspected.stdout

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert any("rule stop-loss fired" in m for m in messages)
    assert any("rule idle-cleanup fired" in m for m in messages)
    last = messages[-5:]
    assert last.index("HTTP stopped") < last.index("intake stopped; in-flight work finished")
    key = RELAYER_KEY.lower().removeprefix("0x")
    assert key not in log.read_text().lower()


def test_run_with_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("chain:\n  rpc: [http://127.0.0.1:1]\n  chian_id: 5\n")
    result = cli("run", "--config", str(config))
    assert result.returncode == 2
    assert "chian_id" in result.stderr and "chain_id" in result.stderr


def test_make_run_config_reaches_stop_loss_fired_then_closed(tmp_path: Path) -> None:
    """config/devnet.yaml as `make run` uses it (own devnet, activity generator), with the
    database and the API port moved out of the way."""
    text = (ROOT / "config/devnet.yaml").read_text()
    text = text.replace("../warden-devnet.sqlite", str(tmp_path / "devnet.sqlite"))
    text = text.replace("port: 8080", f"port: {free_port()}")
    text = text.replace("- rules ", f"- {ROOT / 'config/rules'} ").replace(
        "- devnet/rules ", f"- {ROOT / 'config/devnet/rules'} "
    )
    config = tmp_path / "devnet.yaml"
    config.write_text(text)
    log = tmp_path / "run.log"
    env = {**os.environ, "WARDEN_DEVNET_KEY": DEVNET_OPERATOR_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "warden", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=env,
    )  # fmt: skip
    try:

        def fired_and_closed() -> bool:
            text = log.read_text()
            return "-stop-loss fired" in text and "confirmed 1" in text

        wait_for(fired_and_closed, "stop-loss fired, then a close confirmed", timeout=120)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-2000:]
