"""Backfill ranges are sized by the logs they bring (issue 19: bounded backfill memory).

An in-process node (MockTransport) serves a chain whose density changes: sparse
stretches, a dense one, a single block holding many logs. The fetcher is driven as the
backfill drives it, one range after another; what is asserted is what bounds memory:
the logs each answer carries.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest

from chain import ChainClient, MockTransport, Request, Response, RetryPolicy, rpc_response
from chain.abi import topics_filter
from indexer import ChainSettings
from indexer.fetch import Fetcher, RangeSizing

TOPIC = topics_filter()[0]
HEAD = 400_000
Density = Callable[[int], int]  # logs in block n


def node(density: Density) -> tuple[ChainClient, list[tuple[int, int, int]]]:
    """A client of a node serving `density`; every eth_getLogs answered is recorded as
    (from, to, logs)."""
    asked: list[tuple[int, int, int]] = []

    def get_logs(params: list[Any]) -> list[dict[str, Any]]:
        lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        logs = [
            {
                "blockNumber": hex(n),
                "topics": [TOPIC],
                "logIndex": hex(i),
                "blockHash": "0x01",
                "data": "0x",
                "address": "0x" + "00" * 20,
            }
            for n in range(lo, hi + 1)
            for i in range(density(n))
        ]
        asked.append((lo, hi, len(logs)))
        return logs

    def header(params: list[Any]) -> dict[str, Any]:
        n = int(params[0], 16)
        return {"number": hex(n), "hash": "0x" + f"{n:064x}", "parentHash": "0x" + "00" * 32,
                "timestamp": hex(n), "logsBloom": "0x" + "00" * 256}  # fmt: skip

    def handler(request: Request) -> Response:
        methods = {"eth_chainId": lambda _: "0x1", "eth_getLogs": get_logs,
                   "eth_getBlockByNumber": header}  # fmt: skip
        return rpc_response(request, methods)

    retry = RetryPolicy(initial=0.001, max_delay=0.001, attempts=2)
    return ChainClient(["mock://node"], retry=retry, transport=MockTransport(handler)), asked


async def backfill(client: ChainClient, sizing: RangeSizing, lo: int, hi: int) -> None:
    """One range after another, each sized by what the last answer taught (the order the
    indexer's backfill asks in, without its concurrency)."""
    fetcher = Fetcher(client, topics_filter(), sizing)
    async with client:
        nxt = lo
        while nxt <= hi:
            end = min(hi, nxt + fetcher.size - 1)
            await fetcher.range_logs(nxt, end)
            nxt = end + 1


def sparse_dense_sparse(n: int) -> int:
    """One log every 50 blocks, then 4 logs in every block of 100,000-109,999 (a busy
    launch), then sparse again."""
    if 100_000 <= n < 110_000:
        return 4
    return 1 if n % 50 == 0 else 0


SIZING = RangeSizing(initial=100, maximum=50_000, target_logs=2_000)


async def test_the_first_range_is_small_whatever_the_chain_holds() -> None:
    """The first answer is the first sight of the chain's density: a chain dense from its
    first block (the benchmark chain's 182,147 logs in the first 2,000 blocks) brings one
    small answer, not all of it."""
    client, asked = node(lambda n: 90)
    await backfill(client, SIZING, 1, 3_000)
    first = asked[0]
    assert first[:2] == (1, 100) and first[2] == 9_000
    assert all(logs <= SIZING.target_logs for _, _, logs in asked[1:])


async def test_ranges_grow_toward_the_target_on_a_sparse_chain() -> None:
    """Sparse blocks: each answer far below the target, so ranges double, up to the most
    blocks a range may span; few round trips for a long quiet chain."""
    client, asked = node(lambda n: 1 if n % 50 == 0 else 0)
    await backfill(client, SIZING, 1, HEAD)
    spans = [hi - lo + 1 for lo, hi, _ in asked]
    assert spans[:4] == [100, 200, 400, 800]  # doubling from the small start
    assert max(spans) == SIZING.maximum  # reached the cap; 40,000-block ranges bring 800
    assert len(asked) < 20


async def test_a_dense_stretch_shrinks_the_ranges_after_its_first_answer() -> None:
    """After a quiet stretch ranges are long; the first one that reaches the busy blocks
    brings more than the target (at most `maximum` blocks at the new density: the one
    answer no prediction avoids, which `max_log_range` bounds), and the ranges after the
    first answer over the target are sized by its density: back near the target."""
    sizing = RangeSizing(initial=100, maximum=5_000, target_logs=500)
    client, asked = node(sparse_dense_sparse)
    await backfill(client, sizing, 1, 150_000)
    # the first answer over the target (the range that reached into the busy blocks may
    # have caught only a few of them, and been under it)
    over = next(i for i, (_, _, logs) in enumerate(asked) if logs > sizing.target_logs)
    assert asked[over][2] <= sizing.maximum * 4
    later = [logs for lo, hi, logs in asked[over + 1 :] if lo < 110_000]
    assert len(later) > 10
    assert all(logs <= 2 * sizing.target_logs for logs in later), later
    # and it grows again once the chain is sparse
    spans_after = [hi - lo + 1 for lo, hi, _ in asked if lo > 110_000]
    assert max(spans_after) == sizing.maximum


async def test_a_block_denser_than_the_target_is_fetched_alone() -> None:
    """A single block with more logs than the target cannot be split: it comes alone,
    and the range grows again after it."""
    client, asked = node(lambda n: 12_000 if n == 5_000 else (1 if n % 10 == 0 else 0))
    await backfill(client, SIZING, 4_000, 9_000)
    big = [a for a in asked if a[0] <= 5_000 <= a[1]]
    assert len(big) == 1
    after = [hi - lo + 1 for lo, hi, _ in asked if lo > 5_000]
    assert after[0] == 1 or after[0] < 200  # sized by the dense answer
    assert max(after) > after[0]  # then grows again


@pytest.mark.parametrize("seed", range(5))
async def test_a_range_at_most_doubles_and_never_outgrows_the_last_density(seed: int) -> None:
    """On a chain of random stretches (0 to 30 logs per block), each range spans at most
    twice the last one, and at most the blocks that would bring `target_logs` at the
    density of the last answer: the two rules that bound what an answer can carry."""
    rng = random.Random(seed)
    stretches = [rng.choice((0, 0, 1, 3, 30)) for _ in range(40)]
    sizing = RangeSizing(initial=10, maximum=20_000, target_logs=1_000)
    client, asked = node(lambda n: stretches[(n // 1_000) % len(stretches)])
    await backfill(client, sizing, 1, 40_000)
    for (lo, hi, logs), (lo2, hi2, _) in itertools.pairwise(asked):
        span, nxt = hi - lo + 1, hi2 - lo2 + 1
        if hi2 == 40_000:
            continue  # the last range is cut at the head
        assert nxt <= max(2 * span, span), (span, nxt)
        if logs:
            assert nxt <= max(1, span * sizing.target_logs // logs), (span, logs, nxt)


def test_the_settings_carry_the_target_to_the_indexer() -> None:
    settings = ChainSettings(confirmations=0, log_range=64, log_target=321)
    assert (settings.log_range, settings.log_target) == (64, 321)
    assert ChainSettings(confirmations=0).log_range == 10  # a small first range by default
