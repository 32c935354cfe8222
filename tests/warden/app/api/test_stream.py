"""`GET /stream` over real HTTP on both stores: server-sent events of the notification
log, resumable with Last-Event-ID (a client that drops and reconnects while events keep
being written misses none and sees none twice), filtered, behind the bearer token,
keepalive comments while quiet, woken at once by the daemon's signal, bad cursors a 400
naming the header, a cap on open streams, and every stream ended by a server shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from database import Database, open_database
from notify import EventLog, EventReads, NotifyEvent, Pruner, RetentionSettings, Severity
from warden.app.api import LiveState, create_app
from warden.app.api.server import runner_options
from warden.app.api.stream import StreamSettings

TOKEN = "stream-token-0123456789"
FAST = StreamSettings(keepalive=0.3, poll=0.05)
W1, W2 = "0x" + "11" * 20, "0x" + "22" * 20


def make(n: int, kind: str = "session.topped_up", wallet: str = W1) -> NotifyEvent:
    return NotifyEvent(
        id=f"test:{n}", kind=kind, severity=Severity.INFO, at_ms=n,
        data={"amount": str(2**255 + n)}, wallet=wallet, owner=W2, policy="p", position=n,
    )  # fmt: skip


@dataclass
class Sse:
    id: str | None = None
    event: str | None = None
    data: Any = None


@dataclass
class Reader:
    """A minimal SSE client: events, and the comments seen between them."""

    response: aiohttp.ClientResponse
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    async def next(self, timeout: float = 30.0) -> Sse:
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> Sse:
        out = Sse()
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if out.id is not None or out.data is not None:
                    return out
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.append(value)
            elif name == "id":
                out.id = value
            elif name == "event":
                out.event = value
            elif name == "data":
                out.data = orjson.loads(value)
            elif name == "retry":
                self.retry = int(value)


@dataclass
class Served:
    server: TestServer
    http: aiohttp.ClientSession
    db: Database
    log: EventLog
    live: LiveState

    @contextlib.asynccontextmanager
    async def stream(
        self, *, last: str | None = None, token: str | None = TOKEN, **params: str
    ) -> AsyncIterator[Reader]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if last is not None:
            headers["Last-Event-ID"] = last
        async with self.http.get(
            self.server.make_url("/stream"), headers=headers, params=params
        ) as r:
            assert r.status == 200, await r.text()
            assert r.content_type == "text/event-stream"
            yield Reader(r)

    async def append(self, *events: NotifyEvent) -> None:
        await self.log.append_now(list(events))
        self.live.events.notify()


@contextlib.asynccontextmanager
async def served(
    backend: str, settings: StreamSettings = FAST, token: str | None = TOKEN
) -> AsyncIterator[Served]:
    db = await open_database(backend)
    log = EventLog(db)
    await log.setup()
    live = LiveState()
    app = create_app(backend, live, token=token, streams=settings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**runner_options())
    http = aiohttp.ClientSession()
    try:
        yield Served(server, http, db, log, live)
    finally:
        await http.close()
        await server.close()
        await db.close()


async def test_events_in_order_exact_and_a_resume_misses_nothing(backend: str) -> None:
    async with served(backend) as s:
        await s.append(*(make(n) for n in range(1, 6)))
        async with s.stream(after="0") as r:
            got = [await r.next() for _ in range(5)]
            assert r.retry == FAST.retry_ms
        assert [e.data["id"] for e in got] == [f"test:{n}" for n in range(1, 6)]
        assert [e.event for e in got] == ["session.topped_up"] * 5
        assert [e.id for e in got] == [e.data["cursor"] for e in got]
        assert got[0].data["data"]["amount"] == str(2**255 + 1)  # exact, a string
        # written while nobody listens: the resume from the last id gets exactly these
        await s.append(*(make(n) for n in range(6, 9)))
        async with s.stream(last=got[-1].id, after="0") as r:  # the header wins
            resumed = [await r.next() for _ in range(3)]
        assert [e.data["id"] for e in resumed] == ["test:6", "test:7", "test:8"]
        # without a cursor: only what is logged from now on
        async with s.stream() as r:
            await asyncio.sleep(0)
            await s.append(make(9))
            assert (await r.next()).data["id"] == "test:9"


async def test_a_resume_below_the_pruned_horizon_is_told_of_the_gap(backend: str) -> None:
    """Retention pruned events a reader had not seen: it gets one `event: gap` (no id:
    its Last-Event-ID stays) naming its cursor, the highest pruned cursor and the next
    kept one, then the kept events as usual; a reader past the horizon gets no gap."""
    now = 400 * 86_400_000
    async with served(backend) as s:
        await s.append(*(make(n) for n in range(1, 11)))  # at_ms 1..10: long ago
        fresh = replace(make(11), at_ms=now)
        await s.append(fresh)
        pruner = Pruner(s.db, RetentionSettings(events_days=30), clock_ms=lambda: now)
        assert (await pruner.prune()).events == 10
        async with s.stream(after="0", follow="false") as r:
            everything = [await r.next() for _ in range(2)]
        first, kept = everything
        assert (first.event, first.id) == ("gap", None)
        horizon = await EventReads(s.db).pruned_through()
        assert 0 < horizon < int(kept.id or 0)
        assert first.data == {"after": "0", "pruned_through": str(horizon), "next": kept.id}
        assert kept.data["id"] == "test:11"
        async with s.stream(last="3") as r:  # an old Last-Event-ID
            gap, event = await r.next(), await r.next()
            assert gap.event == "gap" and gap.data["after"] == "3"
            assert event.data["id"] == "test:11"
            await s.append(replace(make(12), at_ms=now))
            assert (await r.next()).data["id"] == "test:12"  # one gap, then on as usual
        async with s.stream(last=str(kept.id)) as r:  # past the horizon: no gap
            await s.append(replace(make(13), at_ms=now))
            assert [(await r.next()).data["id"] for _ in range(2)] == ["test:12", "test:13"]


async def test_reconnecting_while_events_keep_coming_loses_and_repeats_none(
    backend: str,
) -> None:
    """A writer appends 300 events in small transactions; a client reads a few, drops the
    connection, reconnects with Last-Event-ID, again and again."""
    total = 300
    async with served(backend) as s:

        async def writer() -> None:
            rng = random.Random(5)
            n = 1
            while n <= total:
                k = rng.randint(1, 7)
                await s.append(*(make(i) for i in range(n, min(total, n + k - 1) + 1)))
                n += k
                await asyncio.sleep(0.002)

        task = asyncio.create_task(writer())
        seen: list[str] = []
        last = "0"
        rng = random.Random(9)
        reconnects = 0
        try:
            while len(seen) < total:
                async with s.stream(last=last) as r:
                    for _ in range(rng.randint(1, 25)):
                        if len(seen) == total:
                            break
                        e = await r.next()
                        seen.append(e.data["id"])
                        assert e.id is not None
                        last = e.id
                reconnects += 1
            await task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert seen == [f"test:{n}" for n in range(1, total + 1)]
    assert reconnects >= 10


async def test_filters_by_kind_category_and_wallet(backend: str) -> None:
    async with served(backend) as s:
        await s.append(
            make(1), make(2, "session.closed"), make(3, "alert.indexing_lag", wallet=W2),
            make(4, "session.closed", wallet=W2), make(5, "intent.failed"),
        )  # fmt: skip
        async with s.stream(after="0", kinds="session.closed,alert", follow="false") as r:
            got = [(await r.next()).data["id"] for _ in range(3)]
            with pytest.raises(EOFError):  # follow=false: the end of the log ends it
                await r.next()
        assert got == ["test:2", "test:3", "test:4"]
        async with s.stream(after="0", wallet=W2.upper().replace("0X", "0x")) as r:
            assert [(await r.next()).data["id"] for _ in range(2)] == ["test:3", "test:4"]


async def test_quiet_streams_get_keepalive_comments(backend: str) -> None:
    async with served(backend) as s, s.stream() as r:
        reading = asyncio.create_task(r.next(timeout=60))
        for _ in range(600):
            if any(c == "keepalive" for c in r.comments):
                break
            await asyncio.sleep(0.05)
        assert "keepalive" in r.comments
        await s.append(make(1))  # and the stream still carries events after them
        assert (await reading).data["id"] == "test:1"


async def test_the_daemon_signal_wakes_streams_before_their_poll(backend: str) -> None:
    slow = StreamSettings(keepalive=120, poll=120)  # the poll alone would take 2 minutes
    async with served(backend, slow) as s, s.stream() as r:
        await asyncio.sleep(0.2)  # the stream is waiting
        await s.append(make(1))
        assert (await r.next(timeout=30)).data["id"] == "test:1"


async def test_the_token_guards_the_stream(backend: str) -> None:
    async with served(backend) as s:
        for token in (None, "wrong", TOKEN + "x"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with s.http.get(s.server.make_url("/stream"), headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "unauthorized"
                assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("last", "query", "parameter"),
    [
        ("abc", {}, "Last-Event-ID"),
        ("-1", {}, "Last-Event-ID"),
        ("01", {}, "Last-Event-ID"),
        (str(2**63), {}, "Last-Event-ID"),
        (None, {"after": "x"}, "after"),
        (None, {"kinds": "session.opened"}, "kinds"),
        (None, {"kinds": ""}, "kinds"),
        (None, {"wallet": "0x12"}, "wallet"),
        (None, {"follow": "maybe"}, "follow"),
        (None, {"since": "1"}, "since"),
    ],
)
async def test_bad_cursor_or_parameter_is_a_400_naming_it(
    tmp_path: Any, last: str | None, query: dict[str, str], parameter: str
) -> None:
    async with served(str(tmp_path / "w.sqlite")) as s:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if last is not None:
            headers["Last-Event-ID"] = last
        async with s.http.get(s.server.make_url("/stream"), headers=headers, params=query) as r:
            assert r.status == 400
            error = (await r.json())["error"]
            assert error["parameter"] == parameter, error
            assert error["message"].startswith(f"{parameter}: ")


async def test_open_streams_are_capped(tmp_path: Any) -> None:
    capped = StreamSettings(keepalive=5, poll=0.1, max_clients=2)
    async with served(str(tmp_path / "w.sqlite"), capped) as s, s.stream(), s.stream():
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with s.http.get(s.server.make_url("/stream"), headers=headers) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "too_many_streams"


async def test_a_shutdown_ends_open_streams(tmp_path: Any) -> None:
    """Without the shutdown hook the runner would wait its 60 s for each open stream."""
    path = str(tmp_path / "w.sqlite")
    quiet = StreamSettings(keepalive=600, poll=600)
    async with served(path, quiet) as s, s.stream() as a, s.stream(after="0") as b:
        closing = asyncio.create_task(s.server.close())
        for r in (a, b):
            with pytest.raises((EOFError, aiohttp.ClientPayloadError)):
                await r.next(timeout=50)
        await asyncio.wait_for(closing, 50)


async def test_head_answers_the_headers_only(tmp_path: Any) -> None:
    async with served(str(tmp_path / "w.sqlite")) as s:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with s.http.head(s.server.make_url("/stream"), headers=headers) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
