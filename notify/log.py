"""The event log: written inside the transaction of the change that caused each event,
read by cursor.

`EventLog` is the writer. It is the indexer store's `StoreHooks` (session lifecycle
events in the indexer's commit, retractions in its rollback) and appends the events of
the outbox's transitions and of alerts inside the transaction it is handed. `EventReads`
is the reader /stream and /notifications use.

An event whose id is already logged is not logged again (a duplicate is the same event);
an event whose id was logged and then retracted — the reorg went back to the very same
block — is logged again under `<id>~2` (`~3`, …): consumers saw its retraction, so the
event that holds again must be new to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from database import Database, Queries, migrate
from indexer import Batch
from notify.catalogue import NotifyEvent, matches_kind
from notify.derive import retraction, session_events
from notify.prune import pruned_through
from notify.schema import COMPONENT, MIGRATIONS

_COLUMNS = "event_id, kind, severity, wallet, owner, policy, position, at_ms, body"
_INSERT = (
    f"INSERT INTO notify_events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id) DO NOTHING"
)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class LoggedEvent:
    cursor: int
    id: str
    kind: str
    wallet: str | None
    body: dict[str, Any]  # with its "cursor"

    def json(self) -> bytes:
        return orjson.dumps(self.body)


class EventLog:
    """Appends events inside a caller's transaction; `StoreHooks` for the indexer."""

    def __init__(
        self,
        db: Database,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.db = db
        self.clock_ms = clock_ms
        self.appended = 0  # rows written by this process (for tests and metrics)
        # called after the caller's transaction commits, e.g. to wake /stream readers;
        # set by the daemon
        self.on_append: Callable[[], None] | None = None

    async def setup(self) -> None:
        await migrate(self.db, COMPONENT, MIGRATIONS)

    # -- StoreHooks ------------------------------------------------------------------
    async def committed(self, tx: Queries, batch: Batch) -> None:
        if not batch.events:
            return
        sessions = {s.wallet: s for s in batch.sessions}
        await self.append(tx, session_events(batch.events, sessions, self.clock_ms()))

    async def rolled_back(self, tx: Queries, cut: int) -> None:
        rows = await tx.fetch(
            "SELECT id, body FROM notify_events WHERE position >= ? AND retracted = 0 ORDER BY id",
            (cut,),
        )
        if not rows:
            return
        now = self.clock_ms()
        await self.append(tx, [retraction(orjson.loads(body), now) for _, body in rows])
        await tx.executemany(
            "UPDATE notify_events SET retracted = 1 WHERE id = ?", [(r[0],) for r in rows]
        )

    # -- writes ----------------------------------------------------------------------
    async def append(self, tx: Queries, events: Sequence[NotifyEvent]) -> None:
        """Log `events` in the caller's transaction `tx`, in order. Which channels owe
        them is decided afterwards, outside this transaction (`notify.routing`)."""
        if not events:
            return
        events = await self._renamed(tx, events)
        await tx.executemany(_INSERT, [_row(e) for e in events])
        self.appended += len(events)

    async def cursor(self, name: str) -> int:
        """How far the relay `name` has logged (0 before its first)."""
        value = await self.db.fetchval(
            "SELECT position FROM notify_cursors WHERE name = ?", (name,)
        )
        return int(value) if value is not None else 0

    async def append_relayed(self, events: Sequence[NotifyEvent], name: str, position: int) -> None:
        """Log `events` and move the relay `name` to `position` in one transaction: a
        crash re-derives the same events (same ids: logged once) from the old cursor."""
        async with self.db.transaction() as tx:
            await self.append(tx, events)
            await tx.execute(
                "INSERT INTO notify_cursors (name, position) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )
        if events:
            self.woken()

    async def append_now(self, events: Sequence[NotifyEvent]) -> None:
        """Log `events` in a transaction of their own (alerts: no stored change caused
        them)."""
        if events:
            async with self.db.transaction() as tx:
                await self.append(tx, events)
            self.woken()

    def woken(self) -> None:
        if self.on_append is not None:
            self.on_append()

    async def _renamed(self, tx: Queries, events: Sequence[NotifyEvent]) -> list[NotifyEvent]:
        """Events whose id was retracted get the next free `~n` suffix (see above)."""
        positions = [e.position for e in events if e.position is not None]
        if not positions:
            return list(events)
        rows = await tx.fetch(
            "SELECT event_id FROM notify_events WHERE position >= ? AND position <= ? "
            "AND retracted = 1",
            (min(positions), max(positions)),
        )
        if not rows:
            return list(events)
        taken = {r[0] for r in rows}
        out = []
        for e in events:
            if e.id in taken:
                n = 2
                while f"{e.id}~{n}" in taken:
                    n += 1
                e = replace(e, id=f"{e.id}~{n}")
            out.append(e)
        return out


def _row(e: NotifyEvent) -> tuple[Any, ...]:
    return (
        e.id, e.kind, int(e.severity), e.wallet, e.owner, e.policy, e.position, e.at_ms,
        orjson.dumps(e.body()).decode(),
    )  # fmt: skip


@dataclass(frozen=True)
class EventFilter:
    kinds: tuple[str, ...] = ()  # kind names or categories ("session"); empty: all
    wallet: str | None = None

    def admits(self, kind: str) -> bool:
        return not self.kinds or any(matches_kind(p, kind) for p in self.kinds)


class EventReads:
    """The log by cursor (read-only: the API's own database)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def exists(self) -> bool:
        return await self.db.has_table("notify_events")

    async def after(
        self, cursor: int, limit: int, f: EventFilter = EventFilter()
    ) -> tuple[list[LoggedEvent], int]:
        """Up to `limit` events after `cursor` that pass `f`, in log order, and the
        cursor read up to (past events `f` dropped too: resume from it)."""
        sql = "SELECT id, event_id, kind, wallet, body FROM notify_events WHERE id > ?"
        params: list[Any] = [cursor]
        if f.wallet is not None:
            sql += " AND wallet = ?"
            params.append(f.wallet)
        rows = await self.db.fetch(sql + " ORDER BY id LIMIT ?", [*params, limit])
        out: list[LoggedEvent] = []
        last = cursor
        for cur, event_id, kind, wallet, body in rows:
            last = int(cur)
            if f.admits(kind):
                doc = orjson.loads(body)
                doc["cursor"] = str(cur)
                out.append(LoggedEvent(int(cur), event_id, kind, wallet, doc))
        return out, last

    async def pruned_through(self) -> int:
        """The highest cursor retention has pruned (0: none): a reader resuming below it
        may have missed events (`notify.prune`)."""
        return await pruned_through(self.db)

    async def first_after(self, cursor: int) -> int | None:
        """The cursor of the oldest event kept after `cursor`."""
        value = await self.db.fetchval("SELECT MIN(id) FROM notify_events WHERE id > ?", (cursor,))
        return int(value) if value is not None else None

    async def last_cursor(self) -> int:
        value = await self.db.fetchval("SELECT MAX(id) FROM notify_events")
        return int(value) if value is not None else 0

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM notify_events") or 0)
