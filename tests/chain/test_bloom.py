"""The 2048-bit logsBloom, checked against real anvil headers and receipts: every log of a
block is in its bloom, all its logs together make exactly the bloom, and items that were
not logged are mostly not."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from chain import MalformedBloom, log_in_bloom, logs_bloom, may_contain, parse_bloom
from chain.bloom import BLOOM_BITS, bloom_mask
from tests._chain import Chain
from tests.conftest import TOKEN, Roles, Session, Stack, top_up


def _blocks_with_logs(chain: Chain, first: int) -> list[tuple[dict[str, Any], list[Any]]]:
    """(header, receipts) of every block from `first` to the head that has logs."""
    out = []
    for n in range(first, chain.w3.eth.block_number + 1):
        header = chain.anvil.rpc("eth_getBlockByNumber", hex(n), False)
        receipts = chain.anvil.rpc("eth_getBlockReceipts", header["hash"])
        if any(r["logs"] for r in receipts):
            out.append((header, receipts))
    return out


@pytest.fixture
def busy_blocks(
    fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> list[tuple[dict[str, Any], list[Any]]]:
    first = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    w = session.wallet
    top_up(fresh_chain, stack, w, 5 * TOKEN, roles.owner)
    fresh_chain.send(w.functions.withdraw(1 * TOKEN), roles.owner)
    fresh_chain.send(w.functions.revoke(), roles.owner)
    return _blocks_with_logs(fresh_chain, first)


def test_every_log_of_a_real_block_is_in_its_header_bloom(
    busy_blocks: list[tuple[dict[str, Any], list[Any]]],
) -> None:
    assert len(busy_blocks) >= 5
    for header, receipts in busy_blocks:
        bloom = parse_bloom(header["logsBloom"])
        logs = [e for r in receipts for e in r["logs"]]
        assert logs and all(log_in_bloom(bloom, e) for e in logs), header["number"]
        for e in logs:
            assert may_contain(bloom, bytes.fromhex(e["address"][2:]))
            assert all(may_contain(bloom, bytes.fromhex(t[2:])) for t in e["topics"])


def test_a_blocks_logs_together_make_exactly_its_bloom(
    busy_blocks: list[tuple[dict[str, Any], list[Any]]],
) -> None:
    for header, receipts in busy_blocks:
        logs = [e for r in receipts for e in r["logs"]]
        assert logs_bloom(logs) == parse_bloom(header["logsBloom"]), header["number"]
        # each receipt's own bloom is the part its logs make
        for r in receipts:
            assert logs_bloom(r["logs"]) == parse_bloom(r["logsBloom"])
        # leaving out every log with one topic0 is a different bloom: a node that drops
        # an event type shows
        topic0 = logs[-1]["topics"][0]
        rest = [e for e in logs if topic0 not in e["topics"]]
        assert logs_bloom(rest) != parse_bloom(header["logsBloom"])


def test_random_addresses_and_topics_are_mostly_not_in_a_real_bloom(
    busy_blocks: list[tuple[dict[str, Any], list[Any]]],
) -> None:
    rng = random.Random(5)
    for header, _ in busy_blocks:
        bloom = parse_bloom(header["logsBloom"])
        admitted = sum(may_contain(bloom, rng.randbytes(20)) for _ in range(2_000))
        admitted += sum(may_contain(bloom, rng.randbytes(32)) for _ in range(2_000))
        assert admitted < 40, (header["number"], admitted)  # a sparse bloom: < 1 %


def test_an_empty_block_has_an_empty_bloom(fresh_chain: Chain) -> None:
    fresh_chain.mine()
    header = fresh_chain.anvil.rpc("eth_getBlockByNumber", "latest", False)
    bloom = parse_bloom(header["logsBloom"])
    assert bloom == 0 == logs_bloom([])
    assert not may_contain(bloom, bytes(20))


def test_each_item_sets_one_to_three_of_the_2048_bits() -> None:
    rng = random.Random(1)
    for _ in range(500):
        mask = bloom_mask(rng.randbytes(32))
        assert 1 <= mask.bit_count() <= 3
        assert mask < 1 << BLOOM_BITS
    full = (1 << BLOOM_BITS) - 1
    assert may_contain(full, b"anything") and not may_contain(0, b"anything")


@pytest.mark.parametrize(
    "value",
    ["", "0x", "0x" + "00" * 255, "0x" + "00" * 257, "00" * 258, "0x" + "zz" * 256, None, 7],
)
def test_a_malformed_bloom_is_refused(value: Any) -> None:
    with pytest.raises(MalformedBloom):
        parse_bloom(value)
