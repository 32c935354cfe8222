"""An expiry storm's sending, on the in-process node: no transaction above the node's block
gas limit, many batches in flight at consecutive nonces (and a crash between the
write-ahead and the send in the middle of them), and a mined job's receipt asked once
(also counted through a recording proxy in front of a real anvil)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from chain import calls
from executor.batching import BATCH_MEMBER_GAS
from executor.capacity import IN_FLIGHT_BLOCKS, intake, room
from tests._chain import Chain
from tests._rpc_proxy import FaultyProxy
from tests.conftest import Session, Stack
from tests.executor._fake_node import FakeNode
from tests.executor._support import rig as support_rig
from tests.executor.test_batching import FACTORY, Rig
from tests.executor.test_batching import rig as rig
from warden.devnet import Anvil

STORM: list[str] = [to_checksum_address(f"0x{0x1000 + i:040x}") for i in range(60)]
# more than the room in flight takes at once on a 1M-gas chain (`IN_FLIGHT_BLOCKS` blocks)
BIG_STORM: list[str] = [to_checksum_address(f"0x{0x1000 + i:040x}") for i in range(160)]


class Crash(Exception):
    """What the hook raises to stop a step where a kill would."""


def crash_at(point: str, nth: int) -> tuple[list[int], object]:
    reached = [0]

    def hook(name: str) -> None:
        if name == point:
            reached[0] += 1
            if reached[0] == nth:
                raise Crash(f"{point} #{nth}")

    return reached, hook


def batch_sizes(node: FakeNode) -> list[int]:
    """Members of each mined batch."""
    return [
        int(tx.data[10 + 64 * 3 : 10 + 64 * 4], 16)
        for tx in node.mined()
        if tx.to == FACTORY.lower()
    ]


def closed_once(rig: Rig, wallets: list[str] = STORM) -> None:
    """Every storm wallet closed by exactly one mined transaction of the relayer."""
    closed: list[str] = []
    for tx in rig.node.mined(rig.executor.relayer):
        _, logs = rig.node.effects(tx.to, tx.data)
        closed += [log["address"] for log in logs if log["address"] != FACTORY.lower()]
    assert sorted(closed) == sorted(w.lower() for w in wallets)


async def storm(rig: Rig, wallets: list[str] = STORM) -> list[str]:
    return [await rig.intend(w) for w in wallets]


# -- the block gas limit ------------------------------------------------------------------


@pytest.mark.parametrize("gas_limit", [30_000_000, 15_000_000, 2_000_000, 500_000, 130_000])
def test_max_batch_members_keeps_any_batch_within_the_limit(gas_limit: int) -> None:
    n = calls.max_batch_members(gas_limit, calls.MEMBER_GAS, BATCH_MEMBER_GAS)
    costly = [(f"0x{'ff' * 20}", "close", "expired")] * 257  # every byte that can be nonzero
    if n >= 1:
        call = calls.batch(FACTORY, costly[:n])
        assert calls.batch_gas(call, n, BATCH_MEMBER_GAS) <= gas_limit
    if n < 256:  # the most: one more does not fit
        call = calls.batch(FACTORY, costly[: n + 1])
        assert calls.batch_gas(call, n + 1, BATCH_MEMBER_GAS) > gas_limit
    assert n <= 256


async def test_no_batch_is_larger_than_the_nodes_block(rig: Rig) -> None:
    rig.node.gas_limit = 1_000_000  # about 14 members of 60,000 gas each
    rig.settings = {"max_batch_size": 256}
    most = calls.max_batch_members(1_000_000, calls.MEMBER_GAS, BATCH_MEMBER_GAS)
    async with rig.running() as ex:
        keys = await storm(rig)
        for _ in range(12):
            await rig.step()
            rig.node.mine()
        await rig.step()
        assert {(await rig.state(k))[0] for k in keys} == {"confirmed"}
        assert ex.submitter.block_gas_limit == 1_000_000
    assert all(tx.gas <= 1_000_000 for tx in rig.node.accepted)
    sizes = batch_sizes(rig.node)
    assert sum(sizes) == len(STORM) and max(sizes) == most and 2 <= most < 20
    sends = [r for r in rig.node.requests if r[0] == "eth_sendRawTransaction"]
    assert len(sends) == len(rig.node.accepted)  # nothing was refused for its size
    closed_once(rig)


async def test_a_block_too_small_for_two_members_closes_each_alone_within_it(rig: Rig) -> None:
    rig.node.gas_limit = 120_000  # a batch of two needs ~250,000; a close alone 100,000
    rig.settings = {"max_batch_size": 256}
    async with rig.running():
        keys = await storm(rig, STORM[:6])
        await rig.settle()
        assert {(await rig.state(k))[0] for k in keys} == {"confirmed"}
    assert batch_sizes(rig.node) == []
    assert len(rig.node.mined()) == 6 and all(tx.gas <= 120_000 for tx in rig.node.accepted)


async def test_a_close_whose_estimate_is_above_the_block_fails_naming_the_limit(
    rig: Rig,
) -> None:
    rig.node.gas_limit = 120_000
    rig.node.gas_estimate = 150_000  # under single_close_gas_cap (300,000), over the block
    async with rig.running():
        (key,) = await storm(rig, STORM[:1])
        await rig.step()
        state, detail = await rig.state(key)
    assert state == "failed" and "the node's block gas limit 120000" in detail
    assert rig.node.accepted == []


# -- in flight -----------------------------------------------------------------------------


def test_the_intake_follows_the_room_in_flight() -> None:
    assert intake(None, 0) > 0
    assert intake(30_000_000, 0) == IN_FLIGHT_BLOCKS * 30_000_000 // 60_600
    assert intake(30_000_000, IN_FLIGHT_BLOCKS * 30_000_000) == 0
    assert room(30_000_000, 10_000_000) == IN_FLIGHT_BLOCKS * 30_000_000 - 10_000_000


async def test_many_batches_in_flight_at_consecutive_nonces(rig: Rig) -> None:
    rig.node.gas_limit = 1_000_000
    rig.settings = {"max_batch_size": 256, "replace_after_blocks": 50}
    async with rig.running():
        await storm(rig, BIG_STORM)
        report = await rig.step()  # sized by the block gas limit read at start
        assert report.backlog  # intents left waiting for room: the loop is under load
        in_flight = len(rig.node.pool)
        assert in_flight >= 2  # several batches wait in the pool at once
        gas = sum(tx.gas for tx in rig.node.pool.values())
        assert gas <= IN_FLIGHT_BLOCKS * 1_000_000
        report = await rig.step()
        assert len(rig.node.pool) == in_flight  # full: nothing more until blocks are mined
        assert report.backlog and not report.busy  # no work for a step before a block
        for _ in range(30):
            rig.node.mine()
            report = await rig.step()
        assert not report.backlog  # all sent: the load is over
    nonces = [tx.nonce for tx in rig.node.mined(rig.executor.relayer)]
    assert nonces == list(range(len(nonces)))
    closed_once(rig, BIG_STORM)


@pytest.mark.parametrize(
    ("point", "nth", "before"),
    [("signed", 1, 0), ("signed", 3, 0), ("sent", 2, 0), ("sent", 3, 0), ("signed", 1, 1)],
)
async def test_a_crash_among_many_in_flight_settles_each_intent_once(
    rig: Rig, point: str, nth: int, before: int
) -> None:
    """A step writes several batches ahead and dies before sending them, or
    while it records the node's answers; `before` steps ran first (a pipeline already in
    flight). A new executor on the same file sends what was written, at the nonces it
    was written with, and each wallet is closed once, with no nonce skipped."""
    rig.node.gas_limit = 1_000_000
    rig.settings = {"max_batch_size": 256, "replace_after_blocks": 50}
    reached, hook = crash_at(point, nth)
    async with rig.running() as ex:
        keys = await storm(rig, BIG_STORM)
        for _ in range(before):
            await rig.step()
            rig.node.mine()
        ex.sender.hook = hook  # type: ignore[assignment]
        with pytest.raises(Crash):
            await rig.step()
        written = await rig.outbox.jobs("live")
        assert len(written) >= nth if point == "signed" else len(written) >= 3
    assert reached[0] == nth
    async with rig.running():  # the restart: nonces synced from the node and the outbox
        for _ in range(30):
            await rig.step()
            rig.node.mine()
        await rig.step()
        assert {(await rig.state(k))[0] for k in keys} == {"confirmed"}
    nonces = [tx.nonce for tx in rig.node.mined(rig.executor.relayer)]
    assert nonces == list(range(len(nonces)))
    assert len({tx.nonce for tx in rig.node.accepted}) == len(nonces)  # no nonce abandoned
    closed_once(rig, BIG_STORM)


# -- receipts --------------------------------------------------------------------------------


async def test_a_mined_jobs_receipt_is_asked_once_until_a_reorg_takes_its_block(
    rig: Rig,
) -> None:
    rig.settings = {"max_batch_size": 256}
    async with rig.running():
        keys = await storm(rig, STORM[:10])
        await rig.step()
        (tx,) = rig.node.pool.values()
        rig.node.mine()
        rig.now_ms += 1000
        await rig.executor.step(rig.node.head.timestamp)  # mined, not indexed: stays mined
        assert {(await rig.state(k))[0] for k in keys} == {"mined"}
        assert rig.node.asked("eth_getTransactionReceipt", tx.hash) == 1
        for _ in range(3):
            rig.node.mine()
            rig.now_ms += 1000
            await rig.executor.step(rig.node.head.timestamp)
        assert rig.node.asked("eth_getTransactionReceipt", tx.hash) == 1
        rig.node.reorg(4)  # its block goes: the receipt is asked again, the job reopens
        rig.node.mine()
        rig.now_ms += 1000
        report = await rig.executor.step(rig.node.head.timestamp)
        assert report.reopened == 1
        assert rig.node.asked("eth_getTransactionReceipt", tx.hash) == 2
        for _ in range(3):
            await rig.step()
            rig.node.mine()
        await rig.step()
        assert {(await rig.state(k))[0] for k in keys} == {"confirmed"}
    assert len(rig.node.mined(rig.executor.relayer)) == 1  # the batch, mined again once


async def test_on_anvil_a_mined_batchs_receipt_is_fetched_once(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    """Counted by a recording proxy in front of a real anvil: while the indexer has not
    seen the batch's block, steps go on asking for the block, not for the receipt."""
    start = fresh_chain.w3.eth.block_number + 1
    wallets = [make_session().wallet.address for _ in range(4)]
    with FaultyProxy(anvil.url) as proxy:
        async with support_rig(proxy.url, tmp_path / "w.db", stack.factory.address, start,
                               max_batch_size=4) as r:  # fmt: skip
            await r.index()
            keys = [await r.intend(w, "idle") for w in wallets]
            assert (await r.step()).jobs == 1  # automine: mined as it is sent
            assert (await r.step(index=False)).mined == 1
            receipts = proxy.stats()["forwarded"]["eth_getTransactionReceipt"]
            for _ in range(3):
                anvil.rpc("evm_mine")
                await r.step(index=False)
                assert {(await r.state(k))[0] for k in keys} == {"mined"}
            assert proxy.stats()["forwarded"]["eth_getTransactionReceipt"] == receipts
            await r.step()
            assert {(await r.state(k))[0] for k in keys} == {"confirmed"}
