"""Versioned schema migrations, one numbered list per component, in one database.

Each package owns its tables and hands its ordered list of SQL scripts to `migrate`;
the version each component reached is kept in `schema_versions`. Migrations run in one
transaction per step, so a crash mid-migration leaves the previous version intact.
The executor imports this too (it may import the indexer; the reverse never happens).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
)
"""


class SchemaTooNew(RuntimeError):
    """The database was written by a newer Warden; refuse rather than corrupt it."""


async def open_database(path: str | Path) -> aiosqlite.Connection:
    """Open (creating) a SQLite file in WAL mode with autocommit off-by-hand:
    every write goes inside an explicit `BEGIN IMMEDIATE` … `COMMIT`. A new file is
    created with mode 0600 (it holds every session and the relayer's intents)."""
    _create_private(path)
    db = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a process kill (the WAL is in the OS cache); only a power
        # loss can drop the last commits, which the next start re-indexes from the chain.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA foreign_keys=ON")
        await db.execute("PRAGMA busy_timeout=10000")
    except BaseException:
        # e.g. a read-only file system: close, or aiosqlite's (non-daemon) thread keeps
        # the process alive after the caller has reported the error
        await db.close()
        raise
    return db


def _create_private(path: str | Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would honour the umask,
    typically 0644). SQLite gives its -wal and -shm files the database file's mode, so
    they follow. An existing file keeps the mode its owner chose."""
    name = str(path)
    if name == ":memory:" or name.startswith("file:") or not name:
        return
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing directory and the like: SQLite reports it as it opens
    os.close(fd)
    os.chmod(name, 0o600)  # in case the umask took bits away from 0600 itself


async def schema_version(db: aiosqlite.Connection, component: str) -> int:
    await db.execute(_VERSIONS)
    async with db.execute(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, component: str, steps: Sequence[str]) -> int:
    """Bring `component`'s tables to version len(steps); returns the version reached."""
    current = await schema_version(db, component)
    if current > len(steps):
        raise SchemaTooNew(
            f"the database has {component} schema version {current}, this Warden knows "
            f"{len(steps)}: upgrade Warden or point it at another database file"
        )
    for version, script in enumerate(steps[current:], start=current + 1):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    return len(steps)


def _statements(script: str) -> list[str]:
    # Our migration scripts hold no semicolons inside literals or triggers.
    return [s.strip() for s in script.split(";") if s.strip()]
