"""A start's whole pending migration set is one transaction, on both stores: a step that
raises midway (here a test migration inserted between real ones) leaves every component's
tables, rows and versions exactly as they were; the fixed set then applies whole. And the
cursor `stream` reads a table in chunks, inside a snapshot a commit cannot tear."""

from __future__ import annotations

import pytest

from database import (
    Database,
    SchemaTooNew,
    migrate,
    migrate_all,
    open_database,
    pending,
    versions,
)

A = ["CREATE TABLE a_rows (id INTEGER PRIMARY KEY, amount TEXT NOT NULL)"]
A2 = [*A, "ALTER TABLE a_rows ADD COLUMN note TEXT"]
B = ["CREATE TABLE b_rows (k TEXT PRIMARY KEY)", "CREATE INDEX b_by_k ON b_rows (k)"]
RAISES = "INSERT INTO no_such_table VALUES (1)"  # fails on both servers


async def shape(
    db: Database,
) -> tuple[dict[str, int], list[str], list[str], list[tuple[object, ...]]]:
    return (
        await versions(db),
        await db.columns("a_rows"),
        await db.columns("b_rows"),
        await db.fetch("SELECT id, amount FROM a_rows ORDER BY id"),
    )


async def test_a_step_raising_midway_rolls_back_every_component(backend: str) -> None:
    db = await open_database(backend)
    try:
        await migrate(db, "a", A)
        await db.execute("INSERT INTO a_rows (id, amount) VALUES (1, ?)", (str(2**256 - 1),))
        before = await shape(db)
        assert pending(await versions(db), [("a", A2), ("b", B)]) == {"a": (1, 2), "b": (0, 2)}
        broken = [("a", A2), ("b", [B[0], RAISES, B[1]])]
        with pytest.raises(Exception):  # noqa: B017 - each driver names it its own way
            await migrate_all(db, broken)
        assert await shape(db) == before  # a's column not added, b's table not created
        assert await migrate_all(db, [("a", A2), ("b", B)]) == {"a": (1, 2), "b": (0, 2)}
        assert await versions(db) == {"a": 2, "b": 2}
        assert await db.columns("a_rows") == ["id", "amount", "note"]
        assert await migrate_all(db, [("a", A2), ("b", B)]) == {}  # nothing left to do
    finally:
        await db.close()


async def test_a_newer_component_is_refused_before_anything_runs(backend: str) -> None:
    db = await open_database(backend)
    try:
        await migrate_all(db, [("a", A2)])
        with pytest.raises(SchemaTooNew, match="a schema version 2, this Warden knows 1"):
            await migrate_all(db, [("b", B), ("a", A)])
        assert not await db.has_table("b_rows")
    finally:
        await db.close()


async def test_stream_reads_in_chunks_inside_one_snapshot(backend: str) -> None:
    db = await open_database(backend)
    reader = await open_database(backend, read_only=True)
    try:
        await migrate(db, "a", A)
        async with db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO a_rows (id, amount) VALUES (?, ?)",
                [(i, str(2**255 + i)) for i in range(2_500)],
            )
        chunks: list[int] = []
        seen: list[int] = []
        async with reader.snapshot():
            async for rows in reader.stream("SELECT id, amount FROM a_rows ORDER BY id", (), 1000):
                chunks.append(len(rows))
                seen.extend(int(r[0]) for r in rows)
                assert all(int(r[1]) == 2**255 + int(r[0]) for r in rows)  # exact text
                if len(chunks) == 1:  # a commit in the middle of the read is not seen
                    await db.execute("INSERT INTO a_rows (id, amount) VALUES (99999, '0')")
        assert chunks == [1000, 1000, 500] and seen == list(range(2_500))
        outside = [r async for chunk in reader.stream("SELECT id FROM a_rows") for r in chunk]
        assert len(outside) == 2_501
    finally:
        await reader.close()
        await db.close()
