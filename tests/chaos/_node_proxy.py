"""A JSON-RPC proxy for the chaos scenarios, in front of a node the scenario controls.

Two things `tests/_rpc_proxy.FaultyProxy` does not do:

- **Switch the upstream** while clients stay connected (`switch`): the reorg scenario
  replaces its anvil every few dozen rounds with a fresh one loaded from a state dump,
  the way an operator's stable RPC endpoint keeps its URL while the node behind it is
  restarted from a snapshot. The daemon keeps running and keeps its connections.
- **Lie about the newest blocks' logs** (`lie_about_logs`): at random, an `eth_getLogs`
  whose range reaches into the newest blocks is answered without the logs of those
  blocks ("lag": a node whose log index trails its headers), or with no logs at all
  ("blank": a load-balancer member behind the head answering `[]` for blocks it does
  not have). Headers, receipts and everything else stay true. A lie is counted only
  when it removed at least one log.

It is a `LoopbackServer` (its own event loop in a background thread, like FaultyProxy),
so it serves a daemon subprocess and the test's own calls alike.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests._rpc_proxy import LoopbackServer

Json = dict[str, Any]
LIES = ("lag", "blank")


class NodeProxy(LoopbackServer):
    thread_name = "node-proxy"
    upstream_timeout = 120.0

    def __init__(self, upstream: str, *, seed: int = 0) -> None:
        self._upstream = upstream
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rate = 0.0
        self._newest = 3
        self._lies: Counter[str] = Counter()
        self._requests = 0
        self._errors = 0  # upstream unreachable (answered 502): e.g. during a switch
        super().__init__()

    @property
    def upstream(self) -> str:
        with self._lock:
            return self._upstream

    def switch(self, upstream: str) -> None:
        """Every request from now on goes to `upstream`; requests already forwarded finish
        (or fail, answered 502) against the old one."""
        with self._lock:
            self._upstream = upstream

    def lie_about_logs(self, rate: float, newest: int = 3) -> None:
        """Each eth_getLogs (single or in a batch) that reaches into the `newest` blocks is
        lied about with probability `rate`, "lag" or "blank" drawn evenly."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}")
        if newest < 1:
            raise ValueError(f"newest must be at least 1, got {newest}")
        with self._lock:
            self._rate, self._newest = rate, newest

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "upstream errors": self._errors,
                "lies": dict(self._lies),
                "lies_total": sum(self._lies.values()),
            }

    # -- answering ---------------------------------------------------------------
    async def _post(self, body: bytes) -> tuple[int, bytes]:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        async with self._session.post(self.upstream, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def _rpc(self, method: str, *params: Any) -> Any:
        _, raw = await self._post(
            orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        )
        return orjson.loads(raw).get("result")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        with self._lock:
            self._requests += 1
            lying = self._rate > 0
        try:
            if lying and b"eth_getLogs" in body:
                return await self._lie(body)
            status, raw = await self._post(body)  # passed through byte for byte
        except (aiohttp.ClientError, TimeoutError) as exc:
            with self._lock:
                self._errors += 1
            return web.Response(status=502, text=f"upstream failed: {exc!r}")
        return web.Response(status=status, body=raw, content_type="application/json")

    async def _lie(self, body: bytes) -> web.StreamResponse:
        payload = orjson.loads(body)
        batch = isinstance(payload, list)
        items: list[Json] = payload if batch else [payload]
        status, raw = await self._post(body)
        answers = orjson.loads(raw)
        if status != 200 or isinstance(answers, list) != batch:
            return web.Response(status=status, body=raw, content_type="application/json")
        answer_list: list[Json] = answers if batch else [answers]
        by_id = {a.get("id"): a for a in answer_list if isinstance(a, dict)}
        head: int | None = None
        for item in items:
            answer = by_id.get(item.get("id"))
            if item.get("method") != "eth_getLogs" or not answer:
                continue
            logs = answer.get("result")
            if not isinstance(logs, list) or not logs:
                continue
            with self._lock:
                roll, kind = self._rng.random(), self._rng.choice(LIES)
                rate, newest = self._rate, self._newest
            if roll >= rate:
                continue
            if head is None:
                head = int(await self._rpc("eth_blockNumber"), 16)
            first_newest = head - newest + 1
            if not any(int(log["blockNumber"], 16) >= first_newest for log in logs):
                continue  # the answer holds nothing of the newest blocks: nothing to hide
            if kind == "blank":
                kept: list[Json] = []
            else:  # the log index trails the headers by 1 to `newest` blocks
                with self._lock:
                    cut = head - self._rng.randint(0, newest - 1)
                kept = [log for log in logs if int(log["blockNumber"], 16) < cut]
            if len(kept) < len(logs):
                answer["result"] = kept
                with self._lock:
                    self._lies[kind] += 1
        out = orjson.dumps(answer_list if batch else answer_list[0])
        return web.Response(status=200, body=out, content_type="application/json")
