"""Retention on both stores (`backend`): a pass removes exactly the delivered deliveries
older than `delivered_days` and the events older than `events_days` that nothing is owed
for any more; pending (retrying) deliveries and their events stay, dead letters stay
until re-driven (or `dead_days`), the newest row of each table and the newest alert of
each kind and wallet stay; every transaction deletes at most `batch` rows; the pruned
horizon is recorded for /stream; /notifications cursors pointing at pruned rows go on
with the next kept row; a new event after pruning gets a cursor above every old one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import notify.prune
from database import Database, Queries, open_database
from notify import (
    Deliveries,
    EventLog,
    EventReads,
    NotifyEvent,
    NotifySettings,
    Pruner,
    RetentionSettings,
    Route,
    Router,
    Severity,
)

DAY = 86_400_000
NOW = 100 * DAY
W = "0x" + "ab" * 20


def wallet(i: int) -> str:
    return f"0x{i:040x}"


def event(n: int, at_ms: int, kind: str = "session.topped_up", who: str | None = None,
          state: str | None = None) -> NotifyEvent:  # fmt: skip
    data: dict[str, Any] = {"amount": str(2**255 + n)}
    if state is not None:
        data = {"state": state}
    return NotifyEvent(
        id=f"t:{n}", kind=kind, severity=Severity.WARNING, at_ms=at_ms, data=data,
        wallet=who if who is not None else (None if kind.startswith("alert.") else wallet(n)),
        owner=W, policy="p",
    )  # fmt: skip


@dataclass
class Stack:
    db: Database
    log: EventLog
    deliveries: Deliveries
    clock: list[int]
    router: Router

    async def append(self, at_ms: int, *events: NotifyEvent) -> None:
        """Logged at `at_ms` and routed (owed to the channel `hook` when routed)."""
        self.clock[0] = at_ms
        await self.log.append_now(list(events))
        await self.router.drain()

    async def ids(self, table: str) -> list[int]:
        return [int(r[0]) for r in await self.db.fetch(f"SELECT id FROM {table} ORDER BY id")]

    async def delivery_of(self, event_row: int) -> int:
        return int(await self.db.fetchval(
            "SELECT id FROM notify_deliveries WHERE event_row = ?", (event_row,)
        ))  # fmt: skip

    def pruner(self, **retention: Any) -> Pruner:
        return Pruner(self.db, RetentionSettings(**retention), clock_ms=lambda: NOW)


@contextlib.asynccontextmanager
async def stack(target: str, routed: bool = True) -> AsyncIterator[Stack]:
    db = await open_database(target)
    try:
        cfg = NotifySettings.model_validate(
            {"channels": [{"name": "hook", "type": "command", "command": ["/bin/true"]}]}
        )
        clock = [0]
        routes = [Route("hook", cfg.channels[0])] if routed else []
        log = EventLog(db, clock_ms=lambda: clock[0])
        await log.setup()
        router = Router(db, routes, clock_ms=lambda: clock[0])
        await router.start()
        yield Stack(db, log, Deliveries(db), clock, router)
    finally:
        await db.close()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(table, rows) of every DELETE transaction a pass runs."""
    seen: list[tuple[str, int]] = []
    real = notify.prune._delete

    async def spy(tx: Queries, table: str, ids: list[int]) -> None:
        seen.append((table, len(ids)))
        await real(tx, table, ids)

    monkeypatch.setattr(notify.prune, "_delete", spy)
    return seen


async def test_a_pass_removes_exactly_the_old_delivered_rows_in_bounded_batches(
    backend: str, batches: list[tuple[str, int]]
) -> None:
    async with stack(backend) as s:
        old = [event(n, DAY) for n in range(1, 1_201)]
        await s.append(DAY, *old)  # 1,200 old events, each owed to the channel
        # two alert conditions long ago: the raise is superseded, the clear is the latest
        await s.append(DAY, event(5_001, DAY, "alert.indexing_lag", state="raised"),
                       event(5_002, DAY, "alert.indexing_lag", state="cleared"))  # fmt: skip
        await s.append(DAY, event(5_003, DAY, "alert.balance_drift", W, "raised"))
        recent = [event(n, 99 * DAY) for n in range(2_001, 2_011)]
        await s.append(99 * DAY, *recent)
        rows = await s.ids("notify_events")
        old_rows, alert_rows, recent_rows = rows[:1_200], rows[1_200:1_203], rows[1_203:]
        pending = set(old_rows[100:103]) | {old_rows[-1]}  # still retrying
        dead = set(old_rows[500:502])
        for row in [*old_rows, *alert_rows]:
            d = await s.delivery_of(row)
            if row in pending:
                await s.deliveries.failed(d, 3, "HTTP 500", 2 * DAY, NOW + DAY)
            elif row in dead:
                await s.deliveries.failed(d, 10, "HTTP 500", 2 * DAY, None)
            else:
                await s.deliveries.delivered(d, 1, 2 * DAY)
        for row in recent_rows:
            await s.deliveries.delivered(await s.delivery_of(row), 1, 99 * DAY)

        report = await s.pruner(batch=100).prune()
        events = await s.ids("notify_events")
        deliveries = {int(r[0]): r[1] for r in await s.db.fetch(
            "SELECT event_row, state FROM notify_deliveries")}  # fmt: skip
        horizon = await EventReads(s.db).pruned_through()
        again = await s.pruner(batch=100).prune()

    kept_old = sorted(pending | dead)
    # the superseded raise went; the latest of each alert kind stayed
    assert events == [*kept_old, alert_rows[1], alert_rows[2], *recent_rows]
    assert deliveries == {
        **{r: "pending" for r in pending}, **{r: "dead" for r in dead},
        **{r: "delivered" for r in recent_rows},
    }  # fmt: skip
    assert report.deliveries == 1_200 + 3 - len(pending) - len(dead)
    assert report.events == 1_200 - len(pending) - len(dead) + 1
    assert horizon == alert_rows[0]  # the highest event cursor pruned
    assert again.events == again.deliveries == 0
    assert batches and max(n for _, n in batches) <= 100
    assert sum(n for t, n in batches if t == "notify_events") == report.events + again.events


async def test_dead_letters_go_after_dead_days_and_then_their_events(backend: str) -> None:
    async with stack(backend) as s:
        await s.append(DAY, *[event(n, DAY) for n in range(1, 6)])
        await s.append(99 * DAY, event(99, 99 * DAY))
        rows = await s.ids("notify_events")
        for row in rows[:5]:
            await s.deliveries.failed(await s.delivery_of(row), 10, "timeout", 2 * DAY, None)
        kept = await s.pruner(dead_days=0).prune()  # 0: dead letters stay until re-driven
        gone = await s.pruner(dead_days=30).prune()
        left = await s.ids("notify_events")
    assert kept.events == kept.deliveries == 0
    assert (gone.deliveries, gone.events) == (5, 5)
    assert left == [rows[5]]


async def test_the_newest_row_stays_so_cursors_never_go_back(backend: str) -> None:
    async with stack(backend, routed=False) as s:
        await s.append(DAY, *[event(n, DAY) for n in range(1, 31)])
        before = await s.ids("notify_events")
        report = await s.pruner(batch=7).prune()
        left = await s.ids("notify_events")
        await s.append(NOW, event(500, NOW))
        after = await s.ids("notify_events")
        got, read_to = await EventReads(s.db).after(before[-1], 10)
    assert report.events == 29 and left == [before[-1]]
    assert after[-1] > before[-1]  # SQLite numbers after the highest row left
    assert [e.id for e in got] == ["t:500"] and read_to == after[-1]


async def test_nothing_goes_with_retention_off_or_everything_young(backend: str) -> None:
    async with stack(backend) as s:
        await s.append(DAY, *[event(n, DAY) for n in range(1, 11)])
        for row in await s.ids("notify_events"):
            await s.deliveries.delivered(await s.delivery_of(row), 1, 2 * DAY)
        off = await s.pruner(events_days=0, delivered_days=0).prune()
        young = await s.pruner(events_days=200, delivered_days=200).prune()
        only_deliveries = await s.pruner(events_days=0).prune()
        assert await s.ids("notify_events") != []
    assert off.events == off.deliveries == young.events == young.deliveries == 0
    assert (only_deliveries.deliveries, only_deliveries.events) == (9, 0)


async def test_a_notifications_cursor_on_a_pruned_row_goes_on_with_the_next_kept(
    backend: str,
) -> None:
    async with stack(backend) as s:
        await s.append(DAY, *[event(n, DAY) for n in range(1, 11)])
        await s.append(99 * DAY, *[event(n, 99 * DAY) for n in range(11, 14)])
        deliveries = await s.ids("notify_deliveries")
        for d in deliveries[:10]:
            await s.deliveries.delivered(d, 1, 2 * DAY)
        await s.pruner().prune()
        page = await s.deliveries.page(deliveries[4], 100)  # a cursor into the pruned
    assert [d.id for d in page] == deliveries[10:]


async def test_run_prunes_at_once_and_survives_a_failing_pass(tmp_path: Any) -> None:
    import asyncio

    async with stack(str(tmp_path / "w.sqlite"), routed=False) as s:
        await s.append(DAY, *[event(n, DAY) for n in range(1, 6)])
        pruner = s.pruner(interval=1)
        calls = 0
        real = pruner.prune

        async def flaky(stop: asyncio.Event | None = None) -> notify.prune.PruneReport:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("database is locked")
            return await real(stop)

        pruner.prune = flaky  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(pruner.run(stop))
        try:
            for _ in range(600):
                if pruner.total.events:
                    break
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert calls >= 2 and pruner.total.events == 4
