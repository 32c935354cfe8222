"""`POST /prepare/{top-up,withdraw,extend,revoke,close}`: what an owner signs to act on
an open session wallet of the factory, checked against the wallet's state now."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from contracts import CLOSE_REASONS, UINT256_MAX
from warden.app.api.errors import BadParameter, Conflict
from warden.app.api.prepare_chain import (
    Node,
    Preparation,
    TokenMeta,
    address,
    call_data,
    flag,
    loose_uint,
    read_decimals,
    read_symbol,
    selector,
    word,
)
from warden.app.api.prepare_models import (
    Action,
    ExtendRequest,
    TopUpRequest,
    WalletRequest,
    WithdrawRequest,
)
from warden.app.api.prepare_steps import (
    Step,
    approve,
    asking,
    fee_of,
    future,
    prepared,
    shown,
    transactions,
    when,
    with_reset,
)
from warden.app.api.routes import Context, Reply

_OWNER_CLOSE = CLOSE_REASONS.index("owner")


@dataclass(frozen=True)
class Wallet:
    address: str
    owner: str
    revoked: bool
    token: str
    expiry: int
    max_fee_bps: int
    recorded: int
    meta: TokenMeta
    balance: int | None  # the wallet's token balance, None when the token gives none
    owner_balance: int | None
    allowance: int | None  # the owner's approval of the wallet
    fee_bps: int
    now: int
    nonce: int


_WALLET_VIEWS = (
    "owner()",
    "closed()",
    "revoked()",
    "token()",
    "expiry()",
    "maxFeeBps()",
    "recordedBalance()",
)


async def _wallet(node: Node, prep: Preparation, body: WalletRequest, verb: str) -> Wallet:
    """The wallet's state, once it is known to be one of the factory's, owned by the
    request's owner and open."""
    f, w = prep.factory, body.wallet
    is_wallet, fee_bps = await node.calls(
        [
            (f, call_data("isWallet(address)", ["address"], [w])),
            (f, selector("feeBps()")),
        ]
    )
    if not flag(is_wallet, "isWallet(wallet)"):
        raise BadParameter(
            "/wallet", f"{w} is not a session wallet of the factory {f}: check the address"
        )
    answers = await node.calls([(w, selector(view)) for view in _WALLET_VIEWS])
    owner = address(answers[0], "owner()")
    token = address(answers[3], "token()")
    if owner != body.owner:
        raise BadParameter(
            "/owner", f"{w} belongs to {owner}: only its owner can {verb}; send from that address"
        )
    if flag(answers[1], "closed()"):
        raise Conflict("the session is closed: nothing can change it any more", "/wallet")
    token_reads = [
        call_data("balanceOf(address)", ["address"], [w]),
        call_data("balanceOf(address)", ["address"], [owner]),
        call_data("allowance(address,address)", ["address", "address"], [owner, w]),
        selector("decimals()"),
        selector("symbol()"),
    ]
    reads, (now, nonce) = await asyncio.gather(
        node.token_calls(token, token_reads), node.facts(owner)
    )
    return Wallet(
        address=w,
        owner=owner,
        revoked=flag(answers[2], "revoked()"),
        token=token,
        expiry=word(answers[4], "expiry()"),
        max_fee_bps=word(answers[5], "maxFeeBps()"),
        recorded=word(answers[6], "recordedBalance()"),
        meta=TokenMeta(read_symbol(reads[4]), read_decimals(reads[3])),
        balance=loose_uint(reads[0]),
        owner_balance=loose_uint(reads[1]),
        allowance=loose_uint(reads[2]),
        fee_bps=word(fee_bps, "feeBps()"),
        now=now,
        nonce=nonce,
    )


def _available(w: Wallet) -> int | None:
    """What the wallet can pay out once an unrecorded inflow paid its fee (`_absorb`)."""
    if w.balance is None:
        return None
    if w.balance <= w.recorded:
        return w.balance
    return w.balance - fee_of(w.balance - w.recorded, min(w.fee_bps, w.max_fee_bps))


async def _act(
    ctx: Context,
    body: WalletRequest,
    verb: str,
    action: Action,
    amount_field: str | None,
    build: Callable[[Wallet], list[Step]],
    fee: Callable[[Wallet], int | None] = lambda w: None,
) -> Reply:
    async with asking(ctx) as (node, prep):
        w = await _wallet(node, prep, body, verb)
        steps = await with_reset(node, w.owner, w.allowance, build(w))
        txs = await transactions(node, prep, w.owner, w.nonce, steps, amount_field)
    return prepared(action, prep, w.owner, w.address, w.token, w.meta, txs, fee(w))


async def top_up(ctx: Context, path: None, body: TopUpRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        if body.amount == 0:
            raise BadParameter("/amount", "must be above 0")
        if w.fee_bps > body.max_fee_bps:
            raise BadParameter(
                "/max_fee_bps",
                f"the factory charges {w.fee_bps} bps now, "
                f"above your {body.max_fee_bps}: consent to at least {w.fee_bps}",
            )
        fee = fee_of(body.amount, w.fee_bps)
        need = body.amount + fee
        if need > UINT256_MAX:
            raise BadParameter("/amount", "the amount plus its fee is above 2**256-1")
        if w.owner_balance is not None and w.owner_balance < need:
            raise Conflict(
                f"the owner holds {shown(w.owner_balance, w.meta, w.token)}; the "
                f"top-up and its fee need {shown(need, w.meta, w.token)}",
                "/amount",
            )
        data = call_data(
            "deposit(uint256,uint16)", ["uint256", "uint16"], [body.amount, body.max_fee_bps]
        )
        text = (
            f"Top up session {w.address} with {shown(body.amount, w.meta, w.token)} plus "
            f"the fee {shown(fee, w.meta, w.token)} ({w.fee_bps} bps, you accept up to "
            f"{body.max_fee_bps})"
        )
        steps = [Step("deposit", w.address, data, text)]
        if w.allowance is None or w.allowance < need:
            steps.insert(0, approve(w.token, w.address, need, w.meta, "the wallet"))
        return steps

    return await _act(
        ctx, body, "top it up", "top_up", "/amount", build, lambda w: fee_of(body.amount, w.fee_bps)
    )


async def withdraw(ctx: Context, path: None, body: WithdrawRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        if body.amount == 0:
            raise BadParameter("/amount", "must be above 0")
        available = _available(w)
        if available is not None and body.amount > available:
            raise Conflict(
                f"the wallet can pay out {shown(available, w.meta, w.token)}: "
                "withdraw at most that",
                "/amount",
            )
        data = call_data("withdraw(uint256)", ["uint256"], [body.amount])
        text = (
            f"Withdraw {shown(body.amount, w.meta, w.token)} from session {w.address} to {w.owner}"
        )
        return [Step("withdraw", w.address, data, text)]

    return await _act(ctx, body, "withdraw", "withdraw", "/amount", build)


async def extend(ctx: Context, path: None, body: ExtendRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        if body.expiry <= w.expiry:
            raise BadParameter("/expiry", f"must be later than the current expiry {when(w.expiry)}")
        future(body.expiry, w.now)
        data = call_data("extend(uint64)", ["uint64"], [body.expiry])
        text = f"Extend session {w.address} from {when(w.expiry)} to {when(body.expiry)}"
        return [Step("extend", w.address, data, text)]

    return await _act(ctx, body, "extend it", "extend", None, build)


async def revoke(ctx: Context, path: None, body: WalletRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        if w.revoked:
            raise Conflict(
                "the operator is already revoked: close the session to take its balance back",
                "/wallet",
            )
        text = (
            f"Revoke the operator of session {w.address} for good (anyone may then "
            "sweep it: the balance goes to you)"
        )
        return [Step("revoke", w.address, selector("revoke()"), text)]

    return await _act(ctx, body, "revoke it", "revoke", None, build)


async def close(ctx: Context, path: None, body: WalletRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        data = call_data("close(uint8)", ["uint8"], [_OWNER_CLOSE])
        balance = "its whole balance" if w.balance is None else shown(w.balance, w.meta, w.token)
        text = f"Close session {w.address} and refund {balance} to {w.owner}, without a fee"
        return [Step("close", w.address, data, text)]

    return await _act(ctx, body, "close it", "close", None, build)
