"""The delivery outbox: which channel owes which event, and how far each delivery got.

Rows are routed (inserted) by `EventLog.append` inside the transaction that logs the
event; `Deliveries` moves them afterwards, one small transaction per outcome: pending →
delivered, pending → pending with the next try's time, pending → dead after the last
attempt; `redrive` puts dead rows back to pending.

Per-session order: a channel is handed a session's next event only once the one before
it is delivered or dead (`due`), so a receiver never sees a session's events overtake
each other; different sessions go out concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from database import Database, Queries
from notify.catalogue import NotifyEvent, Severity
from notify.settings import Filters

STATES = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class Route:
    """A channel's name and filters (what `EventLog` routes by)."""

    channel: str
    filters: Filters

    def admits(self, e: NotifyEvent) -> bool:
        return self.filters.admits(e.kind, Severity(e.severity), e.policy, e.owner)


@dataclass(frozen=True)
class Due:
    delivery: int  # notify_deliveries.id
    event_row: int
    wallet: str | None
    attempts: int
    body: dict[str, Any]  # the event document, with its cursor


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    channel: str
    state: str
    attempts: int
    next_ms: int
    last_error: str | None
    created_ms: int
    updated_ms: int
    delivered_ms: int | None
    event_row: int
    event_id: str
    kind: str
    wallet: str | None


_ROUTE = (
    "INSERT INTO notify_deliveries (event_row, channel, wallet, state, attempts, next_ms, "
    "created_ms, updated_ms) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?) "
    "ON CONFLICT (channel, event_row) DO NOTHING"
)


async def route(
    tx: Queries,
    routes: Sequence[Route],
    events: Sequence[NotifyEvent],
    ids: Mapping[str, int],
    now_ms: int,
) -> None:
    """Owe each event just logged (`ids`: event id -> its row) to every channel that
    admits it (inside the logging transaction). A retraction goes to the channels its
    original went to, whatever their filters say: whoever heard of an event hears that
    it was undone."""
    rows = [
        (ids[e.id], r.channel, e.wallet, now_ms, now_ms, now_ms)
        for e in events
        if e.kind != "event.retracted" and e.id in ids
        for r in routes
        if r.admits(e)
    ]
    if rows:
        await tx.executemany(_ROUTE, rows)
    retracted = [e for e in events if e.kind == "event.retracted" and e.id in ids]
    if retracted and routes:
        await tx.executemany(
            "INSERT INTO notify_deliveries (event_row, channel, wallet, state, attempts, "
            "next_ms, created_ms, updated_ms) "
            "SELECT r.id, d.channel, r.wallet, 'pending', 0, ?, ?, ? FROM notify_events r "
            "JOIN notify_events o ON o.event_id = ? JOIN notify_deliveries d "
            "ON d.event_row = o.id WHERE r.event_id = ? "
            "ON CONFLICT (channel, event_row) DO NOTHING",
            [(now_ms, now_ms, now_ms, e.data["retracts"], e.id) for e in retracted],
        )


class Deliveries:
    """Reads and moves delivery rows (the leader's delivery task, the API, the CLI)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The delivery task's attempts finish concurrently on one connection: a SQLite
        # connection is one transaction at a time, and a write begun while one of its own
        # reads is still stepping cannot wait for the lock (its snapshot would be stale:
        # "database is locked" at once). So this object's statements take turns.
        self._turn = asyncio.Lock()

    async def due(self, channel: str, now_ms: int, busy: set[str], limit: int) -> list[Due]:
        """Pending deliveries of `channel` that may go now, oldest first: due, and the
        first pending one of their session that is not already in flight (`busy`: the
        sessions in flight; "" stands for events of no session)."""
        async with self._turn:
            rows = await self.db.fetch(
                "SELECT d.id, d.event_row, d.wallet, d.attempts, d.next_ms, e.body "
                "FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_row "
                "WHERE d.channel = ? AND d.state = 'pending' ORDER BY d.event_row LIMIT ?",
                (channel, limit * 4 + 64),
            )
        blocked = set(busy)
        out: list[Due] = []
        for delivery, event_row, wallet, attempts, next_ms, body in rows:
            key = wallet or ""
            if key in blocked:
                continue
            blocked.add(key)  # later events of this session wait for this one
            if int(next_ms) > now_ms:
                continue
            doc = orjson.loads(body)
            doc["cursor"] = str(event_row)
            out.append(Due(int(delivery), int(event_row), wallet, int(attempts), doc))
            if len(out) >= limit:
                break
        return out

    async def next_due_ms(self, channel: str) -> int | None:
        async with self._turn:
            value = await self.db.fetchval(
                "SELECT MIN(next_ms) FROM notify_deliveries WHERE channel = ? "
                "AND state = 'pending'",
                (channel,),
            )
        return None if value is None else int(value)

    async def delivered(self, delivery: int, attempts: int, now_ms: int) -> None:
        async with self._turn, self.db.transaction() as tx:
            await tx.execute(
                "UPDATE notify_deliveries SET state = 'delivered', attempts = ?, "
                "last_error = NULL, updated_ms = ?, delivered_ms = ? "
                "WHERE id = ? AND state = 'pending'",
                (attempts, now_ms, now_ms, delivery),
            )

    async def failed(
        self, delivery: int, attempts: int, error: str, now_ms: int, retry_at_ms: int | None
    ) -> None:
        """A failed attempt: pending again at `retry_at_ms`, or dead when None."""
        async with self._turn, self.db.transaction() as tx:
            await tx.execute(
                "UPDATE notify_deliveries SET state = ?, attempts = ?, last_error = ?, "
                "next_ms = ?, updated_ms = ? WHERE id = ? AND state = 'pending'",
                (
                    "dead" if retry_at_ms is None else "pending", attempts, error[:500],
                    now_ms if retry_at_ms is None else retry_at_ms, now_ms, delivery,
                ),
            )  # fmt: skip

    async def redrive(
        self, now_ms: int, channel: str | None = None, ids: Sequence[int] = ()
    ) -> int:
        """Dead deliveries (of `channel`, or these ids) pending again, attempts from 0."""
        sql = (
            "UPDATE notify_deliveries SET state = 'pending', attempts = 0, next_ms = ?, "
            "updated_ms = ? WHERE state = 'dead'"
        )
        params: list[Any] = [now_ms, now_ms]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        if ids:
            sql += f" AND id IN ({', '.join('?' for _ in ids)})"
            params.extend(ids)
        async with self._turn, self.db.transaction() as tx:
            return await tx.execute(sql, params)

    async def counts(self) -> dict[tuple[str, str], int]:
        """(channel, state) → rows."""
        if not await self.db.has_table("notify_deliveries"):
            return {}
        rows = await self.db.fetch(
            "SELECT channel, state, COUNT(*) FROM notify_deliveries GROUP BY channel, state"
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def oldest_pending_ms(self) -> dict[str, int]:
        """channel → creation time of its oldest pending delivery (the delivery lag)."""
        if not await self.db.has_table("notify_deliveries"):
            return {}
        rows = await self.db.fetch(
            "SELECT channel, MIN(created_ms) FROM notify_deliveries WHERE state = 'pending' "
            "GROUP BY channel"
        )
        return {r[0]: int(r[1]) for r in rows}

    async def page(
        self,
        after: int,
        limit: int,
        *,
        state: str | None = None,
        channel: str | None = None,
        kind: str | None = None,
    ) -> list[DeliveryRow]:
        """Deliveries by id after `after` (a cursor), filtered; `limit` + 1 read."""
        if not await self.db.has_table("notify_deliveries"):
            return []
        sql = (
            "SELECT d.id, d.channel, d.state, d.attempts, d.next_ms, d.last_error, "
            "d.created_ms, d.updated_ms, d.delivered_ms, d.event_row, e.event_id, e.kind, "
            "d.wallet FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_row "
            "WHERE d.id > ?"
        )
        params: list[Any] = [after]
        for column, value in (("d.state", state), ("d.channel", channel), ("e.kind", kind)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = await self.db.fetch(sql + " ORDER BY d.id LIMIT ?", [*params, limit + 1])
        return [
            DeliveryRow(
                int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5], int(r[6]), int(r[7]),
                None if r[8] is None else int(r[8]), int(r[9]), r[10], r[11], r[12],
            )
            for r in rows
        ]  # fmt: skip
