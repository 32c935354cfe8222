"""The one seam between Warden and a node: JSON-RPC with orjson, retried and failed over.

`ChainClient` retries transient failures with exponential backoff and jitter, fails over
between endpoints, understands HTTP 429 (and `Retry-After`) and providers' error
messages, classifies every failure as retryable or fatal (see `errors.py`), checks each
endpoint's chain id the first time it is used, and batches requests where a caller asks
for several answers at once. The bytes travel through a `Transport` (chain/transport.py):
HTTP in production, an in-process `MockTransport` in unit tests; integration tests point
it at anvil or at a fault-injecting proxy.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from chain.errors import (
    BadResponse,
    FatalError,
    LogRangeTooLarge,
    RateLimited,
    RetryableError,
    RpcRejected,
    RpcUnavailable,
    UnknownBlock,
    WrongChain,
    classify_rpc_error,
)
from chain.transport import HttpTransport, Request, Transport
from chain.urls import redact_url, url_secrets

log = logging.getLogger("warden.rpc")

RETRY_AFTER_CAP = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts: initial * factor^n, capped, with +/- jitter."""

    initial: float = 1.0
    factor: float = 1.5
    max_delay: float = 30.0
    jitter: float = 0.25  # fraction of the delay, drawn uniformly either side
    attempts: int = 10  # per call, across all endpoints

    def delay(self, failure: int, rng: random.Random) -> float:
        base = min(self.max_delay, self.initial * self.factor ** max(0, failure - 1))
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


@dataclass
class RpcStats:
    """Counters for /metrics: calls made and failures by kind."""

    requests: int = 0
    calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    failovers: int = 0

    def count(self, error: Exception) -> None:
        kind = type(error).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1


class ChainClient:
    """JSON-RPC client over one or more endpoints of the same chain. Endpoints appear in
    logs and errors only as `redact_url` shows them (their path may hold an API key)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain_id: int | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise ValueError("ChainClient needs at least one RPC URL")
        self.urls = list(urls)
        self.shown = [redact_url(u) for u in self.urls]  # what logs and errors may say
        self.expected_chain_id = chain_id
        self.retry = retry or RetryPolicy()
        self.stats = RpcStats()
        self.transport: Transport = transport or HttpTransport(timeout)
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._current = 0
        self._verified: set[int] = set()
        self._next_id = 0

    async def __aenter__(self) -> ChainClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    @property
    def url(self) -> str:
        """The endpoint in use now (the full URL: never log it, log `shown_url`)."""
        return self.urls[self._current]

    @property
    def shown_url(self) -> str:
        """The endpoint in use now, redacted for logs."""
        return self.shown[self._current]

    # -- public calls ------------------------------------------------------------
    async def call(self, method: str, *params: Any) -> Any:
        (result,) = await self.batch([(method, list(params))])
        return result

    async def batch(
        self,
        calls: Sequence[tuple[str, list[Any]]],
        validate: Callable[[list[Any]], None] | None = None,
    ) -> list[Any]:
        """Several calls in one HTTP request, answered in order, on one endpoint.

        Each item's error is raised (the first one, classified); the whole batch is
        retried on a retryable failure so the answers always come from one node.
        `validate` may raise `BadResponse` for answers that are well-formed JSON-RPC but
        wrong (logs outside the range asked for, a node behind): retried the same way.
        """
        return await self._batch(calls, validate, per_item=False)

    async def batch_each(
        self, calls: Sequence[tuple[str, list[Any]]], *, transient_in_place: bool = False
    ) -> list[Any]:
        """Like `batch`, but an item's JSON-RPC error is returned in its place as the
        classified exception instead of raised: for many independent questions (one
        `eth_call` per session) where one refusal must not hide the other answers.
        Transport failures still retry the whole batch. An item's error that reads as
        transient retries the whole batch too, unless `transient_in_place`: then it comes
        back in its place as well (a hostile contract's call that fails its own way makes
        some nodes answer -32603, which no retry changes; the caller decides)."""
        return await self._batch(calls, None, per_item=True, all_in_place=transient_in_place)

    async def _batch(
        self,
        calls: Sequence[tuple[str, list[Any]]],
        validate: Callable[[list[Any]], None] | None,
        *,
        per_item: bool,
        all_in_place: bool = False,
    ) -> list[Any]:
        if not calls:
            return []
        failure = 0
        while True:
            index = self._current
            try:
                await self._verify_chain(index)
                results = await self._post(
                    index, calls, per_item=per_item, all_in_place=all_in_place
                )
                if validate is not None:
                    validate(results)
                return results
            except RetryableError as exc:
                if isinstance(exc, LogRangeTooLarge | UnknownBlock):
                    raise  # the caller changes the question rather than repeat it
                self.stats.count(exc)
                failure += 1
                if failure >= self.retry.attempts:
                    raise
                delay = self.retry.delay(failure, self._rng)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    # the provider knows its window; a hostile header cannot stall us long
                    delay = max(delay, min(exc.retry_after, RETRY_AFTER_CAP))
                self._fail_over(index, exc)
                log.warning(
                    "rpc %s failed (%s); attempt %d/%d in %.2fs",
                    calls[0][0],
                    exc,
                    failure + 1,
                    self.retry.attempts,
                    delay,
                )
                await self._sleep(delay)
            except FatalError as exc:
                self.stats.count(exc)
                raise

    @property
    def endpoint(self) -> int:
        """The index in `urls` of the endpoint in use now."""
        return self._current

    async def batch_at(self, index: int, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """`calls` once on endpoint `index` (modulo the number of endpoints): no retry, no
        failover, errors raised as classified. For a caller that checks one node's answer
        against another's (the indexer asking a block's logs again)."""
        index %= len(self.urls)
        try:
            await self._verify_chain(index)
            return await self._post(index, calls)
        except (RetryableError, FatalError) as exc:
            self.stats.count(exc)
            raise

    async def chain_id(self) -> int:
        return int(await self.call("eth_chainId"), 16)

    async def block_number(self) -> int:
        return int(await self.call("eth_blockNumber"), 16)

    async def get_block(self, block: int | str) -> dict[str, Any] | None:
        tag = hex(block) if isinstance(block, int) else block
        result: dict[str, Any] | None = await self.call("eth_getBlockByNumber", tag, False)
        return result

    async def connect(self) -> int:
        """Check the first endpoint answers and serves the configured chain."""
        await self._verify_chain(self._current)
        return await self.chain_id()

    # -- transport ---------------------------------------------------------------
    def _fail_over(self, index: int, exc: Exception) -> None:
        if len(self.urls) > 1 and index == self._current:
            self._current = (index + 1) % len(self.urls)
            self.stats.failovers += 1
            log.warning(
                "rpc endpoint %s failing (%s); now using %s",
                self.shown[index],
                exc,
                self.shown_url,
            )

    async def _verify_chain(self, index: int) -> None:
        if self.expected_chain_id is None or index in self._verified:
            return
        (answer,) = await self._post(index, [("eth_chainId", [])])
        got = int(answer, 16)
        if got != self.expected_chain_id:
            raise WrongChain(
                f"RPC endpoint {self.shown[index]} serves chain id {got}, but the config says "
                f"{self.expected_chain_id}: point it at the right network or fix `chain_id`"
            )
        self._verified.add(index)

    async def _post(
        self,
        index: int,
        calls: Sequence[tuple[str, list[Any]]],
        *,
        per_item: bool = False,
        all_in_place: bool = False,
    ) -> list[Any]:
        first = self._next_id
        self._next_id += len(calls)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        body = orjson.dumps(payload if len(calls) > 1 else payload[0])
        url = self.shown[index]  # in messages; the request goes to the full URL
        self.stats.requests += 1
        self.stats.calls += len(calls)
        try:
            response = await self.transport.post(Request(self.urls[index], body))
        except RpcUnavailable as exc:
            # The transport's text quotes the full URL (and aiohttp's may re-encode it):
            # keep the reason, drop every part that may hold a key; the cause goes too.
            raise RpcUnavailable(f"{calls[0][0]} to {self._scrub(str(exc), index)}") from None
        raw, status = response.body, response.status
        retry_after = response.headers.get("Retry-After")
        if status == 429:
            raise RateLimited(f"{url} answered 429", _seconds(retry_after))
        if status >= 500:
            raise RpcUnavailable(
                f"{url} answered HTTP {status}: {self._scrub(repr(raw[:200]), index)}"
            )
        if status >= 400:
            raise RpcRejected(
                f"{url} refused the request with HTTP {status} "
                f"({self._scrub(repr(raw[:200]), index)}): check the URL "
                "and any API key in it",
                status,
            )
        try:
            decoded = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadResponse(f"{url} answered invalid JSON ({len(raw)} bytes): {exc}") from exc
        items = decoded if isinstance(decoded, list) else [decoded]
        by_id: dict[Any, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict):
                raise BadResponse(f"{url} answered a non-object batch item: {item!r:.200}")
            by_id[item.get("id")] = item
        results = []
        for i, (method, _) in enumerate(calls):
            item = by_id.get(first + i)
            if item is None:
                if len(items) == 1 and "error" in items[0] and items[0].get("id") is None:
                    raise classify_rpc_error(items[0]["error"], method)
                raise BadResponse(f"{url} left {method} (id {first + i}) out of its answer")
            if "error" in item and item["error"] is not None:
                error = classify_rpc_error(item["error"], method)
                if per_item and (all_in_place or not isinstance(error, RetryableError)):
                    results.append(error)
                    continue
                raise error
            if "result" not in item:
                raise BadResponse(f"{url} answered {method} without a result")
            results.append(item["result"])
        return results

    def _scrub(self, text: str, index: int) -> str:
        text = text.replace(self.urls[index], self.shown[index])
        for part in sorted(url_secrets(self.urls[index]), key=len, reverse=True):
            if len(part) >= 4:
                text = text.replace(part, "***")
        return text


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
