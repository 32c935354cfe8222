"""A fault-injecting JSON-RPC proxy for tests: it sits in front of anvil and answers like a
flaky hosted provider (dropped connections, delays, 429/5xx, truncated JSON, provider
error objects, eth_getLogs limits, logs from the wrong blocks, a lagging head, partial
batches) so that clients can be shown to retry, reject bad answers and end correct.

It runs its own event loop in a background thread, so one instance serves asyncio code
in the test's loop and an indexer subprocess alike:

    with FaultyProxy(anvil.url, seed=1) as proxy:
        proxy.set_faults(rate=0.2)  # random plan
        proxy.inject(Fault.HTTP_429, count=2, method="eth_getLogs")  # scripted, comes first
        proxy.limit_logs(max_range=500)  # a permanent provider policy
        ...  # point the client at proxy.url
        assert proxy.stats()["faults_total"] > 0, proxy.stats()["log"]

Counting: a fault is counted (and logged as (method, kind)) when it changed an answer.
Kinds that need material can come up empty and then answer correctly, uncounted:
LOG_RANGE_LIMIT within the limits, WRONG_RANGE with no logs in or before the range (or in
the block, for a blockHash filter), STALE_HEAD while the head is below the lag.

Determinism: whether a request gets a fault, which kind, and the fault's details (delay,
error, which batch items) are drawn from one generator seeded by `seed`, in arrival
order: the same requests in the same order meet the same faults.

Manual debugging: `python -m tests._rpc_proxy --upstream URL --rate 0.2 [--seed N] [--port P]`.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import random
import signal
import socket
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

Json = dict[str, Any]


class Fault(enum.StrEnum):
    DROP = enum.auto()  # connection closed without an answer
    DELAY = enum.auto()  # a correct answer, late
    HTTP_429 = enum.auto()  # rate limited, with Retry-After
    HTTP_500 = enum.auto()
    HTTP_503 = enum.auto()
    TRUNCATED = enum.auto()  # HTTP 200, the correct JSON cut in the middle
    RPC_ERROR = enum.auto()  # HTTP 200, a retryable JSON-RPC error object
    LOG_RANGE_LIMIT = enum.auto()  # eth_getLogs over the range / result limit refused
    # eth_getLogs answered with logs outside the asked range: the true logs with their block
    # numbers moved past it, or, when it holds none, the latest logs from before it; for a
    # blockHash filter, the block's logs claimed for its parent (number and hash)
    WRONG_RANGE = enum.auto()
    STALE_HEAD = enum.auto()  # the head reported by a node lagging behind
    BATCH_PARTIAL = enum.auto()  # a batch answered with items missing and reordered


# These rewrite single answers; in a batch they hit every item they apply to. Every other
# kind applies to the whole HTTP request.
ITEM_FAULTS = frozenset({Fault.LOG_RANGE_LIMIT, Fault.WRONG_RANGE, Fault.STALE_HEAD})
HTTP_FAULTS = {
    Fault.HTTP_500: (500, "<html><body><h1>500 Internal Server Error</h1></body></html>"),
    Fault.HTTP_503: (503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"),
}
# Retryable errors as geth-based nodes and hosted providers word them.
PROVIDER_ERRORS = ((-32603, "internal error"), (-32000, "header not found"))
RATE_LIMITED = (
    "Your app has exceeded its compute units per second capacity. If you have retries "
    "enabled, you can safely ignore this message."
)
HEAD_TAGS = frozenset({"latest", "pending", "safe", "finalized"})
WRONG_RANGE_EARLIER_LOGS = 5


def _log_filter(item: Json) -> Json:
    params = item.get("params") or [{}]
    flt = params[0] if isinstance(params, list) and params else {}
    return flt if isinstance(flt, dict) else {}


def _applies(kind: Fault, item: Json, batch: bool) -> bool:
    method = item.get("method")
    if kind is Fault.BATCH_PARTIAL:
        return batch
    if kind in (Fault.LOG_RANGE_LIMIT, Fault.WRONG_RANGE):
        return method == "eth_getLogs"
    if kind is Fault.STALE_HEAD:
        params = item.get("params") or [None]
        return method == "eth_blockNumber" or (
            method == "eth_getBlockByNumber" and params[0] in ("latest", "pending")
        )
    return True


def _targets(
    kind: Fault, items: Sequence[Json], batch: bool, methods: set[str] | None
) -> list[int]:
    """Indexes of the items this fault would hit; empty when it does not apply."""
    return [
        i
        for i, item in enumerate(items)
        if (methods is None or item.get("method") in methods) and _applies(kind, item, batch)
    ]


def _error(item: Json, code: int, message: str) -> Json:
    return {"jsonrpc": "2.0", "id": item.get("id"), "error": {"code": code, "message": message}}


def _describe(items: Sequence[Json], batch: bool) -> str:
    if not batch:
        return str(items[0].get("method"))
    return f"batch({','.join(sorted({str(i.get('method')) for i in items}))})"


@dataclass
class _Scripted:
    kind: Fault
    method: str | None
    remaining: int


@dataclass(frozen=True)
class _Decision:
    kind: Fault | None
    targets: list[int]
    rng: random.Random  # the fault's own details, drawn from the plan's seed


NO_FAULT = _Decision(None, [], random.Random(0))


class LoopbackServer:
    """A JSON-RPC HTTP server on 127.0.0.1 with its own event loop in a background thread,
    so it serves a daemon subprocess and the test's own calls alike. Subclasses answer in
    `_handle` (POSTs to any path) and may use `_session` to reach their upstream."""

    upstream_timeout = 30.0
    thread_name = "loopback-server"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        if self._thread is None:
            raise RuntimeError("the proxy is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the proxy is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # a restarted proxy must get its port back while old connections sit in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"{self.thread_name}-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(sock), loop).result(timeout=30)
        except BaseException:
            sock.close()
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=30)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _open(self, sock: socket.socket) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout)
        )
        app = web.Application(client_max_size=256 * 1024**2)
        app.router.add_post("/{tail:.*}", self._handle)
        # in-flight handlers (a long delay) are cancelled at stop, not awaited
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        # handlers cut off by the shutdown timeout must finish here, before the loop closes
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError


class FaultyProxy(LoopbackServer):
    """A JSON-RPC proxy on 127.0.0.1 that injects faults; see the module docstring."""

    thread_name = "rpc-proxy"

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        port: int = 0,
        delay: tuple[float, float] = (0.5, 2.0),
        retry_after: int = 1,
        stale_lag: int = 3,
        max_log_range: int | None = 1_000,
        max_log_results: int | None = 10_000,
        upstream_timeout: float = 30.0,
    ) -> None:
        self.upstream = upstream
        self.delay = delay
        self.retry_after = retry_after
        self.stale_lag = stale_lag
        self.max_log_range = max_log_range
        self.max_log_results = max_log_results
        super().__init__(port)
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()  # the plan and the counters, shared with the loop thread
        self._rng = random.Random(seed)
        self._rate = 0.0
        self._kinds: tuple[Fault, ...] = tuple(Fault)
        self._methods: set[str] | None = None
        self._scripted: list[_Scripted] = []
        self._enforce_log_limits = False
        self._requests = 0
        self._forwarded: Counter[str] = Counter()
        self._faults: Counter[Fault] = Counter()
        self._log: deque[tuple[str, Fault]] = deque(maxlen=10_000)

    # -- the fault plan (callable from any thread) -----------------------------
    def set_faults(
        self,
        rate: float = 0.2,
        kinds: Iterable[Fault] | None = None,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Each request independently gets a fault with probability `rate`, its kind drawn
        uniformly from the `kinds` that apply to it (default all), only for `methods` if given."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        with self._lock:
            self._rate = rate
            self._kinds = tuple(Fault) if kinds is None else tuple(kinds)
            self._methods = None if methods is None else set(methods)

    def inject(self, kind: Fault, count: int = 1, method: str | None = None) -> None:
        """The next `count` requests this fault applies to (containing `method`, if given) get
        it, before the random plan: WRONG_RANGE waits for an eth_getLogs, BATCH_PARTIAL for a
        batch. LOG_RANGE_LIMIT is used up by the next eth_getLogs even
        when that one is within the limits (and so answered correctly)."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._scripted.append(_Scripted(kind, method, count))

    def limit_logs(self, max_range: int | None = None, max_results: int | None = None) -> None:
        """A permanent provider policy: every eth_getLogs over these limits is refused."""
        with self._lock:
            self.max_log_range, self.max_log_results = max_range, max_results
            self._enforce_log_limits = max_range is not None or max_results is not None

    def clear(self) -> None:
        """Back to a transparent proxy: no random plan, no scripted faults, no log limits."""
        with self._lock:
            self._scripted.clear()
            self._rate = 0.0
            self._enforce_log_limits = False

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "forwarded": dict(self._forwarded),
                "faults": {str(kind): n for kind, n in self._faults.items()},
                "faults_total": sum(self._faults.values()),
                "log": [(method, str(kind)) for method, kind in self._log],
            }

    # -- lifecycle ---------------------------------------------------------------
    # -- answering ---------------------------------------------------------------
    def _decide(self, items: Sequence[Json], batch: bool) -> _Decision:
        with self._lock:
            # a scripted fault waits for the first request it can apply to
            for entry in self._scripted:
                methods = {entry.method} if entry.method else None
                if targets := _targets(entry.kind, items, batch, methods):
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._scripted.remove(entry)
                    return _Decision(entry.kind, targets, random.Random(self._rng.getrandbits(64)))
            if self._rate <= 0 or not _targets(Fault.DROP, items, batch, self._methods):
                return NO_FAULT
            if self._rng.random() >= self._rate:
                return NO_FAULT
            choices = [
                (kind, targets)
                for kind in self._kinds
                if (targets := _targets(kind, items, batch, self._methods))
            ]
            if not choices:
                return NO_FAULT
            kind, targets = self._rng.choice(choices)
            return _Decision(kind, targets, random.Random(self._rng.getrandbits(64)))

    def _record(self, method: str, kind: Fault) -> None:
        with self._lock:
            self._faults[kind] += 1
            self._log.append((method, kind))

    def _count_forwarded(self, items: Iterable[Json]) -> None:
        with self._lock:
            self._forwarded.update(str(i.get("method")) for i in items)

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        async with self._session.post(self.upstream, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def _rpc(self, method: str, *params: Any) -> Any:
        """The proxy's own question to the node (not counted as forwarded)."""
        _, raw = await self._post(
            orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        )
        return orjson.loads(raw)["result"]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        batch = isinstance(payload, list)
        items: list[Json] = payload if isinstance(payload, list) else [payload]
        with self._lock:
            self._requests += 1
        try:
            if not items or not all(isinstance(i, dict) for i in items):
                status, raw = await self._post(body)  # not JSON-RPC: the node's own answer
                return web.Response(status=status, body=raw, content_type="application/json")
            return await self._answer_request(request, body, items, batch)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=502, text=f"upstream failed: {exc!r}")

    async def _answer_request(
        self, request: web.Request, body: bytes, items: list[Json], batch: bool
    ) -> web.StreamResponse:
        decision = self._decide(items, batch)
        kind, rng = decision.kind, decision.rng
        if kind is not None and kind not in ITEM_FAULTS:
            self._record(_describe(items, batch), kind)
        if kind is Fault.DROP:
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never written: the connection is gone
        if kind in HTTP_FAULTS:
            status, html = HTTP_FAULTS[kind]
            return web.Response(status=status, text=html, content_type="text/html")
        if kind is Fault.HTTP_429:
            errors = [_error(i, 429, RATE_LIMITED) for i in items]
            return web.Response(
                status=429,
                body=orjson.dumps(errors if batch else errors[0]),
                content_type="application/json",
                headers={"Retry-After": str(self.retry_after)},
            )
        if kind is Fault.RPC_ERROR:
            code, message = rng.choice(PROVIDER_ERRORS)
            errors = [_error(i, code, message) for i in items]
            body = orjson.dumps(errors if batch else errors[0])
            return web.Response(body=body, content_type="application/json")
        if kind is Fault.DELAY:
            await asyncio.sleep(rng.uniform(*self.delay))

        rewrite: dict[int, Fault] = {}
        if kind in ITEM_FAULTS:
            rewrite = dict.fromkeys(decision.targets, kind)
        if self._enforce_log_limits:
            for i, item in enumerate(items):
                if item.get("method") == "eth_getLogs":
                    rewrite.setdefault(i, Fault.LOG_RANGE_LIMIT)
        if rewrite or kind is Fault.BATCH_PARTIAL:
            answers = list(
                await asyncio.gather(
                    *(self._answer(it, rewrite.get(i)) for i, it in enumerate(items))
                )
            )
            if kind is Fault.BATCH_PARTIAL:
                rng.shuffle(answers)
                del answers[rng.randrange(len(answers))]
            status, raw = 200, orjson.dumps(answers if batch else answers[0])
        else:
            self._count_forwarded(items)
            status, raw = await self._post(body)  # passed through byte for byte
        if kind is Fault.TRUNCATED:
            raw = raw.rstrip()
            raw = raw[: max(1, len(raw) // 2)]
        return web.Response(status=status, body=raw, content_type="application/json")

    async def _answer(self, item: Json, fault: Fault | None) -> Json:
        if fault is Fault.STALE_HEAD:
            return await self._stale_head(item)
        if fault is Fault.LOG_RANGE_LIMIT:
            return await self._limited_logs(item)
        answer = await self._forward(item)
        if fault is Fault.WRONG_RANGE:
            return await self._wrong_range(item, answer)
        return answer

    async def _forward(self, item: Json) -> Json:
        self._count_forwarded([item])
        _, raw = await self._post(orjson.dumps(item))
        answer: Json = orjson.loads(raw)
        return answer

    async def _block_range(self, flt: Json) -> tuple[int, int]:
        tags = (flt.get("fromBlock", "latest"), flt.get("toBlock", "latest"))
        head = 0
        if any(tag in HEAD_TAGS for tag in tags):
            head = int(await self._rpc("eth_blockNumber"), 16)
        first, last = (
            head if tag in HEAD_TAGS else 0 if tag == "earliest" else int(tag, 16) for tag in tags
        )
        return first, last

    async def _stale_head(self, item: Json) -> Json:
        head = int(await self._rpc("eth_blockNumber"), 16)
        stale = max(0, head - self.stale_lag)
        if item.get("method") == "eth_blockNumber":
            result: Any = hex(stale)
        else:
            result = await self._rpc("eth_getBlockByNumber", hex(stale), *item["params"][1:])
        if stale < head:
            self._record(str(item.get("method")), Fault.STALE_HEAD)
        return {"jsonrpc": "2.0", "id": item.get("id"), "result": result}

    async def _limited_logs(self, item: Json) -> Json:
        flt = _log_filter(item)
        max_range, max_results = self.max_log_range, self.max_log_results
        if max_range is not None and "blockHash" not in flt:
            first, last = await self._block_range(flt)
            if last - first + 1 > max_range:
                self._record("eth_getLogs", Fault.LOG_RANGE_LIMIT)
                return _error(item, -32000, "block range is too wide")
        answer = await self._forward(item)
        logs = answer.get("result")
        if max_results is not None and isinstance(logs, list) and len(logs) > max_results:
            self._record("eth_getLogs", Fault.LOG_RANGE_LIMIT)
            return _error(item, -32005, f"query returned more than {max_results} results")
        return answer

    async def _wrong_range(self, item: Json, answer: Json) -> Json:
        logs = answer.get("result")
        if not isinstance(logs, list):  # the node's own error passes through
            return answer
        flt = _log_filter(item)
        wrong: list[Json] = []
        if "blockHash" in flt:  # the block's logs, claimed for its parent
            block = await self._rpc("eth_getBlockByHash", flt["blockHash"], False) if logs else None
            if block is not None and int(block["number"], 16) > 0:
                number = hex(int(block["number"], 16) - 1)
                parent = {"blockHash": block["parentHash"], "blockNumber": number}
                wrong = [{**log, **parent} for log in logs]
        else:
            first, last = await self._block_range(flt)
            if logs:  # the right logs, their block numbers moved past the range
                span = last - first + 1
                wrong = [
                    {**log, "blockNumber": hex(int(log["blockNumber"], 16) + span)} for log in logs
                ]
            elif first > 0:  # a node that answered for other blocks: the latest logs before
                earlier = await self._rpc(
                    "eth_getLogs", {**flt, "fromBlock": "0x0", "toBlock": hex(first - 1)}
                )
                wrong = earlier[-WRONG_RANGE_EARLIER_LOGS:]
        if not wrong:  # nothing to show outside the range: the answer stays correct
            return answer
        self._record("eth_getLogs", Fault.WRONG_RANGE)
        return {**answer, "result": wrong}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Fault-injecting JSON-RPC proxy (manual debugging)."
    )
    parser.add_argument("--upstream", required=True, help="the node's URL, e.g. anvil's")
    parser.add_argument(
        "--rate", type=float, default=0.2, help="probability of a fault per request"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--kinds", help=f"comma-separated subset of {','.join(Fault)}")
    args = parser.parse_args(argv)
    kinds = [Fault(k.strip().lower()) for k in args.kinds.split(",")] if args.kinds else None
    # blocked before the proxy thread starts, so only this thread takes them, in sigwait
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with FaultyProxy(args.upstream, seed=args.seed, port=args.port) as proxy:
        proxy.set_faults(rate=args.rate, kinds=kinds)
        print(proxy.url, flush=True)
        signal.sigwait(stop_signals)
        print(orjson.dumps(proxy.stats()).decode(), flush=True)


if __name__ == "__main__":
    main()
