"""SessionWalletFactory: creation (one transaction, every parameter in the event, fee),
salt bound to the caller, initializers, validation, pause, fee cap, batch close (the
hostile members and the gas reserve are in test_hostile_members.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chain.calls import MEMBER_GAS
from chain.reverts import decode_revert
from contracts import MAX_MEMBER_GAS, MIN_MEMBER_GAS
from tests._chain import Chain, CloseReason, selector
from tests.conftest import (
    FEE_BPS,
    TOKEN,
    Roles,
    Session,
    Stack,
    as_tuple,
    ceil_fee,
    session_params,
)

pytestmark = pytest.mark.usefixtures("fresh_chain")


def test_creation_moves_deposit_and_fee_in_one_transaction_and_reports_every_parameter(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    owner_before = chain.balance(stack.token, roles.owner)
    treasury_before = chain.balance(stack.token, roles.treasury)
    s = make_session(deposit=1_234 * TOKEN + 1, stopLoss=0, takeProfit=5_000 * TOKEN)
    fee = (1_234 * TOKEN + 1) * FEE_BPS // 10_000 + 1  # rounded up: 1 % of an odd wei
    assert fee == ceil_fee(1_234 * TOKEN + 1)
    (created,) = chain.events(s.receipt, stack.factory)
    a = created["args"]
    assert a["wallet"] == s.wallet.address
    assert (a["owner"], a["operator"], a["token"]) == (
        roles.owner, roles.operator, stack.token.address)  # fmt: skip
    assert (a["deposit"], a["fee"], a["balanceAfter"]) == (
        1_234 * TOKEN + 1,
        fee,
        1_234 * TOKEN + 1,
    )
    assert (a["expiry"], a["budget"]) == (s.params["expiry"], s.params["budget"])
    assert (a["stopLoss"], a["takeProfit"]) == (0, 5_000 * TOKEN)
    assert a["policy"] == "berzerker" and a["targets"] == stack.targets
    assert chain.balance(stack.token, s.wallet.address) == 1_234 * TOKEN + 1
    assert chain.balance(stack.token, roles.treasury) - treasury_before == fee
    assert owner_before - chain.balance(stack.token, roles.owner) == 1_234 * TOKEN + 1 + fee
    w = s.wallet.functions
    assert (w.owner().call(), w.operator().call(), w.token().call()) == (
        roles.owner, roles.operator, stack.token.address)  # fmt: skip
    assert (w.seq().call(), w.spent().call(), w.revoked().call(), w.closed().call()) == (
        0, 0, False, False)  # fmt: skip
    # the creator's fee consent is not in the event: the wallet keeps it
    assert (w.maxFeeBps().call(), w.recordedBalance().call()) == (FEE_BPS, 1_234 * TOKEN + 1)
    assert all(w.isTarget(t).call() for t in stack.targets)
    assert not w.isTarget(stack.untrusted_game.address).call()
    assert stack.factory.functions.isWallet(s.wallet.address).call()
    # one transaction: approve happened before; creation is a single receipt with both moves
    transfers = [e for e in chain.events(s.receipt, stack.token) if e["event"] == "Transfer"]
    assert {(t["args"]["to"], t["args"]["value"]) for t in transfers} == {
        (s.wallet.address, 1_234 * TOKEN + 1), (roles.treasury, fee)}  # fmt: skip


def test_salt_is_bound_to_the_caller_so_a_front_run_cannot_take_the_wallet(
    chain: Chain, stack: Stack, roles: Roles
) -> None:
    salt = b"\x42" * 32
    victim_address = stack.factory.functions.predictWallet(roles.owner, salt).call()
    attacker_address = stack.factory.functions.predictWallet(roles.owner2, salt).call()
    assert victim_address != attacker_address
    params = session_params(chain, stack, roles)
    # the attacker sees the victim's pending creation and submits the same salt first
    for who in (roles.owner2, roles.owner):
        chain.send(stack.token.functions.approve(stack.factory.address, 2_000 * TOKEN), who)
    first = chain.send(stack.factory.functions.createSession(as_tuple(params), salt), roles.owner2)
    second = chain.send(stack.factory.functions.createSession(as_tuple(params), salt), roles.owner)
    (a,) = chain.events(first, stack.factory)
    (v,) = chain.events(second, stack.factory)
    assert (a["args"]["wallet"], a["args"]["owner"]) == (attacker_address, roles.owner2)
    assert (v["args"]["wallet"], v["args"]["owner"]) == (victim_address, roles.owner)
    assert chain.at("SessionWallet", victim_address).functions.owner().call() == roles.owner
    # and the same caller cannot reuse a salt
    chain.expect_revert(
        stack.factory.functions.createSession(as_tuple(params), salt), roles.owner,
        "FailedDeployment")  # fmt: skip


def test_implementation_and_clones_cannot_be_initialized_again(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    impl = chain.at("SessionWallet", stack.factory.functions.implementation().call())
    for wallet in (impl, s.wallet):
        for who in (roles.stranger, roles.owner, roles.deployer):
            again = wallet.functions.initialize(who, as_tuple(s.params), 0, 0)
            chain.expect_revert(again, who, "InvalidInitialization")
    assert s.wallet.functions.owner().call() == roles.owner
    assert impl.functions.owner().call() == "0x" + "0" * 40


def test_clone_is_a_minimal_proxy_to_the_implementation(
    chain: Chain, stack: Stack, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    code = bytes(chain.w3.eth.get_code(s.wallet.address))
    impl = stack.factory.functions.implementation().call()
    assert len(code) == 45 and bytes.fromhex(impl[2:]) in code  # EIP-1167


@pytest.mark.parametrize(
    ("override", "error", "args"),
    [
        ({"deposit": 0}, "ZeroDeposit", ()),
        ({"token": "zero"}, "ZeroAddress", ()),
        ({"operator": "zero"}, "ZeroAddress", ()),
        ({"token": "other_token"}, "UntrustedToken", ("other_token",)),
        ({"expiry": 1}, "ExpiryNotInFuture", None),
        ({"operator": "stranger"}, "UntrustedOperator", ("stranger",)),
        ({"targets": ["untrusted_game"]}, "UntrustedTarget", ("untrusted_game",)),
        ({"targets": ["game"] * 17}, "TooManyTargets", (17, 16)),
        ({"policy": "x" * 33}, "PolicyTooLong", (33, 32)),
        ({"stopLoss": 5 * TOKEN, "takeProfit": 5 * TOKEN}, "InvalidThresholds", None),
        ({"maxFeeBps": FEE_BPS - 1}, "FeeAboveMax", (FEE_BPS, FEE_BPS - 1)),
        # the registry cannot trust a call on its token (TokenAsTarget), so the session
        # token never passes as a target
        ({"targets": ["token"]}, "UntrustedTarget", ("token",)),
        # these two only get past the registry because it (wrongly) trusts a call on them:
        # the wallet itself still refuses them
        ({"targets": ["factory"]}, "TargetNotAllowed", ("factory",)),
        ({"targets": ["wallet"]}, "TargetNotAllowed", ("wallet",)),
    ],
)
def test_creation_validates_parameters(
    chain: Chain,
    stack: Stack,
    roles: Roles,
    override: dict[str, object],
    error: str,
    args: tuple[object, ...] | None,
) -> None:
    salt = b"\x07" * 32
    named: dict[str, object] = {
        "zero": "0x" + "0" * 40,
        "stranger": roles.stranger,
        "untrusted_game": stack.untrusted_game.address,
        "game": stack.game.address,
        "token": stack.token.address,
        "factory": stack.factory.address,
        "wallet": stack.factory.functions.predictWallet(roles.owner, salt).call(),
        "other_token": chain.deploy("MockToken", "Other", "OTH").address,
    }
    resolved: dict[str, object] = {}
    for key, value in override.items():
        if isinstance(value, list):
            resolved[key] = [named.get(v, v) for v in value]
        else:
            resolved[key] = named.get(value, value) if isinstance(value, str) else value
    anything = selector("anything()")
    for t in (stack.factory.address, named["wallet"]):
        chain.send(stack.factory.functions.setTrustedCall(t, anything, True), roles.deployer)
    params = session_params(chain, stack, roles, **resolved)
    chain.send(stack.token.functions.approve(stack.factory.address, 10**6 * TOKEN), roles.owner)
    revert = chain.expect_revert(
        stack.factory.functions.createSession(as_tuple(params), salt), roles.owner, error
    )
    if args is not None:
        assert revert.args == tuple(named.get(a, a) if isinstance(a, str) else a for a in args)


def test_fee_is_capped_and_charged_on_top_of_the_deposit(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    revert = chain.expect_revert(stack.factory.functions.setFee(1_001), roles.deployer,
                                 "FeeTooHigh")  # fmt: skip
    assert revert.args == (1_001, 1_000)
    chain.send(stack.factory.functions.setFee(1_000), roles.deployer)
    chain.send(stack.factory.functions.setTreasury(roles.owner2), roles.deployer)
    assert stack.factory.functions.feeFor(999).call() == 100  # 10 % of 999 is 99.9
    before = chain.balance(stack.token, roles.owner2)
    s = make_session(deposit=999, maxFeeBps=1_000)
    assert chain.balance(stack.token, s.wallet.address) == 999
    assert chain.balance(stack.token, roles.owner2) - before == 100  # rounded up
    (created,) = chain.events(s.receipt, stack.factory)
    assert created["args"]["fee"] == 100
    chain.send(stack.factory.functions.setFee(0), roles.deployer)
    s0 = make_session(deposit=500, maxFeeBps=0)
    (created,) = chain.events(s0.receipt, stack.factory)
    assert created["args"]["fee"] == 0
    assert chain.balance(stack.token, roles.owner2) - before == 100


def test_emergency_pause_stops_new_sessions_and_execute_but_never_withdrawals(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    chain.send(stack.factory.functions.setSessionsPaused(True), roles.deployer)
    chain.send(stack.factory.functions.setExecutePaused(True), roles.deployer)
    params = session_params(chain, stack, roles)
    chain.expect_revert(
        stack.factory.functions.createSession(as_tuple(params), b"\x09" * 32), roles.owner,
        "SessionsPaused")  # fmt: skip
    play = stack.game.encode_abi("play", args=[TOKEN])
    chain.expect_revert(s.wallet.functions.execute(stack.game.address, play, TOKEN),
                        roles.operator, "ExecutionPaused")  # fmt: skip
    chain.send(s.wallet.functions.withdraw(TOKEN), roles.owner)
    chain.send(s.wallet.functions.close(CloseReason.STOP_LOSS), roles.operator)
    assert chain.balance(stack.token, s.wallet.address) == 0
    chain.send(stack.factory.functions.setSessionsPaused(False), roles.deployer)
    chain.send(stack.factory.functions.setExecutePaused(False), roles.deployer)
    s2 = make_session()
    chain.send(s2.wallet.functions.execute(stack.game.address, play, TOKEN), roles.operator)


def test_ownership_transfer_takes_two_steps(chain: Chain, stack: Stack, roles: Roles) -> None:
    f = stack.factory.functions
    chain.send(f.transferOwnership(roles.stranger), roles.deployer)
    assert f.owner().call() == roles.deployer
    chain.expect_revert(f.acceptOwnership(), roles.owner2, "OwnableUnauthorizedAccount")
    chain.send(f.acceptOwnership(), roles.stranger)
    assert f.owner().call() == roles.stranger
    chain.expect_revert(f.setFee(5), roles.deployer, "OwnableUnauthorizedAccount")


def test_batch_close_survives_failing_members_and_refunds_every_owner(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    good = [make_session(deposit=(i + 1) * TOKEN) for i in range(5)]
    good.append(make_session(owner=roles.owner2, deposit=77))
    already_closed = make_session()
    chain.send(already_closed.wallet.functions.close(CloseReason.OWNER), roles.owner)
    revoked = make_session()
    chain.send(revoked.wallet.functions.revoke(), roles.owner)
    stranger_wallet = stack.lookalike.address  # not created by the factory
    wallets = [s.wallet.address for s in good]
    members = [wallets[0], already_closed.wallet.address, *wallets[1:3], stranger_wallet,
               revoked.wallet.address, *wallets[3:]]  # fmt: skip
    owner_before = chain.balance(stack.token, roles.owner)
    owner2_before = chain.balance(stack.token, roles.owner2)
    batch = stack.factory.functions.closeBatch(
        members, [CloseReason.STOP_LOSS] * len(members), MEMBER_GAS
    )
    closed_count = batch.call({"from": roles.operator})
    receipt = chain.send(batch, roles.operator)  # fmt: skip
    assert closed_count == len(good)
    failures = {
        e["args"]["wallet"]: decode_revert(e["args"]["reason"])
        for e in chain.events(receipt, stack.factory)
        if e["event"] == "BatchCloseFailed"
    }
    assert {k: (v.name, v.args) for k, v in failures.items()} == {
        already_closed.wallet.address: ("SessionIsClosed", ()),
        stranger_wallet: ("UnknownWallet", (stranger_wallet,)),
        revoked.wallet.address: ("OperatorRevoked", ()),
    }
    assert not [e for e in chain.events(receipt, stack.factory) if e["event"] == "BatchIncomplete"]
    for s in good:
        assert s.wallet.functions.closed().call()
        assert chain.balance(stack.token, s.wallet.address) == 0
        (ev,) = chain.events(receipt, s.wallet)
        assert ev["args"]["reason"] == CloseReason.STOP_LOSS
        assert ev["args"]["by"] == roles.operator
    assert chain.balance(stack.token, roles.owner) - owner_before == sum(range(1, 6)) * TOKEN
    assert chain.balance(stack.token, roles.owner2) - owner2_before == 77
    # the revoked one stays sweepable by anyone, in a batch too
    receipt = chain.send(
        stack.factory.functions.closeBatch(
            [revoked.wallet.address], [CloseReason.SWEPT], MIN_MEMBER_GAS),
        roles.stranger,
    )  # fmt: skip
    (ev,) = chain.events(receipt, revoked.wallet)
    assert (ev["event"], ev["args"]["reason"], ev["args"]["by"]) == (
        "Closed", CloseReason.SWEPT, roles.stranger)  # fmt: skip


def test_batch_close_rejects_malformed_batches(chain: Chain, stack: Stack, roles: Roles) -> None:
    f = stack.factory.functions
    revert = chain.expect_revert(
        f.closeBatch([roles.owner], [], MEMBER_GAS), roles.operator, "LengthMismatch"
    )
    assert revert.args == (1, 0)
    revert = chain.expect_revert(
        f.closeBatch([roles.owner] * 257, [0] * 257, MEMBER_GAS),
        roles.operator,
        "BatchTooLarge",
        gas=10_000_000,
    )
    assert revert.args == (257, 256)
    for stipend in (MIN_MEMBER_GAS - 1, MAX_MEMBER_GAS + 1, 0):
        revert = chain.expect_revert(
            f.closeBatch([roles.owner], [1], stipend), roles.operator, "MemberGasOutOfRange"
        )
        assert revert.args == (stipend, MIN_MEMBER_GAS, MAX_MEMBER_GAS)  # fmt: skip
    assert (f.MIN_MEMBER_GAS().call(), f.MAX_MEMBER_GAS().call()) == (
        MIN_MEMBER_GAS, MAX_MEMBER_GAS)  # fmt: skip


def test_a_stipend_below_an_honest_close_fails_the_member_as_if_hostile(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    """MIN_MEMBER_GAS is a floor on the caller's choice, no guarantee: the costliest honest
    close of a plain ERC-20 (an owner who holds none of the token, so the refund writes a
    cold zero slot) takes 55,346 gas. At the floor that member runs out of its stipend and
    is reported like a hostile one (an empty reason); at 60,000 it closes. An owner who
    still holds tokens closes at the floor."""
    fresh = chain.accounts[8]  # holds no token yet
    chain.send(stack.token.functions.mint(fresh, 101 * TOKEN), roles.deployer)
    poor = make_session(owner=fresh, deposit=100 * TOKEN)
    assert chain.balance(stack.token, fresh) == 0
    rich = make_session(deposit=100 * TOKEN)
    close = stack.factory.functions.closeBatch
    wallets = [poor.wallet.address, rich.wallet.address]
    receipt = chain.send(close(wallets, [CloseReason.IDLE] * 2, MIN_MEMBER_GAS), roles.operator)
    failed = [e["args"] for e in chain.events(receipt, stack.factory)]
    assert [(a["wallet"], a["reason"]) for a in failed] == [(poor.wallet.address, b"")]
    assert (poor.wallet.functions.closed().call(), rich.wallet.functions.closed().call()) == (
        False, True)  # fmt: skip
    receipt = chain.send(close([poor.wallet.address], [CloseReason.IDLE], 60_000), roles.operator)
    assert chain.events(receipt, stack.factory) == []
    (ev,) = chain.events(receipt, poor.wallet)
    assert ev["event"] == "Closed" and ev["args"]["refund"] == 100 * TOKEN
    assert chain.balance(stack.token, fresh) == 100 * TOKEN
    # the cap is a stipend like any other
    third = make_session(deposit=100 * TOKEN)
    receipt = chain.send(close([third.wallet.address], [CloseReason.IDLE], MAX_MEMBER_GAS),
                         roles.operator)  # fmt: skip
    assert [e["event"] for e in chain.events(receipt, third.wallet)] == ["Closed"]


def test_look_alike_emits_identical_event_signatures(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    """Why the indexer must filter by address: topics alone cannot tell a spoof apart."""
    s = make_session()
    chain.send(
        stack.token.functions.approve(s.wallet.address, TOKEN + ceil_fee(TOKEN)), roles.owner
    )
    real = chain.send(s.wallet.functions.deposit(TOKEN, FEE_BPS), roles.owner)
    fake = chain.send(
        stack.lookalike.functions.fakeDeposited(1, roles.owner, TOKEN, 10**30), roles.stranger
    )
    fake_created = chain.send(
        stack.lookalike.functions.fakeSessionCreated(
            stack.lookalike.address, roles.owner, roles.operator, stack.token.address),
        roles.stranger,
    )  # fmt: skip
    assert real["logs"][-1]["topics"][0] == fake["logs"][0]["topics"][0]
    assert s.receipt["logs"][-1]["topics"][0] == fake_created["logs"][0]["topics"][0]
    assert fake["logs"][0]["address"] == stack.lookalike.address
    wallet_events = {e["name"] for e in s.wallet.abi if e["type"] == "event"} - {"Initialized"}
    spoofable = {e["name"] for e in stack.lookalike.abi if e["type"] == "event"}
    assert wallet_events <= spoofable
