"""A websocket "node" on 127.0.0.1 for `HeadWatcher`'s tests: each connection is handed
to a behaviour, which may answer `eth_subscribe`, announce heads, lie, flood or drop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web

Behaviour = Callable[[web.WebSocketResponse, int], Awaitable[None]]


def note(subscription: str, number: int = 1) -> bytes:
    return orjson.dumps(
        {
            "jsonrpc": "2.0",
            "method": "eth_subscription",
            "params": {"subscription": subscription, "result": {"number": hex(number)}},
        }
    )


async def subscribed(ws: web.WebSocketResponse, sub: str = "0xabc") -> None:
    """Answer the watcher's eth_subscribe."""
    message = await ws.receive()
    assert message.type == WSMsgType.BINARY or message.type == WSMsgType.TEXT
    request = orjson.loads(message.data)
    assert request["method"] == "eth_subscribe" and request["params"] == ["newHeads"]
    await ws.send_bytes(orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": sub}))


async def hold(ws: web.WebSocketResponse, n: int = 0) -> None:
    """Keep the socket open (answering pings) until the client goes."""
    async for _ in ws:
        pass


class Node:
    """A websocket endpoint at /, each connection handled by `behaviour(ws, n)` (n: which
    connection, from 1)."""

    def __init__(self, behaviour: Behaviour, *, plain_http: bool = False) -> None:
        self.behaviour = behaviour
        self.plain_http = plain_http
        self.connections = 0  # websockets opened
        self.requests = 0  # handshakes asked for
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.plain_http:  # an HTTP-only JSON-RPC endpoint: no websocket here
            return web.Response(status=405, text="POST only")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            await self.behaviour(ws, self.connections)
        return ws


@contextlib.asynccontextmanager
async def serving(node: Node) -> AsyncIterator[Node]:
    app = web.Application()
    app.router.add_get("/", node.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    node.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield node
    finally:
        await runner.cleanup()
