"""Every wallet and factory function x every caller role x every session state: allowed
(and emitting its event) or reverted with the right custom error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from web3.contract.contract import ContractFunction

from chain.calls import MEMBER_GAS
from chain.reverts import decode_revert
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

ROLES = ("owner", "operator", "stranger", "deployer")
POLICY_REASONS = (
    CloseReason.STOP_LOSS,
    CloseReason.TAKE_PROFIT,
    CloseReason.EXPIRED,
    CloseReason.IDLE,
)

Call = Callable[[Stack, Session, Roles], ContractFunction]


@dataclass(frozen=True)
class Case:
    fn: str
    call: Call
    event: str  # emitted on success
    # expected error per state and role; a role missing from a state's dict succeeds
    expect: dict[str, dict[str, str]]


def _close(reason: CloseReason) -> Call:
    return lambda st, s, r: s.wallet.functions.close(reason)


def _play(stack: Stack, s: Session, wager: int) -> ContractFunction:
    data = stack.game.encode_abi("play", args=[wager])
    return s.wallet.functions.execute(stack.game.address, data, wager)


def only(role: str, error: str) -> dict[str, str]:
    """Every role but `role` gets `error`."""
    return {r: error for r in ROLES if r != role}


def every(error: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, error)


CLOSED = "SessionIsClosed"

CASES: list[Case] = [
    Case(
        "deposit",
        lambda st, s, r: s.wallet.functions.deposit(TOKEN, FEE_BPS),
        "Deposited",
        {
            "open": only("owner", "NotOwner"),
            "expired": only("owner", "NotOwner"),
            "revoked": only("owner", "NotOwner"),
            "closed": every(CLOSED),
        },
    ),
    Case(
        "withdraw",
        lambda st, s, r: s.wallet.functions.withdraw(TOKEN),
        "Withdrawn",
        {
            "open": only("owner", "NotOwner"),
            "expired": only("owner", "NotOwner"),
            "revoked": only("owner", "NotOwner"),
            "closed": every(CLOSED),
        },
    ),
    Case(
        "extend",
        lambda st, s, r: s.wallet.functions.extend(s.params["expiry"] + 10 * 86_400),
        "Extended",
        {
            "open": only("owner", "NotOwner"),
            "expired": only("owner", "NotOwner"),
            "revoked": only("owner", "NotOwner"),
            "closed": every(CLOSED),
        },
    ),
    Case(
        "revoke",
        lambda st, s, r: s.wallet.functions.revoke(),
        "Revoked",
        {
            "open": only("owner", "NotOwner"),
            "expired": only("owner", "NotOwner"),
            "revoked": {**only("owner", "NotOwner"), "owner": "AlreadyRevoked"},
            "closed": every(CLOSED),
        },
    ),
    Case(
        "execute",
        lambda st, s, r: _play(st, s, 10 * TOKEN),
        "Executed",
        {
            "open": only("operator", "NotOperator"),
            "expired": {**only("operator", "NotOperator"), "operator": "SessionExpired"},
            "revoked": {**only("operator", "NotOperator"), "operator": "OperatorRevoked"},
            "closed": every(CLOSED),
        },
    ),
    Case(
        "close(Owner)",
        lambda st, s, r: s.wallet.functions.close(CloseReason.OWNER),
        "Closed",
        {
            "open": only("owner", "NotOwner"),
            "expired": only("owner", "NotOwner"),
            "revoked": only("owner", "NotOwner"),
            "closed": every(CLOSED),
        },
    ),
    *(
        Case(
            f"close({reason.name})",
            _close(reason),
            "Closed",
            {
                "open": only("operator", "NotOperator"),
                "expired": only("operator", "NotOperator"),
                "revoked": {**only("operator", "NotOperator"), "operator": "OperatorRevoked"},
                "closed": every(CLOSED),
            },
        )
        for reason in POLICY_REASONS
    ),
    Case(
        "close(Swept)",
        lambda st, s, r: s.wallet.functions.close(CloseReason.SWEPT),
        "Closed",
        {"open": every("NotSweepable"), "expired": {}, "revoked": {}, "closed": every(CLOSED)},
    ),
    Case(
        "sweep",
        lambda st, s, r: s.wallet.functions.sweep(),
        "Closed",
        {
            "open": every("NotSweepable"),
            "expired": {},
            "revoked": {},
            "closed": every(CLOSED),
        },
    ),
    Case(
        "sync",
        lambda st, s, r: s.wallet.functions.sync(),
        "Synced",
        {
            "open": every("NothingToSync"),
            "expired": every("NothingToSync"),
            "revoked": every("NothingToSync"),
            "closed": every(CLOSED),
        },
    ),
    Case(
        "closeFrom",
        lambda st, s, r: s.wallet.functions.closeFrom(r.owner, CloseReason.OWNER),
        "Closed",
        {
            "open": every("NotFactory"),
            "expired": every("NotFactory"),
            "revoked": every("NotFactory"),
            "closed": every(CLOSED),
        },
    ),
    Case(
        "recover(session token)",
        lambda st, s, r: s.wallet.functions.recover(st.token.address),
        "Recovered",
        {
            "open": every("SessionStillOpen"),
            "expired": every("SessionStillOpen"),
            "revoked": every("SessionStillOpen"),
            "closed": every("ZeroAmount"),  # nothing stuck after a close
        },
    ),
    Case(
        "initialize",
        lambda st, s, r: s.wallet.functions.initialize(r.stranger, as_tuple(s.params), 0, 0),
        "Initialized",
        dict.fromkeys(("open", "expired", "revoked", "closed"), every("InvalidInitialization")),
    ),
]

STATES = ("open", "expired", "revoked", "closed")


def _enter_state(chain: Chain, s: Session, roles: Roles, state: str) -> None:
    if state == "expired":
        chain.mine(s.params["expiry"] + 1)
    elif state == "revoked":
        chain.send(s.wallet.functions.revoke(), roles.owner)
    elif state == "closed":
        chain.send(s.wallet.functions.close(CloseReason.OWNER), roles.owner)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.fn)
def test_wallet_function_by_role(
    chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    case: Case,
    state: str,
    role: str,
) -> None:
    s = make_session()
    # the owner may top up in every state; allowance first, so only permissions decide
    chain.send(stack.token.functions.approve(s.wallet.address, 10**6 * TOKEN), roles.owner)
    _enter_state(chain, s, roles, state)
    caller = getattr(roles, role)
    expected = case.expect[state].get(role)
    fn = case.call(stack, s, roles)
    if expected is None:
        receipt = chain.send(fn, caller)
        names = [e["event"] for e in chain.events(receipt, s.wallet)]
        assert names == [case.event], f"{case.fn} by {role} in {state}: events {names}"
    else:
        chain.expect_revert(fn, caller, expected)


def test_sync_is_open_to_anyone_after_a_plain_transfer(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, 7), roles.owner2)
    receipt = chain.send(s.wallet.functions.sync(), roles.stranger)
    (ev,) = chain.events(receipt, s.wallet)
    assert ev["event"] == "Synced"
    # the inflow pays its fee, rounded up: 1 % of 7 wei is 1 wei
    assert dict(ev["args"]) == {
        "seq": 1,
        "previousBalance": 1_000 * TOKEN,
        "fee": 1,
        "balanceAfter": 1_000 * TOKEN + 6,
    }
    assert s.wallet.functions.recordedBalance().call() == 1_000 * TOKEN + 6
    chain.expect_revert(s.wallet.functions.sync(), roles.stranger, "NothingToSync")  # fmt: skip


# ---------------------------------------------------------------------------- factory

ANY = selector("anything()")
ADMIN: list[tuple[str, Callable[[Stack, Roles], ContractFunction], str]] = [
    ("setTrustedCall",
     lambda st, r: st.factory.functions.setTrustedCall(r.stranger, ANY, True), "CallTrusted"),
    ("setTrustedToken",
     lambda st, r: st.factory.functions.setTrustedToken(r.stranger, True), "TokenTrusted"),
    ("setTrustedOperator",
     lambda st, r: st.factory.functions.setTrustedOperator(r.stranger, True), "OperatorTrusted"),
    ("setFee", lambda st, r: st.factory.functions.setFee(250), "FeeChanged"),
    ("setTreasury", lambda st, r: st.factory.functions.setTreasury(r.stranger), "TreasuryChanged"),
    ("setSessionsPaused", lambda st, r: st.factory.functions.setSessionsPaused(True),
     "SessionsPausedSet"),
    ("setExecutePaused", lambda st, r: st.factory.functions.setExecutePaused(True),
     "ExecutePausedSet"),
    ("transferOwnership", lambda st, r: st.factory.functions.transferOwnership(r.stranger),
     "OwnershipTransferStarted"),
]  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("admin", ADMIN, ids=lambda a: a[0])
def test_factory_admin_by_role(
    chain: Chain, stack: Stack, roles: Roles, admin: tuple[str, Any, str], role: str
) -> None:
    _name, call, event = admin
    caller = getattr(roles, role)
    if role == "deployer":
        receipt = chain.send(call(stack, roles), caller)
        assert [e["event"] for e in chain.events(receipt, stack.factory)] == [event]
    else:
        revert = chain.expect_revert(call(stack, roles), caller, "OwnableUnauthorizedAccount")
        assert revert.args == (caller,)


@pytest.mark.parametrize("role", ROLES)
def test_create_session_is_open_to_anyone(
    chain: Chain, stack: Stack, roles: Roles, role: str
) -> None:
    caller = getattr(roles, role)
    chain.send(stack.token.functions.mint(caller, 10_000 * TOKEN), roles.deployer)
    deposit = session_params(chain, stack, roles)["deposit"]
    allowance = deposit + ceil_fee(deposit)
    chain.send(stack.token.functions.approve(stack.factory.address, allowance), caller)
    params = session_params(chain, stack, roles)
    receipt = chain.send(
        stack.factory.functions.createSession(as_tuple(params), b"\x01" * 32), caller
    )
    (ev,) = chain.events(receipt, stack.factory)
    assert ev["args"]["owner"] == caller


@pytest.mark.parametrize("role", ROLES)
def test_batch_close_acts_with_the_callers_rights(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], role: str
) -> None:
    s = make_session()
    reasons = {"owner": CloseReason.OWNER}
    reason = reasons.get(role, CloseReason.STOP_LOSS)
    caller = getattr(roles, role)
    batch = stack.factory.functions.closeBatch([s.wallet.address], [reason], MEMBER_GAS)
    receipt = chain.send(batch, caller)
    closed = s.wallet.functions.closed().call()
    failures = [e for e in chain.events(receipt, stack.factory) if e["event"] == "BatchCloseFailed"]
    if role in ("owner", "operator"):
        assert closed and not failures
    else:
        assert not closed
        (failure,) = failures
        assert failure["args"]["wallet"] == s.wallet.address
        assert decode_revert(failure["args"]["reason"]).name == "NotOperator"
