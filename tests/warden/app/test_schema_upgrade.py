"""What a start does before the daemon touches its database (`warden.app.schema.upgrade`),
on real SQLite files and a real PostgreSQL server:

- a migration due on a database holding data is preceded by a backup next to it, named
  with the old versions, and only the last `backups.keep` are kept; a new database needs
  none;
- a test migration that raises midway leaves the database byte-for-byte as it was (every
  table, row and version) and the error names the backup; the next start with the fix
  succeeds;
- a backup that cannot be written (full disk) stops the start before anything migrates;
- a database of another chain or factory is refused untouched;
- the real `warden run` says where the backup went.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from database import Plan, SchemaTooNew, check_sqlite, open_database, versions
from executor.schema import MIGRATIONS as EXECUTOR_STEPS
from indexer.schema import MIGRATIONS as INDEXER_STEPS
from notify.schema import MIGRATIONS as NOTIFY_STEPS
from tests._postgres import find_install
from tests._sessions import CHAIN_ID, FACTORY, fill
from tests.conftest import Roles, Stack
from tests.warden.app.test_storage import Run, mounted, wait_for, write_config
from warden.app.schema import (
    IDENTITY,
    BackupFailed,
    MigrationFailed,
    Upgrade,
    WrongDatabase,
    plan,
    upgrade,
)
from warden.devnet import Anvil, free_port

RAISES = "INSERT INTO no_such_table VALUES (1)"

# the schema versions this Warden writes, from the packages' own migration lists (so a
# new step anywhere does not break these tests)
EX, IX, NX = len(EXECUTOR_STEPS), len(INDEXER_STEPS), len(NOTIFY_STEPS)
CURRENT = {"indexer": IX, "executor": EX, "notify": NX, "warden": 1}


async def old_database(path: Path) -> None:
    """A database as a Warden before the `warden` component left it: indexer and executor
    tables, no chain identity."""
    db = await open_database(path)
    try:
        old = [(c, s) for c, s in plan(db.dialect) if c != IDENTITY]
        await upgrade(db, path, path, keep=3, directory=None, steps=old)
    finally:
        await db.close()


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


async def start(path: Path, steps: Plan | None = None, **kw: Any) -> Upgrade:
    db = await open_database(path)
    try:
        args = {"keep": 3, "directory": None, "chain_id": CHAIN_ID, "factory": FACTORY, **kw}
        return await upgrade(db, path, path, steps=steps, **args)
    finally:
        await db.close()


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if ".pre-migration-" in p.name)


def with_failing_step() -> Plan:
    """The real plan with a step that raises inserted midway: after the indexer's and the
    executor's steps, in a component of its own, before the identity's."""
    steps = plan("sqlite")
    return [*steps[:2], ("broken", ["CREATE TABLE half (x INTEGER)", RAISES]), *steps[2:]]


def test_a_migration_that_raises_midway_changes_nothing_and_names_the_backup(
    tmp_path: Path,
) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(old_database(live))
    fill(live, 200, intents=6)
    before = dump(live)
    with pytest.raises(MigrationFailed) as failed:
        asyncio.run(start(live, with_failing_step()))
    (backup,) = backups(tmp_path)
    text = str(failed.value)
    assert f"the backup taken before it is {backup}" in text
    assert "Nothing was changed" in text and "no_such_table" in text
    assert dump(live) == before  # no `half` table, no identity table, same versions
    assert backup.name.startswith("warden.sqlite.pre-migration-")
    assert backup.name.endswith(f"-executor{EX}-indexer{IX}-notify{NX}.sqlite")  # the old versions
    assert dump(backup) == before
    # the next start, with the fix, succeeds (and backs up again: the data is still old)
    done = asyncio.run(start(live))
    assert done.moved == {IDENTITY: (0, 1)}
    assert len(backups(tmp_path)) == 2
    assert check_sqlite(live).versions == CURRENT
    assert asyncio.run(start(live)).moved == {}
    assert len(backups(tmp_path)) == 2  # nothing to migrate: no backup


def test_only_the_last_backups_are_kept(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(old_database(live))
    fill(live, 10)
    made = []
    for _ in range(4):
        with pytest.raises(MigrationFailed):
            asyncio.run(start(live, with_failing_step(), keep=2))
        made.append(backups(tmp_path)[-1])
    assert backups(tmp_path) == made[-2:]


def test_backups_go_to_the_configured_directory(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(old_database(live))
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    asyncio.run(start(live, directory=folder))
    assert len(backups(folder)) == 1 and backups(tmp_path) == []


def test_a_new_database_needs_no_backup(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    report = asyncio.run(start(live))
    assert report.backup is None
    assert set(report.moved) == {"indexer", "executor", "notify", IDENTITY}
    assert backups(tmp_path) == []


def test_no_backup_space_means_no_migration(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(old_database(live))
    fill(live, 3_000)
    before = dump(live)
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=128k", "tmpfs") as disk:
        with pytest.raises(BackupFailed, match="Nothing was migrated; free space there"):
            asyncio.run(start(live, directory=disk))
        assert list(disk.iterdir()) == []
    assert dump(live) == before


def test_a_database_of_another_deployment_is_refused_untouched(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(start(live))
    with pytest.raises(WrongDatabase, match=f"holds sessions of chain {CHAIN_ID}, factory"):
        asyncio.run(start(live, factory="0x" + "ab" * 20))
    with pytest.raises(WrongDatabase, match="not of chain 1,"):
        asyncio.run(start(live, chain_id=1))
    # an old database of another factory: refused before its backup and migration
    old = tmp_path / "old" / "warden.sqlite"
    old.parent.mkdir()
    asyncio.run(old_database(old))
    asyncio.run(start(old))  # records this factory
    conn = sqlite3.connect(old)
    with conn:
        conn.execute("UPDATE schema_versions SET version = 0 WHERE component = 'warden'")
        conn.execute("DROP TABLE chain_identity")
        conn.execute("CREATE TABLE chain_identity (id INTEGER PRIMARY KEY, chain_id INTEGER, "
                     "factory TEXT, recorded_ms INTEGER)")  # fmt: skip
        conn.execute("INSERT INTO chain_identity VALUES (1, 5, '0x00', 0)")
    conn.close()
    before, taken = dump(old), backups(old.parent)
    with pytest.raises(WrongDatabase):
        asyncio.run(start(old))
    assert dump(old) == before and backups(old.parent) == taken  # no backup, no migration


def test_a_newer_schema_is_refused_before_any_backup(tmp_path: Path) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(start(live))
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("UPDATE schema_versions SET version = 9 WHERE component = 'indexer'")
    conn.close()
    with pytest.raises(SchemaTooNew, match="indexer schema version 9, this Warden knows 1"):
        asyncio.run(start(live))
    assert backups(tmp_path) == []


# -- PostgreSQL ----------------------------------------------------------------------------


async def pg_upgrade(dsn: str, folder: Path, steps: Plan | None = None) -> Upgrade:
    db = await open_database(dsn)
    try:
        return await upgrade(db, dsn, "pg", keep=3, directory=folder, steps=steps)
    finally:
        await db.close()


async def pg_shape(dsn: str) -> tuple[dict[str, int], list[str]]:
    db = await open_database(dsn)
    try:
        tables = await db.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() ORDER BY 1"
        )
        return await versions(db), [str(t[0]) for t in tables]
    finally:
        await db.close()


def test_postgresql_backs_up_with_pg_dump_and_rolls_a_failure_back(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = find_install() / "bin"  # the suite's own PostgreSQL binaries, pg_dump among them
    old = [(c, s) for c, s in plan("postgresql") if c != IDENTITY]
    asyncio.run(pg_upgrade(pg_dsn, tmp_path, old))
    before = asyncio.run(pg_shape(pg_dsn))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    broken = [*plan("postgresql")[:2], ("broken", ["CREATE TABLE half (x INTEGER)", RAISES]),
              *plan("postgresql")[2:]]  # fmt: skip
    with pytest.raises(MigrationFailed, match=r"the backup taken before it is .*\.dump"):
        asyncio.run(pg_upgrade(pg_dsn, tmp_path, broken))
    assert asyncio.run(pg_shape(pg_dsn)) == before
    (dump_file,) = [p for p in tmp_path.iterdir() if p.suffix == ".dump"]
    assert dump_file.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    # without pg_dump: a warning with the command, and the (fixed) migration still runs
    monkeypatch.setenv("PATH", "/nonexistent")
    report = asyncio.run(pg_upgrade(pg_dsn, tmp_path))
    assert report.backup is None and report.moved == {IDENTITY: (0, 1)}


# -- the real daemon ------------------------------------------------------------------------


def test_warden_run_backs_up_before_migrating_and_says_where(
    tmp_path: Path, anvil: Anvil, stack: Stack, roles: Roles
) -> None:
    live = tmp_path / "warden.sqlite"
    asyncio.run(old_database(live))
    config = write_config(tmp_path, live, anvil.url, stack, roles, 1, free_port())
    run = Run(config, tmp_path / "log.jsonl")
    try:
        wait_for(lambda: any("database migrated" in r.get("message", "") for r in run.records()),
                 "the migration", timeout=180)  # fmt: skip
    finally:
        code = run.stop()
    assert code == 0
    lines = [r["message"] for r in run.records()]
    (said,) = [m for m in lines if m.startswith("backup before migrating: ")]
    path = Path(said.removeprefix("backup before migrating: ").split(" (", 1)[0])
    assert path.parent == tmp_path and path.exists()
    assert check_sqlite(path).versions == {"indexer": IX, "executor": EX, "notify": NX}
    assert any("warden 0 → 1" in m for m in lines)
    shutil.rmtree(tmp_path / "rules", ignore_errors=True)
    assert json.dumps(lines)  # every line was JSON


def test_warden_run_with_a_migration_failing_midway_changes_nothing_then_starts_once_fixed(
    tmp_path: Path, anvil: Anvil, stack: Stack, roles: Roles
) -> None:
    """A real failure of a real step: an older database (executor schema 2, no chain
    identity) where someone created a table the executor's step 3 creates. The start
    backs up, the step fails, every step of that start rolls back (executor 2 → 3 and
    warden 0 → 1), the daemon exits 2 naming the backup; once the stray table is gone, the
    next start migrates and runs."""
    live = tmp_path / "warden.sqlite"
    older = [(c, s[:2] if c == "executor" else s) for c, s in plan("sqlite") if c != IDENTITY]
    asyncio.run(start(live, older, chain_id=None, factory=None))
    fill(live, 50, intents=4)
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("CREATE TABLE isolated_wallets (note TEXT)")  # in the way of step 3
    conn.close()
    before = dump(live)
    config = write_config(tmp_path, live, anvil.url, stack, roles, 1, free_port())
    run = Run(config, tmp_path / "log.jsonl")
    assert run.proc.wait(timeout=180) == 2
    errors = [r["message"] for r in run.records() if r.get("level") == "error"]
    (backup,) = backups(tmp_path)
    assert any(
        "migrating the database" in m and "Nothing was changed" in m and str(backup) in m
        for m in errors
    ), errors
    assert "Traceback" not in (tmp_path / "log.jsonl").read_text()
    assert dump(live) == before  # the executor at 2, no identity table, the stray table
    assert (
        backup.name.endswith(f"-executor2-indexer{IX}-notify{NX}.sqlite") and dump(backup) == before
    )
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("DROP TABLE isolated_wallets")  # the fix
    conn.close()
    run = Run(config, tmp_path / "log.jsonl")
    try:
        wait_for(lambda: any("warden running" in r.get("message", "") for r in run.records()),
                 "the fixed start", timeout=180)  # fmt: skip
    finally:
        assert run.stop() == 0
    assert check_sqlite(live).versions == CURRENT
