"""The database seam on both real stores: the same SQL, the same answers. Exact uint256
text and BIGINT positions, transactions that roll back whole, row counts, upserts,
placeholders in literals left alone, migrations versioned on both, read snapshots a
concurrent commit cannot tear, and URLs refused or shown without their password."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from database import (
    Database,
    DatabaseBusy,
    SchemaTooNew,
    UnsupportedDatabase,
    migrate,
    open_database,
    redact_database_url,
    schema_version,
)
from database.sql import ddl, numbered

U256_MAX = 2**256 - 1
EDGES = [0, 1, 2**255 - 1, 2**255, 2**255 + 1, U256_MAX]
STEPS = [
    """
    CREATE TABLE items (
        id       INTEGER PRIMARY KEY,
        position INTEGER NOT NULL UNIQUE,
        amount   TEXT NOT NULL,
        note     TEXT
    );
    CREATE INDEX items_by_note ON items (note)
    """,
    "ALTER TABLE items ADD COLUMN flag INTEGER NOT NULL DEFAULT 0",
]


@contextlib.asynccontextmanager
async def opened(target: str, *, read_only: bool = False) -> AsyncIterator[Database]:
    db = await open_database(target, read_only=read_only)
    try:
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def items(target: str) -> AsyncIterator[Database]:
    async with opened(target) as db:
        assert await migrate(db, "test", STEPS) == 2
        yield db


async def test_exact_uint256_text_and_bigint_positions(backend: str) -> None:
    async with items(backend) as db:
        rows = [((2**31 - 8 + n) << 32 | n, str(v)) for n, v in enumerate(EDGES)]  # < 2^63
        await db.executemany("INSERT INTO items (position, amount) VALUES (?, ?)", rows)
        got = await db.fetch("SELECT position, amount FROM items ORDER BY position")
        assert [(p, int(a)) for p, a in got] == [(p, int(a)) for p, a in rows]
        assert all(type(p) is int for p, _ in got)  # never a float on the way
        # shifts work on both, on positions past 32-bit INTEGER
        blocks = await db.fetch("SELECT position >> 32 FROM items ORDER BY position")
        assert [b for (b,) in blocks] == [2**31 - 8 + n for n in range(len(EDGES))]
        ids = [i for (i,) in await db.fetch("SELECT id FROM items ORDER BY id")]
        assert ids == sorted(ids) and len(set(ids)) == len(EDGES)  # numbered on insert


async def test_a_transaction_commits_whole_or_not_at_all(backend: str) -> None:
    async with items(backend) as db:
        with pytest.raises(RuntimeError, match="midway"):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO items (position, amount) VALUES (?, ?)", (1, "1"))
                raise RuntimeError("midway")
        assert await db.fetchval("SELECT COUNT(*) FROM items") == 0
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO items (position, amount) VALUES (?, ?)", (1, "1"))
            assert await tx.fetchval("SELECT amount FROM items WHERE position = ?", (1,)) == "1"
        assert await db.fetchval("SELECT COUNT(*) FROM items") == 1


async def test_row_counts_upserts_and_returning(backend: str) -> None:
    async with items(backend) as db:
        rows = [(n, str(n)) for n in range(5)]
        await db.executemany("INSERT INTO items (position, amount) VALUES (?, ?)", rows)
        assert await db.execute("UPDATE items SET note = ? WHERE position < ?", ("x", 3)) == 3
        assert await db.execute("DELETE FROM items WHERE position = ?", (99,)) == 0
        ignored = await db.execute(
            "INSERT INTO items (position, amount) VALUES (?, ?) ON CONFLICT (position) DO NOTHING",
            (1, "changed"),
        )
        assert ignored == 0
        await db.execute(
            "INSERT INTO items (position, amount) VALUES (?, ?) "
            "ON CONFLICT (position) DO UPDATE SET amount = excluded.amount",
            (1, str(U256_MAX)),
        )
        assert await db.fetchval("SELECT amount FROM items WHERE position = 1") == str(U256_MAX)
        (new_id,) = await db.fetchone(  # type: ignore[misc]
            "INSERT INTO items (position, amount) VALUES (?, ?) RETURNING id", (77, "7")
        )
        assert await db.fetchval("SELECT position FROM items WHERE id = ?", (new_id,)) == 77
        assert await db.fetchone("SELECT * FROM items WHERE position = ?", (1234,)) is None


async def test_question_marks_inside_literals_are_text(backend: str) -> None:
    async with items(backend) as db:
        await db.execute(
            "INSERT INTO items (position, amount, note) VALUES (?, ?, 'why? because')", (3, "3")
        )
        assert await db.fetchval("SELECT note FROM items WHERE position = ?", (3,)) == (
            "why? because"
        )
    assert numbered("SELECT '?', \"a?\", ? , ?") == "SELECT '?', \"a?\", $1 , $2"


async def test_migrations_are_versioned_and_refuse_a_newer_schema(backend: str) -> None:
    async with opened(backend) as db:
        assert await migrate(db, "test", STEPS[:1]) == 1
        assert await schema_version(db, "test") == 1
        assert await migrate(db, "test", STEPS) == 2  # only the new step runs
        assert await migrate(db, "test", STEPS) == 2  # again: nothing to do
        assert await schema_version(db, "other") == 0
        with pytest.raises(SchemaTooNew, match="schema version 2, this Warden knows 1"):
            await migrate(db, "test", STEPS[:1])
        await db.execute("INSERT INTO items (position, amount, flag) VALUES (1, '1', 1)")


async def test_a_failing_migration_step_leaves_the_database_as_it_was(backend: str) -> None:
    """Every pending step is one transaction: the first step's table is gone again."""
    broken = [STEPS[0], "ALTER TABLE items ADD COLUMN ok INTEGER; ALTER TABLE nowhere ADD x"]
    async with opened(backend) as db:
        with pytest.raises(Exception):  # noqa: B017 - each driver names it its own way
            await migrate(db, "test", broken)
        assert await schema_version(db, "test") == 0
        assert not await db.has_table("items")
        assert await migrate(db, "test", STEPS) == 2  # the fixed steps apply


async def test_processes_migrating_one_new_database_at_once_all_succeed(backend: str) -> None:
    """Replicas started together on a new database run the same migrations at the same
    moment (two `CREATE TABLE` of one name race in PostgreSQL's catalogue): each waits
    for the other's step and finds it done."""
    dbs = [await open_database(backend) for _ in range(4)]
    try:
        assert await asyncio.gather(*(migrate(db, "test", STEPS) for db in dbs)) == [2] * 4
        assert await schema_version(dbs[0], "test") == 2
        assert await dbs[0].fetch("SELECT position, flag FROM items") == []
    finally:
        for db in dbs:
            await db.close()


async def test_a_snapshot_is_not_torn_by_a_concurrent_commit(backend: str) -> None:
    async with items(backend) as writer, opened(backend, read_only=True) as reader:
        await writer.execute("INSERT INTO items (position, amount) VALUES (1, '1')")
        async with reader.snapshot():
            before = await reader.fetchval("SELECT COUNT(*) FROM items")
            await writer.execute("INSERT INTO items (position, amount) VALUES (2, '2')")
            after = await reader.fetchval("SELECT COUNT(*) FROM items")
        assert before == after == 1
        assert await reader.fetchval("SELECT COUNT(*) FROM items") == 2


async def test_a_read_only_database_refuses_writes(backend: str) -> None:
    async with items(backend):
        pass
    async with opened(backend, read_only=True) as db:
        with pytest.raises(Exception, match=r"(?i)read.?only|readonly"):
            await db.execute("INSERT INTO items (position, amount) VALUES (1, '1')")


def test_the_ddl_translation() -> None:
    script = "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, s TEXT)"
    assert ddl(script, "sqlite") == script
    assert ddl(script, "postgresql") == (
        "CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "n BIGINT NOT NULL, s TEXT)"
    )


async def test_urls_refused_with_the_fix_and_shown_without_password(tmp_path: object) -> None:
    with pytest.raises(UnsupportedDatabase, match="mysql://… is not supported: use a SQLite"):
        await open_database("mysql://root:hunter2@db/warden")
    shown = redact_database_url("postgresql://warden:hunter2@db.internal:5433/warden?x=1")
    assert shown == "postgresql://warden:***@db.internal:5433/warden?x=1"
    assert "hunter2" not in shown
    assert redact_database_url("postgresql://warden@db/w") == "postgresql://warden@db/w"


async def test_one_process_holds_the_database_at_a_time(backend: str) -> None:
    async with items(backend) as first, opened(backend) as second:
        async with first.exclusive("warden run") as held:
            with pytest.raises(DatabaseBusy, match="in use by another process"):
                async with second.exclusive("warden run"):
                    pass
            assert not held.lost
        async with second.exclusive("warden run") as again:  # released: free again
            assert not again.lost


async def test_a_hold_whose_connection_the_server_ends_is_lost(pg_dsn: str) -> None:
    """The server ends the holder's connection (a restart, a failover, an operator):
    the lock is gone on the server, and the holder learns it (`lost`)."""
    async with (
        items(pg_dsn) as first,
        opened(pg_dsn) as second,
        first.exclusive("warden run") as held,
    ):
        ended = await second.fetchval(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
        )
        assert ended == 1
        for _ in range(1_000):  # bounded: the listener runs when the socket closes
            if held.lost:
                break
            await asyncio.sleep(0.01)
        assert held.lost
        async with second.exclusive("warden run") as taken:
            assert not taken.lost
