"""The delivery outbox: which channel owes which event, and how far each delivery got.

Rows are routed (inserted) by the delivery task's `Router` after the event is logged
(`notify.routing`); `Deliveries` moves them: pending → delivered, pending → pending with
the next try's time, pending → dead after the last attempt, each outcome committed before
its attempt is over (outcomes that finish together share one transaction); `redrive` puts
dead rows back to pending.

Per-session order: a channel is handed a session's next event only once the one before
it is delivered or dead (`due`), so a receiver never sees a session's events overtake
each other; different sessions go out concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from database import Database
from notify.routing import route_cursors

STATES = ("pending", "delivered", "dead")


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


_DELIVERED = (
    "UPDATE notify_deliveries SET state = 'delivered', attempts = ?, last_error = NULL, "
    "updated_ms = ?, delivered_ms = ? WHERE id = ? AND state = 'pending'"
)
_FAILED = (
    "UPDATE notify_deliveries SET state = ?, attempts = ?, last_error = ?, next_ms = ?, "
    "updated_ms = ? WHERE id = ? AND state = 'pending'"
)


class Deliveries:
    """Reads and moves delivery rows (the leader's delivery task, the API, the CLI)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The delivery task's attempts finish concurrently on one connection: a SQLite
        # connection is one transaction at a time, and a write begun while one of its own
        # reads is still stepping cannot wait for the lock (its snapshot would be stale:
        # "database is locked" at once). So this object's statements take turns.
        self.turn = asyncio.Lock()
        self._outcomes: list[tuple[str, tuple[Any, ...], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def due(self, channel: str, now_ms: int, busy: set[str], limit: int) -> list[Due]:
        """Pending deliveries of `channel` that may go now, oldest first: due, and the
        first pending one of their session that is not already in flight (`busy`: the
        sessions in flight; "" stands for events of no session)."""
        async with self.turn:
            rows = await self.db.fetch(
                "SELECT d.id, d.event_row, d.wallet, d.attempts, d.next_ms, e.body "
                "FROM notify_deliveries d JOIN notify_events e ON e.id = d.event_row "
                "WHERE d.channel = ? AND d.state = 'pending' ORDER BY d.event_row LIMIT ?",
                (channel, limit * 2 + 16),  # enough to skip the sessions in flight
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
        async with self.turn:
            value = await self.db.fetchval(
                "SELECT MIN(next_ms) FROM notify_deliveries WHERE channel = ? "
                "AND state = 'pending'",
                (channel,),
            )
        return None if value is None else int(value)

    async def delivered(self, delivery: int, attempts: int, now_ms: int) -> None:
        await self._record(_DELIVERED, (attempts, now_ms, now_ms, delivery))

    async def failed(
        self, delivery: int, attempts: int, error: str, now_ms: int, retry_at_ms: int | None
    ) -> None:
        """A failed attempt: pending again at `retry_at_ms`, or dead when None."""
        await self._record(
            _FAILED,
            (
                "dead" if retry_at_ms is None else "pending", attempts, error[:500],
                now_ms if retry_at_ms is None else retry_at_ms, now_ms, delivery,
            ),
        )  # fmt: skip

    async def _record(self, sql: str, params: tuple[Any, ...]) -> None:
        """Commit one outcome; returns once it is committed. Outcomes that finish while
        another group is being written are written together, in one transaction (a group
        commit): a storm's thousands of deliveries take the writer from the loop a few
        hundred times instead of once each, and cost the loop's thread that much less."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((sql, params, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_outcomes())
        await done

    async def flushed(self) -> None:
        """Wait for the outcomes being written (a stopping delivery task)."""
        if self._writer is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._writer

    async def _write_outcomes(self) -> None:
        try:
            while self._outcomes:
                group, self._outcomes = self._outcomes, []
                try:
                    async with self.turn, self.db.transaction() as tx:
                        for sql, params, _ in group:
                            await tx.execute(sql, params)
                except BaseException as exc:  # none of the group is written: all told
                    for *_, done in group:
                        if not done.done():
                            done.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for *_, done in group:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._writer = None
            for *_, done in self._outcomes:  # cancelled with outcomes waiting
                if not done.done():
                    done.cancel()
            self._outcomes = []

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
        async with self.turn, self.db.transaction() as tx:
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
        """channel → when its oldest undelivered event was logged (the delivery lag): a
        pending delivery, or an event logged after the channel's route cursor and not
        yet routed (counted whether or not the channel's filters will admit it)."""
        if not await self.db.has_table("notify_deliveries"):
            return {}
        cursors = await route_cursors(self.db)
        pending = await self.db.fetch(
            "SELECT DISTINCT channel FROM notify_deliveries WHERE state = 'pending'"
        )
        out: dict[str, int] = {}
        for channel in sorted(set(cursors) | {str(r[0]) for r in pending}):
            firsts = [
                await self.db.fetchval(
                    "SELECT e.at_ms FROM notify_events e WHERE e.id = (SELECT MIN(event_row) "
                    "FROM notify_deliveries WHERE channel = ? AND state = 'pending')",
                    (channel,),
                )
            ]
            if channel in cursors:
                firsts.append(
                    await self.db.fetchval(
                        "SELECT at_ms FROM notify_events WHERE id > ? ORDER BY id LIMIT 1",
                        (cursors[channel],),
                    )
                )
            known = [int(v) for v in firsts if v is not None]
            if known:
                out[channel] = min(known)
        return out

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
