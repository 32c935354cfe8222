"""Versioned schema migrations, one numbered list per component, in one database.

Each package owns its tables and hands its ordered list of scripts to `migrate`; the
version each component reached is kept in `schema_versions`. A step is a SQLite script
(translated for PostgreSQL by `sql.ddl`) or a mapping dialect → script for the rare step
that must differ.

Every pending step runs in ONE transaction: all of one component's (`migrate`), or all of
several components' (`migrate_all`, what a daemon's start runs). A step that fails, or a
crash anywhere in between, leaves the database exactly as it was before the first step
(PostgreSQL's DDL is transactional; SQLite's too), never half upgraded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from database.base import Database, Queries
from database.errors import SchemaTooNew
from database.sql import ddl, statements

Step = str | Mapping[str, str]
Plan = Sequence[tuple[str, Sequence[Step]]]  # (component, its steps), in the order to apply

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


async def read_versions(db: Queries, has_table: bool) -> dict[str, int]:
    """Every component's recorded version, creating nothing (a read-only database, a
    backup being checked): {} when there is no `schema_versions` table."""
    if not has_table:
        return {}
    rows = await db.fetch("SELECT component, version FROM schema_versions ORDER BY component")
    return {str(r[0]): int(r[1]) for r in rows}


async def versions(db: Database) -> dict[str, int]:
    return await read_versions(db, await db.has_table("schema_versions"))


def pending(current: Mapping[str, int], plan: Plan) -> dict[str, tuple[int, int]]:
    """component → (from, to) for each component `plan` would move; `SchemaTooNew` when a
    component is ahead of what this code knows."""
    out: dict[str, tuple[int, int]] = {}
    for component, steps in plan:
        have = current.get(component, 0)
        _refuse_newer(component, have, len(steps))
        if have < len(steps):
            out[component] = (have, len(steps))
    return out


def _refuse_newer(component: str, have: int, known: int) -> None:
    if have > known:
        raise SchemaTooNew(
            f"the database has {component} schema version {have}, this Warden knows {known}: "
            "upgrade Warden or point it at another database"
        )


async def migrate(db: Database, component: str, steps: Sequence[Step]) -> int:
    """Bring `component`'s tables to version len(steps); returns the version reached."""
    await migrate_all(db, [(component, steps)])
    return len(steps)


async def migrate_all(db: Database, plan: Plan) -> dict[str, tuple[int, int]]:
    """Bring every component of `plan` to its last version in one write transaction;
    returns what moved (component → (from, to)); {} when nothing was pending.

    The versions are read inside the transaction, under a lock every process migrating
    this database takes (SQLite: the write lock of BEGIN IMMEDIATE; PostgreSQL: a
    transaction-level advisory lock): replicas started together on a new database apply
    each step once, the others wait and find it done. Any failure rolls all of it back."""
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
        await tx.execute(ddl(_VERSIONS, db.dialect))
        moved = pending(await read_versions(tx, True), plan)
        steps_of = dict(plan)
        for component, (have, target) in moved.items():
            for step in steps_of[component][have:target]:
                script = step if isinstance(step, str) else step[db.dialect]
                for statement in statements(ddl(script, db.dialect)):
                    await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, target),
            )
        return moved
