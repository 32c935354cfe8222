"""Versioned schema migrations, one numbered list per component, in one database.

Each package owns its tables and hands its ordered list of scripts to `migrate`; the
version each component reached is kept in `schema_versions`. A step is a SQLite script
(translated for PostgreSQL by `sql.ddl`) or a mapping dialect → script for the rare step
that must differ. Each step runs in one transaction, so a crash mid-migration leaves the
previous version intact (PostgreSQL's DDL is transactional; SQLite's too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from database.base import Database
from database.errors import SchemaTooNew
from database.sql import ddl, statements

Step = str | Mapping[str, str]

_LOCK = 0x5741_5244_454E_4D47  # "WARDENMG": the advisory lock key migrations hold

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version   INTEGER NOT NULL
)
"""


async def schema_version(db: Database, component: str) -> int:
    await db.execute(ddl(_VERSIONS, db.dialect))
    value = await db.fetchval(
        "SELECT version FROM schema_versions WHERE component = ?", (component,)
    )
    return int(value) if value is not None else 0


async def migrate(db: Database, component: str, steps: Sequence[Step]) -> int:
    """Bring `component`'s tables to version len(steps); returns the version reached.

    Each step reads the version inside its own write transaction, under a lock every
    process migrating this database takes (SQLite: the write lock of BEGIN IMMEDIATE;
    PostgreSQL: a transaction-level advisory lock): replicas started together on a new
    database apply each step once, the others wait and find it done."""
    while True:
        async with db.transaction() as tx:
            if db.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            await tx.execute(ddl(_VERSIONS, db.dialect))
            value = await tx.fetchval(
                "SELECT version FROM schema_versions WHERE component = ?", (component,)
            )
            current = int(value) if value is not None else 0
            if current > len(steps):
                raise SchemaTooNew(
                    f"the database has {component} schema version {current}, this Warden "
                    f"knows {len(steps)}: upgrade Warden or point it at another database"
                )
            if current == len(steps):
                return len(steps)
            step = steps[current]
            script = step if isinstance(step, str) else step[db.dialect]
            for statement in statements(ddl(script, db.dialect)):
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, current + 1),
            )
