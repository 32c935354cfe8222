"""SessionReads: the indexer's tables read by others (the API, `warden inspect`) over a
read-only database: keyset pages with filters, one session, its events, counts, totals;
uint256 values exact. Each test runs on SQLite and on PostgreSQL (`backend`)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from database import open_database
from indexer import Event, IndexerStore, Session, SessionReads
from indexer.reads import SessionFilter, open_read_only
from indexer.store import Batch, BlockRef, IgnoredLog

BIG = 2**255 + 3  # beyond any float's exactness


def _address(n: int) -> str:
    return "0x" + f"{n:040x}"


def _session(n: int, **changes: object) -> Session:
    values: dict[str, object] = {
        "wallet": _address(0x100 + n), "owner": _address(0xA0 + n % 2),
        "operator": _address(0xEE), "token": _address(0x70), "policy": "p" if n % 3 else "",
        "targets": (_address(0x71),), "salt": "0x" + "00" * 32, "fee": 1, "initial_deposit": 10,
        "deposit": 10, "withdrawn": 0, "balance": 10, "spent": 0, "budget": 5,
        "stop_loss": 0, "take_profit": 0, "expiry": 2**64 - 1, "status": "active",
        "close_reason": None, "closed_by": None, "refund": 0, "execution_count": 0,
        "created_block": n, "created_at": 1_000 + n, "created_position": (n << 32) | 1,
        "last_seq": 1, "last_position": (n << 32) | 1, "last_activity": 1_000 + n,
        "revoked_at": None, "closed_at": None, "seq_gaps": 0, "gap_note": None,
    }  # fmt: skip
    values.update(changes)
    return Session(**values)  # type: ignore[arg-type]


def _event(wallet: str, block: int, log: int, name: str, **args: object) -> Event:
    return Event(
        position=(block << 32) | log, block_number=block, block_hash="0x" + "b" * 64,
        tx_hash="0x" + "c" * 64, tx_index=0, log_index=log, timestamp=1_000 + block,
        address=wallet, name=name, wallet=wallet, seq=log, args=dict(args),
    )  # fmt: skip


SESSIONS = [
    _session(1, deposit=BIG, balance=BIG, fee=7),
    _session(2, status="closed", close_reason="stop_loss", stop_loss=3, closed_at=1_062),
    _session(3, status="revoked", revoked_at=1_010),
    _session(4, status="closed", close_reason="expired", take_profit=9, closed_at=1_104),
    _session(5),
]
WALLET = SESSIONS[0].wallet
EVENTS = [
    _event(WALLET, 10, 1, "Deposited", **{"from": _address(1), "seq": 1, "amount": BIG,
                                        "balanceAfter": BIG}),
    _event(WALLET, 11, 2, "Withdrawn", to=_address(2), seq=2, amount=5, balanceAfter=BIG - 5),
    _event(WALLET, 12, 0, "Deposited", **{"from": _address(1), "seq": 3, "amount": 5,
                                        "balanceAfter": BIG}),
    _event(SESSIONS[1].wallet, 12, 1, "Revoked", operator=_address(0xEE), seq=1, balanceAfter=0),
]  # fmt: skip
IGNORED = [
    IgnoredLog(20 << 32, 20, "0x" + "d" * 64, _address(9), "Deposited", "not from the factory"),
    IgnoredLog(21 << 32, 21, "0x" + "d" * 64, _address(9), "Closed", "malformed: short data"),
]


@contextlib.asynccontextmanager
async def written(target: str) -> AsyncIterator[IndexerStore]:
    db = await open_database(target)
    try:
        store = IndexerStore(db)
        await store.setup()
        yield store
    finally:
        await db.close()


@pytest.fixture
async def indexed(backend: str) -> str:
    async with written(backend) as store:
        checkpoint = BlockRef(30, "0x" + "e" * 64, "0x" + "f" * 64, 1_030)
        await store.commit(Batch([checkpoint], EVENTS, IGNORED, SESSIONS, checkpoint), 16)
    return backend


@contextlib.asynccontextmanager
async def reads_of(target: str) -> AsyncIterator[SessionReads]:
    db = await open_database(target, read_only=True)
    try:
        yield SessionReads(db)
    finally:
        await db.close()


async def _all(reads: SessionReads, f: SessionFilter, limit: int) -> list[Session]:
    out: list[Session] = []
    after = None
    while True:
        page = await reads.sessions(f, after, limit)
        assert len(page.items) <= limit
        out += page.items
        if page.next_key is None:
            return out
        assert page.next_key == page.items[-1].created_position
        after = page.next_key


async def test_pages_of_sessions_with_filters(indexed: str) -> None:
    async with reads_of(indexed) as reads:
        for limit in (1, 2, 5, 100):
            assert await _all(reads, SessionFilter(), limit) == SESSIONS
        owner = SESSIONS[0].owner
        assert await _all(reads, SessionFilter(owner=owner), 1) == [
            s for s in SESSIONS if s.owner == owner
        ]
        closed = await _all(reads, SessionFilter(status="closed", policy="p"), 1)
        assert closed == [SESSIONS[1], SESSIONS[3]]
        assert await _all(reads, SessionFilter(policy=""), 2) == [SESSIONS[2]]
        last = await reads.sessions(SessionFilter(), SESSIONS[-1].created_position, 10)
        assert (last.items, last.next_key) == ([], None)


async def test_one_session_and_its_events_exact(indexed: str) -> None:
    async with reads_of(indexed) as reads:
        found = await reads.session(WALLET)
        assert found == SESSIONS[0] and found.deposit == BIG
        assert await reads.session(_address(0xDEAD)) is None
        everything = await reads.events(WALLET)
        assert everything.next_key is None
        assert [e.position for e in everything.items] == [e.position for e in EVENTS[:3]]
        assert everything.items[0].args["amount"] == BIG  # an int again, exact
        first = await reads.events(WALLET, limit=2)
        assert first.next_key == EVENTS[1].position and len(first.items) == 2
        rest = await reads.events(WALLET, after=first.next_key, limit=2)
        assert [e.position for e in rest.items] == [EVENTS[2].position] and rest.next_key is None
        deposits = await reads.events(WALLET, name="Deposited", limit=10)
        assert [e.args["seq"] for e in deposits.items] == [1, 3]


async def test_counts_checkpoint_and_totals(indexed: str) -> None:
    async with reads_of(indexed) as reads:
        assert await reads.checkpoint() == 30
        assert await reads.status_counts() == {"active": 2, "revoked": 1, "closed": 2}
        logs = await reads.log_counts()
        assert (logs.events, logs.spoofed, logs.malformed) == (4, 1, 1)
        t = await reads.totals()
        assert t.deposited == BIG + 40 and t.fees == 7 + 4
        assert t.closed_by_reason == {"stop_loss": 1, "expired": 1}
        assert (t.stop_loss_hits, t.stop_loss_eligible) == (1, 1)
        assert (t.take_profit_hits, t.take_profit_eligible) == (0, 1)
        assert t.average_duration == (60 + 100) // 2


async def test_an_empty_database_and_no_writes(backend: str) -> None:
    async with written(backend):
        pass
    async with reads_of(backend) as reads:
        assert await reads.checkpoint() is None
        assert await reads.status_counts() == {"active": 0, "revoked": 0, "closed": 0}
        assert (await reads.totals()).average_duration is None
        with pytest.raises(Exception, match=r"(?i)read.?only|readonly"):
            await reads.database.execute("DELETE FROM sessions")


async def test_a_missing_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError):
        await open_read_only(tmp_path / "absent.sqlite")
    assert not (tmp_path / "absent.sqlite").exists()
