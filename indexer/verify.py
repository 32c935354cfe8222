"""Checking a node's logs against its own headers before a block of the window is committed.

A node can serve the true head and headers while its `eth_getLogs` leaves the newest
blocks out (a log index behind its headers, or a load-balancer member behind the others
answering `[]` for blocks it does not have). Committed without its logs, a block is never
looked at again: its hash matches. So every block the follow path commits is checked
against its header's `logsBloom` (`chain/bloom.py`):

1. Every returned log must be in the bloom: its address and every topic. A bloom has no
   false negatives, so a log outside it is not in that block, whatever the node says.
2. For every watched item — the topic0 of each of our events, and the factory's address
   — that the bloom may contain, the answer must hold a log carrying it (the filter is
   by topic only, so a look-alike contract's log with our topic0 comes back too).

A block that fails is not committed. The indexer asks again, after a short backoff
(`log_check_backoff`, doubling), on the next endpoint each time, up to `log_check_retries`
times. A bloom can say "maybe" falsely, so an answer that fails only rule 2 is tested
against the block's receipts (`eth_getBlockReceipts` by hash, on the endpoint that gave
it): if all their logs together make exactly the header's bloom, they are the block's
complete logs; if those carrying our topics are exactly the logs returned, the "maybe" was
a false positive, logged at WARNING and believed. Where no endpoint serves block receipts,
`log_check_retries + 1` answers that failed rule 2 alone are believed, at WARNING.

Otherwise the node contradicts its own header: the block and what follows it are not
committed, an ERROR names the block and the endpoint, `LogVerifier.mismatches` counts it,
and `LogsContradictHeader` (retryable) ends the round; the next round asks again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from chain.abi import event_specs
from chain.bloom import log_in_bloom, logs_bloom, may_contain
from chain.client import ChainClient
from chain.errors import BadResponse, FatalError, RetryableError
from indexer.store import BlockRef

log = logging.getLogger("warden.indexer")

Log = dict[str, Any]


class LogsContradictHeader(RetryableError):
    """A node's logs for a block contradict the block's own `logsBloom`, on every ask:
    the indexer stays before that block and tries again next round."""

    def __init__(self, message: str, block: int, endpoint: str) -> None:
        super().__init__(message)
        self.block = block
        self.endpoint = endpoint


def endpoint_label(client: ChainClient, index: int) -> str:
    """An endpoint named without what may be a secret: provider API keys sit in the path
    or the query, so only the scheme, host and port are shown."""
    parts = urlsplit(client.urls[index])
    return f"#{index} {parts.scheme}://{parts.hostname or '?'}" + (
        f":{parts.port}" if parts.port else ""
    )


@dataclass(frozen=True)
class Watched:
    """What the bloom is read for: our events' topic0 (hex → name) and the factory."""

    topics: dict[str, str]
    factory: str  # lower-case 0x-hex

    @classmethod
    def of(cls, factory: str) -> Watched:
        topics = {"0x" + t.hex(): spec.name for t, spec in event_specs().items()}
        return cls(topics, factory.lower())


@dataclass(frozen=True)
class Verdict:
    foreign: tuple[str, ...] = ()  # returned logs the bloom excludes (rule 1)
    missing: tuple[str, ...] = ()  # watched items the bloom admits, absent (rule 2)

    @property
    def ok(self) -> bool:
        return not self.foreign and not self.missing

    def __str__(self) -> str:
        parts = []
        if self.foreign:
            parts.append(f"logs not in the block's bloom: {', '.join(self.foreign)}")
        if self.missing:
            parts.append(f"the bloom has {', '.join(self.missing)} but no such log came back")
        return "; ".join(parts)


def check_block(block: BlockRef, logs: Sequence[Log], watched: Watched) -> Verdict:
    """Rules 1 and 2 for one block's answer (logs already checked for shape)."""
    bloom = block.logs_bloom
    if bloom is None:
        raise BadResponse(f"the header of block {block.number} has no logsBloom")
    foreign = tuple(
        f"#{int(e['logIndex'], 16)} from {e['address']}" for e in logs if not log_in_bloom(bloom, e)
    )
    topic0s = {e["topics"][0].lower() for e in logs}
    emitters = {e["address"].lower() for e in logs}
    missing = [
        name
        for topic, name in watched.topics.items()
        if topic not in topic0s and may_contain(bloom, bytes.fromhex(topic[2:]))
    ]
    if watched.factory not in emitters and may_contain(bloom, bytes.fromhex(watched.factory[2:])):
        missing.append("the factory's address")
    return Verdict(foreign, tuple(missing))


class Proof(enum.Enum):
    COMPLETE = "the receipts prove the answer complete"
    CONTRADICTED = "the block's receipts hold logs of ours that eth_getLogs left out"
    UNKNOWN = "the receipts do not make the header's bloom"
    UNSUPPORTED = "the endpoint does not serve block receipts"


def prove(block: BlockRef, receipts: Any, logs: Sequence[Log], watched: Watched) -> Proof:
    """Whether `receipts` (an `eth_getBlockReceipts` answer) are the block's complete logs
    — together they make exactly its bloom — and hold exactly `logs` of ours."""
    try:
        every = [e for r in receipts for e in r["logs"]]
        if any(r["blockHash"] != block.hash for r in receipts):
            return Proof.UNKNOWN
        if logs_bloom(every) != block.logs_bloom:
            return Proof.UNKNOWN
        ours = {int(e["logIndex"], 16) for e in every if e["topics"][:1] and
                e["topics"][0].lower() in watched.topics}  # fmt: skip
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return Proof.UNKNOWN
    answered = {int(e["logIndex"], 16) for e in logs}
    return Proof.COMPLETE if ours == answered else Proof.CONTRADICTED


Fetch = Callable[[BlockRef, int], Awaitable[list[Log]]]


class LogVerifier:
    """Rules 1 and 2 with asking again, the receipts proof and the bounded belief in a
    false positive (see the module docstring). Counters for metrics: `mismatches`
    (blocks a node kept contradicting), `reasks`, `false_positives`."""

    def __init__(
        self,
        client: ChainClient,
        watched: Watched,
        fetch: Fetch,
        *,
        retries: int = 3,
        backoff: float = 0.25,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.watched = watched
        self.fetch = fetch  # one block's logs by hash, on one endpoint, checked for shape
        self.retries = max(0, retries)
        self.backoff = backoff
        self._sleep = sleep
        self.mismatches = 0
        self.reasks = 0
        self.false_positives = 0

    async def verified(self, block: BlockRef, logs: list[Log], endpoint: int) -> list[Log]:
        """`logs` (from `endpoint`), or a later answer that passed; raises
        `LogsContradictHeader` when none did."""
        verdict = check_block(block, logs, self.watched)
        if verdict.ok:
            return logs
        first, endpoints = endpoint, len(self.client.urls)
        unsupported: set[int] = set()
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(self.backoff * 2 ** (attempt - 1))
                endpoint = (first + attempt) % endpoints
                self.reasks += 1
                try:
                    logs = await self.fetch(block, endpoint)
                except RetryableError as exc:
                    # includes "unknown block": a member behind, or the chain moved (then
                    # the next round's reorg check finds it); either way not this answer
                    log.info("block %d: asking %s again failed: %s", block.number,
                             endpoint_label(self.client, endpoint), exc)  # fmt: skip
                    continue
                verdict = check_block(block, logs, self.watched)
                if verdict.ok:
                    log.warning(
                        "block %d: the logs first answered by %s contradicted the header; "
                        "%s answered consistently on asking again",
                        block.number,
                        endpoint_label(self.client, first),
                        endpoint_label(self.client, endpoint),
                    )
                    return logs
            if verdict.foreign:
                continue  # a log the header excludes: nothing excuses it
            proof = await self._prove(block, logs, endpoint)
            if proof is Proof.COMPLETE:
                self.false_positives += 1
                # routine on busy chains (a bloom fills up), so counted, not warned about
                log.debug("block %d: bloom false positive (%s): %s", block.number, verdict,
                          proof.value)  # fmt: skip
                return logs
            if proof is Proof.UNSUPPORTED:
                unsupported.add(endpoint)
        if not verdict.foreign and len(unsupported) == endpoints:
            self.false_positives += 1
            log.warning(
                "block %d: %s, on %d answers; no endpoint serves block receipts to prove it, "
                "so the answer is believed as a bloom false positive",
                block.number, verdict, self.retries + 1,
            )  # fmt: skip
            return logs
        self.mismatches += 1
        where = endpoint_label(self.client, endpoint)
        message = (
            f"block {block.number} ({block.hash}): the logs from {where} contradict the "
            f"block's logsBloom ({verdict}) after {self.retries + 1} answers; not indexing "
            f"past block {block.number - 1} until a node answers consistently"
        )
        log.error("%s", message)
        raise LogsContradictHeader(message, block.number, where)

    async def _prove(self, block: BlockRef, logs: list[Log], endpoint: int) -> Proof:
        try:
            (receipts,) = await self.client.batch_at(
                endpoint, [("eth_getBlockReceipts", [block.hash])]
            )
        except FatalError:
            return Proof.UNSUPPORTED
        except RetryableError:
            return Proof.UNKNOWN
        if receipts is None:
            return Proof.UNKNOWN
        return prove(block, receipts, logs, self.watched)
