"""The indexer's writer on both stores (`backend`: SQLite and PostgreSQL): a batch commits
whole with its checkpoint, a rollback removes what followed the ancestor and replays the
sessions that lost events from their own, uint256 values stay exact at 2^255 ± 1, and the
reads the indexer and the executor need answer the same on both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from database import open_database
from indexer import Event, IndexerStore
from indexer.projection import apply_all
from indexer.store import Batch, BlockRef, IgnoredLog

BIG = 2**255 + 1
W = "0x" + "ab" * 20
V = "0x" + "cd" * 20
OWNER = "0x" + "11" * 20
FACTORY = "0x" + "fa" * 20


def block(n: int) -> BlockRef:
    return BlockRef(n, f"0x{n:064x}", f"0x{n - 1:064x}", 1_000 + n)


def event(session: str, n: int, log: int, name: str, seq: int, **args: object) -> Event:
    """An event of `session`'s: emitted by the wallet, or the factory's creation (seq 0)."""
    return Event(
        position=(n << 32) | log, block_number=n, block_hash=f"0x{n:064x}",
        tx_hash=f"0x{n:062x}{log:02x}", tx_index=0, log_index=log, timestamp=1_000 + n,
        address=FACTORY if name == "SessionCreated" else session, wallet=session, name=name,
        seq=seq,
        args=dict(args),
    )  # fmt: skip


def created(wallet: str, n: int, deposit: int) -> Event:
    return event(
        wallet, n, 0, "SessionCreated", 0, wallet=wallet, owner=OWNER,
        operator=OWNER, token=OWNER, deposit=deposit, fee=BIG - 2, expiry=2**64 - 1,
        budget=BIG, stopLoss=BIG - 1, takeProfit=0, policy="p", targets=[OWNER],
        salt="0x" + "00" * 32, balanceAfter=deposit,
    )  # fmt: skip


async def at(store: IndexerStore) -> tuple[int, str] | None:
    cp = await store.checkpoint()
    return None if cp is None else (cp.number, cp.hash)


@contextlib.asynccontextmanager
async def store_on(target: str) -> AsyncIterator[IndexerStore]:
    db = await open_database(target)
    try:
        store = IndexerStore(db)
        await store.setup()
        yield store
    finally:
        await db.close()


async def commit(store: IndexerStore, blocks: list[int], events: list[Event]) -> None:
    """What the indexer commits for these events: their sessions' new states too."""
    sessions = []
    for wallet in sorted({e.wallet for e in events if e.wallet}):
        before = await store.session(wallet)
        sessions.append(apply_all(before, [e for e in events if e.wallet == wallet]))
    refs = [block(n) for n in blocks]
    ignored = [IgnoredLog((blocks[-1] << 32) | 9, blocks[-1], "0x" + "e" * 64, V, "Closed",
                          "malformed: short data")]  # fmt: skip
    await store.commit(Batch(refs, events, ignored, sessions, refs[-1]), window=16)


async def test_commit_rollback_and_replay_are_exact(backend: str) -> None:
    async with store_on(backend) as store:
        await commit(store, [10, 11], [
            created(W, 10, BIG),
            event(W, 11, 1, "Deposited", 1, amount=BIG - 1, fee=1, balanceAfter=2 * BIG - 1,
                  **{"from": OWNER}),
        ])  # fmt: skip
        await commit(store, [12, 13], [
            event(W, 12, 0, "Withdrawn", 2, to=OWNER, amount=1, balanceAfter=2 * BIG - 2),
            created(V, 13, 5),
            event(W, 13, 2, "Closed", 3, reason=1, by=OWNER, refund=2 * BIG - 2, balanceAfter=0),
        ])  # fmt: skip
        s = await store.session(W)
        assert s is not None and (s.status, s.refund, s.withdrawn) == ("closed", 2 * BIG - 2, 1)
        assert s.deposit == 2 * BIG - 1 and s.fee == BIG - 1  # exact past 2^256 in sums
        assert await at(store) == (13, block(13).hash)
        assert await store.counts() == {"sessions": 2, "events": 5, "ignored_logs": 2}
        closing = await store.closing_events([W, V])
        assert list(closing) == [W] and closing[W].position == (13 << 32) | 2
        assert [b.number for b in await store.blocks(11)] == [13, 12, 11]
        below = await store.event_blocks_below(13, 5)
        assert [b.number for b in below] == [12, 11, 10]

        undone = await store.rollback(block(11))
        assert undone.removed == [V] and undone.events_removed == 3
        assert [r.wallet for r in undone.sessions] == [W]
        s = await store.session(W)
        assert s is not None and (s.status, s.balance, s.last_seq) == ("active", 2 * BIG - 1, 1)
        assert await store.session(V) is None
        assert await at(store) == (11, block(11).hash)
        assert [e.position for e in await store.events(W)] == [10 << 32, (11 << 32) | 1]
        assert (await store.events(W))[1].args["amount"] == BIG - 1  # an int again
        assert await store.ignored_count() == 1


async def test_a_failed_commit_leaves_the_previous_batch(backend: str) -> None:
    async with store_on(backend) as store:
        await commit(store, [10], [created(W, 10, 7)])
        twice = created(V, 11, 1)
        with pytest.raises(Exception):  # noqa: B017 - a duplicate position, on each driver
            await commit(store, [11], [twice, twice])
        assert await at(store) == (10, block(10).hash)
        assert await store.counts() == {"sessions": 1, "events": 1, "ignored_logs": 1}


@pytest.mark.parametrize("page", [1, 2, 3, 7, 2_000])
async def test_sessions_come_in_pages_in_creation_order(backend: str, page: int) -> None:
    """The start-up evaluation reads open sessions a page at a time (bounded memory at a
    million sessions): every session of the status exactly once, in creation order,
    whatever the page size; other statuses left out; an empty status yields nothing."""
    wallets = ["0x" + f"{i:040x}" for i in range(1, 8)]
    async with store_on(backend) as store:
        events = [created(w, 10 + i, 5 + i) for i, w in enumerate(wallets)]
        await commit(store, [10 + i for i in range(len(wallets))], events)
        closing = event(wallets[2], 30, 1, "Closed", 1, reason=1, by=OWNER, refund=7,
                        balanceAfter=0)  # fmt: skip
        await commit(store, [30], [closing])
        pages = [p async for p in store.sessions_pages("active", page)]
        assert all(0 < len(p) <= page for p in pages)
        got = [s.wallet for p in pages for s in p]
        assert got == [w for w in wallets if w != wallets[2]]
        closed = [s.wallet for p in [p async for p in store.sessions_pages("closed", page)]
                  for s in p]  # fmt: skip
        assert closed == [wallets[2]]
        assert [p async for p in store.sessions_pages("revoked", page)] == []
