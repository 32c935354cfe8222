"""One seam for the relational store: SQLite (embedded, the default) or PostgreSQL (shared
by replicas), behind the same small interface.

    db = await open_database("warden.sqlite")            # or "postgresql://user@host/db"
    rows = await db.fetch("SELECT number, hash FROM blocks WHERE number > ?", (10,))
    async with db.transaction() as tx:                   # one write transaction
        await tx.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?)", rows)
    await migrate(db, "indexer", MIGRATIONS)
    await migrate_all(db, [("indexer", I), ("executor", E)])   # every pending step, one tx
    copy_sqlite(Path("warden.sqlite"), Path("backup.sqlite"))   # consistent, while in use

SQL is written once, in the dialect both servers speak: `?` placeholders (numbered for
PostgreSQL here), `INSERT … ON CONFLICT … DO NOTHING / DO UPDATE`, `RETURNING`, window and
filter clauses. Schema scripts are written for SQLite and translated (`sql.ddl`): integers
become BIGINT, an `id INTEGER PRIMARY KEY` an identity column. uint256 values are decimal
TEXT on both (never REAL, never a float on the way). Nothing above this package names a
dialect except through `Database.dialect`, for the rare statement that must differ.
"""

from __future__ import annotations

from database.backup import FileCheck, check_sqlite, copy_sqlite
from database.base import Database, Ownership, Queries, Row
from database.errors import (
    DatabaseBusy,
    DatabaseError,
    Deposed,
    NotABackup,
    ReadersBusy,
    SchemaTooNew,
    UnsupportedDatabase,
)
from database.migrations import Plan, migrate, migrate_all, pending, schema_version, versions
from database.open import is_postgres_url, open_database, redact_database_url

__all__ = [
    "Database",
    "DatabaseBusy",
    "DatabaseError",
    "Deposed",
    "FileCheck",
    "NotABackup",
    "Ownership",
    "Plan",
    "Queries",
    "ReadersBusy",
    "Row",
    "SchemaTooNew",
    "UnsupportedDatabase",
    "check_sqlite",
    "copy_sqlite",
    "is_postgres_url",
    "migrate",
    "migrate_all",
    "open_database",
    "pending",
    "redact_database_url",
    "schema_version",
    "versions",
]
