"""The SQLite connection the daemon shares between its stores, opened and migrated through
the `database` seam (its `migrate` keeps the versions; this adapts a bare connection).

The executor imports this too (it may import the indexer; the reverse never happens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from database import Database, SchemaTooNew
from database import migrate as _migrate
from database import schema_version as _schema_version
from database.migrations import Step
from database.sqlite import SqliteDatabase, as_database

__all__ = ["SchemaTooNew", "migrate", "open_database", "schema_version"]


async def open_database(path: str | Path) -> aiosqlite.Connection:
    """Open (creating, mode 0600) a SQLite file in WAL mode; every write goes inside an
    explicit BEGIN IMMEDIATE … COMMIT."""
    return (await SqliteDatabase.open(path)).conn


async def schema_version(db: Database | aiosqlite.Connection, component: str) -> int:
    return await _schema_version(as_database(db), component)


async def migrate(
    db: Database | aiosqlite.Connection, component: str, steps: Sequence[Step]
) -> int:
    """Bring `component`'s tables to version len(steps); returns the version reached."""
    return await _migrate(as_database(db), component, steps)
