"""Routing: which channel owes which logged event, decided after the event is logged, by
the leader's delivery task — never inside the transaction that logged it.

The event is written in its cause's transaction (that is what makes it never lost); the
delivery rows are not. A storm of 100,000 closes logs about 270,000 events, and owing
each to two channels inside the loop's commits made the storm 17 % longer, though
nothing was sent yet (BENCHMARKS.md). Here they are derived from the log afterwards, a
batch at a time, between the loop's commits.

Each configured channel has a cursor in `notify_cursors` (`route:<channel>`): the last
event id routed for it. A batch reads the events after the lowest cursor, inserts a
delivery row for each channel whose filters admit the event, and moves the cursors, in
one transaction: a crash routes again from the old cursors, and the `(channel,
event_row)` key keeps it once. Safe only because the log has one writer (`schema`): a row
numbered below a committed row is committed, so a cursor never passes a row that
commits later.

- A retraction goes to the channels its original went to, whatever their filters say.
  The original has the lower id, so its rows exist when the retraction is routed.
- A channel new to the database starts at the log's end when the term begins (`start`):
  it is owed what is logged while it is configured. A channel no longer configured loses
  its cursor; added again, it starts at the end again.
- Bounded: a channel with `queue` deliveries pending is not routed further until they
  drain. Its events wait in the log, which retention never prunes past a route cursor
  (`notify.prune`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from database import Database, Queries
from notify.catalogue import NotifyEvent, Severity
from notify.settings import Filters

PREFIX = "route:"  # notify_cursors names of the channels' route cursors
RETRACTED = "event.retracted"
BATCH = 1000  # events read per routing transaction
# A full queue is counted again when one of its attempts ends here (`freed`), or after
# this many seconds (what another process changed: a re-drive, a standby's term).
RECOUNT = 1.0

_OWE = (
    "INSERT INTO notify_deliveries (event_row, channel, wallet, state, attempts, next_ms, "
    "created_ms, updated_ms) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) "
    "ON CONFLICT (channel, event_row) DO NOTHING"
)
# a retraction, to the channel its original (by event id) went to
_OWE_RETRACTION = (
    "INSERT INTO notify_deliveries (event_row, channel, wallet, state, attempts, next_ms, "
    "created_ms, updated_ms) "
    "SELECT ?, d.channel, ?, 'pending', 0, ?, ?, ? FROM notify_events o "
    "JOIN notify_deliveries d ON d.event_row = o.id AND d.channel = ? WHERE o.event_id = ? "
    "ON CONFLICT (channel, event_row) DO NOTHING"
)
_MOVE = (
    "INSERT INTO notify_cursors (name, position) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
)


@dataclass(frozen=True)
class Route:
    """A channel's name and filters (what the `Router` routes by)."""

    channel: str
    filters: Filters

    def admits(self, e: NotifyEvent) -> bool:
        return self.filters.admits(e.kind, Severity(e.severity), e.policy, e.owner)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def cursor_name(channel: str) -> str:
    return PREFIX + channel


async def route_cursors(db: Queries) -> dict[str, int]:
    """channel → the last event id routed for it (the channels of the last term that had
    any)."""
    rows = await db.fetch(
        "SELECT name, position FROM notify_cursors WHERE name LIKE ?", (PREFIX + "%",)
    )
    return {str(name)[len(PREFIX) :]: int(position) for name, position in rows}


async def routed_through(db: Queries) -> int | None:
    """The lowest route cursor: every event above it may still be owed to a channel
    (None: no channel is routed, nothing is owed that is not already a row)."""
    value = await db.fetchval(
        "SELECT MIN(position) FROM notify_cursors WHERE name LIKE ?", (PREFIX + "%",)
    )
    return None if value is None else int(value)


class Router:
    """Owes logged events to the channels `routes`, batch by batch, after their cursors."""

    def __init__(
        self,
        db: Database,
        routes: Sequence[Route],
        *,
        queue: int = 10_000,
        batch: int = BATCH,
        clock_ms: Callable[[], int] = _wall_ms,
        turn: asyncio.Lock | None = None,
    ) -> None:
        self.db = db
        self.routes = tuple(routes)
        self.queue = queue  # deliveries pending per channel before its routing waits
        self.batch = batch
        self.clock_ms = clock_ms
        # the statements of one connection take turns (see `Deliveries`); shared with
        # the delivery task's
        self._turn = turn or asyncio.Lock()
        self.full: set[str] = set()  # channels whose queue was full at the last look
        self._freed: dict[str, int] = {}  # full channels: attempts ended since (`freed`)
        # a full queue is routed to again once this much of it drained: a storm's
        # deliveries then cost a routing transaction every `slack` attempts, not each
        self.slack = max(1, min(100, queue // 10))
        self._counted: dict[str, float] = {}  # channel -> when its queue was last counted
        self.tried = 0  # delivery rows this process routed (a retraction's: tried)

    async def start(self) -> None:
        """At the start of a term, before anything is logged in it: a channel new to the
        database starts at the log's end; channels no longer configured are forgotten."""
        names = [cursor_name(r.channel) for r in self.routes]
        async with self._turn, self.db.transaction() as tx:
            end = int(await tx.fetchval("SELECT COALESCE(MAX(id), 0) FROM notify_events") or 0)
            stale = [
                (cursor_name(c),) for c in await route_cursors(tx) if cursor_name(c) not in names
            ]
            if stale:
                await tx.executemany("DELETE FROM notify_cursors WHERE name = ?", stale)
            if names:
                await tx.executemany(
                    "INSERT INTO notify_cursors (name, position) VALUES (?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    [(n, end) for n in names],
                )

    def freed(self, channel: str) -> None:
        """An attempt of `channel` ended: a full queue may have room again (until `slack`
        of them ended, a full channel's queue is not counted again at every look)."""
        if channel in self.full:
            self._freed[channel] = self._freed.get(channel, 0) + 1

    async def step(self) -> int:
        """Route one batch: the events read (0: no cursor moved — every channel is
        caught up, or its queue is full). A channel is owed at most its queue's room."""
        if not self.routes:
            return 0
        async with self._turn:
            # looked at outside a transaction first: SQLite's begins by taking the write
            # lock, which an idle router must not take from the loop every time it looks
            # and the look holds inside it: only this router, under this turn, moves the
            # cursors and fills the queues (a re-drive from the CLI may add a few pending
            # rows meanwhile; the bound is then passed by those)
            cursors, room = await self._open(self.db)
            if not room:
                return 0
            async with self.db.transaction() as tx:
                return await self._batch(tx, cursors, room)

    async def _open(self, db: Queries) -> tuple[dict[str, int], dict[str, int]]:
        """The cursors, and the room (deliveries it may still owe) of each channel with
        events after its cursor and room to owe them."""
        cursors = await route_cursors(db)
        end = int(await db.fetchval("SELECT COALESCE(MAX(id), 0) FROM notify_events") or 0)
        room: dict[str, int] = {}
        for r in self.routes:
            if cursors.get(r.channel, end) >= end:
                continue
            was_full = r.channel in self.full
            if (
                was_full
                and self._freed.get(r.channel, 0) < self.slack
                and time.monotonic() - self._counted.get(r.channel, 0.0) < RECOUNT
            ):
                continue  # full at the last look, and not enough delivered here since
            self._freed.pop(r.channel, None)
            self._counted[r.channel] = time.monotonic()
            pending = int(
                await db.fetchval(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM notify_deliveries WHERE channel = ? "
                    "AND state = 'pending' LIMIT ?) AS q",
                    (r.channel, self.queue),
                )
                or 0
            )
            if self.queue - pending >= (self.slack if was_full else 1):
                self.full.discard(r.channel)
                room[r.channel] = self.queue - pending
            else:
                self.full.add(r.channel)
        return cursors, room

    async def _batch(self, tx: Queries, cursors: dict[str, int], room: dict[str, int]) -> int:
        open_ = [r for r in self.routes if r.channel in room]
        rows = await tx.fetch(
            "SELECT id, kind, severity, wallet, owner, policy, "
            "CASE WHEN kind = ? THEN body END FROM notify_events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (RETRACTED, min(cursors[r.channel] for r in open_), self.batch),
        )
        now = self.clock_ms()
        owed: list[tuple[Any, ...]] = []
        retractions: list[tuple[Any, ...]] = []
        moved = {r.channel: cursors[r.channel] for r in open_}
        stopped: set[str] = set()  # queue full: the cursor stays before the next one owed
        for row, kind, severity, wallet, owner, policy, body in rows:
            retracts = orjson.loads(body)["data"]["retracts"] if kind == RETRACTED else None
            for r in open_:
                channel = r.channel
                if row <= moved[channel] or channel in stopped:
                    continue
                # a retraction is owed where its original went (the join decides)
                if retracts is not None or r.filters.admits(
                    kind, Severity(severity), policy, owner
                ):
                    if not room[channel]:
                        stopped.add(channel)
                        continue
                    room[channel] -= 1
                    if retracts is None:
                        owed.append((row, channel, wallet, now, now, now))
                    else:
                        retractions.append((row, wallet, now, now, now, channel, retracts))
                moved[channel] = row
            if len(stopped) == len(open_):
                break  # every queue is full: the rest of the batch waits in the log
        if owed:
            await tx.executemany(_OWE, owed)
        if retractions:  # after the batch's own rows: an original may be among them
            await tx.executemany(_OWE_RETRACTION, retractions)
        changed = [(cursor_name(c), p) for c, p in moved.items() if p > cursors[c]]
        if changed:
            await tx.executemany(_MOVE, changed)
        self.tried += len(owed) + len(retractions)
        return len(rows) if changed else 0

    async def drain(self) -> int:
        """Route until caught up (or every queue is full); the events read."""
        total = 0
        while n := await self.step():
            total += n
        return total
