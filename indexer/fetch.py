"""Fetching raw logs and headers, with every answer checked before it is believed.

Two ways to fetch, chosen by how far a block is from the head:

- `range_logs`: one `eth_getLogs` over a block range (for blocks older than the reorg
  window), batched with the header of the range's last block so that a node behind
  that block is caught (it would silently answer "no logs"). The range adapts: halved
  when the provider says too much, grown again after a success.
- `block_logs`: `eth_getLogs` by block hash for each block of the window, batched, so
  logs and headers are certain to come from the same branch; the indexer then checks
  them against each header's `logsBloom` (`indexer/verify.py`), asking again with
  `logs_at` (one block, one endpoint) when they do not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.bloom import parse_bloom
from chain.client import ChainClient
from chain.errors import BadResponse, LogRangeTooLarge
from indexer.store import BlockRef


@dataclass(frozen=True)
class RangeSizing:
    """Ranges sized by the logs they bring: what bounds memory is the logs in flight
    (an answer is parsed whole), not the blocks. `initial` is small because the first
    answer is the first sight of the chain's density."""

    initial: int = 10
    minimum: int = 1
    maximum: int = 50_000
    target_logs: int = 10_000  # aim each range at about this many logs: small enough to
    # pipeline fetching with processing and bound memory, large enough to keep round trips few


def header_ref(raw: dict[str, Any]) -> BlockRef:
    """The header as a `BlockRef`, with its `logsBloom` when the node sent one (every
    node does for `eth_getBlockByNumber`; the follow path requires it)."""
    try:
        bloom = raw.get("logsBloom")
        return BlockRef(
            int(raw["number"], 16),
            raw["hash"],
            raw["parentHash"],
            int(raw["timestamp"], 16),
            parse_bloom(bloom) if bloom is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadResponse(f"malformed block header: {exc!r} in {str(raw)[:200]}") from exc


def check_logs(logs: Any, lo: int, hi: int, topics: frozenset[str], where: str) -> None:
    """Reject an answer that does not fit the question (raises BadResponse)."""
    if not isinstance(logs, list):
        raise BadResponse(f"{where}: eth_getLogs answered {type(logs).__name__}, not a list")
    for entry in logs:
        try:
            number = int(entry["blockNumber"], 16)
            topic0 = entry["topics"][0]
            entry["logIndex"], entry["blockHash"], entry["data"], entry["address"]
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BadResponse(f"{where}: malformed log {str(entry)[:200]}") from exc
        if not lo <= number <= hi:
            raise BadResponse(f"{where}: log at block {number} outside asked range {lo}-{hi}")
        if topic0 not in topics:
            raise BadResponse(f"{where}: log with topic {topic0} that was not asked for")
        if entry.get("removed"):
            raise BadResponse(f"{where}: log marked removed at block {number}")


class Fetcher:
    def __init__(
        self, client: ChainClient, topics: Sequence[str], sizing: RangeSizing | None = None
    ) -> None:
        self.client = client
        self.topics = list(topics)
        self._topic_set = frozenset(topics)
        self.sizing = sizing or RangeSizing()
        self.size = self.sizing.initial
        self.splits = 0
        self.ranges: list[tuple[int, int]] = []  # every range answered, for benchmarks

    async def range_logs(self, lo: int, hi: int) -> tuple[list[dict[str, Any]], BlockRef]:
        """Every matching log in [lo, hi] and the header of `hi`."""
        try:
            logs, end = await self._range_once(lo, hi)
        except LogRangeTooLarge:
            if hi == lo:
                raise
            self.splits += 1
            mid = lo + (hi - lo) // 2
            self.size = max(self.sizing.minimum, min(self.size, (hi - lo + 1) // 2))
            first, _ = await self.range_logs(lo, mid)
            second, end = await self.range_logs(mid + 1, hi)
            return first + second, end
        blocks, count = hi - lo + 1, len(logs)
        tail = _tail(logs, hi, max(1, blocks // 4))
        if tail * 4 > count:  # the range's end is denser than its average: size by it
            blocks, count = max(1, blocks // 4), tail
        self.size = self._next_size(hi - lo + 1, blocks, count)
        self.ranges.append((lo, hi))
        return logs, end

    def _next_size(self, span: int, blocks: int, logs: int) -> int:
        """After a range of `span` blocks: at most double it, and at most the blocks that
        bring `target_logs` at the density seen (`logs` over the last `blocks`)."""
        dense = blocks * self.sizing.target_logs // logs if logs else span * 2
        grown = (
            max(self.size, span * 2) if logs * span <= self.sizing.target_logs * blocks else dense
        )
        return max(self.sizing.minimum, min(self.sizing.maximum, grown, span * 2, max(dense, 1)))

    async def _range_once(self, lo: int, hi: int) -> tuple[list[dict[str, Any]], BlockRef]:
        where = f"logs {lo}-{hi}"

        def validate(results: list[Any]) -> None:
            logs, header = results
            if header is None:
                raise BadResponse(f"{where}: the node does not have block {hi} yet")
            check_logs(logs, lo, hi, self._topic_set, where)

        logs, header = await self.client.batch(
            [
                (
                    "eth_getLogs",
                    [{"fromBlock": hex(lo), "toBlock": hex(hi), "topics": [self.topics]}],
                ),
                ("eth_getBlockByNumber", [hex(hi), False]),
            ],
            validate,
        )
        return logs, header_ref(header)

    async def headers(self, numbers: Sequence[int], chunk: int = 200) -> dict[int, BlockRef]:
        """Headers of these blocks; every one must exist (else the node is behind)."""
        found: dict[int, BlockRef] = {}
        for part in _chunks(list(numbers), chunk):
            answers = await self.client.batch(
                [("eth_getBlockByNumber", [hex(n), False]) for n in part], _all_present(part)
            )
            for answer in answers:
                ref = header_ref(answer)
                found[ref.number] = ref
        return found

    async def canonical_hashes(
        self, numbers: Sequence[int], chunk: int = 200
    ) -> dict[int, str | None]:
        """The node's hash at each height, None where the chain is now shorter."""
        out: dict[int, str | None] = {}
        for part in _chunks(list(numbers), chunk):
            answers = await self.client.batch(
                [("eth_getBlockByNumber", [hex(n), False]) for n in part]
            )
            for n, answer in zip(part, answers, strict=True):
                out[n] = header_ref(answer).hash if answer else None
        return out

    async def block_logs(
        self, blocks: Sequence[BlockRef], chunk: int = 100
    ) -> list[tuple[list[dict[str, Any]], int]]:
        """Each block's logs fetched by its hash, so they come from the same branch as the
        headers, with the endpoint (index) that answered them: every chunk is one answer
        from one endpoint."""
        out: list[tuple[list[dict[str, Any]], int]] = []
        for part in _chunks(list(blocks), chunk):

            def validate(results: list[Any], part: list[BlockRef] = part) -> None:
                for block, logs in zip(part, results, strict=True):
                    self._check_block_logs(block, logs)

            answers = await self.client.batch(
                [("eth_getLogs", [self._by_hash(b)]) for b in part], validate
            )
            out.extend((logs, self.client.endpoint) for logs in answers)
        return out

    async def logs_at(self, block: BlockRef, endpoint: int) -> list[dict[str, Any]]:
        """One block's logs by its hash, asked once of one endpoint (no retry)."""
        (logs,) = await self.client.batch_at(endpoint, [("eth_getLogs", [self._by_hash(block)])])
        self._check_block_logs(block, logs)
        result: list[dict[str, Any]] = logs
        return result

    def _by_hash(self, block: BlockRef) -> dict[str, Any]:
        return {"blockHash": block.hash, "topics": [self.topics]}

    def _check_block_logs(self, block: BlockRef, logs: Any) -> None:
        where = f"logs of block {block.number}"
        check_logs(logs, block.number, block.number, self._topic_set, where)
        for entry in logs:
            if entry["blockHash"] != block.hash:
                raise BadResponse(f"{where}: log from another branch")


def _tail(logs: list[dict[str, Any]], hi: int, blocks: int) -> int:
    """How many of `logs` (in block order, as nodes answer) lie in the last `blocks`
    blocks up to `hi`: the density where the next range starts. Reads from the end, so
    only those logs are looked at."""
    first = hi - blocks + 1
    count = 0
    for entry in reversed(logs):
        if int(entry["blockNumber"], 16) < first:
            break
        count += 1
    return count


def _all_present(numbers: list[int]) -> Any:
    def validate(results: list[Any]) -> None:
        for n, answer in zip(numbers, results, strict=True):
            if answer is None:
                raise BadResponse(f"the node does not have block {n} yet")
            if int(answer.get("number", "0x0"), 16) != n:
                raise BadResponse(f"asked for block {n}, got {answer.get('number')}")

    return validate


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
