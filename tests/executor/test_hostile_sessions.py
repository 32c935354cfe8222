"""Hostile tokens on a real anvil: a HostileToken the registry lists, honest until it is
switched (it reverts, burns all the gas it gets, reverts with up to a megabyte, blocks
the owner, or re-enters the wallet), under sessions closed beside honest ones.

For each mode: the honest sessions close in one batch, the hostile session is taken out
of batching with an alert naming why, is tried alone at most once (the preflight refuses
what reverts; one that turns between preflight and mining is mined reverted once), ends
failed with an alert, and the relayer's mined transactions stay bounded (counted on the
chain). A token that only needs more gas than the stipend closes alone, within
`single_close_gas_cap`, or fails naming the cap; a de-listed token's sessions are closed
one by one; members a batch did not reach are sent again and close.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from eth_abi.abi import decode
from web3.contract import Contract
from web3.types import TxData, TxParams

from chain import calls
from tests._chain import Chain
from tests.conftest import TOKEN, Roles, Session, Stack, create_session, session_params
from tests.executor._support import GWEI, Rig, rig, table
from warden.devnet import Anvil

HONEST, REVERT, BURN, REVERT_DATA, FEE, BLOCKLIST, REENTER = range(7)
SWITCHED = "unknown error 0xf38a38fe"  # HostileToken's Switched(uint8): not in our ABIs


@pytest.fixture
def hostile(fresh_chain: Chain, stack: Stack, roles: Roles) -> Contract:
    """A HostileToken the registry lists, the owner holding plenty."""
    token = fresh_chain.deploy("HostileToken", "Hostile", "HST")
    fresh_chain.send(stack.factory.functions.setTrustedToken(token.address, True), roles.deployer)
    fresh_chain.send(token.functions.mint(roles.owner, 10**9 * TOKEN), roles.deployer)
    return token


@pytest.fixture
def hostile_session(
    fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract
) -> Callable[[], Session]:
    salts = iter(range(10_000, 20_000))

    def make() -> Session:
        params = session_params(fresh_chain, stack, roles, token=hostile.address)
        fee = stack.factory.functions.feeFor(params["deposit"]).call()
        approve = hostile.functions.approve(stack.factory.address, params["deposit"] + fee)
        fresh_chain.send(approve, roles.owner)
        salt = next(salts).to_bytes(32, "big")
        return create_session(fresh_chain, stack, roles.owner, params, salt)

    return make


def switch(chain: Chain, roles: Roles, token: Contract, mode: int, wallet: str) -> None:
    """Turn the token hostile: `wallet` is the session it should hurt where it aims."""
    if mode == BLOCKLIST:
        chain.send(token.functions.setBlocked(roles.owner, True), roles.deployer)
    if mode == REENTER:
        close = calls.single(wallet, "close", "stop_loss").payload
        chain.send(token.functions.setReentry(wallet, close), roles.deployer)
    param = {REVERT_DATA: 1_000_000, FEE: 500}.get(mode, 0)
    chain.send(token.functions.setMode(mode, param), roles.deployer)


def queue_switch(chain: Chain, roles: Roles, token: Contract, mode: int, param: int = 0) -> None:
    """Queue a switch ahead of what the relayer already sent (a higher tip), without
    waiting for it: it lands between our preflight and the mining of our transaction."""
    tx = token.functions.setMode(mode, param).build_transaction(
        cast(TxParams, {"from": roles.deployer, "maxPriorityFeePerGas": 50 * GWEI,
                        "maxFeePerGas": 100 * GWEI, "gas": 100_000})
    )  # fmt: skip
    chain.w3.eth.send_transaction(tx)


def relayer_transactions(chain: Chain, relayer: str, first: int) -> list[tuple[str, list[str]]]:
    """(kind, wallets) of every mined transaction of the relayer, in order."""
    out: list[tuple[str, list[str]]] = []
    for number in range(first, chain.w3.eth.block_number + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in cast("list[TxData]", block["transactions"]):
            if tx["from"] != relayer:
                continue
            data = bytes(tx["input"])
            if data[:4] == calls.CLOSE_BATCH:
                wallets, _, _ = decode(["address[]", "uint8[]", "uint256"], data[4:])
                out.append(("batch", [chain.w3.to_checksum_address(w) for w in wallets]))
            else:
                out.append(("close", [str(tx["to"])]))
    return out


def alerts(r: Rig, kind: str) -> list[str]:
    return [a.message for a in r.executor.protection().alerts if a.kind == kind]


@pytest.fixture
def automine_restored(anvil: Anvil) -> Iterator[None]:
    try:
        yield
    finally:
        anvil.rpc("evm_setAutomine", True)


MODES = [
    pytest.param(REVERT, SWITCHED, SWITCHED, id="revert"),
    pytest.param(BURN, "ran out of its gas stipend", "empty revert", id="burn-all-gas"),
    pytest.param(
        REVERT_DATA, "ran out of its gas stipend", "unknown error 0x00000000", id="megabyte-revert"
    ),
    pytest.param(BLOCKLIST, "unknown error", "unknown error", id="blocklist"),
    pytest.param(REENTER, "ReentrancyGuardReentrantCall", "ReentrancyGuardReentrantCall",
                 id="re-enter"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "in_batch", "alone"), MODES)
async def test_a_token_switched_before_the_step_is_isolated_and_failed_without_a_send(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path, mode: int, in_batch: str, alone: str,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    honest = [make_session() for _ in range(3)]
    bad = hostile_session()
    switch(fresh_chain, roles, hostile, mode, bad.wallet.address)
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in (honest[0], bad, *honest[1:])]
        await r.run()
        states = [await r.state(k) for k in keys]
        (isolated,) = alerts(r, "isolated")
        (failed,) = alerts(r, "close_failed")
        jobs = table(r.db_path, "SELECT kind, receipt_status FROM jobs")
    assert [s for s, _ in states] == ["confirmed", "failed", "confirmed", "confirmed"]
    assert bad.wallet.address in isolated and in_batch in isolated
    assert keys[1] in failed and alone in failed
    assert str(states[1][1]).startswith(f"preflight: {alone}")
    # The simulation found it: the honest three went in one batch; nothing was sent for it.
    assert jobs == [("batch", 1)]
    mined = relayer_transactions(fresh_chain, roles.operator, start)
    assert mined == [("batch", [s.wallet.address for s in honest])]


@pytest.mark.parametrize(("mode", "in_batch", "alone"), MODES)
async def test_a_token_switched_after_the_batch_was_sent_is_isolated_once(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path, automine_restored: None, mode: int, in_batch: str, alone: str,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    honest = [make_session() for _ in range(3)]
    bad = hostile_session()
    wallets = [s.wallet.address for s in (honest[0], bad, *honest[1:])]
    if mode in (BLOCKLIST, REENTER):  # their aim first; the switch itself comes later
        switch(fresh_chain, roles, hostile, mode, bad.wallet.address)
        fresh_chain.send(hostile.functions.setMode(HONEST, 0), roles.deployer)
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(w) for w in wallets]
        anvil.rpc("evm_setAutomine", False)
        await r.step(index=False)  # simulated whole (honest still), signed and sent
        queue_switch(fresh_chain, roles, hostile, mode, 1_000_000 if mode == REVERT_DATA else 0)
        anvil.rpc("evm_mine")
        anvil.rpc("evm_setAutomine", True)
        await r.run()
        states = [await r.state(k) for k in keys]
        (isolated,) = alerts(r, "isolated")
        (failed,) = alerts(r, "close_failed")
    assert [s for s, _ in states] == ["confirmed", "failed", "confirmed", "confirmed"]
    assert "in closeBatch 0x" in isolated and in_batch in isolated
    assert keys[1] in failed and alone in failed
    # One batch, whose honest members closed; the hostile one never tried again: the
    # preflight of its close alone refuses it.
    assert relayer_transactions(fresh_chain, roles.operator, start) == [("batch", wallets)]


async def test_a_token_that_turns_between_preflight_and_mining_is_tried_alone_once(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path, automine_restored: None,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    good, bad = make_session(), hostile_session()
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in (good, bad)]
        anvil.rpc("evm_setAutomine", False)
        await r.step()  # the batch, proven while the token is honest
        queue_switch(fresh_chain, roles, hostile, REVERT)
        anvil.rpc("evm_mine")  # the switch, then the batch: the member fails
        queue_switch(fresh_chain, roles, hostile, HONEST)
        anvil.rpc("evm_mine")
        await r.step()  # the receipt: isolated; alone, its preflight passes: sent
        queue_switch(fresh_chain, roles, hostile, REVERT)
        anvil.rpc("evm_mine")  # the switch, then the close alone: reverted
        anvil.rpc("evm_setAutomine", True)
        fresh_chain.send(hostile.functions.setMode(HONEST, 0), roles.deployer)
        for _ in range(5):  # its receipt, then nothing more for it
            await r.step()
        states = [await r.state(k) for k in keys]
        assert len(alerts(r, "isolated")) == len(alerts(r, "close_failed")) == 1
    assert states[0][0] == "confirmed"
    assert states[1] == ("failed", "reverted on chain: no reason given")
    mined = relayer_transactions(fresh_chain, roles.operator, start)
    assert mined == [("batch", [good.wallet.address, bad.wallet.address]),
                     ("close", [bad.wallet.address])]  # fmt: skip


@pytest.mark.parametrize(("cap", "closes"), [(300_000, True), (70_000, False)])
async def test_a_token_that_needs_more_than_the_stipend_closes_alone_within_the_cap(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path, cap: int, closes: bool,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    honest = [make_session() for _ in range(3)]
    heavy = hostile_session()
    # Fee on transfer: a close alone takes about 72,700 gas, more than a stipend of 45,000.
    switch(fresh_chain, roles, hostile, FEE, heavy.wallet.address)
    async with rig(
        anvil.url, tmp_path / "w.db", stack.factory.address, start,
        batch_member_gas=45_000, single_close_gas_cap=cap,
    ) as r:  # fmt: skip
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in (honest[0], heavy, *honest[1:])]
        await r.run()
        states = [await r.state(k) for k in keys]
        (isolated,) = alerts(r, "isolated")
        failed = alerts(r, "close_failed")
    assert "ran out of its gas stipend (45000)" in isolated
    mined = relayer_transactions(fresh_chain, roles.operator, start)
    assert mined[0] == ("batch", [s.wallet.address for s in honest])
    if closes:
        assert [s for s, _ in states] == ["confirmed"] * 4
        assert mined[1:] == [("close", [heavy.wallet.address])] and failed == []
    else:
        assert states[1][0] == "failed" and "above single_close_gas_cap 70000" in str(states[1][1])
        assert mined[1:] == [] and len(failed) == 1 and "70000" in failed[0]


async def test_a_delisted_token_is_closed_one_by_one(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    sessions = [make_session(), hostile_session(), make_session(), hostile_session()]
    fresh_chain.send(
        stack.factory.functions.setTrustedToken(hostile.address, False), roles.deployer
    )
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in sessions]
        await r.run()
        states = [(await r.state(k))[0] for k in keys]
        assert alerts(r, "isolated") == []
    assert states == ["confirmed"] * 4
    mined = relayer_transactions(fresh_chain, roles.operator, start)
    assert mined[0] == ("batch", [sessions[0].wallet.address, sessions[2].wallet.address])
    assert sorted(mined[1:]) == sorted(
        ("close", [s.wallet.address]) for s in (sessions[1], sessions[3])
    )


async def test_two_members_burning_their_stipend_stop_the_batch_and_the_rest_goes_again(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, hostile: Contract,
    make_session: Callable[..., Session], hostile_session: Callable[[], Session],
    tmp_path: Path, automine_restored: None,
) -> None:  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    burners = [hostile_session(), hostile_session()]
    good = make_session()
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in (*burners, good)]
        anvil.rpc("evm_setAutomine", False)
        await r.step(index=False)
        queue_switch(fresh_chain, roles, hostile, BURN)
        anvil.rpc("evm_mine")
        anvil.rpc("evm_setAutomine", True)
        await r.run()
        states = [(await r.state(k))[0] for k in keys]
        misses = table(r.db_path, "SELECT mined_without_effect FROM intents ORDER BY id")
        assert len(alerts(r, "isolated")) == len(alerts(r, "close_failed")) == 2
        assert alerts(r, "no_effect") == []
    # The batch kept one stipend to spare: the second burner spent it, so the batch
    # stopped before the honest member and reported it; it closed on its own next.
    (incomplete,) = stack.factory.events.BatchIncomplete().get_logs(from_block=start)
    assert list(incomplete["args"]["unreached"]) == [good.wallet.address]
    assert states == ["failed", "failed", "confirmed"]
    assert misses == [(0,)] * 3
    mined = relayer_transactions(fresh_chain, roles.operator, start)
    assert mined == [
        ("batch", [s.wallet.address for s in (*burners, good)]),
        ("close", [good.wallet.address]),
    ]
