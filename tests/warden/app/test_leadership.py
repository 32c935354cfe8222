"""Leadership on a real PostgreSQL (and the trivial SQLite case): one leader at a time, a
takeover bumps the epoch, a deposed leader's writes fail inside their transaction, and
its own clock stops its sends before anyone else may take over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from database import Database, Deposed, open_database
from database import lease as leases
from warden.app.leadership import Leadership


class Clock:
    """A replica's monotonic clock, moved by hand (a frozen process is one whose clock
    jumps when it wakes)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def replica(target: str) -> AsyncIterator[Database]:
    db = await open_database(target)
    try:
        await db.execute("CREATE TABLE IF NOT EXISTS work (n INTEGER NOT NULL)")
        yield db
    finally:
        await db.close()


async def write(db: Database, n: int) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO work (n) VALUES (?)", (n,))


async def until(predicate: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_on_sqlite_the_one_process_leads(tmp_path: Path) -> None:
    async with replica(str(tmp_path / "w.sqlite")) as db:
        lead = Leadership(db, identity="solo")
        await lead.setup()
        assert await lead.acquire(asyncio.Event()) and lead.role == "leader"
        assert lead.may_send() and lead.epoch is None
        lead.check()  # never deposed
        await write(db, 1)


async def test_one_leader_a_takeover_bumps_the_epoch_and_fences_the_old_one(
    pg_dsn: str,
) -> None:
    async with replica(pg_dsn) as a_db, replica(pg_dsn) as b_db:
        a = Leadership(a_db, identity="a", ttl=1.0, margin=0.3)
        b = Leadership(b_db, identity="b", ttl=1.0, margin=0.3)
        await a.setup()
        await b.setup()
        assert await a.acquire(asyncio.Event())
        assert (a.role, a.epoch) == ("leader", 1)
        await write(a_db, 1)  # fenced, and valid
        # b cannot take it while a's lease runs
        assert await leases.try_acquire(b_db, "b", 1_000) is None
        # a stops renewing (frozen, cut off): after its TTL on the server's clock, b leads
        stop = asyncio.Event()
        assert await asyncio.wait_for(b.acquire(stop), 30)
        assert (b.role, b.epoch) == ("leader", 2)
        with pytest.raises(Deposed, match="held epoch 1; the lease names b at epoch 2"):
            await write(a_db, 2)  # the old leader's write rolls back
        await write(b_db, 3)
        assert [n for (n,) in await b_db.fetch("SELECT n FROM work ORDER BY n")] == [1, 3]
        # a's renewal now fails: it steps down, and check() says so to its loop
        assert await leases.renew(a_db, a.lease, 1_000) is None  # type: ignore[arg-type]
        a.step_down("the lease was taken over")
        with pytest.raises(Deposed, match="taken over"):
            a.check()
        assert not a.may_send()
        with pytest.raises(Deposed):  # a stray write after the step-down fails too
            await write(a_db, 4)


async def test_the_leader_stops_sending_on_its_own_clock_before_the_lease_ends(
    pg_dsn: str,
) -> None:
    clock = Clock()
    async with replica(pg_dsn) as db:
        lead = Leadership(db, identity="a", ttl=6.0, margin=1.5, clock=clock)
        await lead.setup()
        assert await lead.acquire(asyncio.Event())
        assert lead.may_send() and lead.trust_left() == pytest.approx(4.5)
        clock.now += 4.4
        assert lead.may_send()
        clock.now += 0.2  # past ttl - margin since it asked: a standby may soon take over
        assert not lead.may_send() and lead.trust_left() == 0.0


async def test_renewal_keeps_the_lease_and_a_takeover_steps_the_leader_down(
    pg_dsn: str,
) -> None:
    async with replica(pg_dsn) as a_db, replica(pg_dsn) as b_db:
        a = Leadership(a_db, identity="a", ttl=1.5, margin=0.4)
        await a.setup()
        assert await a.acquire(asyncio.Event())
        keeper = asyncio.create_task(a.keep())
        try:
            first = a.lease
            await until(lambda: a.lease is not None and a.lease != first)  # renewed
            assert a.may_send()
            # an operator (or a split brain) forces the lease over to b
            await b_db.execute(
                "UPDATE leader SET holder = 'b', epoch = epoch + 1, expires_ms = ? WHERE id = 1",
                (2**62,),
            )
            await until(lambda: a.role == "standby")
            assert not a.may_send()
            with pytest.raises(Deposed):
                a.check()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper


async def test_a_clean_stop_hands_over_at_once(pg_dsn: str) -> None:
    async with replica(pg_dsn) as a_db, replica(pg_dsn) as b_db:
        a = Leadership(a_db, identity="a", ttl=60.0, margin=5.0)
        b = Leadership(b_db, identity="b", ttl=60.0, margin=5.0)
        await a.setup()
        assert await a.acquire(asyncio.Event())
        await a.release()
        assert a.role == "standby"
        # no 60 s wait: the released lease is free at b's first try
        assert await asyncio.wait_for(b.acquire(asyncio.Event()), 10)
        assert b.epoch == 2


def test_a_margin_must_fit_in_the_ttl() -> None:
    with pytest.raises(ValueError, match="margin"):
        Leadership(object(), ttl=2.0, margin=2.0)  # type: ignore[arg-type]


async def test_a_leader_frozen_inside_a_write_transaction_does_not_block_the_takeover(
    pg_dsn: str,
) -> None:
    """A leader stopped (SIGSTOP, a VM pause) or cut off in the middle of a write
    transaction holds the lease row's share lock (the fence check): the standby's takeover
    would wait on it for as long as the freeze lasts. The server ends such a transaction
    once it sat idle for the TTL, and the takeover goes through."""
    async with replica(pg_dsn) as a_db, replica(pg_dsn) as b_db:
        a = Leadership(a_db, identity="a", ttl=1.5, margin=0.4)
        b = Leadership(b_db, identity="b", ttl=1.5, margin=0.4)
        await a.setup()
        assert await a.acquire(asyncio.Event())
        frozen = asyncio.Event()

        async def freeze_inside_a_write() -> None:
            async with a_db.transaction() as tx:
                await tx.execute("INSERT INTO work (n) VALUES (1)")
                frozen.set()
                await asyncio.sleep(3600)  # no renewal either: the process is stopped

        stuck = asyncio.create_task(freeze_inside_a_write())
        try:
            await frozen.wait()
            began = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(b.acquire(asyncio.Event()), 15)
            assert b.epoch == 2
            assert asyncio.get_running_loop().time() - began < 1.5 + 1.5 + 1.0
        finally:
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stuck
        # what the frozen leader had begun to write never committed
        assert await b_db.fetchval("SELECT COUNT(*) FROM work") == 0


async def test_a_new_leader_ends_the_transactions_an_older_epoch_left_open(pg_dsn: str) -> None:
    """A leader frozen while its server process is busy (blocked sending a large result to
    a client that reads nothing: never idle, so the idle limit does not apply) keeps the
    rows it locked. The lease row is not among them (the fence is checked at the commit),
    so the takeover goes through, and the new leader ends that transaction at once: its
    own writes to the same rows do not wait."""
    async with replica(pg_dsn) as a_db, replica(pg_dsn) as b_db:
        await a_db.execute("INSERT INTO work (n) VALUES (1)")
        a = Leadership(a_db, identity="a", ttl=1.5, margin=0.4)
        b = Leadership(b_db, identity="b", ttl=1.5, margin=0.4)
        await a.setup()
        assert await a.acquire(asyncio.Event())
        locked = asyncio.Event()

        async def busy_inside_a_write() -> None:
            async with a_db.transaction() as tx:
                await tx.execute("UPDATE work SET n = 2")
                locked.set()
                await tx.execute("SELECT pg_sleep(3600)")  # active, not idle, for an hour

        stuck = asyncio.create_task(busy_inside_a_write())
        try:
            await locked.wait()
            began = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(b.acquire(asyncio.Event()), 15)
            await asyncio.wait_for(write(b_db, 3), 5)  # the same table: no wait on a's lock
            async with b_db.transaction() as tx:
                await tx.execute("UPDATE work SET n = 4 WHERE n = 1")  # the row a had locked
            assert asyncio.get_running_loop().time() - began < 1.5 + 1.5 + 2.0
        finally:
            stuck.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stuck
        assert sorted(r[0] for r in await b_db.fetch("SELECT n FROM work")) == [3, 4]
