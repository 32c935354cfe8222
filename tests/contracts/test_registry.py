"""The registry (contracts v2, issue 15): tokens are allow-listed for sessions; calls are
trusted by (target, selector); a token is never a target and a target never a token; the
wallet refuses any registry token as a target, whatever its own list says (F-2)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from web3.contract import Contract

from tests._chain import Chain, CloseReason, selector
from tests.conftest import TOKEN, Roles, Session, Stack, as_tuple, session_params

pytestmark = pytest.mark.usefixtures("fresh_chain")

PLAY = selector("play(uint256)")
TRANSFER = selector("transfer(address,uint256)")


def hex4(sel: bytes) -> str:
    """A bytes4 as the revert decoder shows it."""
    return "0x" + sel.hex()


def other_token(chain: Chain, roles: Roles) -> Contract:
    token = chain.deploy("MockToken", "Other", "OTH")
    chain.send(token.functions.mint(roles.owner, 10**6 * TOKEN), roles.deployer)
    return token


def test_a_token_the_registry_does_not_list_is_refused_at_creation(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    f = stack.factory.functions
    existing = make_session()
    other = other_token(chain, roles)
    params = session_params(chain, stack, roles, token=other.address)
    chain.send(other.functions.approve(stack.factory.address, 10**6 * TOKEN), roles.owner)
    create = f.createSession(as_tuple(params), b"\x01" * 32)
    revert = chain.expect_revert(create, roles.owner, "UntrustedToken")
    assert revert.args == (other.address,)

    receipt = chain.send(f.setTrustedToken(other.address, True), roles.deployer)
    (ev,) = chain.events(receipt, stack.factory)
    assert (ev["event"], dict(ev["args"])) == (
        "TokenTrusted", {"token": other.address, "trusted": True})  # fmt: skip
    assert f.isTrustedToken(other.address).call()
    receipt = chain.send(create, roles.owner)
    (created,) = chain.events(receipt, stack.factory)
    assert created["args"]["token"] == other.address

    # distrusting the session token stops new sessions, never the way out of old ones
    chain.send(f.setTrustedToken(stack.token.address, False), roles.deployer)
    revert = chain.expect_revert(
        f.createSession(as_tuple(session_params(chain, stack, roles)), b"\x02" * 32),
        roles.owner, "UntrustedToken")  # fmt: skip
    assert revert.args == (stack.token.address,)
    chain.send(existing.wallet.functions.close(CloseReason.OWNER), roles.owner)
    assert chain.balance(stack.token, existing.wallet.address) == 0


def test_a_token_is_never_a_target_and_a_target_never_a_token(
    chain: Chain, stack: Stack, roles: Roles
) -> None:
    f = stack.factory.functions
    game, token = stack.game.address, stack.token.address
    revert = chain.expect_revert(f.setTrustedCall(token, TRANSFER, True), roles.deployer,
                                 "TokenAsTarget")  # fmt: skip
    assert revert.args == (token,)
    revert = chain.expect_revert(f.setTrustedToken(game, True), roles.deployer, "TokenAsTarget")
    assert revert.args == (game,)
    # distrusting a call on a token is harmless, and changes nothing
    receipt = chain.send(f.setTrustedCall(token, TRANSFER, False), roles.deployer)
    assert chain.events(receipt, stack.factory) == []
    assert f.trustedSelectors(token).call() == 0

    # a target stops being one when its last selector is distrusted, and only then
    setup = selector("setOutcome(bool,uint256)")
    chain.send(f.setTrustedCall(game, setup, True), roles.deployer)
    receipt = chain.send(f.setTrustedCall(game, setup, True), roles.deployer)  # again
    assert chain.events(receipt, stack.factory) == []
    assert f.trustedSelectors(game).call() == 2
    receipt = chain.send(f.setTrustedCall(game, PLAY, False), roles.deployer)
    (ev,) = chain.events(receipt, stack.factory)
    assert (ev["event"], dict(ev["args"])) == (
        "CallTrusted", {"target": game, "selector": PLAY, "trusted": False})  # fmt: skip
    assert (f.trustedSelectors(game).call(), f.isTrustedCall(game, PLAY).call()) == (1, False)
    chain.expect_revert(f.setTrustedToken(game, True), roles.deployer, "TokenAsTarget")
    chain.send(f.setTrustedCall(game, setup, False), roles.deployer)
    assert f.trustedSelectors(game).call() == 0
    chain.send(f.setTrustedToken(game, True), roles.deployer)
    chain.expect_revert(f.setTrustedCall(game, PLAY, True), roles.deployer, "TokenAsTarget")

    zero = "0x" + "0" * 40
    chain.expect_revert(f.setTrustedCall(zero, PLAY, True), roles.deployer, "ZeroAddress")
    chain.expect_revert(f.setTrustedToken(zero, True), roles.deployer, "ZeroAddress")


def test_a_selector_the_registry_does_not_trust_on_that_target_is_refused(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    game, execute = stack.game, s.wallet.functions.execute
    setup = game.encode_abi("setOutcome", args=[True, 10**6])  # would rig the game
    attack = selector("attack(uint8)")  # trusted, but on another target
    assert stack.factory.functions.isTrustedCall(stack.reentrant.address, attack).call()
    cases = [
        (setup, selector("setOutcome(bool,uint256)")),
        (attack + bytes(32), attack),
        (PLAY[:2], PLAY[:2] + bytes(2)),  # shorter than a selector: zero-padded, refused
        (b"", bytes(4)),
    ]
    for data, sel in cases:
        revert = chain.expect_revert(execute(game.address, data, 0), roles.operator,
                                     "CallNotAllowed")  # fmt: skip
        assert revert.args == (game.address, hex4(sel))
    # exactly a trusted selector passes the check (the game then fails to decode it)
    _, bare = chain.try_send(execute(game.address, PLAY, 0), roles.operator)
    assert bare is not None and bare.name != "CallNotAllowed"
    assert s.wallet.functions.seq().call() == 0


def test_a_trusted_token_like_target_moves_other_assets_for_free_f2(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    """F-2, why a token (or anything that moves assets for its caller) must never be a
    trusted target: the budget counts the session token only, so a call to such a target
    moves the wallet's other assets with a budget of 0. Once the registry lists it as a
    token, the wallet refuses it, even though the session's own target list names it."""
    other = other_token(chain, roles)
    chain.send(stack.factory.functions.setTrustedCall(other.address, TRANSFER, True),
               roles.deployer)  # fmt: skip
    s = make_session(budget=0, targets=[stack.game.address, other.address])
    assert s.wallet.functions.isTarget(other.address).call()
    chain.send(other.functions.transfer(s.wallet.address, 40), roles.owner)  # a stray 40
    steal = other.encode_abi("transfer", args=[roles.operator, 30])
    r = chain.send(s.wallet.functions.execute(other.address, steal, 0), roles.operator)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["event"], ev["args"]["spent"], ev["args"]["totalSpent"]) == ("Executed", 0, 0)
    assert chain.balance(other, roles.operator) == 30  # within a budget of 0

    f = stack.factory.functions
    chain.send(f.setTrustedCall(other.address, TRANSFER, False), roles.deployer)
    chain.send(f.setTrustedToken(other.address, True), roles.deployer)
    revert = chain.expect_revert(s.wallet.functions.execute(other.address, steal, 0),
                                 roles.operator, "TargetNotAllowed")  # fmt: skip
    assert revert.args == (other.address,)
    # what is left goes to the owner
    chain.send(s.wallet.functions.recover(other.address), roles.stranger)
    assert chain.balance(other, s.wallet.address) == 0


def test_the_wallet_refuses_a_registry_token_in_its_targets_before_the_selector(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    """Listed by the session while it was a trusted target, then made a registry token:
    refused as a target (TargetNotAllowed), not merely for its selector."""
    other = other_token(chain, roles)
    f = stack.factory.functions
    chain.send(f.setTrustedCall(other.address, TRANSFER, True), roles.deployer)
    s = make_session(targets=[other.address])
    chain.send(f.setTrustedCall(other.address, TRANSFER, False), roles.deployer)
    chain.send(f.setTrustedToken(other.address, True), roles.deployer)
    for data in (other.encode_abi("transfer", args=[roles.operator, 1]), b"", PLAY):
        revert = chain.expect_revert(s.wallet.functions.execute(other.address, data, 0),
                                     roles.operator, "TargetNotAllowed")  # fmt: skip
        assert revert.args == (other.address,)


@pytest.mark.parametrize("fn", ["pullNothing", "pullPart"])
def test_approval_is_exact_and_reset_to_zero(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], fn: str
) -> None:
    """Exactly `amount`, for the call only: the Approval events are that amount, then 0."""
    s = make_session()
    args: list[object] = [3 * TOKEN] if fn == "pullPart" else []
    data = stack.overpull.encode_abi(fn, args=args)
    r = chain.send(s.wallet.functions.execute(stack.overpull.address, data, 5 * TOKEN),
                   roles.operator)  # fmt: skip
    approvals = [(e["args"]["spender"], e["args"]["value"])
                 for e in chain.events(r, stack.token) if e["event"] == "Approval"]  # fmt: skip
    assert approvals == [(stack.overpull.address, 5 * TOKEN), (stack.overpull.address, 0)]
    allowance = stack.token.functions.allowance(s.wallet.address, stack.overpull.address)
    assert allowance.call() == 0
    assert s.wallet.functions.spent().call() == (3 * TOKEN if fn == "pullPart" else 0)
    # an amount of 0 approves nothing at all
    nothing = stack.overpull.encode_abi("pullNothing", args=[])
    r = chain.send(s.wallet.functions.execute(stack.overpull.address, nothing, 0),
                   roles.operator)  # fmt: skip
    assert [e for e in chain.events(r, stack.token) if e["event"] == "Approval"] == []
