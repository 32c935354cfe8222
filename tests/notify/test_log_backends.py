"""The event log on both stores (`backend`: SQLite and PostgreSQL), written through the
indexer store's hooks: lifecycle events exactly when the indexer's commit is, a
retraction for each event whose block a rollback removed (after it, before anything of
the replacing branch), a block that comes back after its retraction logged anew under a
new id, uint256 values as exact decimal strings, and the reader by cursor."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from database import Queries, open_database
from indexer import Batch, Event, IndexerStore, Session
from indexer.projection import apply_all
from indexer.store import BlockRef
from notify import EventFilter, EventLog, EventReads

BIG = 2**255 + 1
W = "0x" + "ab" * 20
V = "0x" + "cd" * 20
OWNER = "0x" + "11" * 20
FACTORY = "0x" + "fa" * 20


def block(n: int, fork: int = 0) -> BlockRef:
    return BlockRef(n, f"0x{fork:02x}{n:062x}", f"0x{fork:02x}{n - 1:062x}", 1_000 + n)


def event(
    session: str, n: int, log: int, name: str, seq: int, fork: int = 0, **args: object
) -> Event:
    return Event(
        position=(n << 32) | log, block_number=n, block_hash=block(n, fork).hash,
        tx_hash=f"0x{n:062x}{log:02x}", tx_index=0, log_index=log, timestamp=1_000 + n,
        address=FACTORY if name == "SessionCreated" else session, wallet=session, name=name,
        seq=seq, args=dict(args),
    )  # fmt: skip


def created(wallet: str, n: int, deposit: int, fork: int = 0, log: int = 0) -> Event:
    return event(
        wallet, n, log, "SessionCreated", 0, fork, wallet=wallet, owner=OWNER,
        operator=OWNER, token=OWNER, deposit=deposit, fee=BIG - 2, expiry=2**64 - 1,
        budget=BIG, stopLoss=BIG - 1, takeProfit=0, policy="p", targets=[OWNER],
        salt="0x" + "00" * 32, balanceAfter=deposit,
    )  # fmt: skip


def closed(wallet: str, n: int, seq: int, reason: int, refund: int, fork: int = 0) -> Event:
    return event(
        wallet, n, 1, "Closed", seq, fork, reason=reason, by=OWNER, refund=refund,
        balanceAfter=0,
    )  # fmt: skip


@dataclass
class Stack:
    store: IndexerStore
    log: EventLog
    reads: EventReads


@contextlib.asynccontextmanager
async def stack(target: str) -> AsyncIterator[Stack]:
    db = await open_database(target)
    try:
        log = EventLog(db, clock_ms=lambda: 1_700_000_000_000)
        await log.setup()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        yield Stack(store, log, EventReads(db))
    finally:
        await db.close()


def batch(blocks: list[BlockRef], events: list[Event], prior: dict[str, Session]) -> Batch:
    sessions: dict[str, Session] = dict(prior)
    for e in events:
        assert e.wallet is not None
        sessions[e.wallet] = apply_all(sessions.get(e.wallet), [e])
    changed = [sessions[w] for w in dict.fromkeys(e.wallet for e in events if e.wallet)]
    return Batch(blocks, events, [], changed, blocks[-1])


async def bodies(reads: EventReads, after: int = 0) -> list[dict[str, Any]]:
    events, _ = await reads.after(after, 1000)
    return [e.body for e in events]


async def test_lifecycle_events_are_logged_with_the_commit_exact_and_in_order(
    backend: str,
) -> None:
    async with stack(backend) as s:
        b1 = batch([block(1)], [created(W, 1, BIG), created(V, 1, 5, log=5)], {})
        await s.store.commit(b1, window=64)
        b2 = batch([block(2)], [closed(W, 2, 1, 1, BIG)], {W: b1.sessions[0]})
        await s.store.commit(b2, window=64)
        got = await bodies(s.reads)
    assert [(b["kind"], b["session"]["wallet"]) for b in got] == [
        ("session.created", W), ("session.created", V), ("session.closed", W),
    ]  # fmt: skip
    first, _, close = got
    assert first["data"]["deposit"] == str(BIG)  # exact, a string
    assert first["data"]["budget"] == str(BIG) and first["data"]["fee"] == str(BIG - 2)
    assert close["data"] == {"reason": "stop_loss", "by": OWNER, "refund": str(BIG),
                             "balance": "0"}  # fmt: skip
    assert close["chain"]["position"] == str((2 << 32) | 1)
    assert close["id"] == f"session.closed:{(2 << 32) | 1}:{block(2).hash[:10]}"
    assert [int(b["cursor"]) for b in got] == sorted(int(b["cursor"]) for b in got)
    assert len({b["id"] for b in got}) == 3


class Boom(RuntimeError):
    pass


class FailingLog(EventLog):
    async def committed(self, tx: Queries, batch: Batch) -> None:
        await super().committed(tx, batch)
        raise Boom("the disk filled up after the log rows")


async def test_a_failing_log_write_undoes_the_indexer_commit_too(backend: str) -> None:
    """One transaction: no events without their blocks, no blocks without their events."""
    db = await open_database(backend)
    try:
        log = FailingLog(db)
        await log.setup()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        with pytest.raises(Boom):
            await store.commit(batch([block(1)], [created(W, 1, 7)], {}), window=64)
        assert await store.checkpoint() is None
        assert await store.session(W) is None
        assert await EventReads(db).count() == 0
    finally:
        await db.close()


async def test_a_reorg_retracts_what_it_removed_and_a_returning_block_gets_a_new_id(
    backend: str,
) -> None:
    async with stack(backend) as s:
        b1 = batch([block(1)], [created(W, 1, 100)], {})
        await s.store.commit(b1, window=64)
        b2 = batch([block(2)], [closed(W, 2, 1, 1, 100)], {W: b1.sessions[0]})
        await s.store.commit(b2, window=64)
        await s.store.rollback(block(1))  # block 2 (the close) is gone
        after_rollback = await bodies(s.reads)
        # the replacing branch closes at block 2 too, in another block
        b2x = batch([block(2, fork=1)], [closed(W, 2, 1, 3, 100, fork=1)], {W: b1.sessions[0]})
        await s.store.commit(b2x, window=64)
        await s.store.rollback(block(1))  # and back to the first branch's very block
        await s.store.commit(b2, window=64)
        every = await bodies(s.reads)
        # a second rollback does not retract the retractions again
        assert sum(1 for b in every if b["kind"] == "event.retracted") == 2
    kinds = [(b["kind"], b["data"].get("reason")) for b in after_rollback]
    assert kinds == [("session.created", None), ("session.closed", "stop_loss"),
                     ("event.retracted", None)]  # fmt: skip
    original = after_rollback[1]
    retracted = after_rollback[2]
    assert retracted["id"] == original["id"] + "/retracted"
    assert retracted["data"]["retracts"] == original["id"]
    assert retracted["data"]["kind"] == "session.closed"
    assert retracted["session"] == original["session"]  # passes the same filters
    # the order: original, its retraction, then the replacing branch's close
    later = every[3:]
    assert [b["kind"] for b in later] == [
        "session.closed", "event.retracted", "session.closed",
    ]  # fmt: skip
    fork_close, fork_retraction, back = later
    assert fork_close["data"]["reason"] == "expired" and fork_close["id"] != original["id"]
    assert fork_retraction["data"]["retracts"] == fork_close["id"]
    assert back["id"] == original["id"] + "~2"  # consumers saw the original retracted
    assert back["data"] == original["data"]
    ids = [b["id"] for b in every]
    assert len(ids) == len(set(ids))


async def test_reader_pages_by_cursor_and_filters(backend: str) -> None:
    async with stack(backend) as s:
        sessions: dict[str, Session] = {}
        for n in range(1, 31):
            wallet = "0x" + f"{n:040x}"
            await s.store.commit(batch([block(n)], [created(wallet, n, n)], sessions), 64)
        third = await s.store.session("0x" + f"{3:040x}")
        assert third is not None
        b = batch([block(31)], [closed(third.wallet, 31, 1, 0, 3)], {third.wallet: third})
        await s.store.commit(b, window=64)
        seen: list[int] = []
        cursor = 0
        while True:
            page, cursor_after = await s.reads.after(cursor, 7)
            if not page:
                assert cursor_after == cursor
                break
            seen += [e.cursor for e in page]
            cursor = cursor_after
        assert len(seen) == 31 and seen == sorted(seen)
        assert await s.reads.last_cursor() == seen[-1]
        closes, read_to = await s.reads.after(0, 1000, EventFilter(kinds=("session.closed",)))
        assert [e.kind for e in closes] == ["session.closed"] and read_to == seen[-1]
        one, _ = await s.reads.after(0, 1000, EventFilter(wallet="0x" + f"{3:040x}"))
        assert [e.kind for e in one] == ["session.created", "session.closed"]
        by_category, _ = await s.reads.after(0, 1000, EventFilter(kinds=("session",)))
        assert len(by_category) == 31
