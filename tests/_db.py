"""Reading a daemon's database from a test, whichever store it is on: `rows` runs one
query on a SQLite path or a PostgreSQL URL; `copy_to_sqlite` copies a PostgreSQL
database's tables into a new SQLite file with the same schema, so the oracle of
tests/chaos/_state.py (written against SQLite files) judges a PostgreSQL run unchanged."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from database import is_postgres_url, open_database
from executor import Outbox
from indexer import IndexerStore
from tests._postgres import run_async


def rows(target: str | Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """`sql` (`?` placeholders) on a SQLite file or a PostgreSQL database; the rows."""
    if not is_postgres_url(str(target)):
        with contextlib.closing(sqlite3.connect(f"file:{target}?mode=ro", uri=True)) as db:
            return db.execute(sql, params).fetchall()

    async def go() -> list[tuple[Any, ...]]:
        db = await open_database(str(target), read_only=True)
        try:
            return await db.fetch(sql, params)
        finally:
            await db.close()

    return run_async(go)


def copy_to_sqlite(dsn: str, path: Path) -> Path:
    """Every indexer and executor table of the PostgreSQL database `dsn`, copied into the
    new SQLite file `path` (made with the same migrations); `path`."""
    if path.exists():
        raise FileExistsError(f"{path} exists: the copy needs a new file")

    async def go() -> None:
        target = await open_database(path)
        source = await open_database(dsn, read_only=True)
        try:
            await IndexerStore(target).setup()
            await Outbox(target).setup()
            tables = [
                str(r[0])
                for r in await target.fetch(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                    "'sqlite_%' AND name != 'schema_versions'"
                )
            ]
            async with source.snapshot():  # one consistent view of every table
                for table in tables:
                    if not await source.has_table(table):
                        continue
                    columns = [str(c[1]) for c in await target.fetch(f"PRAGMA table_info({table})")]
                    names = ", ".join(columns)
                    found = await source.fetch(f"SELECT {names} FROM {table}")
                    async with target.transaction() as tx:
                        await tx.execute(f"DELETE FROM {table}")  # rows setup() seeded
                        marks = ", ".join("?" for _ in columns)
                        await tx.executemany(
                            f"INSERT INTO {table} ({names}) VALUES ({marks})", found
                        )
        finally:
            await source.close()
            await target.close()

    run_async(go)
    return path
