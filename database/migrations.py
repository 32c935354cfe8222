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
    """Bring `component`'s tables to version len(steps); returns the version reached."""
    current = await schema_version(db, component)
    if current > len(steps):
        raise SchemaTooNew(
            f"the database has {component} schema version {current}, this Warden knows "
            f"{len(steps)}: upgrade Warden or point it at another database"
        )
    for version, step in enumerate(steps[current:], start=current + 1):
        script = step if isinstance(step, str) else step[db.dialect]
        async with db.transaction() as tx:
            for statement in statements(ddl(script, db.dialect)):
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, version),
            )
    return len(steps)
