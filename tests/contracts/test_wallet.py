"""SessionWallet behaviour: spend by balance difference under the budget, expiry, refunds
only to the owner, trust withdrawn through the registry, hostile targets (exact approvals
are in test_registry.py, fees in test_fees.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import Wei

from tests._chain import Chain, CloseReason, selector
from tests.conftest import TOKEN, Roles, Session, Stack, ceil_fee

PLAY = selector("play(uint256)")

pytestmark = pytest.mark.usefixtures("fresh_chain")


def execute(
    s: Session, target: object, fn: str, args: list[object], amount: int
) -> ContractFunction:
    contract = target
    data = contract.encode_abi(fn, args=args)  # type: ignore[attr-defined]
    return s.wallet.functions.execute(contract.address, data, amount)  # type: ignore[attr-defined]


def test_a_loss_is_spent_and_a_win_is_received(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session(budget=100 * TOKEN)
    chain.send(stack.game.functions.setOutcome(False, 0), roles.stranger)
    r = chain.send(execute(s, stack.game, "play", [30 * TOKEN], 30 * TOKEN), roles.operator)
    (loss,) = chain.events(r, s.wallet)
    assert loss["args"]["spent"] == 30 * TOKEN and loss["args"]["received"] == 0
    assert loss["args"]["totalSpent"] == 30 * TOKEN and loss["args"]["seq"] == 1
    assert loss["args"]["balanceAfter"] == 970 * TOKEN
    assert loss["args"]["selector"] == Web3.keccak(text="play(uint256)")[:4]
    assert loss["args"]["approved"] == 30 * TOKEN
    chain.send(stack.game.functions.setOutcome(True, 25_000), roles.stranger)  # pays 2.5x
    r = chain.send(execute(s, stack.game, "play", [40 * TOKEN], 40 * TOKEN), roles.operator)
    (win,) = chain.events(r, s.wallet)
    assert win["args"]["spent"] == 0 and win["args"]["received"] == 60 * TOKEN
    assert win["args"]["totalSpent"] == 30 * TOKEN
    assert chain.balance(stack.token, s.wallet.address) == 1_030 * TOKEN
    assert s.wallet.functions.spent().call() == 30 * TOKEN


def test_budget_holds_by_balance_difference(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session(budget=50 * TOKEN)
    chain.send(stack.game.functions.setOutcome(False, 0), roles.stranger)
    chain.send(execute(s, stack.game, "play", [50 * TOKEN], 50 * TOKEN), roles.operator)
    revert = chain.expect_revert(
        execute(s, stack.game, "play", [1], 1), roles.operator, "BudgetExceeded"
    )
    assert revert.args == (50 * TOKEN + 1, 50 * TOKEN)
    # a win within one call nets out: no spend, allowed even with the budget used up
    chain.send(stack.game.functions.setOutcome(True, 20_000), roles.stranger)
    chain.send(execute(s, stack.game, "play", [10 * TOKEN], 10 * TOKEN), roles.operator)
    assert s.wallet.functions.spent().call() == 50 * TOKEN
    revert = chain.expect_revert(
        execute(s, stack.game, "play", [10_000 * TOKEN], 10_000 * TOKEN), roles.operator,
        "AmountExceedsBalance")  # fmt: skip
    assert revert.args == (10_000 * TOKEN, 960 * TOKEN)


@pytest.mark.parametrize("fn", ["pullExtra", "pullTwice"])
def test_a_target_cannot_pull_more_than_approved(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], fn: str
) -> None:
    s = make_session()
    chain.expect_revert(
        execute(s, stack.overpull, fn, [5 * TOKEN], 5 * TOKEN), roles.operator,
        "ERC20InsufficientAllowance")  # fmt: skip
    assert chain.balance(stack.token, s.wallet.address) == 1_000 * TOKEN
    assert chain.balance(stack.token, stack.overpull.address) == 0


@pytest.mark.parametrize("mode", range(5), ids=["sync", "sweep", "close", "execute", "withdraw"])
def test_a_target_cannot_reenter_the_wallet(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], mode: int
) -> None:
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, 1), roles.owner2)  # sync bait
    chain.expect_revert(
        execute(s, stack.reentrant, "attack", [mode], 0), roles.operator,
        "ReentrancyGuardReentrantCall")  # fmt: skip
    assert s.wallet.functions.seq().call() == 0


def test_execute_refuses_non_allow_listed_targets_and_value(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session(targets=[stack.game.address])
    # trusted by the registry but not listed by this session
    chain.expect_revert(
        execute(s, stack.overpull, "pullNothing", [], 0), roles.operator, "TargetNotAllowed"
    )
    chain.expect_revert(
        execute(s, stack.untrusted_game, "play", [1], 1), roles.operator, "TargetNotAllowed"
    )
    for forbidden in (stack.token, stack.factory, s.wallet):
        chain.expect_revert(
            s.wallet.functions.execute(forbidden.address, b"", 0), roles.operator,
            "TargetNotAllowed")  # fmt: skip
    # no ETH: execute is not payable, so a value makes the call revert before any check
    data = s.wallet.encode_abi("execute", args=[stack.game.address, b"", 0])
    tx = chain.w3.eth.send_transaction({"from": roles.operator, "to": s.wallet.address,
                                        "data": data, "value": Wei(1), "gas": 500_000})  # fmt: skip
    assert chain.w3.eth.wait_for_transaction_receipt(tx)["status"] == 0
    assert chain.w3.eth.get_balance(s.wallet.address) == 0


def test_registry_withdraws_trust_from_existing_sessions(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    play = execute(s, stack.game, "play", [TOKEN], TOKEN)
    trust = stack.factory.functions.setTrustedCall
    chain.send(trust(stack.game.address, PLAY, False), roles.deployer)
    revert = chain.expect_revert(play, roles.operator, "CallNotAllowed")
    assert revert.args == (stack.game.address, "0x" + PLAY.hex())
    chain.send(trust(stack.game.address, PLAY, True), roles.deployer)
    chain.send(play, roles.operator)
    chain.send(stack.factory.functions.setTrustedOperator(roles.operator, False), roles.deployer)
    revert = chain.expect_revert(play, roles.operator, "OperatorNotTrusted")
    assert revert.args == (roles.operator,)
    # a distrusted operator can still only close early, refunding the owner
    before = chain.balance(stack.token, roles.owner)
    chain.send(s.wallet.functions.close(CloseReason.IDLE), roles.operator)
    assert chain.balance(stack.token, roles.owner) - before == 999 * TOKEN  # 1 played


def test_expiry_boundary_is_inclusive(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    expiry = s.params["expiry"]
    chain.set_next_timestamp(expiry - 1)
    chain.send(execute(s, stack.game, "play", [TOKEN], TOKEN), roles.operator)
    chain.set_next_timestamp(expiry)
    revert = chain.expect_revert(
        execute(s, stack.game, "play", [TOKEN], TOKEN), roles.operator, "SessionExpired"
    )
    assert revert.args == (expiry,)
    chain.set_next_timestamp(expiry + 1)
    chain.send(s.wallet.functions.sweep(), roles.stranger)


def test_owner_extends_and_expiry_must_move_forward(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    expiry = s.params["expiry"]
    revert = chain.expect_revert(s.wallet.functions.extend(expiry), roles.owner, "ExpiryNotLater")
    assert revert.args == (expiry, expiry)
    r = chain.send(s.wallet.functions.extend(expiry + 3_600), roles.owner)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["args"]["previousExpiry"], ev["args"]["newExpiry"]) == (expiry, expiry + 3_600)
    chain.mine(expiry + 10)
    chain.send(execute(s, stack.game, "play", [TOKEN], TOKEN), roles.operator)


@pytest.mark.parametrize("closer", ["owner", "operator", "stranger"])
def test_every_refund_goes_to_the_owner(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], closer: str
) -> None:
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, 5), roles.owner2)  # unsynced
    reason = {"owner": CloseReason.OWNER, "operator": CloseReason.TAKE_PROFIT,
              "stranger": CloseReason.SWEPT}[closer]  # fmt: skip
    refund = 1_000 * TOKEN + 5  # a close takes no fee, not even on an inflow it finds
    if closer == "stranger":
        # but revoking first records the inflow, which pays its fee (1 wei, rounded up)
        chain.send(s.wallet.functions.revoke(), roles.owner)
        refund -= ceil_fee(5)
    before = {who: chain.balance(stack.token, getattr(roles, who))
              for who in ("owner", "operator", "stranger")}  # fmt: skip
    r = chain.send(s.wallet.functions.close(reason), getattr(roles, closer))
    (ev,) = chain.events(r, s.wallet)
    assert ev["args"]["refund"] == refund and ev["args"]["balanceAfter"] == 0
    assert ev["args"]["reason"] == reason and ev["args"]["by"] == getattr(roles, closer)
    assert chain.balance(stack.token, roles.owner) - before["owner"] == refund
    for who in ("operator", "stranger"):
        assert chain.balance(stack.token, getattr(roles, who)) == before[who]
    assert chain.balance(stack.token, s.wallet.address) == 0


def test_withdraw_partial_and_in_full(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    chain.expect_revert(s.wallet.functions.withdraw(0), roles.owner, "ZeroAmount")
    revert = chain.expect_revert(
        s.wallet.functions.withdraw(1_000 * TOKEN + 1), roles.owner, "AmountExceedsBalance"
    )
    assert revert.args == (1_000 * TOKEN + 1, 1_000 * TOKEN)
    r = chain.send(s.wallet.functions.withdraw(400 * TOKEN), roles.owner)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["args"]["seq"], ev["args"]["amount"], ev["args"]["balanceAfter"]) == (
        1, 400 * TOKEN, 600 * TOKEN)  # fmt: skip
    chain.send(s.wallet.functions.withdraw(600 * TOKEN), roles.owner)
    assert chain.balance(stack.token, s.wallet.address) == 0
    assert not s.wallet.functions.closed().call()  # empty, still open: owner may top up


def test_tokens_stuck_in_a_wallet_can_be_recovered_to_the_owner_by_anyone(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    other = chain.deploy("MockToken", "Other", "OTH")
    chain.send(other.functions.mint(s.wallet.address, 42), roles.stranger)
    r = chain.send(s.wallet.functions.recover(other.address), roles.stranger)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["args"]["seq"], ev["args"]["asset"], ev["args"]["amount"]) == (1, other.address, 42)
    assert ev["args"]["balanceAfter"] == 1_000 * TOKEN  # the session's own balance is untouched
    assert chain.balance(other, roles.owner) == 42
    # a late payout after the close is not stuck either
    chain.send(s.wallet.functions.close(CloseReason.OWNER), roles.owner)
    chain.send(stack.token.functions.transfer(s.wallet.address, 7), roles.owner2)
    before = chain.balance(stack.token, roles.owner)
    r = chain.send(s.wallet.functions.recover(stack.token.address), roles.stranger)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["args"]["seq"], ev["args"]["amount"], ev["args"]["balanceAfter"]) == (3, 7, 0)
    assert chain.balance(stack.token, roles.owner) - before == 7
    chain.expect_revert(s.wallet.functions.recover(stack.token.address), roles.stranger,
                        "ZeroAmount")  # fmt: skip
