"""uint256 values round-trip exactly through the index; logs of look-alikes and of other
factories' wallets are ignored and counted; the balance audit finds a plain transfer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chain import ChainClient
from indexer import audit_balances
from tests._chain import Chain, selector
from tests.conftest import Roles, Session, Stack, as_tuple, session_params, top_up
from tests.indexer._support import FAST_RETRY, config, index_to_head, opened
from warden.devnet import deploy_contract

EDGES = [2**63 - 1, 2**63, 2**63 + 1, 2**64 - 1, 2**64, 2**64 + 1, 2**255 - 1, 2**255, 2**255 + 1]


@pytest.mark.parametrize("value", EDGES, ids=[hex(v) for v in EDGES])
async def test_uint256_values_round_trip_exactly(
    value: int,
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    chain.send(stack.factory.functions.setFee(0), roles.deployer)
    chain.send(stack.token.functions.mint(roles.owner2, value + 5), roles.deployer)
    s = make_session(
        owner=roles.owner2, deposit=value, budget=value - 1, stopLoss=value - 2,
        takeProfit=value + 3, expiry=2**64 - 1,
    )  # fmt: skip
    top_up(chain, stack, s.wallet, 5, roles.owner2)
    chain.send(s.wallet.functions.withdraw(value), roles.owner2)
    db_path = tmp_path / "x.sqlite"
    await index_to_head(chain.anvil.url, db_path, config(stack.factory.address))
    async with opened(db_path) as store:
        got = await store.session(s.wallet.address)
        events = await store.events(s.wallet.address)
    assert got is not None
    assert (got.initial_deposit, got.budget, got.stop_loss, got.take_profit) == (
        value, value - 1, value - 2, value + 3,
    )  # fmt: skip
    assert got.expiry == 2**64 - 1
    assert got.deposit == value + 5 and got.withdrawn == value and got.balance == 5
    assert [e.name for e in events] == ["SessionCreated", "Deposited", "Withdrawn"]
    assert events[2].args["amount"] == value and events[0].args["balanceAfter"] == value


async def test_look_alike_and_foreign_factory_logs_are_ignored_and_counted(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    ours = make_session()
    # A second, real factory: its sessions are genuine wallets, but not ours.
    other = chain.at(
        "SessionWalletFactory",
        deploy_contract(
            chain.w3, "SessionWalletFactory", roles.deployer, roles.deployer, roles.treasury, 0
        ),
    )
    chain.send(other.functions.setTrustedOperator(roles.operator, True), roles.deployer)
    chain.send(other.functions.setTrustedToken(stack.token.address, True), roles.deployer)
    play = selector("play(uint256)")
    chain.send(other.functions.setTrustedCall(stack.game.address, play, True), roles.deployer)
    params = session_params(chain, stack, roles, targets=[stack.game.address])
    chain.send(stack.token.functions.approve(other.address, params["deposit"]), roles.owner)
    chain.send(other.functions.createSession(as_tuple(params), b"\x01" * 32), roles.owner)
    foreign = other.functions.predictWallet(roles.owner, b"\x01" * 32).call()
    chain.send(chain.at("SessionWallet", foreign).functions.withdraw(1), roles.owner)
    look = stack.lookalike
    chain.send(look.functions.fakeDeposited(1, roles.owner, 5, 5), roles.stranger)
    chain.send(look.functions.fakeExecuted(2, stack.game.address, 1, 4), roles.stranger)
    chain.send(look.functions.fakeWithdrawn(3, roles.owner, 1, 3), roles.stranger)
    chain.send(look.functions.fakeClosed(4, 0, 3), roles.stranger)
    chain.send(look.functions.fakeSessionCreated(look.address, roles.owner, roles.operator,
                                                 stack.token.address), roles.stranger)  # fmt: skip
    db_path = tmp_path / "x.sqlite"
    await index_to_head(chain.anvil.url, db_path, config(stack.factory.address))
    async with opened(db_path) as store:
        sessions = await store.all_sessions()
        sql = "SELECT address, event FROM ignored_logs ORDER BY position"
        async with store.db.execute(sql) as cur:
            ignored = [tuple(r) async for r in cur]
    assert [s.wallet for s in sessions] == [ours.wallet.address]
    assert (other.address, "SessionCreated") in ignored
    assert (foreign, "Withdrawn") in ignored
    assert [e for a, e in ignored if a == look.address] == [
        "Deposited", "Executed", "Withdrawn", "Closed", "SessionCreated",
    ]  # fmt: skip


async def test_balance_audit_reports_a_plain_transfer_until_synced(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, 42), roles.owner2)
    db_path = tmp_path / "x.sqlite"

    async def audit() -> list[int]:
        await index_to_head(chain.anvil.url, db_path, config(stack.factory.address))
        async with (
            opened(db_path) as store,
            ChainClient([chain.anvil.url], retry=FAST_RETRY) as client,
        ):
            cp = await store.checkpoint()
            assert cp is not None
            drifts = await audit_balances(client, await store.all_sessions(), cp.number)
        return [d.difference for d in drifts]

    assert await audit() == [42]
    chain.send(s.wallet.functions.sync(), roles.stranger)
    assert await audit() == []
