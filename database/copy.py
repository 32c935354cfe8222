"""Copy tables from one database into another of either kind (SQLite → PostgreSQL to move
a single node onto a shared store, or back), in one transaction per table, in chunks.

Both must already have the schema (run each package's migrations on the target first);
columns are matched by name. An identity column's sequence is moved past the copied ids
on PostgreSQL, so the next insert does not collide with a copied row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from database.base import Database

CHUNK = 5_000


async def copy_tables(
    source: Database,
    target: Database,
    tables: Sequence[str],
    *,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Rows copied per table. The target tables must be empty (a copy, not a merge)."""
    copied: dict[str, int] = {}
    for table in tables:
        wanted = await target.columns(table)
        have = set(await source.columns(table))
        if not wanted or not have:
            raise ValueError(
                f"table {table} is missing on the {'target' if not wanted else 'source'}"
            )
        # SQLite keeps a hidden rowid that the PostgreSQL schema spells out where an
        # order depends on it (executor.schema): read it by that name.
        columns = [c for c in wanted if c in have or (c == "rowid" and source.dialect == "sqlite")]
        if await target.fetchval(f"SELECT COUNT(*) FROM {table}"):
            raise ValueError(f"table {table} on the target is not empty: copy into a new database")
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        order = "rowid" if source.dialect == "sqlite" else "1"
        rows = await source.fetch(f"SELECT {names} FROM {table} ORDER BY {order}")
        # a GENERATED ALWAYS column (the PostgreSQL rowid) takes copied values only so
        overriding = (
            " OVERRIDING SYSTEM VALUE"
            if target.dialect == "postgresql" and "rowid" in columns
            else ""
        )
        insert = f"INSERT INTO {table} ({names}){overriding} VALUES ({marks})"
        async with target.transaction() as tx:
            for start in range(0, len(rows), CHUNK):
                await tx.executemany(insert, rows[start : start + CHUNK])
            for key in ("id", "rowid"):  # identity columns: numbering goes on after the copy
                if target.dialect == "postgresql" and key in columns and rows:
                    await tx.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                        f"(SELECT MAX({key}) FROM {table}))"
                    )
        copied[table] = len(rows)
        if progress is not None:
            progress(table, len(rows))
    return copied
