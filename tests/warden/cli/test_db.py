"""`warden db backup | restore | info` on real SQLite files, and every way a request can
be wrong: a target that is the live database (by name, through a symlink or a hard link,
its -wal), an existing file, a missing or read-only directory, a full disk; a restore file
that is not SQLite, truncated, corrupt, from a newer schema, from another chain's factory,
or offered while a daemon holds the database. Each gets one clear line and its exit code,
never a traceback, and nothing is left under a final name."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from database import check_sqlite
from database.sqlite import hold_file
from executor.schema import MIGRATIONS as EXECUTOR_STEPS
from indexer.schema import MIGRATIONS as INDEXER_STEPS
from notify.schema import MIGRATIONS as NOTIFY_STEPS
from tests._postgres import find_install
from tests._sessions import CHAIN_ID, FACTORY, build, create, fill
from tests.warden.app.test_storage import mount, mounted
from warden.cli import main
from warden.cli.exit_codes import ExitCode

# the schema versions this Warden writes, from the packages' own migration lists (so a
# new step anywhere does not break these tests)
EX, IX, NX = len(EXECUTOR_STEPS), len(INDEXER_STEPS), len(NOTIFY_STEPS)
CURRENT = {"indexer": IX, "executor": EX, "notify": NX, "warden": 1}


def db_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["db", *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def table(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return build(tmp_path / "warden.sqlite", 300, intents=10)


# -- backup -----------------------------------------------------------------------------


def test_a_backup_is_a_checked_copy_named_with_time_and_versions(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = db_cli(capsys, "backup", "--db", str(live))
    assert code == ExitCode.OK, err
    written = Path(out.split("backup written: ", 1)[1].split(" (", 1)[0])
    assert written.parent == live.parent
    assert written.name.startswith("warden.sqlite.backup-")
    assert written.name.endswith(f"-executor{EX}-indexer{IX}-notify{NX}-warden1.sqlite")
    assert "integrity ok" in out and "backup: 100%" in err
    assert check_sqlite(written).versions == CURRENT
    assert os.stat(written).st_mode & 0o777 == 0o600  # it holds the outbox
    for t in ("sessions", "events", "intents", "jobs", "transactions"):
        sql = f"SELECT * FROM {t} ORDER BY 1"
        assert table(written, sql) == table(live, sql)
    assert not [n for n in files(live.parent) if ".partial-" in n]


@pytest.mark.parametrize("which", ["itself", "wal", "symlink", "hardlink", "relative"])
def test_a_backup_never_overwrites_the_live_database(
    live: Path, which: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = table(live, "SELECT * FROM sessions")
    to = {
        "itself": live,
        "wal": Path(f"{live}-wal"),
        "symlink": live.parent / "link.sqlite",
        "hardlink": live.parent / "hard.sqlite",
        "relative": Path("./warden.sqlite"),
    }[which]
    if which == "symlink":
        to.symlink_to(live)
    if which == "hardlink":
        os.link(live, to)
    if which == "relative":
        monkeypatch.chdir(live.parent)
    code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(to), "--force")
    assert code == ExitCode.CONFIG
    assert "is the live database's own file" in err and "another file" in err
    assert table(live, "SELECT * FROM sessions") == before


def test_an_existing_target_needs_force(live: Path, capsys: pytest.CaptureFixture[str]) -> None:
    to = live.parent / "b.sqlite"
    to.write_bytes(b"keep me")
    code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(to))
    assert code == ExitCode.CONFIG and "exists" in err and "--force" in err
    assert to.read_bytes() == b"keep me"
    code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(to), "--force")
    assert code == ExitCode.OK, err
    assert check_sqlite(to).versions["executor"] == EX


def test_a_directory_target_gets_the_default_name(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "keep"
    folder.mkdir()
    code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(folder), "--quiet")
    assert code == ExitCode.OK, err
    (made,) = folder.iterdir()
    assert made.name.startswith("warden.sqlite.backup-") and err == ""


def test_bad_requests_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = build(tmp_path / "w.sqlite", 5)
    cases = [
        (["backup"], "--config FILE (the daemon's config) or --db"),
        (["backup", "--db", str(live), "--config", "x.yaml"], "one of them"),
        (["backup", "--db", str(tmp_path / "none.sqlite")], "there is no database at"),
        (["backup", "--db", "mysql://x/y"], "is not a database"),
        (["backup", "--db", str(live), "--to", str(tmp_path / "no/such/b.sqlite")],
         "does not exist: create it first"),
        (["backup", "--config", str(tmp_path / "missing.yaml")], "cannot read the config file"),
    ]  # fmt: skip
    for args, expected in cases:
        code, _, err = db_cli(capsys, *args)
        assert code == ExitCode.CONFIG, (args, err)
        assert expected in err, (args, err)
    assert db_cli(capsys)[0] == ExitCode.CONFIG  # `warden db` alone: name an action


def test_a_full_disk_leaves_nothing_under_the_final_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = build(tmp_path / "w.sqlite", 3_000)  # a few MiB: more than the disk holds
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=256k", "tmpfs") as disk:
        to = disk / "b.sqlite"
        code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(to), "--quiet")
        assert code == ExitCode.STORAGE, err
        assert "full" in err and "free space" in err
        assert files(disk) == set()  # neither the backup nor its partial file


def test_a_read_only_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = build(tmp_path / "w.sqlite", 10)
    data = tmp_path / "data"
    data.mkdir()
    with mounted(tmp_path / "ro", "--bind", str(data)) as view:
        mount("-o", "remount,ro,bind", str(view))
        code, _, err = db_cli(capsys, "backup", "--db", str(live), "--to", str(view / "b.sqlite"))
        assert code == ExitCode.CONFIG, err
        assert "is on a read-only file system: choose another --to" in err
        assert files(view) == set()


def test_kill_9_during_a_backup_leaves_no_file_under_the_final_name(tmp_path: Path) -> None:
    """A real process killed mid-copy: its partial file may stay, the final name never
    appears; the next backup removes the partial and succeeds."""
    live = build(tmp_path / "w.sqlite", 60_000, events=True)  # tens of MiB: a copy takes a while
    out = tmp_path / "out"
    out.mkdir()
    final = out / "b.sqlite"
    killed = 0
    for _ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-m", "warden", "db", "backup", "--db", str(live), "--to", str(final)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while proc.poll() is None and not any(".partial-" in n for n in files(out)):
            pass  # spin: the copy of a few tens of MiB can be over in a moment
        if proc.poll() is None:
            proc.kill()
            killed += 1
        proc.wait(timeout=60)
        if proc.returncode != 0:
            assert not final.exists(), "a killed backup left its final name"
        else:
            final.unlink()
    assert killed, "the backup always finished before it could be killed"
    code = subprocess.run(
        [sys.executable, "-m", "warden", "db", "backup", "--db", str(live), "--to", str(final)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert code.returncode == 0, code.stderr
    assert files(out) == {"b.sqlite"}  # the stale partials are gone
    assert check_sqlite(final).versions["indexer"] == 1


# -- restore ----------------------------------------------------------------------------


def test_restore_replaces_the_database_and_keeps_the_old_one(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "b.sqlite"
    assert db_cli(capsys, "backup", "--db", str(live), "--to", str(backup))[0] == 0
    fill_more(live)
    newer = table(live, "SELECT COUNT(*) FROM sessions")
    code, out, err = db_cli(capsys, "restore", str(backup), "--db", str(live))
    assert code == ExitCode.OK, err
    assert table(live, "SELECT COUNT(*) FROM sessions") == [(300,)]
    kept = Path(out.split("is kept as ", 1)[1].split("\n", 1)[0])
    assert kept.name.startswith("warden.sqlite.pre-restore-")
    assert table(kept, "SELECT COUNT(*) FROM sessions") == newer
    assert not Path(f"{live}-wal").exists() or Path(f"{live}-wal").stat().st_size == 0
    assert "re-syncs from the backup's checkpoint" in out


def fill_more(live: Path) -> None:
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("UPDATE sessions SET status = 'closed'")
        conn.execute("DELETE FROM sessions WHERE rowid % 2 = 0")
    conn.close()


def test_restore_is_refused_while_a_daemon_holds_the_database(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "b.sqlite"
    assert db_cli(capsys, "backup", "--db", str(live), "--to", str(backup))[0] == 0
    with hold_file(live, "warden run"):  # what a running daemon holds
        code, _, err = db_cli(capsys, "restore", str(backup), "--db", str(live))
    assert code == ExitCode.RUNTIME_FAILURE
    assert "in use by another process (warden run" in err and "stop it" in err
    assert not [p for p in live.parent.iterdir() if "pre-restore" in p.name]


def _truncated(src: Path, dst: Path) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _corrupt(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for i in range(2 * page, min(len(data), 6 * page)):  # scribble over b-tree pages
        data[i] = 0xA5
    dst.write_bytes(bytes(data))


def _newer(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())
    with sqlite3.connect(dst) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'executor'")
    conn.close()


def _unknown_component(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())
    with sqlite3.connect(dst) as conn:
        conn.execute("INSERT INTO schema_versions VALUES ('payments', 1)")
    conn.close()


def _other_factory(src: Path, dst: Path) -> None:
    asyncio.run(create(dst, factory="0x" + "ab" * 20))
    fill(dst, 3)


def _other_chain(src: Path, dst: Path) -> None:
    asyncio.run(create(dst, chain_id=1))


def _plain_sqlite(src: Path, dst: Path) -> None:
    with sqlite3.connect(dst) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda s, d: d.write_bytes(b"PK\x03\x04 a zip file"), "not a SQLite database"),
        (lambda s, d: d.write_bytes(b""), "it is empty"),
        (lambda s, d: d.write_bytes(b"SQLite format 3\x00" + b"\x10"), "not even a SQLite header"),
        (_truncated, "is truncated"),
        (_corrupt, "corrupt"),
        (_newer, f"executor schema version 99, this Warden knows {len(EXECUTOR_STEPS)}"),
        (_unknown_component, "components this Warden does not know (payments)"),
        (_other_factory, "is not a backup of this deployment"),
        (_other_chain, "chain 1, factory"),
        (_plain_sqlite, "not a Warden database"),
        (lambda s, d: d.mkdir(), "is a directory"),
        (lambda s, d: None, "there is no file at"),
    ],
    ids=["zip", "empty", "short", "truncated", "corrupt", "newer", "unknown", "factory",
         "chain", "plain", "directory", "missing"],
)  # fmt: skip
def test_a_bad_restore_file_is_refused_and_changes_nothing(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, expected: str
) -> None:
    bad = tmp_path / "bad.sqlite"
    assert callable(make)
    make(live, bad)
    before = live.read_bytes()
    listing = files(live.parent)
    code, _, err = db_cli(capsys, "restore", str(bad), "--db", str(live))
    assert code == ExitCode.CONFIG, err
    assert expected in err, err
    assert live.read_bytes() == before and files(live.parent) == listing


def test_restoring_the_live_database_onto_itself_is_refused(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = db_cli(capsys, "restore", str(live), "--db", str(live))
    assert code == ExitCode.CONFIG and "is the live database itself" in err


def test_restore_checks_the_configs_chain(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --config, the backup must be of the chain and factory the config serves, even
    when the database it replaces is gone."""
    backup = tmp_path / "b.sqlite"
    assert db_cli(capsys, "backup", "--db", str(live), "--to", str(backup))[0] == 0
    config = tmp_path / "w.yaml"
    other = "0x" + "cd" * 20
    config.write_text(
        f'chain:\n  rpc: ["http://127.0.0.1:1"]\n  chain_id: {CHAIN_ID}\n  factory: "{other}"\n'
        f"  confirmations: 0\ndatabase: {tmp_path / 'new.sqlite'}\nrules:\n  files: []\n"
        f'executor:\n  relayer: "{FACTORY}"\n'
    )
    code, _, err = db_cli(capsys, "restore", str(backup), "--config", str(config))
    assert code == ExitCode.CONFIG, err
    assert f"factory {FACTORY}, not of chain {CHAIN_ID}" in err
    assert not (tmp_path / "new.sqlite").exists()


def test_postgres_restore_prints_the_command(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = db_cli(capsys, "restore", str(tmp_path / "b.dump"), "--db", pg_dsn)
    assert code == ExitCode.RUNTIME_FAILURE
    assert "pg_restore --clean --if-exists" in err and "stop every replica" in err


# -- info -------------------------------------------------------------------------------


def test_info_shows_versions_counts_checkpoint_and_chain(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = db_cli(capsys, "info", "--db", str(live))
    assert code == ExitCode.OK, err
    assert f"executor {EX}, indexer {IX}, notify {NX}, warden 1 — up to date" in out
    assert f"chain {CHAIN_ID}, factory {FACTORY}" in out
    assert "checkpoint    block 130" in out
    assert "sessions      300 rows" in out and "transactions  10 rows" in out
    code, out, _ = db_cli(capsys, "info", "--db", str(live), "--json")
    assert '"sessions": 300' in out and '"chain_id": 31337' in out


def test_info_on_an_older_schema_says_what_the_next_start_migrates(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(live) as conn:
        conn.execute("DELETE FROM schema_versions WHERE component = 'warden'")
        conn.execute("DROP TABLE chain_identity")
    conn.close()
    code, out, _ = db_cli(capsys, "info", "--db", str(live))
    assert code == 0 and "the next start migrates warden 0 → 1" in out


def test_a_restore_onto_a_new_machine_needs_no_database_there(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "b.sqlite"
    assert db_cli(capsys, "backup", "--db", str(live), "--to", str(backup))[0] == 0
    fresh = tmp_path / "new" / "warden.sqlite"
    fresh.parent.mkdir()
    code, out, err = db_cli(capsys, "restore", str(backup), "--db", str(fresh))
    assert code == ExitCode.OK, err
    assert "is kept as" not in out  # nothing was replaced
    assert table(fresh, "SELECT COUNT(*) FROM sessions") == [(300,)]
    assert os.stat(fresh).st_mode & 0o777 == 0o600


def test_an_older_backup_is_restored_and_migrated_by_the_next_start(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.sqlite"
    old.write_bytes(live.read_bytes())
    with sqlite3.connect(old) as conn:  # as a Warden before the chain identity left it
        conn.execute("DELETE FROM schema_versions WHERE component = 'warden'")
        conn.execute("DROP TABLE chain_identity")
    conn.close()
    code, _, err = db_cli(capsys, "restore", str(old), "--db", str(live))
    assert code == ExitCode.OK, err
    code, out, _ = db_cli(capsys, "info", "--db", str(live))
    assert "the next start migrates warden 0 → 1" in out


def test_a_symlink_to_the_live_database_is_not_a_backup_of_it(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "looks-like-a-backup.sqlite"
    link.symlink_to(live)
    code, _, err = db_cli(capsys, "restore", str(link), "--db", str(live))
    assert code == ExitCode.CONFIG and "is the live database itself" in err


def test_a_config_needs_no_relayer_key_for_a_backup(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`warden db` reads only `database:`, `backups:` and the chain's id and factory: a
    cron job backing up needs neither the keystore's password nor the API token."""
    monkeypatch.delenv("UNSET_KEY_FOR_TEST", raising=False)
    body = (
        f'chain:\n  rpc: ["${{UNSET_RPC_FOR_TEST}}"]\n  chain_id: {CHAIN_ID}\n'
        f'  factory: "{FACTORY}"\ndatabase: {live}\nexecutor:\n'
        '  raw_key: "${UNSET_KEY_FOR_TEST}"\napi:\n  host: 0.0.0.0\n'
    )
    config = tmp_path / "w.yaml"
    config.write_text(body + "backups:\n  keep: 2\n")
    code, out, err = db_cli(capsys, "backup", "--config", str(config), "--quiet")
    assert code == ExitCode.OK and "backup written: " in out, err
    config.write_text(body + "backups:\n  keep: 0\n")  # what it uses is still checked
    code, _, err = db_cli(capsys, "backup", "--config", str(config))
    assert code == ExitCode.CONFIG
    assert f"{config}:11: backups.keep: 0 — keep 1 to 1,000" in err
    assert "raw_key" not in err and "api.token" not in err


def test_postgres_backup_runs_pg_dump_or_prints_the_command(
    pg_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(create_pg(pg_dsn))
    monkeypatch.setenv("PATH", "/nonexistent")
    to = tmp_path / "w.dump"
    code, _, err = db_cli(capsys, "backup", "--db", pg_dsn, "--to", str(to))
    assert code == ExitCode.RUNTIME_FAILURE
    assert "pg_dump is not on PATH" in err and "pg_dump --format=custom --no-owner" in err
    assert not to.exists()
    monkeypatch.setenv("PATH", str(find_install() / "bin"))
    code, out, err = db_cli(capsys, "backup", "--db", pg_dsn, "--to", str(to))
    assert code == ExitCode.OK, err
    assert to.read_bytes()[:5] == b"PGDMP" and "pg_restore --clean" in out
    assert [p.name for p in tmp_path.iterdir()] == ["w.dump"]
    listed = subprocess.run([str(find_install() / "bin" / "pg_restore"), "--list", str(to)],
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert "TABLE public chain_identity" in listed.stdout
    code, out, _ = db_cli(capsys, "info", "--db", pg_dsn)
    assert code == 0 and "(postgresql)" in out and f"chain {CHAIN_ID}, factory {FACTORY}" in out
    assert "leadership 1" in out and "up to date" in out


async def create_pg(dsn: str) -> None:
    from database import open_database
    from warden.app.schema import upgrade

    db = await open_database(dsn)
    try:
        await upgrade(db, dsn, "pg", keep=3, directory=None, chain_id=CHAIN_ID, factory=FACTORY)
    finally:
        await db.close()


@pytest.mark.parametrize("damage", [_corrupt, lambda s, d: d.write_bytes(b"garbage" * 100)])
def test_a_damaged_database_is_restored_over_and_kept_as_it_was(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    """A restore is often the answer to a broken database: the broken one is kept byte for
    byte (it cannot be copied through SQLite), and the restore goes on."""
    backup = tmp_path / "b.sqlite"
    assert db_cli(capsys, "backup", "--db", str(live), "--to", str(backup))[0] == 0
    broken = tmp_path / "broken"
    assert callable(damage)
    damage(live, broken)
    broken.replace(live)
    wreck = live.read_bytes()
    code, out, err = db_cli(capsys, "restore", str(backup), "--db", str(live))
    assert code == ExitCode.OK, err
    kept = Path(out.split("is kept as ", 1)[1].split("\n", 1)[0])
    assert kept.name.endswith("-damaged.sqlite") and kept.read_bytes() == wreck
    assert check_sqlite(live).versions["executor"] == EX
    assert table(live, "SELECT COUNT(*) FROM sessions") == [(300,)]


def test_backing_up_a_damaged_database_says_so(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.sqlite"
    _corrupt(live, broken)
    code, _, err = db_cli(capsys, "backup", "--db", str(broken), "--to", str(tmp_path / "b.sqlite"))
    assert code == ExitCode.CONFIG, err
    assert f"{broken} is damaged" in err and "Restore a backup" in err
    assert not (tmp_path / "b.sqlite").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
