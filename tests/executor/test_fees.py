"""EIP-1559 fees: market fees from eth_feeHistory, replacements that a node accepts, the
cap, exact integer math, malformed answers, and the real thing on anvil."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import ChainClient
from chain.client import RetryPolicy
from chain.errors import BadResponse
from chain.units import GWEI
from executor.fees import (
    FeePolicy,
    Fees,
    exceeds_cap,
    fetch_fees,
    market_fees,
    replacement,
    within_cap,
)
from executor.signer import Signer
from tests._chain import Chain
from warden.devnet import DEVNET_KEYS, Anvil

WEI = st.integers(0, 10**30)  # far above any real fee, still exact


@st.composite
def fees(draw: st.DrawFn) -> Fees:
    fee = draw(WEI)
    return Fees(fee, draw(st.integers(0, fee)))


@st.composite
def policies(draw: st.DrawFn) -> FeePolicy:
    return FeePolicy(
        base_fee_multiplier=draw(st.integers(1, 5)),
        min_tip=draw(st.integers(0, 10 * GWEI)),
        replacement_bump_percent=draw(st.integers(10, 100)),
        max_fee_per_gas=draw(st.none() | st.integers(10 * GWEI, 10**30)),
    )


def history(base: list[int], rewards: list[int] | None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "oldestBlock": "0x10",
        "baseFeePerGas": [hex(b) for b in base],
        "gasUsedRatio": [0.5] * (len(base) - 1),
    }
    if rewards is not None:
        answer["reward"] = [[hex(r)] for r in rewards]
    return answer


def geth_accepts(old: Fees, new: Fees) -> bool:
    """geth's txpool rule (legacypool, pricebump 10): both fields at least old * 110 / 100
    (integer division) and the replacement not identical."""
    return (
        new.max_fee_per_gas >= old.max_fee_per_gas * 110 // 100
        and new.max_priority_fee_per_gas >= old.max_priority_fee_per_gas * 110 // 100
        and new != old
    )


# -- market fees -----------------------------------------------------------------------


def test_market_fees_use_the_next_base_fee_and_the_median_tip() -> None:
    policy = FeePolicy()
    answer = history([100 * GWEI, 90 * GWEI, 80 * GWEI, 7 * GWEI], [3 * GWEI, 2 * GWEI, 5 * GWEI])
    assert market_fees(answer, policy) == Fees(2 * 7 * GWEI + 3 * GWEI, 3 * GWEI)
    triple = FeePolicy(base_fee_multiplier=3)
    assert market_fees(answer, triple).max_fee_per_gas == 3 * 7 * GWEI + 3 * GWEI


@pytest.mark.parametrize(
    "rewards", [None, [], [0, 0, 0], [0, 1, 0]], ids=["missing", "empty", "zeros", "below-min"]
)
def test_no_evidence_of_a_tip_means_the_minimum(rewards: list[int] | None) -> None:
    policy = FeePolicy(min_tip=2 * GWEI)
    answer = history([GWEI] * 4, rewards)
    if rewards == []:
        answer["reward"] = []
    assert market_fees(answer, policy) == Fees(2 * GWEI + 2 * GWEI, 2 * GWEI)


def test_zero_rewards_are_empty_blocks_not_a_price() -> None:
    policy = FeePolicy(min_tip=1)
    answer = history([GWEI] * 6, [0, 0, 5 * GWEI, 0, 7 * GWEI])
    assert market_fees(answer, policy).max_priority_fee_per_gas == 7 * GWEI  # of [5, 7]


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(WEI, min_size=1, max_size=20),
    data=st.data(),
    policy=policies(),
)
def test_market_fees_math(base: list[int], data: st.DataObject, policy: FeePolicy) -> None:
    rewards = data.draw(st.none() | st.lists(WEI, min_size=len(base) - 1, max_size=len(base) - 1))
    got = market_fees(history(base, rewards), policy)
    assert type(got.max_fee_per_gas) is int and type(got.max_priority_fee_per_gas) is int
    tip = got.max_priority_fee_per_gas
    assert got.max_fee_per_gas == base[-1] * policy.base_fee_multiplier + tip
    assert tip >= policy.min_tip
    paid = [r for r in rewards or [] if r > 0]
    assert tip == policy.min_tip or tip in paid
    if paid:
        assert min(paid) <= tip or tip == policy.min_tip
        assert tip <= max(max(paid), policy.min_tip)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"baseFeePerGas": []}, "baseFeePerGas"),
        ({"baseFeePerGas": None}, "baseFeePerGas"),
        ({"baseFeePerGas": "0x1"}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", 5]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", "12"]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0xzz", "0x1"]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", "0x"]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", "0x_1"]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", "0x1 "]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", "0x" + "f" * 65]}, "baseFeePerGas"),
        ({"baseFeePerGas": ["0x1", 1.5]}, "baseFeePerGas"),
        ({"reward": [["0x1"], ["0x2"]]}, "reward"),
        ({"reward": [["0x1", "0x2"]]}, "reward"),
        ({"reward": ["0x1"]}, "reward"),
        ({"reward": [["-0x1"]]}, "reward"),
        ({"reward": {"0": "0x1"}}, "reward"),
        ({"oldestBlock": 16}, "oldestBlock"),
    ],
)
def test_malformed_answers_name_the_field(change: dict[str, Any], field: str) -> None:
    answer = {**history([GWEI, GWEI], [GWEI]), **change}
    with pytest.raises(BadResponse, match=f"eth_feeHistory {field}"):
        market_fees(answer, FeePolicy())


@pytest.mark.parametrize("answer", [None, [], "0x1", 7])
def test_an_answer_that_is_not_an_object(answer: Any) -> None:
    with pytest.raises(BadResponse, match="eth_feeHistory"):
        market_fees(answer, FeePolicy())


# -- replacement -----------------------------------------------------------------------


@settings(max_examples=1000, deadline=None)
@given(previous=fees(), market=fees(), policy=policies(), capped=st.booleans())
def test_replacement_math(previous: Fees, market: Fees, policy: FeePolicy, capped: bool) -> None:
    got = replacement(previous, market, policy, capped=capped)
    bump = 100 + policy.replacement_bump_percent
    need_fee = -(-previous.max_fee_per_gas * bump // 100)
    need_tip = -(-previous.max_priority_fee_per_gas * bump // 100)
    cap = policy.max_fee_per_gas if capped else None
    # None exactly when the cap is below the least fee that could replace
    floor = max(need_fee, previous.max_fee_per_gas + 1)
    assert (got is None) == (cap is not None and cap < floor)
    if got is None:
        return
    assert type(got.max_fee_per_gas) is int and type(got.max_priority_fee_per_gas) is int
    assert got.max_fee_per_gas >= need_fee and got.max_priority_fee_per_gas >= need_tip
    assert got.max_fee_per_gas > previous.max_fee_per_gas
    assert got.max_priority_fee_per_gas > previous.max_priority_fee_per_gas
    assert geth_accepts(previous, got)
    assert got.max_priority_fee_per_gas <= got.max_fee_per_gas
    if cap is not None:
        assert got.max_fee_per_gas <= cap
    if cap is None or cap >= market.max_fee_per_gas:
        assert got.max_fee_per_gas >= market.max_fee_per_gas
        assert got.max_priority_fee_per_gas >= market.max_priority_fee_per_gas
    if cap is None or cap >= max(need_fee, market.max_fee_per_gas):
        # the cap did not bite: the least fees that beat both
        assert got == replacement(previous, market, FeePolicy(
            replacement_bump_percent=policy.replacement_bump_percent), capped=False)  # fmt: skip
        assert got.max_fee_per_gas == max(need_fee, previous.max_fee_per_gas + 1,
                                          market.max_fee_per_gas)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(previous=fees(), market=fees(), policy=policies())
def test_a_cancel_always_has_fees(previous: Fees, market: Fees, policy: FeePolicy) -> None:
    got = replacement(previous, market, policy, capped=False)
    assert got is not None and geth_accepts(previous, got)


def test_replacement_at_the_cap_waits() -> None:
    policy = FeePolicy(max_fee_per_gas=100 * GWEI)
    sent = Fees(80 * GWEI, 2 * GWEI)
    market = Fees(60 * GWEI, 2 * GWEI)
    first = replacement(sent, market, policy)
    assert first == Fees(90_400_000_000, 2_260_000_000)  # +13% on both
    assert replacement(first, market, policy) is None  # 102.152 gwei would be over the cap
    near = Fees(95 * GWEI, 2 * GWEI)
    assert replacement(near, market, policy) is None
    # the same stuck transaction can always be cancelled, above the cap
    cancel = replacement(near, market, policy, capped=False)
    assert cancel == Fees(107_350_000_000, 2_260_000_000)


def test_cap_helpers() -> None:
    policy = FeePolicy(max_fee_per_gas=50 * GWEI)
    assert not exceeds_cap(Fees(50 * GWEI, GWEI), policy)
    assert exceeds_cap(Fees(50 * GWEI + 1, GWEI), policy)
    assert not exceeds_cap(Fees(10**30, GWEI), FeePolicy())
    assert within_cap(Fees(80 * GWEI, 60 * GWEI), policy) == Fees(50 * GWEI, 50 * GWEI)
    assert within_cap(Fees(40 * GWEI, GWEI), policy) == Fees(40 * GWEI, GWEI)


def test_a_zero_fee_is_still_replaced_by_a_higher_one() -> None:
    got = replacement(Fees(0, 0), Fees(0, 0), FeePolicy(min_tip=0))
    assert got == Fees(1, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_fee_per_gas": 1.5, "max_priority_fee_per_gas": 1},
        {"max_fee_per_gas": 10, "max_priority_fee_per_gas": 11},
        {"max_fee_per_gas": -1, "max_priority_fee_per_gas": 0},
        {"max_fee_per_gas": True, "max_priority_fee_per_gas": 0},
        {"max_fee_per_gas": 2**256, "max_priority_fee_per_gas": 0},
    ],
)
def test_fees_are_exact_ints(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fees(**bad)


@pytest.mark.parametrize(
    "bad",
    [
        {"replacement_bump_percent": 9},  # geth refuses a replacement under +10%
        {"replacement_bump_percent": 12.5},
        {"base_fee_multiplier": 0},
        {"tip_percentile": 101},
        {"min_tip": -1},
        {"max_fee_per_gas": 0},
        {"max_fee_per_gas": 1.0e9},
        {"history_blocks": 0},
    ],
)
def test_policy_rejects_what_cannot_work(bad: dict[str, Any]) -> None:
    (name,) = bad
    with pytest.raises(ValueError, match=f"fee policy {name}"):
        FeePolicy(**bad)


# -- against a node --------------------------------------------------------------------


@pytest.fixture
async def flaky_node() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A node whose first eth_feeHistory answer is malformed; the requests it saw."""
    seen: list[dict[str, Any]] = []
    answers = [{"baseFeePerGas": ["0x1", "0xnope"]}, history([GWEI, 3 * GWEI], [GWEI])]

    async def handle(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        seen.append(body)
        result = answers.pop(0) if body["method"] == "eth_feeHistory" else "0x7a69"
        return web.Response(body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"],
                                               "result": result}))  # fmt: skip

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", seen
    finally:
        await runner.cleanup()


async def test_fetch_fees_asks_again_after_a_malformed_answer(
    flaky_node: tuple[str, list[dict[str, Any]]],
) -> None:
    url, seen = flaky_node

    async def no_wait(_: float) -> None:
        return None

    policy = FeePolicy(history_blocks=7, tip_percentile=60)
    async with ChainClient([url], retry=RetryPolicy(attempts=3), sleep=no_wait) as client:
        got = await fetch_fees(client, policy)
        assert client.stats.errors == {"BadResponse": 1}
    assert got == Fees(2 * 3 * GWEI + GWEI, GWEI)
    assert [s["params"] for s in seen] == [["0x7", "latest", [60]]] * 2


def next_base_fee(block: dict[str, Any]) -> int:
    """EIP-1559's formula, computed from the head independently of eth_feeHistory."""
    base, used = int(block["baseFeePerGas"], 16), int(block["gasUsed"], 16)
    target = int(block["gasLimit"], 16) // 2
    if used == target:
        return base
    if used > target:
        return base + max(1, base * (used - target) // target // 8)
    return base - base * (target - used) // target // 8


async def test_fetch_fees_on_anvil_and_the_transaction_is_mined() -> None:
    # Its own node: after evm_revert, anvil's eth_feeHistory can still answer from blocks
    # the shared node's snapshots rolled back, which breaks the exact comparison below.
    policy = FeePolicy()
    with Anvil() as node:
        for _ in range(3):  # past genesis, whose successor keeps the initial base fee
            node.rpc("evm_mine")
        await _fetch_and_mine(node.url, policy)


async def _fetch_and_mine(url: str, policy: FeePolicy) -> None:
    async with ChainClient([url], chain_id=31337) as client:
        fees = await fetch_fees(client, policy)
        head = await client.get_block("latest")
        assert head is not None
        assert fees.max_fee_per_gas >= 2 * int(head["baseFeePerGas"], 16)
        tip = fees.max_priority_fee_per_gas
        assert tip >= policy.min_tip
        assert fees.max_fee_per_gas == 2 * next_base_fee(head) + tip

        signer = Signer.from_raw_key(DEVNET_KEYS[3], chain_id=31337)
        nonce = int(await client.call("eth_getTransactionCount", signer.address, "pending"), 16)
        signed = signer.sign(self_transfer(nonce, fees))
        assert await client.call("eth_sendRawTransaction", signed.raw) == signed.hash
        receipt = None
        for _ in range(100):  # automine, but the receipt may trail the send by a moment
            receipt = await client.call("eth_getTransactionReceipt", signed.hash)
            if receipt is not None:
                break
            await asyncio.sleep(0.05)
        assert receipt is not None and receipt["status"] == "0x1"
        mined = await client.get_block(int(receipt["blockNumber"], 16))
        assert mined is not None
        paid = int(receipt["effectiveGasPrice"], 16)
        assert paid == int(mined["baseFeePerGas"], 16) + tip <= fees.max_fee_per_gas


def self_transfer(nonce: int, fees: Fees, to: str | None = None) -> dict[str, Any]:
    signer_address = Signer.from_raw_key(DEVNET_KEYS[3], chain_id=31337).address
    return {
        "chainId": 31337,
        "nonce": nonce,
        "to": to or signer_address,
        "value": 0,
        "data": "0x",
        "gas": 21_000,
        "maxFeePerGas": fees.max_fee_per_gas,
        "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        "type": 2,
    }


async def test_anvil_takes_the_replacement_and_drops_the_original(fresh_chain: Chain) -> None:
    chain = fresh_chain
    policy = FeePolicy(max_fee_per_gas=1_000 * GWEI)
    signer = Signer.from_raw_key(DEVNET_KEYS[3], chain_id=31337)
    other = Signer.from_raw_key(DEVNET_KEYS[4], chain_id=31337).address
    chain.anvil.rpc("evm_setAutomine", False)
    try:
        async with ChainClient([chain.anvil.url], chain_id=31337) as client:
            market = await fetch_fees(client, policy)
            nonce = int(await client.call("eth_getTransactionCount", signer.address, "pending"), 16)
            first = signer.sign(self_transfer(nonce, market, to=other))
            await client.call("eth_sendRawTransaction", first.raw)
            bumped = replacement(market, market, policy)
            assert bumped is not None
            second = signer.sign(self_transfer(nonce, bumped))  # the cancel: to itself
            assert second.hash != first.hash
            assert await client.call("eth_sendRawTransaction", second.raw) == second.hash
            chain.anvil.rpc("evm_mine")
            receipt = await client.call("eth_getTransactionReceipt", second.hash)
            assert receipt is not None and receipt["status"] == "0x1"
            assert await client.call("eth_getTransactionReceipt", first.hash) is None
            assert int(await client.call("eth_getTransactionCount", signer.address, "latest"),
                       16) == nonce + 1  # fmt: skip
    finally:
        chain.anvil.rpc("evm_setAutomine", True)
