"""Retention: the event log and the outbox pruned in small batches (`notify.retention`).

What goes, each pass (the leader's, every `retention.interval` seconds):

- deliveries `delivered` more than `delivered_days` ago, and `dead` ones last moved more
  than `dead_days` ago (0: a dead letter stays until it is re-driven);
- events older than `events_days` none of whose deliveries is left: an event owed to a
  channel (pending, retrying, or dead and kept) is never pruned, nor one a channel's
  route cursor has not passed yet (`notify.routing`: it may still be owed).

What always stays:

- the newest row of each table: SQLite numbers a new row after the highest one left, so
  pruning the newest would hand its number out again and a reader holding that cursor
  would miss the next event;
- the newest `alert.*` event of each kind (and wallet): a restarted leader reads which of
  its conditions the log shows raised (`warden.app.alerts`, `warden.app.audit`).

Each batch looks at the next `retention.batch` rows by id (a primary-key range, however
large the table) and deletes those of them that may go, in one short transaction, so the
writer is never held for more than one batch. Rows are numbered in time order, so a pass
stops at the first window whose rows are all too young.

The highest event cursor ever pruned is kept (`notify_cursors`, name `pruned`) in the
transaction that prunes it: `/stream` compares a resuming reader's cursor with it and
says `event: gap` when events after that cursor may have been pruned (docs/notify.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from database import Database, Deposed, Queries
from notify.routing import routed_through
from notify.settings import RetentionSettings

log = logging.getLogger("warden.notify")

DAY_MS = 86_400_000
HORIZON = "pruned"  # notify_cursors: the highest event id pruned so far


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class PruneReport:
    events: int = 0
    deliveries: int = 0
    batches: int = 0  # transactions, each at most `retention.batch` rows

    def __str__(self) -> str:
        return (f"{self.events} event(s), {self.deliveries} delivery row(s) in "
                f"{self.batches} batch(es)")  # fmt: skip


# Deliveries in a window of ids that may go (the newest row always stays).
_DELIVERIES = (
    "SELECT id FROM notify_deliveries WHERE id > ? AND id <= ? "
    "AND id < (SELECT MAX(id) FROM notify_deliveries) AND ("
    "(state = 'delivered' AND ? = 1 AND delivered_ms < ?) OR "
    "(state = 'dead' AND ? = 1 AND updated_ms < ?)) ORDER BY id"
)
# Events in a window of ids that may go: old, owed to no channel any more, not the newest
# row, and for an alert not the newest of its kind and wallet.
_EVENTS = (
    "SELECT e.id FROM notify_events e WHERE e.id > ? AND e.id <= ? AND e.at_ms < ? "
    "AND e.id <= ? "
    "AND e.id < (SELECT MAX(id) FROM notify_events) "
    "AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.event_row = e.id) "
    "AND (e.kind NOT LIKE 'alert.%' "
    "OR (e.wallet IS NULL AND EXISTS (SELECT 1 FROM notify_events n WHERE n.wallet IS NULL "
    "AND n.kind = e.kind AND n.id > e.id)) "
    "OR (e.wallet IS NOT NULL AND EXISTS (SELECT 1 FROM notify_events n "
    "WHERE n.wallet = e.wallet AND n.kind = e.kind AND n.id > e.id))) ORDER BY e.id"
)


class Pruner:
    """Prunes what `settings` lets go; `run` is the leader's periodic task."""

    def __init__(
        self,
        db: Database,
        settings: RetentionSettings,
        *,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock_ms = clock_ms
        self.total = PruneReport()  # this process's, for tests and logs

    async def run(self, stop: asyncio.Event) -> None:
        """A pass at once, then every `interval` seconds, until `stop`. A failed pass
        (the database busy, or gone) is logged and tried again at the next interval."""
        interval = self.settings.interval
        if interval <= 0:
            await stop.wait()
            return
        while not stop.is_set():
            try:
                report = await self.prune(stop)
                if report.events or report.deliveries:
                    log.info("notify: pruned %s", report)
            except Deposed:
                raise
            except Exception as exc:
                log.warning("notify: pruning failed, trying again in %g s: %s", interval, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def prune(self, stop: asyncio.Event | None = None) -> PruneReport:
        """One pass: deliveries first (an event goes only once none of its deliveries
        is left), then events; batch after batch until nothing old is left."""
        report = PruneReport()
        now = self.clock_ms()
        s = self.settings
        delivered = now - int(s.delivered_days * DAY_MS)
        dead = now - int(s.dead_days * DAY_MS)
        if s.delivered_days > 0 or s.dead_days > 0:
            # a window whose rows were all created after both cutoffs holds nothing to go
            young = max(delivered if s.delivered_days > 0 else 0, dead if s.dead_days > 0 else 0)
            after = 0
            while stop is None or not stop.is_set():
                began = time.perf_counter()
                window = await self._window("notify_deliveries", "created_ms", after, young)
                if window is None:
                    break
                hi, last = window
                params = (after, hi, int(s.delivered_days > 0), delivered,
                          int(s.dead_days > 0), dead)  # fmt: skip
                async with self.db.transaction() as tx:
                    ids = [int(r[0]) for r in await tx.fetch(_DELIVERIES, params)]
                    await _delete(tx, "notify_deliveries", ids)
                report.deliveries += len(ids)
                report.batches += 1
                after = hi
                if last:
                    break
                await self._pause(began)
        if s.events_days > 0:
            cutoff = now - int(s.events_days * DAY_MS)
            routed = await routed_through(self.db)
            owed_above = (1 << 62) if routed is None else routed
            after = 0
            while stop is None or not stop.is_set():
                began = time.perf_counter()
                window = await self._window("notify_events", "at_ms", after, cutoff)
                if window is None:
                    break
                hi, last = window
                async with self.db.transaction() as tx:
                    ids = [
                        int(r[0]) for r in await tx.fetch(_EVENTS, (after, hi, cutoff, owed_above))
                    ]
                    await _delete(tx, "notify_events", ids)
                    if ids:
                        await tx.execute(
                            "INSERT INTO notify_cursors (name, position) VALUES (?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET position = "
                            "CASE WHEN excluded.position > notify_cursors.position "
                            "THEN excluded.position ELSE notify_cursors.position END",
                            (HORIZON, max(ids)),
                        )
                report.events += len(ids)
                report.batches += 1
                after = hi
                if last:
                    break
                await self._pause(began)
        self.total.events += report.events
        self.total.deliveries += report.deliveries
        self.total.batches += report.batches
        return report

    @staticmethod
    async def _pause(began: float) -> None:
        """Between batches, as long as the last one took (10 ms at least): the writer is
        free at least half the time, long enough for a commit that waited on SQLite's lock
        (its busy handler sleeps in steps) to get in before the next batch."""
        await asyncio.sleep(max(0.01, time.perf_counter() - began))

    async def _window(
        self, table: str, stamp: str, after: int, young: int
    ) -> tuple[int, bool] | None:
        """The next `batch` ids after `after`: (the last of them, whether this is the last
        window worth looking at), or None when no row after `after` is old enough."""
        rows = await self.db.fetch(
            f"SELECT id, {stamp} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
            (after, self.settings.batch),
        )
        if not rows or int(rows[0][1]) >= young:
            return None
        last = len(rows) < self.settings.batch or int(rows[-1][1]) >= young
        return int(rows[-1][0]), last


async def _delete(tx: Queries, table: str, ids: list[int]) -> None:
    if ids:
        await tx.executemany(f"DELETE FROM {table} WHERE id = ?", [(i,) for i in ids])


async def pruned_through(db: Queries) -> int:
    """The highest event cursor pruned so far (0: none)."""
    value = await db.fetchval("SELECT position FROM notify_cursors WHERE name = ?", (HORIZON,))
    return int(value) if value is not None else 0
