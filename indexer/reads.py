"""Read-only queries over the indexer's tables for everyone but the indexer: the HTTP API
and `warden inspect`. The indexer's own reads and every write stay in `IndexerStore`.

    db = await open_database("warden.sqlite", read_only=True)   # or a PostgreSQL URL
    reads = SessionReads(db)
    page = await reads.sessions(SessionFilter(owner=owner), after=None, limit=100)

Rows come back typed (`Session`, `Event`, with uint256 values as exact ints). Listings
are keyset pages: `Page.next_key` is the sort key of the last item when more follow, and
passing it back as `after` continues after it, so rows added while paging are never
skipped or repeated. Reads that must agree with each other are the caller's to wrap in
one read snapshot (`Database.snapshot()`, see `warden.app.api.reader`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
import orjson

from contracts import SESSION_STATUSES
from database import Database
from database.sqlite import SqliteDatabase, as_database
from indexer.projection import Event, Session
from indexer.schema import SESSION_FIELDS, int_fields, session_from_row

T = TypeVar("T")

_SESSION_SELECT = f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions"
_EVENT_SELECT = (
    "SELECT position, block_number, block_hash, tx_hash, tx_index, log_index, timestamp, "
    "address, wallet, name, seq, args FROM events"
)


async def open_read_only(path: str | Path) -> aiosqlite.Connection:
    """A SQLite connection that cannot write (nor create the file: a missing one fails
    here) and runs each statement in autocommit unless the caller opens a transaction."""
    return (await SqliteDatabase.open(path, read_only=True)).conn


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_key: int | None  # sort key of the last item when more follow, else None


def page_of(rows: list[T], limit: int, key: Any) -> Page[T]:
    """The page of `limit` rows out of `limit + 1` read (the extra one says more follow)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, int(key(rows[-1])))
    return Page(rows, None)


@dataclass(frozen=True)
class SessionFilter:
    owner: str | None = None
    status: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class LogCounts:
    events: int  # indexed events
    spoofed: int  # look-alike logs from other addresses than the factory and its wallets
    malformed: int  # logs of known signatures that failed to decode


@dataclass(frozen=True)
class Close:
    """A closed session as the activity chart plots it."""

    closed_at: int  # chain time, unix seconds
    reason: str
    wallet: str


@dataclass
class SessionTotals:
    """Sums over every indexed session, exact (SQLite's SUM would go through floats or
    overflow on uint256 text)."""

    by_status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SESSION_STATUSES, 0))
    closed_by_reason: dict[str, int] = field(default_factory=dict)
    deposited: int = 0
    fees: int = 0
    withdrawn: int = 0
    refunded: int = 0
    closed: int = 0
    duration_sum: int = 0  # seconds from creation to close, over closed sessions
    stop_loss_hits: int = 0
    stop_loss_eligible: int = 0  # closed sessions that had a stop-loss set
    take_profit_hits: int = 0
    take_profit_eligible: int = 0

    @property
    def average_duration(self) -> int | None:
        return self.duration_sum // self.closed if self.closed else None


class SessionReads:
    """Every read of sessions, events and the checkpoint outside the indexer (read-only by
    intent: nothing here writes)."""

    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        self.database = as_database(db)
        self._ints = int_fields()

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.database.fetch(sql, params)

    async def sessions(self, f: SessionFilter, after: int | None, limit: int) -> Page[Session]:
        """Sessions in creation order, filtered, after creation position `after`."""
        where = ["created_position > ?"]
        params: list[Any] = [-1 if after is None else after]
        for column, value in (("owner", f.owner), ("status", f.status), ("policy", f.policy)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._rows(
            f"{_SESSION_SELECT} WHERE {' AND '.join(where)} ORDER BY created_position LIMIT ?",
            [*params, limit + 1],
        )
        return page_of([session_from_row(r) for r in rows], limit, _created_position)

    async def session(self, wallet: str) -> Session | None:
        rows = await self._rows(f"{_SESSION_SELECT} WHERE wallet = ?", [wallet])
        return session_from_row(rows[0]) if rows else None

    async def events(
        self, wallet: str, name: str | None = None, after: int | None = None, limit: int = -1
    ) -> Page[Event]:
        """A session's events in chain order after position `after` (`limit` -1: all)."""
        sql = f"{_EVENT_SELECT} WHERE wallet = ? AND position > ?"
        params: list[Any] = [wallet, -1 if after is None else after]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        sql += " ORDER BY position"
        if limit >= 0:
            sql += " LIMIT ?"
            params.append(limit + 1)
        rows = await self._rows(sql, params)
        events = [self._event(r) for r in rows]
        return page_of(events, limit, _position) if limit >= 0 else Page(events, None)

    async def checkpoint(self) -> int | None:
        """The last block the indexer committed, None before its first batch."""
        rows = await self._rows("SELECT number FROM checkpoint WHERE id = 1")
        return int(rows[0][0]) if rows else None

    async def status_counts(self) -> dict[str, int]:
        """Sessions by status, every status present (zeros included)."""
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for status, n in await self._rows("SELECT status, COUNT(*) FROM sessions GROUP BY status"):
            counts[status] = int(n)
        return counts

    async def log_counts(self) -> LogCounts:
        events = await self._rows("SELECT COUNT(*) FROM events")
        ignored, malformed = (
            await self._rows(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE reason LIKE 'malformed%') "
                "FROM ignored_logs"
            )
        )[0]
        return LogCounts(int(events[0][0]), int(ignored) - int(malformed), int(malformed))

    async def totals(self) -> SessionTotals:
        t = SessionTotals()
        rows = await self._rows(
            "SELECT status, close_reason, deposit, fee, withdrawn, refund, stop_loss, "
            "take_profit, created_at, closed_at FROM sessions"
        )
        for status, reason, dep, fee, wd, refund, sl, tp, created, ended in rows:
            t.by_status[status] = t.by_status.get(status, 0) + 1
            t.deposited += int(dep)
            t.fees += int(fee)
            t.withdrawn += int(wd)
            t.refunded += int(refund)
            if status != "closed":
                continue
            t.closed += 1
            t.closed_by_reason[reason] = t.closed_by_reason.get(reason, 0) + 1
            if ended is not None:
                t.duration_sum += int(ended) - int(created)
            if int(sl) != 0:
                t.stop_loss_eligible += 1
                t.stop_loss_hits += reason == "stop_loss"
            if int(tp) != 0:
                t.take_profit_eligible += 1
                t.take_profit_hits += reason == "take_profit"
        return t

    async def recent_closes(self, limit: int) -> list[Close]:
        """The latest `limit` closes, oldest first (by chain time, then wallet)."""
        rows = await self._rows(
            "SELECT closed_at, close_reason, wallet FROM sessions "
            "WHERE status = 'closed' AND closed_at IS NOT NULL "
            "ORDER BY closed_at DESC, wallet DESC LIMIT ?",
            [limit],
        )
        return [Close(int(at), str(reason or ""), wallet) for at, reason, wallet in reversed(rows)]

    def _event(self, r: Sequence[Any]) -> Event:
        # args are stored with every integer as a decimal string (store.encode_args)
        ints = self._ints.get(r[9], frozenset())
        args = {k: int(v) if k in ints else v for k, v in orjson.loads(r[11]).items()}
        return Event(
            position=r[0], block_number=r[1], block_hash=r[2], tx_hash=r[3], tx_index=r[4],
            log_index=r[5], timestamp=r[6], address=r[7], wallet=r[8], name=r[9], seq=r[10],
            args=args,
        )  # fmt: skip


def _created_position(s: Session) -> int:
    return s.created_position


def _position(e: Event) -> int:
    return e.position
