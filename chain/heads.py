"""New heads pushed by the node over a websocket: a reason to look, never a source of truth.

The daemon follows the chain by polling (`chain.poll_interval`). Where the node offers
`eth_subscribe("newHeads")` over a websocket, `HeadWatcher` calls `on_head()` as soon as
a block is announced, so the block does not wait for the next poll (on a 10 ms poll that
wait is about 5 ms of a 16 ms reaction). An announcement only wakes the loop: the step
that follows asks the node over HTTP(S) exactly as a polled step does. So a socket that
lies (a head that does not exist), floods, stalls, sends garbage or drops changes when
the daemon looks, never what it sees, and polling goes on underneath whatever the
socket does:

- not offered (the handshake fails, `eth_subscribe` answers an error): logged once,
  tried again after `max_retry` seconds;
- dropped or silent (no pong to the heartbeat): reconnects with doubling delays;
- garbage, other subscriptions, oversized messages: ignored and counted;
- a flood (more than `max_per_second` announcements in one second): the extra ones wake
  nothing, and a socket that sends ten times that is closed and left alone for
  `max_retry` seconds.

The URL is shown redacted (`chain.urls.redact_url`): providers put the key in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

from chain.urls import redact_url

log = logging.getLogger(__name__)

_SUBSCRIBE = orjson.dumps(
    {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
)


def websocket_url(rpc: str) -> str | None:
    """The websocket URL a node serving JSON-RPC at `rpc` would offer on the same address
    (anvil, geth and reth serve both on one port; `http` → `ws`, `https` → `wss`); None
    for a URL that is not http(s)."""
    try:
        parts = urlsplit(rpc.strip())
    except ValueError:
        return None
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        return None
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


class NotOffered(Exception):
    """The node has no websocket there, or refuses the subscription."""


class Flooding(Exception):
    """The socket announced far more heads than a chain makes."""


@dataclass
class HeadStats:
    state: str = "starting"  # subscribed | reconnecting | not offered | ignored (flood)
    announced: int = 0  # announcements that woke the loop
    dropped: int = 0  # announcements over the per-second budget (woke nothing)
    ignored: int = 0  # messages that were no announcement of our subscription
    connects: int = 0


class HeadWatcher:
    """Run `run()` as a task; cancel it to stop (it closes its socket)."""

    def __init__(
        self,
        url: str,
        on_head: Callable[[], None],
        *,
        timeout: float = 10.0,
        retry: float = 1.0,
        max_retry: float = 60.0,
        max_per_second: int = 50,
        max_message: int = 1 << 20,
    ) -> None:
        self.url = url
        self.shown = redact_url(url)
        self.on_head = on_head
        self.timeout = timeout
        self.retry = retry
        self.max_retry = max_retry
        self.max_per_second = max_per_second
        self.max_message = max_message
        self.stats = HeadStats()
        self._window = 0.0
        self._in_window = 0
        self._reported = False  # the current outage has been logged
        self._subscribed_at: float | None = None

    async def run(self) -> None:
        delay = self.retry
        while True:
            try:
                await self._follow()
                self.stats.state = "reconnecting"
                if self._outage_begins():  # it stayed up a while: come back at once
                    delay = self.retry
                self._say(logging.INFO, "new heads: the websocket at %s closed; reconnecting",
                          self.shown)  # fmt: skip
            except NotOffered as exc:
                self._outage_begins()
                self.stats.state = "not offered"
                self._say(
                    logging.INFO,
                    "new heads: %s offers no newHeads subscription (%s); following by "
                    "polling, asking again every %.0f s", self.shown, exc, self.max_retry,
                )  # fmt: skip
                delay = self.max_retry
            except Flooding as exc:
                self._outage_begins()
                self.stats.state = "ignored (flood)"
                log.warning(
                    "new heads: %s; its websocket is left alone for %.0f s (polling goes on)",
                    exc, self.max_retry,
                )  # fmt: skip
                delay = self.max_retry
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                if self._outage_begins():
                    delay = self.retry
                self.stats.state = "reconnecting"
                self._say(
                    logging.WARNING,
                    "new heads: the websocket at %s failed (%s); polling meanwhile, "
                    "reconnecting", self.shown, type(exc).__name__,
                )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_retry)

    def _say(self, level: int, message: str, *args: object) -> None:
        """Once per outage: a socket that keeps failing (or opening and closing at once)
        is not a line a second."""
        if not self._reported:
            log.log(level, message, *args)
            self._reported = True

    def _lasted(self) -> bool:
        """Whether the last socket stayed subscribed for `max_retry` seconds or more."""
        since = self._subscribed_at
        return since is not None and time.monotonic() - since >= self.max_retry

    def _outage_begins(self) -> bool:
        """Called as a socket ends: True when it had stayed subscribed a while, so this
        is a new outage (logged again, retried at once) rather than the same one going
        on (a socket that keeps failing, or opening and closing at once)."""
        lasted = self._lasted()
        self._subscribed_at = None
        if lasted:
            self._reported = False
        return lasted

    async def _follow(self) -> None:
        """Connect, subscribe, announce until the socket ends."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            try:
                ws = await asyncio.wait_for(
                    http.ws_connect(
                        self.url, heartbeat=self.timeout, max_msg_size=self.max_message
                    ),
                    self.timeout,
                )
            except aiohttp.WSServerHandshakeError as exc:
                raise NotOffered(f"handshake answered {exc.status}") from exc
            async with ws:
                self.stats.connects += 1
                await ws.send_bytes(_SUBSCRIBE)
                subscription = await asyncio.wait_for(self._subscribed(ws), self.timeout)
                self.stats.state = "subscribed"
                self._subscribed_at = time.monotonic()
                level = logging.INFO if self.stats.connects == 1 else logging.DEBUG
                log.log(level, "new heads: following %s over its websocket", self.shown)
                async for message in ws:
                    if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        break  # closing, closed or an error: reconnect
                    if _announces(message.data, subscription):
                        self._announce()
                    else:
                        self.stats.ignored += 1

    async def _subscribed(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """The subscription id from the node's answer to `eth_subscribe`."""
        while True:
            message = await ws.receive()
            if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise NotOffered("the socket closed before answering eth_subscribe")
            answer = _json(message.data)
            if not isinstance(answer, dict) or answer.get("id") != 1:
                self.stats.ignored += 1
                continue
            result = answer.get("result")
            if isinstance(result, str) and 0 < len(result) <= 256:
                return result
            error = answer.get("error")
            detail = error.get("message") if isinstance(error, dict) else None
            raise NotOffered(f"eth_subscribe refused: {str(detail)[:120]}")

    def _announce(self) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > 10 * self.max_per_second:
            raise Flooding(f"{self._in_window} announcements within a second")
        if self._in_window > self.max_per_second:
            self.stats.dropped += 1
            return
        self.stats.announced += 1
        self.on_head()


def _json(data: Any) -> Any:
    try:
        return orjson.loads(data)
    except (orjson.JSONDecodeError, TypeError):
        return None


def _announces(data: Any, subscription: str) -> bool:
    """Whether `data` is a notification of our subscription. The head it carries is not
    read: the loop asks the node for the head itself."""
    message = _json(data)
    if not isinstance(message, dict) or message.get("method") != "eth_subscription":
        return False
    params = message.get("params")
    return isinstance(params, dict) and params.get("subscription") == subscription
