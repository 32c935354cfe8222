"""The delivery task: sends what the outbox owes, per channel, until stopped.

Each channel has its own loop with at most `delivery.concurrency` attempts in flight;
one session's events go out one at a time and in order (`Deliveries.due`), different
sessions' concurrently. A failed attempt is retried after an exponential backoff with
full jitter — `uniform(0, min(max_delay, base_delay * 2^(attempt-1)))`, as OpenZeppelin
Monitor's retry policy (base 250 ms, *2, capped) — or after the receiver's Retry-After
when that is longer; after `delivery.attempts` attempts the delivery is dead (visible in
/notifications, re-driven by `warden notify redrive`).

Beside the channels' loops, the task routes: it owes the events logged since its
cursors to the channels that admit them (`notify.routing`), a batch at a time, and wakes
the channels. The loop only logs events; it never writes a delivery row, nor waits for
an HTTP answer.

The task runs on a database connection of its own, so its small writes never run inside
the loop's transactions (SQLite: one connection is one transaction at a time). Each
channel's pending rows are bounded by `delivery.queue`; beyond that, events wait in the
log. Only the leader runs it.

What is recorded is the truth after a crash: a delivery whose POST was answered but
whose outcome was not yet written is sent again after a restart, with the same event
id — receivers deduplicate by id (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from database import Database, Deposed
from notify.formats import discord_body, slack_body
from notify.outbox import Deliveries, Due
from notify.routing import Route, Router
from notify.settings import (
    Channel,
    CommandChannel,
    DeliverySettings,
    DiscordChannel,
    NotifySettings,
    SlackChannel,
    WebhookChannel,
)
from notify.signing import headers
from notify.transport import Outcome, Poster, run_command

log = logging.getLogger("warden.notify")

# Attempts a channel starts per second at most while the loop is under load (`pressed`):
# delivery shares the daemon's thread and the machine with the closes.
PRESSED_RATE = 10.0


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def backoff(attempt: int, s: DeliverySettings, rng: random.Random) -> float:
    """Seconds before retry number `attempt` (1 = the first retry): full jitter."""
    ceiling = min(s.max_delay, s.base_delay * 2 ** min(attempt - 1, 60))
    return rng.uniform(0, ceiling)


@dataclass
class ChannelStats:
    delivered: int = 0
    failed: int = 0  # failed attempts (retried or not)
    dead: int = 0
    last_error: str | None = None
    latency_ms: list[int] = field(default_factory=list)  # logged → delivered, recent

    def observe(self, ms: int) -> None:
        self.latency_ms.append(ms)
        if len(self.latency_ms) > 1000:
            del self.latency_ms[:500]


@dataclass
class DeliveryStats:
    """This process's delivery counters by channel (for /metrics)."""

    channels: dict[str, ChannelStats] = field(default_factory=dict)

    def of(self, name: str) -> ChannelStats:
        return self.channels.setdefault(name, ChannelStats())


def encode(channel: Channel, body: dict[str, object], console_url: str) -> bytes:
    """What `channel` sends for the event document `body`."""
    if isinstance(channel, SlackChannel):
        return orjson.dumps(slack_body(body, console_url))
    if isinstance(channel, DiscordChannel):
        return orjson.dumps(discord_body(body, console_url))
    return orjson.dumps(body)


async def attempt(
    channel: Channel,
    body: dict[str, object],
    poster: Poster,
    settings: NotifySettings,
    now_s: int,
) -> Outcome:
    """One try at delivering the event `body` on `channel`."""
    payload = encode(channel, body, settings.console_url)
    timeout = settings.delivery.timeout
    if isinstance(channel, CommandChannel):
        return await run_command(channel.command, payload, timeout)
    secret = None
    if isinstance(channel, WebhookChannel) and channel.secret is not None:
        secret = channel.secret.get_secret_value()
    head = headers(secret, now_s, payload, str(body["id"]), str(body["kind"]))
    return await poster.post(channel.url.get_secret_value(), payload, head, timeout)


class Deliverer:
    def __init__(
        self,
        db: Database,
        settings: NotifySettings,
        poster: Poster,
        *,
        stats: DeliveryStats | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.deliveries = Deliveries(db)
        self.settings = settings
        self.poster = poster
        self.stats = stats or DeliveryStats()
        self.clock_ms = clock_ms
        self.rng = rng or random.Random()
        self.router = Router(
            db, [Route(c.name, c) for c in settings.channels], queue=settings.delivery.queue,
            clock_ms=clock_ms, turn=self.deliveries.turn,
        )  # fmt: skip
        self._started = False
        # Set by the loop while it has more work than a step takes (a storm's backlog):
        # each channel then sends one attempt at a time, `PRESSED_RATE` a second at most,
        # and the rest waits in its queue — notifications come late, closes do not.
        self.pressed = False
        self._route = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {c.name: asyncio.Event() for c in settings.channels}

    async def start(self) -> None:
        """Place the channels' route cursors (`Router.start`): before anything is logged
        in the term, so a new channel is owed all of it."""
        await self.router.start()
        self._started = True

    def wake(self) -> None:
        """New events were committed: route them now rather than at the next poll (the
        router wakes the channels it owed something; a storm's commits do not wake
        channels whose queues are full)."""
        self._route.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Routing and every channel's loop until `stop` is set (or the task is
        cancelled)."""
        if not self._started:
            await self.start()
        if not self.settings.channels:
            await stop.wait()
            return
        loops = [
            asyncio.create_task(self._channel(c, stop), name=f"notify:{c.name}")
            for c in self.settings.channels
        ]
        loops.append(asyncio.create_task(self._routing(stop), name="notify:routing"))
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            for task in loops:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.deliveries.flushed()  # outcomes already answered get written

    async def _routing(self, stop: asyncio.Event) -> None:
        """Route batch after batch while there are events to owe, then wait for a wake-up
        (an event logged, a channel with room again) or the poll."""
        poll = self.settings.delivery.poll
        while not stop.is_set():
            self._route.clear()
            began = time.perf_counter()
            try:
                routed = await self.router.step()
            except Deposed:
                raise
            except Exception as exc:  # the database busy or gone: try again at the poll
                log.warning("notify: routing events to channels failed: %s", exc)
                routed = 0
            if routed:
                for event in self._wake.values():
                    event.set()
                # as long again as the batch held the writer: the loop's commits get in
                # between batches however many events a storm left to route
                await asyncio.sleep(time.perf_counter() - began)
                continue
            waiters = {asyncio.ensure_future(self._route.wait()),
                       asyncio.ensure_future(stop.wait())}  # fmt: skip
            try:
                await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _channel(self, channel: Channel, stop: asyncio.Event) -> None:
        s = self.settings.delivery
        wake = self._wake[channel.name]
        busy: set[str] = set()
        flying: set[asyncio.Task[None]] = set()
        started = -1.0  # monotonic time of the last attempt started
        try:
            while not stop.is_set():
                wake.clear()
                free = s.concurrency - len(flying)
                held = 0.0  # while pressed: how long until the next attempt may start
                if self.pressed:
                    held = max(0.0, started + 1 / PRESSED_RATE - time.monotonic())
                    free = 0 if flying or held > 0 else 1
                if free > 0:
                    try:
                        dues = await self.deliveries.due(channel.name, self.clock_ms(), busy, free)
                    except Deposed:
                        raise
                    except Exception as exc:  # the database busy or gone: try again soon
                        log.warning("notify %s: reading the outbox failed: %s", channel.name, exc)
                        dues = []
                    if len(dues) < free and channel.name in self.router.full:
                        self._route.set()  # room in this channel's queue: route more
                    if dues:
                        started = time.monotonic()
                    for due in dues:
                        busy.add(due.wallet or "")
                        task = asyncio.create_task(self._deliver(channel, due, busy))
                        flying.add(task)
                        task.add_done_callback(flying.discard)
                waiting = await self._pause(channel.name, s.poll)
                if held > 0:
                    waiting = min(waiting, held)
                waiters: set[asyncio.Future[object]] = {
                    asyncio.ensure_future(wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                }
                try:
                    await asyncio.wait(
                        waiters | set(flying), timeout=waiting,
                        return_when=asyncio.FIRST_COMPLETED,
                    )  # fmt: skip
                finally:
                    for w in waiters:
                        w.cancel()
        finally:
            for task in list(flying):
                task.cancel()
            for task in list(flying):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _pause(self, channel: str, poll: float) -> float:
        """How long to wait for a wake-up: the poll, or until the next retry is due."""
        with contextlib.suppress(Exception):
            due = await self.deliveries.next_due_ms(channel)
            if due is not None:
                return max(0.0, min(poll, (due - self.clock_ms()) / 1000))
        return poll

    async def _deliver(self, channel: Channel, due: Due, busy: set[str]) -> None:
        s = self.settings.delivery
        stats = self.stats.of(channel.name)
        try:
            now = self.clock_ms()
            outcome = await attempt(channel, due.body, self.poster, self.settings, now // 1000)
            attempts = due.attempts + 1
            done = self.clock_ms()
            if outcome.ok:
                await self.deliveries.delivered(due.delivery, attempts, done)
                stats.delivered += 1
                stats.observe(done - int(str(due.body.get("at_ms", done))))
                return
            stats.failed += 1
            stats.last_error = outcome.detail
            if attempts >= s.attempts:
                await self.deliveries.failed(due.delivery, attempts, outcome.detail, done, None)
                stats.dead += 1
                log.error(
                    "notify %s: %s %s dead-lettered after %d attempts: %s (re-drive with "
                    "`warden notify redrive %s`)",
                    channel.name, due.body.get("kind"), due.body.get("id"), attempts,
                    outcome.detail, channel.name,
                )  # fmt: skip
                return
            delay = backoff(attempts, s, self.rng)
            if outcome.retry_after is not None:
                delay = min(s.max_delay, max(delay, outcome.retry_after))
            await self.deliveries.failed(
                due.delivery, attempts, outcome.detail, done, done + int(delay * 1000)
            )
            log.warning(
                "notify %s: %s %s attempt %d failed: %s; retrying in %.1f s",
                channel.name, due.body.get("kind"), due.body.get("id"), attempts,
                outcome.detail, delay,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Deposed:
            raise
        except Exception as exc:  # recording the outcome failed: the row stays pending
            log.warning("notify %s: recording a delivery failed: %s", channel.name, exc)
        finally:
            busy.discard(due.wallet or "")
            self.router.freed(channel.name)  # its queue may have room again
            self._wake[channel.name].set()  # the session's next event may go now
