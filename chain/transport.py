"""The transport under `ChainClient`: one POST of a JSON-RPC body to a URL.

`HttpTransport` speaks HTTP through aiohttp. `MockTransport(handler)` answers in-process
from a function, the way httpx's `MockTransport` does: unit tests of the client and of
everything above it (the executor's tracking and replacement, the fetcher's checks) run
without a node, and a test can make the "node" answer anything a real one cannot be made
to (a receipt that vanishes, a nonce that goes backwards, logs that lag the headers).

    def handler(request: Request) -> Response:
        return rpc_response(request, {"eth_chainId": lambda params: "0x1"})

    client = ChainClient(["mock://node"], transport=MockTransport(handler))
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict

from chain.errors import RpcUnavailable


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes

    def calls(self) -> list[dict[str, Any]]:
        """The JSON-RPC call objects of the body (one, or a batch)."""
        decoded = orjson.loads(self.body)
        return decoded if isinstance(decoded, list) else [decoded]


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    async def post(self, request: Request) -> Response:
        """The node's answer; `RpcUnavailable` when none came (refused, dropped, timeout)."""
        ...

    async def close(self) -> None: ...


class HttpTransport:
    """JSON-RPC over HTTP(S) with one aiohttp session, opened on first use."""

    def __init__(self, timeout: float = 30.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, request: Request) -> Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                request.url, data=request.body, headers={"Content-Type": "application/json"}
            ) as response:
                body = await response.read()
                return Response(response.status, body, CIMultiDict(response.headers))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise RpcUnavailable(f"{request.url}: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """Answers every request from `handler` (sync or async); records what was asked."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    async def post(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def close(self) -> None:
        return None


Method = Callable[[list[Any]], Any]


def rpc_response(request: Request, methods: Mapping[str, Method]) -> Response:
    """A JSON-RPC answer to `request` from one function per method: each returns the
    result, or raises `RpcFault` for a JSON-RPC error object. A method not in `methods`
    answers -32601 (method not found), as a node does."""
    answers = []
    for call in request.calls():
        method = methods.get(call["method"])
        try:
            if method is None:
                raise RpcFault(-32601, f"the method {call['method']} does not exist")
            answers.append({"jsonrpc": "2.0", "id": call["id"], "result": method(call["params"])})
        except RpcFault as fault:
            error = {"code": fault.code, "message": fault.message, "data": fault.data}
            answers.append({"jsonrpc": "2.0", "id": call["id"], "error": error})
    decoded = orjson.loads(request.body)
    return Response(200, orjson.dumps(answers if isinstance(decoded, list) else answers[0]))


class RpcFault(Exception):
    """Raised by a mock method: the node answers this JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
