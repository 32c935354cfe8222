"""A real HTTP receiver for delivery tests (an aiohttp server on 127.0.0.1) whose
behaviour each test scripts, and an independent implementation of the signature check
a webhook consumer would write (from docs/notify.md, not from `notify.signing`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer


def verify(secret: bytes, headers: dict[str, str], body: bytes, now: float, window: int) -> bool:
    """The consumer's check: v1=hex(HMAC-SHA256(secret, timestamp + "." + body)), the
    timestamp within `window` seconds of `now`."""
    stamp = headers.get("X-Warden-Timestamp", "")
    given = headers.get("X-Warden-Signature", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > window:
        return False
    expected = "v1=" + hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass
class Received:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    status: int
    at: float
    path: str = "/hook"


Behaviour = Callable[["Receiver", web.Request, dict[str, Any]], Awaitable[int]]


async def accept(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
    return 200


@dataclass
class Receiver:
    behaviour: Behaviour = accept
    requests: list[Received] = field(default_factory=list)
    server: TestServer | None = None
    attempts: dict[str, int] = field(default_factory=dict)  # event id -> requests seen

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook?token=url-secret-token-123"))

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw)
        event_id = request.headers.get("X-Warden-Event-Id", "")
        self.attempts[event_id] = self.attempts.get(event_id, 0) + 1
        try:
            status = await self.behaviour(self, request, body)
        except asyncio.CancelledError:  # the client gave up (its timeout)
            self.requests.append(
                Received(body, raw, dict(request.headers), 0, time.time(), request.path)
            )
            raise
        self.requests.append(
            Received(body, raw, dict(request.headers), status, time.time(), request.path)
        )
        headers = {"Location": "/elsewhere"} if 300 <= status < 400 else {}
        return web.Response(status=status, text="nope" if status >= 300 else "ok", headers=headers)

    async def start(self, port: int | None = None) -> Receiver:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)  # /hook, and wherever else
        self.server = TestServer(app, host="127.0.0.1", port=port)
        await self.server.start_server()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()


@contextmanager
def receiver_thread(behaviour: Behaviour = accept) -> Iterator[Receiver]:
    """A receiver on an event loop of its own in a thread (for tests that block)."""
    receiver = Receiver(behaviour)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def main() -> None:
        await receiver.start()
        started.set()
        await stop.wait()
        await receiver.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(60)
        yield receiver
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
