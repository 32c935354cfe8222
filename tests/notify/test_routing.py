"""Routing on both stores (`backend`): the transaction that logs an event writes no
delivery row; the router owes each event once to each channel that admits it, after a
crash too; a channel is owed what is logged from its start on, and forgotten when it is
no longer configured; a full queue stops a channel's routing exactly at its bound and
the rest waits in the log, never pruned; a retraction follows its original across
batches; and through the delivery task, a receiver that was down gets everything."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import notify.routing
from database import Database, open_database
from notify import (
    Deliverer,
    Deliveries,
    EventLog,
    HttpPoster,
    NotifyEvent,
    NotifySettings,
    Pruner,
    RetentionSettings,
    Route,
    Router,
    Severity,
)
from notify.delivery import PRESSED_RATE
from notify.routing import route_cursors
from tests.notify._receiver import Receiver
from tests.notify.test_delivery import until
from warden.devnet import free_port

DAY = 86_400_000
W = ["0x" + f"{n:02x}" * 20 for n in range(1, 4)]
CFG = NotifySettings.model_validate({"channels": [
    {"name": "all", "type": "command", "command": ["/bin/true"]},
    {"name": "closes", "type": "command", "command": ["/bin/true"], "kinds": ["session.closed"]},
    {"name": "pager", "type": "command", "command": ["/bin/true"], "min_severity": "critical"},
]})  # fmt: skip
ROUTES = {c.name: Route(c.name, c) for c in CFG.channels}


def event(n: int, kind: str = "session.topped_up", at_ms: int = 1_000) -> NotifyEvent:
    return NotifyEvent(
        id=f"t:{n}", kind=kind, severity=Severity.INFO, at_ms=at_ms,
        data={"amount": str(2**255 + n)}, wallet=W[n % 3], owner=W[0], policy="p",
        position=n << 32,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def logged(target: str) -> AsyncIterator[tuple[Database, EventLog]]:
    db = await open_database(target)
    try:
        log = EventLog(db)
        await log.setup()
        yield db, log
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def delivering(target: str, cfg: NotifySettings) -> AsyncIterator[Deliverer]:
    """The delivery task on a connection of its own, started as the daemon starts it
    (its route cursors placed first), stopped and closed afterwards."""
    own = await open_database(target)
    stop = asyncio.Event()
    try:
        async with HttpPoster() as poster:
            deliverer = Deliverer(own, cfg, poster, rng=random.Random(1))
            await deliverer.start()
            task = asyncio.create_task(deliverer.run(stop))
            try:
                yield deliverer
            finally:
                stop.set()
                await task
    finally:
        await own.close()


def router(db: Database, *names: str, **kw: Any) -> Router:
    return Router(db, [ROUTES[n] for n in names], **kw)


async def owed(db: Database) -> list[tuple[str, str]]:
    return sorted((d.channel, d.event_id) for d in await Deliveries(db).page(0, 10_000))


async def test_the_logging_transaction_owes_nothing_the_router_owes_each_event_once(
    backend: str,
) -> None:
    async with logged(backend) as (db, log):
        r = router(db, "all", "closes")
        await r.start()
        async with db.transaction() as tx:
            await log.append(tx, [event(1), event(2, "session.closed"), event(3)])
        assert await owed(db) == []  # the cause's commit wrote the events only
        assert await r.drain() == 3
        want = [("all", "t:1"), ("all", "t:2"), ("all", "t:3"), ("closes", "t:2")]
        assert await owed(db) == want
        assert await r.step() == 0  # caught up: nothing read, nothing written
        # a crash after the rows but before the cursors' move: routed again, once
        async with db.transaction() as tx:
            await tx.execute("UPDATE notify_cursors SET position = 0 WHERE name LIKE 'route:%'")
        assert await r.drain() == 3
        assert await owed(db) == want
        assert await route_cursors(db) == {"all": 3, "closes": 3}


async def test_a_channel_is_owed_what_is_logged_from_its_start_and_forgotten_when_gone(
    backend: str,
) -> None:
    async with logged(backend) as (db, log):
        await log.append_now([event(1), event(2)])  # before any channel: owed to none
        await router(db, "all").start()
        await log.append_now([event(3)])
        # the daemon stopped; it starts again with a second channel: the first one is
        # owed what it had not routed yet, the new one only what comes next
        r = router(db, "all", "pager")
        await r.start()
        await log.append_now([event(4)])
        crit = NotifyEvent(
            id="alert.x",
            kind="alert.relayer_balance_low",
            severity=Severity.CRITICAL,
            at_ms=1,
            data={"state": "raised"},
        )
        await log.append_now([crit])  # fmt: skip
        await r.drain()
        assert await owed(db) == [
            ("all", "alert.x"), ("all", "t:3"), ("all", "t:4"), ("pager", "alert.x"),
        ]  # fmt: skip
        # a term without `all`: its cursor goes; added back, it starts at the end again
        await router(db, "pager").start()
        assert set(await route_cursors(db)) == {"pager"}
        await log.append_now([event(5)])
        back = router(db, "all")
        await back.start()
        await log.append_now([event(6)])
        await back.drain()
        assert [e for c, e in await owed(db) if c == "all"] == ["alert.x", "t:3", "t:4", "t:6"]
        # a term with no channel at all forgets every cursor (as the daemon starts one)
        await Router(db, []).start()
        assert await route_cursors(db) == {}


async def test_a_full_queue_stops_its_channel_at_the_bound_and_the_log_keeps_the_rest(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with logged(backend) as (db, log):
        r = router(db, "all", "closes", queue=3)
        await r.start()
        await log.append_now([event(n, "session.closed" if n % 2 else "session.topped_up",
                                    at_ms=1) for n in range(1, 11)])  # fmt: skip
        await r.drain()  # one batch reads all ten; each channel takes only its room
        assert [e for c, e in await owed(db) if c == "all"] == ["t:1", "t:2", "t:3"]
        assert [e for c, e in await owed(db) if c == "closes"] == ["t:1", "t:3", "t:5"]
        # the cursors stop before the first event each could not take
        assert await route_cursors(db) == {"all": 3, "closes": 6}
        assert r.full == {"all", "closes"}
        # retention keeps the unrouted events, however old, and prunes none above the
        # lowest cursor
        pruner = Pruner(db, RetentionSettings(events_days=1, delivered_days=1),
                        clock_ms=lambda: 10 * DAY)  # fmt: skip
        await pruner.prune()
        left = [int(x[0]) for x in await db.fetch("SELECT id FROM notify_events ORDER BY id")]
        assert left == list(range(1, 11))
        # two deliveries of `all` go: room for two more, in log order
        deliveries = Deliveries(db)
        mine = [d for d in await deliveries.page(0, 100) if d.channel == "all"]
        for d in mine[:2]:
            await deliveries.delivered(d.id, 1, 5)
            r.freed("all")  # as the delivery task says after each attempt
        await r.drain()
        assert [e for c, e in await owed(db) if c == "all"] == ["t:1", "t:2", "t:3", "t:4", "t:5"]
        assert (await route_cursors(db))["all"] == 5
        assert r.full == {"all", "closes"}
        # room made by another process (no `freed` here): seen at the next recount
        (first,) = [
            d for d in await deliveries.page(0, 100) if (d.channel, d.event_id) == ("all", "t:3")
        ]
        await deliveries.delivered(first.id, 1, 5)
        assert await r.drain() == 0  # a full queue is not counted at every look
        monkeypatch.setattr(notify.routing, "RECOUNT", 0.0)
        await r.drain()
        assert (await route_cursors(db))["all"] == 6


@pytest.mark.parametrize("batch", [1, 1000])
async def test_a_retraction_follows_its_original_in_the_same_batch_or_a_later_one(
    backend: str, batch: int
) -> None:
    async with logged(backend) as (db, log):
        r = router(db, "closes", "pager", batch=batch)
        await r.start()
        await log.append_now([event(1, "session.closed"), event(2, "session.created")])
        if batch == 1:
            await r.drain()  # the originals routed before the reorg, one per batch
        async with db.transaction() as tx:  # a reorg takes both blocks back
            await log.rolled_back(tx, 1 << 32)
        await r.drain()
        # `closes` heard of the close only, so hears of its retraction only; `pager`
        # heard of neither (their severity) and hears of no retraction
        assert await owed(db) == [("closes", "t:1"), ("closes", "t:1/retracted")]


async def test_through_the_delivery_task_a_receiver_that_was_down_gets_everything(
    backend: str,
) -> None:
    port = free_port()
    cfg = NotifySettings.model_validate({
        "delivery": {"attempts": 1000, "base_delay": 0.02, "max_delay": 0.1, "timeout": 0.5,
                     "poll": 0.05, "queue": 4},
        "channels": [{"name": "hook", "type": "webhook",
                      "url": f"http://127.0.0.1:{port}/hook", "unsigned": True}],
    })  # fmt: skip
    receiver = Receiver()
    async with logged(backend) as (db, log):
        try:
            async with delivering(backend, cfg) as deliverer:
                events = [event(n) for n in range(1, 31)]
                for i in range(0, 30, 10):
                    await log.append_now(events[i : i + 10])
                    deliverer.wake()
                # nobody listens: the queue fills to its bound, the rest waits in the log
                await until(lambda: "hook" in deliverer.router.full)
                assert len(await owed(db)) == 4
                lag = await Deliveries(db).oldest_pending_ms()
                assert lag == {"hook": 1_000}  # the oldest undelivered event's time
                await receiver.start(port)
                await until(lambda: len(receiver.accepted()) >= 30)
        finally:
            await receiver.stop()
        got = [r.body["id"] for r in receiver.accepted()]
        assert sorted(set(got)) == sorted(e.id for e in events)
        for w in W:  # each session's events in log order
            mine = [i for i in dict.fromkeys(got) if events[int(i[2:]) - 1].wallet == w]
            assert mine == sorted(mine, key=lambda i: int(i[2:]))
        assert await Deliveries(db).oldest_pending_ms() == {}


async def test_outcomes_finishing_together_are_committed_together_each_caller_after_its_own(
    backend: str,
) -> None:
    async with logged(backend) as (db, log):
        r = router(db, "all")
        await r.start()
        await log.append_now([event(n) for n in range(1, 41)])
        await r.drain()
        deliveries = Deliveries(db)
        rows = await deliveries.page(0, 100)
        began = 0
        real = db.transaction

        def counted() -> Any:
            nonlocal began
            began += 1
            return real()

        db.transaction = counted  # type: ignore[method-assign]

        async def one(i: int, row_id: int) -> None:
            if i % 2:
                await deliveries.delivered(row_id, 1, 7)
            else:
                await deliveries.failed(row_id, 1, "HTTP 500: nope", 7, None)
            # returned: this outcome is committed (another connection sees it)
            state = await db.fetchval("SELECT state FROM notify_deliveries WHERE id = ?",
                                      (row_id,))  # fmt: skip
            assert state == ("delivered" if i % 2 else "dead")

        await asyncio.gather(*(one(i, d.id) for i, d in enumerate(rows)))
        assert 1 <= began < len(rows) // 2  # grouped, not one transaction each
        # a group whose transaction fails: every caller hears it, none of it is written
        boom = RuntimeError("disk I/O error")

        def failing() -> Any:
            raise boom

        assert await deliveries.redrive(0) == 20  # the dead ones pending again
        db.transaction = failing  # type: ignore[method-assign]
        outcomes = await asyncio.gather(
            *(deliveries.delivered(d.id, 2, 9) for d in rows[:4]), return_exceptions=True
        )
        assert outcomes == [boom] * 4
        db.transaction = real  # type: ignore[method-assign]
        await deliveries.delivered(rows[0].id, 2, 9)  # the next group is written
        counts = await deliveries.counts()
        assert counts == {("all", "delivered"): 21, ("all", "pending"): 19}


async def test_while_the_loop_is_pressed_a_channel_sends_one_at_a_time_at_the_pressed_rate(
    backend: str,
) -> None:
    flying, peak, starts = 0, [0], []

    async def slow(receiver: Receiver, request: Any, body: dict[str, Any]) -> int:
        nonlocal flying
        flying += 1
        peak[-1] = max(peak[-1], flying)
        starts.append(time.monotonic())
        await asyncio.sleep(0.03)
        flying -= 1
        return 200

    receiver = await Receiver(slow).start()
    cfg = NotifySettings.model_validate({
        "delivery": {"concurrency": 4, "poll": 0.05, "timeout": 5},
        "channels": [{"name": "hook", "type": "webhook", "url": receiver.url, "unsigned": True}],
    })  # fmt: skip
    async with logged(backend) as (_, log):
        try:
            async with delivering(backend, cfg) as deliverer:
                deliverer.pressed = True  # as the loop sets it while it has a backlog
                await log.append_now([event(n) for n in range(1, 31)])
                deliverer.wake()
                await until(lambda: len(receiver.accepted()) >= 6)
                pressed = list(starts)
                peak.append(0)
                deliverer.pressed = False  # the backlog is gone: full speed again
                await until(lambda: len(receiver.accepted()) >= 30)
        finally:
            await receiver.stop()
    assert peak[0] == 1  # one attempt at a time while pressed
    gaps = [b - a for a, b in itertools.pairwise(pressed)]
    assert min(gaps) >= 1 / PRESSED_RATE - 0.005, gaps
    assert peak[1] > 1  # then several sessions' events at once again


async def test_a_full_queue_is_routed_to_again_once_its_slack_has_drained(backend: str) -> None:
    async with logged(backend) as (db, log):
        r = router(db, "all", queue=20)
        assert r.slack == 2
        await r.start()
        await log.append_now([event(n) for n in range(1, 31)])
        await r.drain()
        assert (await route_cursors(db))["all"] == 20 and r.full == {"all"}
        deliveries = Deliveries(db)
        rows = await deliveries.page(0, 100)
        await deliveries.delivered(rows[0].id, 1, 5)
        r.freed("all")
        assert await r.drain() == 0  # one free place: not worth a routing transaction
        await deliveries.delivered(rows[1].id, 1, 5)
        r.freed("all")
        await r.drain()
        assert (await route_cursors(db))["all"] == 22  # the slack, at once
