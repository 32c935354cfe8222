"""A pool of read connections (`open_database(..., read_only=True, readers=N)`: SQLite's
`SqliteReaders`, PostgreSQL's pool) on both stores: snapshots run side by side, each one
consistent on a connection of its own while the writer commits; the pool's data version
moves with every commit and only then; an exhausted pool refuses a borrower after its
wait instead of hanging; writes are refused; closing with a borrower waiting ends it."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from database import Database, ReadersBusy, migrate, open_database
from database.sqlite_readers import SqliteReaders

STEPS = ["CREATE TABLE items (id INTEGER PRIMARY KEY, amount TEXT NOT NULL)"]


@contextlib.asynccontextmanager
async def pair(
    backend: str, readers: int, wait: float = 5.0
) -> AsyncIterator[tuple[Database, Database]]:
    writer = await open_database(backend)
    try:
        await migrate(writer, "test", STEPS)
        await writer.execute("INSERT INTO items (amount) VALUES (?)", (str(2**256 - 1),))
        pool = await open_database(backend, read_only=True, readers=readers, wait=wait)
        try:
            yield writer, pool
        finally:
            await pool.close()
    finally:
        await writer.close()


async def _count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM items"))


async def test_snapshots_run_side_by_side_each_consistent(backend: str) -> None:
    """Four tasks each hold a snapshot at once (one connection each: with one connection
    the second would wait for the first, which waits for all four: a deadlock the
    timeout turns into a failure). Each sees the table as it was when it began, through
    the writer's commits in between, and its rows are exact."""
    async with pair(backend, readers=4) as (writer, pool):
        inside = 0
        all_in = asyncio.Event()
        seen: list[tuple[int, int, str]] = []

        async def reader() -> None:
            nonlocal inside
            async with pool.snapshot():
                before = await _count(pool)
                inside += 1
                if inside == 4:
                    all_in.set()
                await asyncio.wait_for(all_in.wait(), 30)
                await writer.execute("INSERT INTO items (amount) VALUES ('1')")
                after = await _count(pool)
                top = await pool.fetchval("SELECT amount FROM items WHERE id = 1")
                seen.append((before, after, str(top)))

        await asyncio.wait_for(asyncio.gather(*(reader() for _ in range(4))), 60)
        assert all(before == after for before, after, _ in seen), seen
        assert {top for *_, top in seen} == {str(2**256 - 1)}  # exact, never a float
        assert await _count(pool) == 5  # outside any snapshot: the latest


async def test_the_data_version_moves_with_each_commit_and_only_then(tmp_path: object) -> None:
    path = f"{tmp_path}/w.sqlite"
    async with pair(path, readers=3) as (writer, pool):
        assert isinstance(pool, SqliteReaders)
        first = await pool.data_version()
        assert first is not None
        for _ in range(5):  # reads on every connection of the pool do not move it
            async with pool.snapshot():
                await _count(pool)
        assert await pool.data_version() == first
        versions = [first]
        for n in range(3):
            await writer.execute("INSERT INTO items (amount) VALUES (?)", (str(n),))
            versions.append(await pool.data_version())  # type: ignore[arg-type]
        assert len(set(versions)) == 4, versions  # every commit, a new number
        # whatever connection a snapshot took, it sees what the version promised
        async with pool.snapshot():
            assert await _count(pool) == 4


async def test_an_exhausted_pool_refuses_after_its_wait_not_never(tmp_path: object) -> None:
    """SQLite's pool (PostgreSQL's asyncpg pool is kept from running out by the API's
    gate, whose tests cover both stores)."""
    async with pair(f"{tmp_path}/w.sqlite", readers=1, wait=0.3) as (_, pool):
        held = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with pool.snapshot():
                held.set()
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.wait_for(held.wait(), 30)
        started = time.monotonic()
        with pytest.raises(ReadersBusy, match=r"all 1 read connections .* stayed busy for 0\.3 s"):
            await _count(pool)
        assert time.monotonic() - started < 10  # bounded by the wait, not by the holder
        release.set()
        await asyncio.wait_for(task, 30)
        assert await _count(pool) == 1  # the connection came back


async def test_a_pool_refuses_writes(backend: str) -> None:
    async with pair(backend, readers=2) as (_, pool):
        with pytest.raises(Exception, match=r"(?i)read.?only|readonly"):
            await pool.execute("INSERT INTO items (amount) VALUES ('1')")
        with pytest.raises(Exception, match=r"(?i)read.?only|readonly"):
            async with pool.transaction() as tx:
                await tx.execute("INSERT INTO items (amount) VALUES ('1')")
        assert await _count(pool) == 1


async def test_closing_ends_a_waiting_borrower_and_the_held_connection(tmp_path: object) -> None:
    writer = await open_database(f"{tmp_path}/w.sqlite")
    try:
        await migrate(writer, "test", STEPS)
        pool = await open_database(f"{tmp_path}/w.sqlite", read_only=True, readers=1, wait=60)
        assert isinstance(pool, SqliteReaders)
        held, release = asyncio.Event(), asyncio.Event()
        counted: list[int] = []

        async def holder() -> None:
            async with pool.snapshot():
                held.set()
                await release.wait()
                counted.append(await _count(pool))  # its statements still run

        task = asyncio.create_task(holder())
        await asyncio.wait_for(held.wait(), 30)
        waiter = asyncio.create_task(_count(pool))  # waits for the one connection
        while pool._idle._getters == collections.deque():  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await pool.close()
        with pytest.raises(ReadersBusy, match="closed"):
            await asyncio.wait_for(waiter, 30)
        assert time.monotonic() - started < 10  # not the 60 s wait
        release.set()
        await asyncio.wait_for(task, 30)
        assert counted == [0]
        with pytest.raises(ReadersBusy, match="closed"):
            await _count(pool)
        assert await pool.data_version() is None  # no version: nothing kept from here on
    finally:
        await writer.close()


async def test_a_pool_needs_a_connection_and_read_only(tmp_path: object) -> None:
    path = f"{tmp_path}/w.sqlite"
    writer = await open_database(path)
    await writer.close()
    with pytest.raises(ValueError, match="at least 1"):
        await open_database(path, read_only=True, readers=0)
    with pytest.raises(ValueError, match="read-only"):
        await open_database(path, readers=2)
