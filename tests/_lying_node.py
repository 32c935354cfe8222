"""A JSON-RPC proxy for a node whose logs disagree with its headers: the true head and
headers, but `eth_getLogs` behind them, blank, or holding a log the block never had; or,
as one member of a load balancer, a whole node some blocks behind that answers `[]` for
the logs of blocks it does not have (instead of "unknown block", as geth does).

    with LyingProxy(anvil.url, seed=1) as node:
        node.lie(Lie.LAG, blocks=8)            # the newest 8 blocks' logs left out
        node.lie(Lie.BEHIND, blocks=8, share=0.5)  # half the requests reach a lagging member
        ...
        node.clear()                           # honest again
        assert node.lies()["eth_getLogs"] > 0

It is a `FaultyProxy` (tests/_rpc_proxy.py): a request the lie does not reach gets that
proxy's faults, if any were set. A lie is counted (by method) when it changed an answer.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests._rpc_proxy import HEAD_TAGS, FaultyProxy, Json, _log_filter

FAKE_ADDRESS = "0x000000000000000000000000000000000000dead"
FAKE_LOG_INDEX = 0x7FFF


class Lie(enum.StrEnum):
    # eth_getLogs served by a log index `blocks` behind the head: the newest blocks' logs
    # are left out, and their receipts (eth_getBlockReceipts) are null
    LAG = enum.auto()
    # eth_getLogs answers no logs for the newest `blocks` blocks at the time of `lie()` and
    # every later one; receipts stay true (the node has the blocks, its log query is broken)
    BLANK = enum.auto()
    # eth_getLogs by block hash for the newest `blocks` blocks gains a log from FAKE_ADDRESS
    # carrying the first topic asked for: a log the block's bloom does not hold
    FAKE = enum.auto()
    # a whole node `blocks` behind: its head, no header or receipts for newer blocks, and
    # `[]` for their logs
    BEHIND = enum.auto()


@dataclass(frozen=True)
class _Plan:
    kind: Lie
    blocks: int
    share: float  # the fraction of requests that reach the liar (a load balancer)
    blank_from: int  # BLANK: the first block without logs


class LyingProxy(FaultyProxy):
    def __init__(self, upstream: str, *, seed: int = 0, **kw: Any) -> None:
        super().__init__(upstream, seed=seed, **kw)
        self._plan: _Plan | None = None
        self._lie_rng = random.Random(seed)
        self._lies: Counter[str] = Counter()

    def __enter__(self) -> LyingProxy:
        self.start()
        return self

    def lie(self, kind: Lie, blocks: int, *, share: float = 1.0) -> None:
        """From now on, `share` of the requests (drawn from the seed) meet this lie."""
        if blocks < 1 or not 0.0 < share <= 1.0:
            raise ValueError(f"blocks must be ≥ 1 and share in (0, 1], got {blocks}, {share}")
        blank_from = 0
        if kind is Lie.BLANK:
            assert self._loop is not None, "start the proxy first"
            head = asyncio.run_coroutine_threadsafe(self._rpc("eth_blockNumber"), self._loop)
            blank_from = int(head.result(timeout=10), 16) - blocks + 1
        with self._lock:
            self._plan = _Plan(kind, blocks, share, blank_from)

    def clear(self) -> None:
        """Honest again (and no faults)."""
        super().clear()
        with self._lock:
            self._plan = None

    def lies(self) -> dict[str, int]:
        with self._lock:
            return dict(self._lies)

    def _count_lie(self, method: str) -> None:
        with self._lock:
            self._lies[method] += 1

    # -- answering -------------------------------------------------------------------
    async def _answer_request(
        self, request: web.Request, body: bytes, items: list[Json], batch: bool
    ) -> web.StreamResponse:
        with self._lock:
            plan = self._plan
            reached = plan is not None and self._lie_rng.random() < plan.share
        if plan is None or not reached:
            return await super()._answer_request(request, body, items, batch)
        head = int(await self._rpc("eth_blockNumber"), 16)
        answers = await asyncio.gather(*(self._lying(item, plan, head) for item in items))
        raw = orjson.dumps(answers if batch else answers[0])
        return web.Response(body=raw, content_type="application/json")

    @staticmethod
    def _hidden(plan: _Plan, number: int, head: int) -> bool:
        if plan.kind is Lie.BLANK:
            return number >= plan.blank_from
        return number > head - plan.blocks

    def _changed(self, item: Json, result: Any) -> Json:
        self._count_lie(str(item.get("method")))
        return {"jsonrpc": "2.0", "id": item.get("id"), "result": result}

    async def _lying(self, item: Json, plan: _Plan, head: int) -> Json:
        method = item.get("method")
        params = item.get("params") or []
        behind = plan.kind is Lie.BEHIND
        if behind and method == "eth_blockNumber":
            return self._changed(item, hex(head - plan.blocks))
        if behind and method == "eth_getBlockByNumber" and params:
            tag = params[0]
            number = head if tag in HEAD_TAGS else int(tag, 16) if tag != "earliest" else 0
            if tag in HEAD_TAGS:
                block = await self._rpc(
                    "eth_getBlockByNumber", hex(head - plan.blocks), *params[1:]
                )
                return self._changed(item, block)
            if self._hidden(plan, number, head):
                return self._changed(item, None)
        answer = await self._forward(item)
        result = answer.get("result")
        hidden = (
            method == "eth_getBlockByHash"
            and behind
            and isinstance(result, dict)
            and self._hidden(plan, int(result["number"], 16), head)
        ) or (
            method == "eth_getBlockReceipts"
            and plan.kind in (Lie.LAG, Lie.BEHIND)
            and isinstance(result, list)
            and bool(result)
            and self._hidden(plan, int(result[0]["blockNumber"], 16), head)
        )
        if hidden:
            return self._changed(item, None)
        if method == "eth_getLogs" and isinstance(result, list):
            return await self._lying_logs(item, plan, head, answer, result)
        return answer

    async def _lying_logs(
        self, item: Json, plan: _Plan, head: int, answer: Json, logs: list[Json]
    ) -> Json:
        flt = _log_filter(item)
        if plan.kind is Lie.FAKE:
            if "blockHash" not in flt:
                return answer
            block = await self._rpc("eth_getBlockByHash", flt["blockHash"], False)
            if block is None or not self._hidden(plan, int(block["number"], 16), head):
                return answer
            topics = flt.get("topics") or [[]]
            first = topics[0][0] if isinstance(topics[0], list) else topics[0]
            fake = {
                "address": FAKE_ADDRESS,
                "topics": [first],
                "data": "0x",
                "blockHash": block["hash"],
                "blockNumber": block["number"],
                "blockTimestamp": block["timestamp"],
                "transactionHash": "0x" + "ee" * 32,
                "transactionIndex": "0x0",
                "logIndex": hex(FAKE_LOG_INDEX),
                "removed": False,
            }
            return self._changed(item, [*logs, fake])
        kept = [e for e in logs if not self._hidden(plan, int(e["blockNumber"], 16), head)]
        if len(kept) == len(logs):
            return answer
        return self._changed(item, kept)
