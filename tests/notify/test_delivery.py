"""Delivery against a real HTTP receiver (aiohttp on 127.0.0.1), on both stores: a
receiver that answers 500s, times out, is slow, or is down gets every event at least
once, each session's in order, with stable ids and signatures an independent check
accepts; after the configured attempts a delivery is dead, and a re-drive delivers it;
filters route; retractions follow their originals; no secret reaches a log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from database import Database, open_database
from notify import (
    Deliverer,
    Deliveries,
    EventLog,
    HttpPoster,
    NotifyEvent,
    NotifySettings,
    Route,
    Router,
    Severity,
    backoff,
)
from notify.settings import DeliverySettings
from tests.notify._receiver import Receiver, verify
from warden.devnet import free_port

SECRET = "0123456789abcdef-webhook-signing-secret"
WALLETS = ["0x" + f"{n:02x}" * 20 for n in range(1, 6)]
OWNER = "0x" + "99" * 20
BACKENDS: dict[int, str] = {}  # an open database -> what opened it


def settings(url: str, **delivery: Any) -> NotifySettings:
    base = {"attempts": 12, "base_delay": 0.01, "max_delay": 0.08, "timeout": 0.5,
            "concurrency": 4, "poll": 0.05}  # fmt: skip
    return NotifySettings.model_validate({
        "console_url": "https://warden.example",
        "delivery": {**base, **delivery},
        "channels": [{"name": "hook", "type": "webhook", "url": url, "secret": SECRET}],
    })  # fmt: skip


def make(n: int, wallet: str, kind: str = "session.topped_up", **extra: Any) -> NotifyEvent:
    return NotifyEvent(
        id=f"{kind}:{n}:0xabcdef12", kind=kind, severity=Severity.INFO,
        at_ms=time.time_ns() // 1_000_000, data={"amount": str(2**255 + n), **extra},
        wallet=wallet, owner=OWNER, policy="merchant", position=n << 32,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def outbox(backend: str, cfg: NotifySettings) -> AsyncIterator[tuple[Database, EventLog]]:
    db = await open_database(backend)
    BACKENDS[id(db)] = backend
    try:
        log = EventLog(db)
        await log.setup()
        await router(db, cfg).start()  # the channels are owed what is logged from here
        yield db, log
    finally:
        await db.close()


def router(db: Database, cfg: NotifySettings) -> Router:
    return Router(db, [Route(c.name, c) for c in cfg.channels])


@contextlib.asynccontextmanager
async def delivering(db: Database, cfg: NotifySettings, seed: int = 1) -> AsyncIterator[Deliverer]:
    """The delivery task on a connection of its own, as the daemon runs it."""
    stop = asyncio.Event()
    target = db.display if db.dialect == "sqlite" else BACKENDS[id(db)]
    own = await open_database(target)
    async with HttpPoster() as poster:
        deliverer = Deliverer(own, cfg, poster, rng=random.Random(seed))
        task = asyncio.create_task(deliverer.run(stop))
        try:
            yield deliverer
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await own.close()


async def until(check: Callable[[], Any], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def states(db: Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (_, state), n in (await Deliveries(db).counts()).items():
        counts[state] = counts.get(state, 0) + n
    return counts


def check_received(receiver: Receiver, logged: list[NotifyEvent]) -> None:
    """Each event at least once; each session's first acceptances in log order; every
    request validly signed (independently checked) and carrying its event's id."""
    accepted = receiver.accepted()
    assert {r.body["id"] for r in accepted} == {e.id for e in logged}
    for r in receiver.requests:
        assert verify(SECRET.encode(), r.headers, r.raw, time.time(), 300), r.headers
        assert r.headers["X-Warden-Event-Id"] == r.body["id"]
        assert r.body["data"]["amount"] == str(2**255 + int(r.body["id"].split(":")[1]))
    for wallet in WALLETS:
        first: list[str] = []
        for r in accepted:
            if r.body["session"]["wallet"] == wallet and r.body["id"] not in first:
                first.append(r.body["id"])
        assert first == [e.id for e in logged if e.wallet == wallet], wallet


async def flaky(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
    """500s, hangs past the client's timeout, slow answers and successes, at random."""
    rng = random.Random(f"{body['id']}:{receiver.attempts[body['id']]}")
    roll = rng.random()
    if roll < 0.3:
        return 500
    if roll < 0.4:
        await asyncio.sleep(1.0)  # beyond the 0.5 s timeout: the client gives up
        return 200
    if roll < 0.5:
        await asyncio.sleep(0.2)  # slow, within the timeout
    return 200


async def test_a_flaky_receiver_gets_everything_in_order_signed(backend: str) -> None:
    receiver = await Receiver(flaky).start()
    try:
        cfg = settings(receiver.url)
        async with outbox(backend, cfg) as (db, log):
            rng = random.Random(3)
            logged = [make(n, rng.choice(WALLETS)) for n in range(1, 121)]
            async with delivering(db, cfg) as deliverer:
                for i in range(0, len(logged), 10):  # committed while delivery runs
                    await log.append_now(logged[i : i + 10])
                    deliverer.wake()
                await until(lambda: _all_delivered(db, len(logged)))
            check_received(receiver, logged)
            assert sum(1 for r in receiver.requests if r.status == 500) >= 10
            assert any(r.status == 0 or r.status == 200 for r in receiver.requests)
            retried = [i for i, n in receiver.attempts.items() if n > 1]
            assert len(retried) >= 10
    finally:
        await receiver.stop()


async def _all_delivered(db: Database, n: int) -> bool:
    return (await states(db)).get("delivered", 0) == n


async def test_a_receiver_that_is_down_dead_letters_then_a_redrive_delivers(
    backend: str,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook?token=url-secret-token-123"
    cfg = settings(url, attempts=3)
    async with outbox(backend, cfg) as (db, log):
        logged = [make(n, WALLETS[n % 2]) for n in range(1, 7)]
        await log.append_now(logged)
        async with delivering(db, cfg):
            await until(lambda: _dead(db, len(logged)))
        page = await Deliveries(db).page(0, 100, state="dead")
        assert len(page) == 6 and all(d.attempts == 3 for d in page)
        assert all(d.last_error and "cannot connect" in d.last_error for d in page)
        assert all("url-secret" not in (d.last_error or "") for d in page)
        receiver = await Receiver().start(port)
        try:
            assert await Deliveries(db).redrive(int(time.time() * 1000), channel="hook") == 6
            async with delivering(db, cfg):
                await until(lambda: _all_delivered(db, len(logged)))
            check_received(receiver, logged)
        finally:
            await receiver.stop()


async def _dead(db: Database, n: int) -> bool:
    return (await states(db)).get("dead", 0) == n


async def always_500(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
    return 503


async def test_dead_letter_after_exactly_n_attempts_and_later_events_still_flow(
    backend: str,
) -> None:
    """One session's event that can never be delivered is dead after N attempts; the
    session's later events then go (a dead letter does not hold its session forever)."""
    calls: dict[str, int] = {}

    async def refuse_first(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
        calls[body["id"]] = calls.get(body["id"], 0) + 1
        return 500 if body["id"].split(":")[1] == "1" else 200

    receiver = await Receiver(refuse_first).start()
    try:
        cfg = settings(receiver.url, attempts=4)
        async with outbox(backend, cfg) as (db, log):
            logged = [make(n, WALLETS[0]) for n in range(1, 4)]
            await log.append_now(logged)
            async with delivering(db, cfg):
                await until(lambda: _counts_are(db, delivered=2, dead=1))
            dead = await Deliveries(db).page(0, 10, state="dead")
            assert [d.event_id for d in dead] == [logged[0].id] and dead[0].attempts == 4
            assert dead[0].last_error == "HTTP 500: nope"
            assert calls[logged[0].id] == 4
            # order: the later ones only after the first was settled (dead)
            order = [r.body["id"] for r in receiver.requests]
            assert order.index(logged[1].id) > max(
                i for i, x in enumerate(order) if x == logged[0].id
            )
    finally:
        await receiver.stop()


async def _counts_are(db: Database, **want: int) -> bool:
    got = await states(db)
    return all(got.get(k, 0) == v for k, v in want.items())


async def test_filters_route_and_retractions_follow_their_originals(backend: str) -> None:
    cfg = NotifySettings.model_validate({
        "channels": [
            {"name": "closes", "type": "webhook", "url": "http://127.0.0.1:9/x",
             "secret": SECRET, "kinds": ["session.closed"]},
            {"name": "merchant", "type": "slack", "url": "https://hooks.slack.com/services/x",
             "policies": ["merchant"]},
            {"name": "mine", "type": "discord", "url": "https://discord.com/api/webhooks/1/x",
             "owners": [OWNER.upper().replace("0X", "0x")]},
            {"name": "loud", "type": "command", "command": ["/bin/true"],
             "min_severity": "warning"},
        ]
    })  # fmt: skip
    async with outbox(backend, cfg) as (db, log):
        closed = make(1, WALLETS[0], "session.closed")
        other = NotifyEvent(
            id="session.created:2:0x1", kind="session.created", severity=Severity.INFO,
            at_ms=1, data={}, wallet=WALLETS[1], owner="0x" + "77" * 20, policy="game",
            position=2 << 32,
        )  # fmt: skip
        alert = NotifyEvent(id="alert.x", kind="alert.indexing_lag", severity=Severity.WARNING,
                            at_ms=1, data={"state": "raised"})  # fmt: skip
        await log.append_now([closed, other, alert])
        async with db.transaction() as tx:  # a reorg removes the close's block
            await log.rolled_back(tx, 1 << 32)
        assert await Deliveries(db).page(0, 100) == []  # owed only once routed
        await router(db, cfg).drain()
        rows = await Deliveries(db).page(0, 100)
    routed = sorted((d.channel, d.event_id) for d in rows)
    assert routed == sorted([
        ("closes", closed.id), ("merchant", closed.id), ("mine", closed.id),
        ("loud", "alert.x"),
        # the retraction goes where the close went, though `closes` filters on kind
        ("closes", closed.id + "/retracted"), ("merchant", closed.id + "/retracted"),
        ("mine", closed.id + "/retracted"),
    ])  # fmt: skip


def test_backoff_is_full_jitter_doubling_and_capped() -> None:
    s = DeliverySettings(base_delay=0.25, max_delay=30)
    rng = random.Random(4)
    for attempt in range(1, 40):
        ceiling = min(30.0, 0.25 * 2 ** (attempt - 1))
        draws = [backoff(attempt, s, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8 and min(draws) < ceiling * 0.2  # full jitter


async def test_no_secret_in_any_log_line(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = await Receiver(always_500).start()
    try:
        cfg = settings(receiver.url, attempts=2)
        async with outbox(backend, cfg) as (db, log):
            await log.append_now([make(1, WALLETS[0])])
            async with delivering(db, cfg):
                await until(lambda: _dead(db, 1))
    finally:
        await receiver.stop()
    # every record but the test receiver's own access log (it is the one holding the URL)
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert "dead-lettered after 2 attempts" in text and "HTTP 503" in text
    for secret in (SECRET, "url-secret-token-123", "/hook"):
        assert secret not in text


async def test_redirects_are_not_followed_and_huge_answers_are_cut(backend: str) -> None:
    """A 3xx is a failed attempt (the body is never sent where a Location points), and
    an answer's body is read only in its first bytes, quoted printable."""

    async def hostile(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
        return 200 if request.path == "/elsewhere" else 307

    receiver = await Receiver(hostile).start()
    try:
        cfg = settings(receiver.url, attempts=2)
        async with outbox(backend, cfg) as (db, log):
            await log.append_now([make(1, WALLETS[0])])
            async with delivering(db, cfg):
                await until(lambda: _dead(db, 1))
            (dead,) = await Deliveries(db).page(0, 10, state="dead")
        assert dead.last_error is not None and dead.last_error.startswith("HTTP 307")
        assert len(dead.last_error) < 300
        assert [r.headers.get("X-Warden-Event-Id") for r in receiver.requests] == [
            "session.topped_up:1:0xabcdef12"
        ] * 2
    finally:
        await receiver.stop()
