"""A batch is sent with the gas limit `calls.batch_gas` computes, never an estimate (a
`closeBatch` succeeds whatever its members do, so eth_estimateGas finds the gas of a batch
that stops at once). A simulation that falls short (a member already closed, or an
allowance too small to reach every member) sends the batch's members through the
preflight, one by one, before they are grouped again; members a batch did not reach
(`BatchIncomplete`) are sent again, never counted as closes without effect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from eth_typing import HexStr

from chain import calls
from tests._chain import Chain, CloseReason
from tests.conftest import Roles, Session, Stack
from tests.executor._support import rig, table
from warden.devnet import Anvil


def gas_limit(chain: Chain, tx_hash: str) -> int:
    return int(chain.w3.eth.get_transaction(HexStr(tx_hash))["gas"])


async def test_verified_batch_is_sent_with_its_allowance_and_closes_every_member(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    sessions = [make_session() for _ in range(5)]
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address, "expired") for s in sessions]
        await r.run()
        states = [(await r.state(k))[0] for k in keys]
        (job,) = table(r.db_path, "SELECT kind, data, mined_hash FROM jobs")
    assert states == ["confirmed"] * 5
    kind, data, mined = job
    assert kind == "batch"
    expected = calls.batch_gas(calls.Call("batch", stack.factory.address, data), 5, 60_000)
    assert gas_limit(fresh_chain, mined) == expected


async def test_batch_with_a_closed_member_falls_back_to_preflight_and_goes_without_it(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles,
    make_session: Callable[..., Session], tmp_path: Path,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    sessions = [make_session() for _ in range(4)]
    bad = sessions[2]
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address, "expired") for s in sessions]
        # Closed on chain by its owner after the indexer looked: only the chain knows.
        fresh_chain.send(bad.wallet.functions.close(CloseReason.OWNER), roles.owner)
        await r.step(index=False)
        states = [await r.state(k) for k in keys]
        (job,) = table(r.db_path, "SELECT kind, gas, data FROM jobs")
        await r.run()
        final = [(await r.state(k))[0] for k in keys]
    # the chain says closed, the index does not yet: it waits for the index (index_behind),
    # out of the batch, which goes without it; indexed, it is obsolete
    assert states[2][0] == "pending" and "SessionIsClosed" in str(states[2][1])
    assert "index_behind" in str(states[2][1])
    kind, gas, data = job
    assert kind == "batch"
    # the computed limit of the 3 members left, not an estimate
    assert gas == calls.batch_gas(calls.Call("batch", stack.factory.address, data), 3, 60_000)
    assert final == ["confirmed", "confirmed", "obsolete", "confirmed"]


async def test_members_a_batch_did_not_reach_are_sent_again_not_counted(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    sessions = [make_session() for _ in range(3)]
    async with rig(
        anvil.url, tmp_path / "w.db", stack.factory.address, start, member_allowance=5_000
    ) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address, "expired") for s in sessions]
        await r.run()
        states = [(await r.state(k))[0] for k in keys]
        jobs = table(r.db_path, "SELECT kind, receipt_status FROM jobs ORDER BY id")
        misses = table(r.db_path, "SELECT mined_without_effect FROM intents")
    assert states == ["confirmed"] * 3
    # An allowance of 5,000 a member leaves room for one close above the reserve: each
    # batch closes one member and reports the others unreached, which go again.
    assert jobs == [("batch", 1), ("batch", 1), ("close", 1)]
    assert misses == [(0,)] * 3
    unreached = stack.factory.events.BatchIncomplete().get_logs(from_block=start)
    assert [len(e["args"]["unreached"]) for e in unreached] == [2, 1]


def test_simulated_count_reads_only_a_successful_uint256() -> None:
    ok = [{"calls": [{"status": "0x1", "returnData": "0x" + "00" * 31 + "05"}]}]
    out_of_gas = [{"calls": [{"status": "0x0", "returnData": "0x", "error": {"code": -3200}}]}]
    assert calls.simulated_count(ok) == 5
    assert calls.simulated_count(out_of_gas) is None
    assert calls.simulated_count([{"calls": [{"status": "0x1", "returnData": "0x"}]}]) is None
    assert calls.simulated_count({"unexpected": True}) is None
    assert calls.simulated_count(None) is None
