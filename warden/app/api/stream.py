"""`GET /stream`: the notification event log as server-sent events.

Each event is sent as

    id: <cursor>
    event: <kind>
    data: <the event's JSON on one line>

in log order (`follow=false`: the events logged by now, then the response ends). A
client resumes with `Last-Event-ID: <cursor>` (EventSource sends it on
its own when it reconnects; it wins over `?after=`): it gets every event logged after
that cursor, so a client that disconnects and comes back misses nothing (the log's
cursor order is its commit order: `notify.schema`). Without either, the stream starts
at the end of the log (new events only); `after=0` replays it all. A comment line
(`: keepalive`) is sent when nothing else was for `keepalive` seconds, so proxies and
clients can tell a quiet stream from a dead one.

New rows are found by polling the API's read-only database every `poll` seconds, or at
once when the daemon in this process says it wrote some (`LiveState.events`): a standby
replica's API polls what the leader writes. At most `max_clients` streams are open at
once (503 beyond); each ends when the server shuts down (`on_shutdown`).

Retention prunes old events (`notify.prune`). A reader whose cursor is below the
highest pruned cursor may have missed events: it gets, before anything else,

    event: gap
    data: {"after": "<its cursor>", "pruned_through": "<highest pruned>",
           "next": "<the oldest kept after it, or null>"}     (on one line)

(without an `id:`, so its Last-Event-ID stays as it was), then every event still kept
after its cursor, as usual. A reader sees one gap per pruning that overtook it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import orjson
from aiohttp import web

from notify import EventFilter, EventReads
from warden.app.api.errors import ApiError, BadParameter
from warden.app.api.live import Wakeup

_CURSOR = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_CURSOR = 2**63 - 1
PAGE = 500  # rows read per poll: a long replay is sent in pieces


@dataclass(frozen=True)
class StreamSettings:
    keepalive: float = 15.0  # seconds of silence before a `: keepalive` comment
    poll: float = 1.0  # seconds between looks at the log when not woken
    max_clients: int = 64
    retry_ms: int = 2000  # the `retry:` hint: how long EventSource waits to reconnect


DEFAULT_STREAMS = StreamSettings()


class TooManyStreams(ApiError):
    status = 503
    code = "too_many_streams"


@dataclass(frozen=True)
class EventStream:
    """What a /stream request asked for (the handler's reply; the app streams it)."""

    after: int | None
    filter: EventFilter
    follow: bool = True  # False: end once the log is read to its end


def parse_cursor(name: str, raw: str) -> int:
    raw = raw.strip()
    if not _CURSOR.fullmatch(raw) or int(raw) > _MAX_CURSOR:
        raise BadParameter(name, "must be an event cursor: a decimal integer from the `id:` "
                           "of an event this stream sent (0: from the start)")  # fmt: skip
    return int(raw)


class Streams:
    """The open streams of one app: their count and the shutdown that ends them."""

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings
        self.open = 0
        self.closing = asyncio.Event()

    async def shutdown(self, app: web.Application) -> None:
        self.closing.set()

    async def serve(
        self, request: web.Request, reads: EventReads, wakeup: Wakeup, asked: EventStream
    ) -> web.StreamResponse:
        header = request.headers.get("Last-Event-ID")
        resume = parse_cursor("Last-Event-ID", header) if header is not None else None
        if self.open >= self.settings.max_clients:
            raise TooManyStreams(
                f"{self.open} event streams are open already (the limit): close one, or retry later"
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a buffering proxy would hold events back
            }
        )
        if request.method == "HEAD":
            await response.prepare(request)
            return response
        self.open += 1
        try:
            await self._run(request, response, reads, wakeup, asked, resume)
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away (or the server is stopping): nothing to answer
        finally:
            self.open -= 1
        return response

    async def _run(
        self,
        request: web.Request,
        response: web.StreamResponse,
        reads: EventReads,
        wakeup: Wakeup,
        asked: EventStream,
        resume: int | None,
    ) -> None:
        s = self.settings
        cursor = resume if resume is not None else asked.after
        if cursor is None:
            cursor = await reads.last_cursor() if await reads.exists() else 0
        await response.prepare(request)
        await response.write(f"retry: {s.retry_ms}\n: stream from cursor {cursor}\n\n".encode())
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        logged = False  # whether the log's table exists (a standby may serve before the
        # leader created it); once it does, it stays
        told = 0  # the pruned cursor this reader was last told of (`event: gap`)
        while not self.closing.is_set():
            logged = logged or await reads.exists()
            if logged:
                pruned = await reads.pruned_through()
                if pruned > cursor and pruned > told:
                    told = pruned
                    await response.write(await _gap(reads, cursor, pruned))
                    quiet_since = loop.time()
                events, read_to = await reads.after(cursor, PAGE, asked.filter)
                if events:
                    await response.write(
                        b"".join(
                            b"id: %d\nevent: %s\ndata: %s\n\n"
                            % (e.cursor, e.kind.encode(), e.json())
                            for e in events
                        )
                    )
                    quiet_since = loop.time()
                if read_to != cursor:  # a page was read: there may be more at once
                    cursor = read_to
                    continue
            if not asked.follow:
                return
            if loop.time() - quiet_since >= s.keepalive:
                await response.write(b": keepalive\n\n")
                quiet_since = loop.time()
            waiting = min(s.poll, max(0.0, s.keepalive - (loop.time() - quiet_since)))
            closing = asyncio.ensure_future(self.closing.wait())
            woken = asyncio.ensure_future(wakeup.wait(waiting))
            try:
                await asyncio.wait({closing, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (closing, woken):
                    task.cancel()


async def _gap(reads: EventReads, cursor: int, pruned: int) -> bytes:
    """The `gap` event: events after `cursor` up to `pruned` may be gone."""
    kept = await reads.first_after(cursor)
    data = {"after": str(cursor), "pruned_through": str(pruned),
            "next": None if kept is None else str(kept)}  # fmt: skip
    return b"event: gap\ndata: %s\n\n" % orjson.dumps(data)
