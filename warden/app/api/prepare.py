"""`POST /prepare/{create,top-up,withdraw,extend,revoke,close}`: the unsigned transactions
an owner signs to act on a session, checked against the chain first.

Each request is checked, field by field, against what the contracts would refuse (in the
contracts' own order, docs/contracts.md), read from the chain now: the factory's registry
(token, operator, targets by their trusted selectors), its fee against the owner's
consent, chain time, the wallet's owner and state, the owner's token balance. A refusal
names the field (400) or the state that refuses it (409), with the fix. Then each
transaction is estimated from the owner's address; a step that needs the one before it
(a creation or top-up after its approval) is simulated after it (`eth_simulateV1`), so
the estimate sees the approval. A revert there is decoded and answered the same way.
Nothing is signed or sent here.
"""

from __future__ import annotations

import asyncio
import json
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from chain import ChainClient, decode_revert
from chain.errors import BadResponse, CallReverted, ChainError, RetryableError, RpcRejected
from chain.units import token_units
from contracts import CLOSE_REASONS
from warden.app.api.errors import BadParameter, Conflict, NodeFailed, NodeUnavailable
from warden.app.api.prepare_chain import (
    CREATE,
    SESSION_PARAMS,
    Node,
    Preparation,
    TokenMeta,
    address,
    call_data,
    flag,
    limit_from_used,
    loose_uint,
    read_decimals,
    read_symbol,
    selector,
    with_margin,
    word,
)
from warden.app.api.prepare_models import (
    Action,
    CreateRequest,
    ExtendRequest,
    Prepared,
    PreparedTransaction,
    TokenInfo,
    TopUpRequest,
    WalletRequest,
    WithdrawRequest,
)
from warden.app.api.routes import Context, Handler, Reply, Route

# An expiry must still be in the future when the transaction is mined: at least this far
# past the latest block's time (a block or several on any chain).
MIN_LEAD = 60
_OWNER_CLOSE = CLOSE_REASONS.index("owner")


@dataclass(frozen=True)
class Prepare:
    """What the handlers reach through `Context.prepare`: the settings and the client
    the app opened for them."""

    settings: Preparation
    client: ChainClient


@dataclass(frozen=True)
class Step:
    name: str
    to: str
    data: bytes
    description: str


# --------------------------------------------------------------- node failures


@contextlib.asynccontextmanager
async def _node(ctx: Context) -> AsyncIterator[tuple[Node, Preparation]]:
    """The node for one request, its failures answered 502/503 (never a 500), and all of
    its questions bounded by the settings' deadline."""
    prep: Prepare = ctx.prepare
    try:
        async with asyncio.timeout(prep.settings.deadline):
            yield Node(prep.client), prep.settings
    except TimeoutError:
        raise NodeUnavailable(
            f"the node did not answer within {prep.settings.deadline:g} s: retry later"
        ) from None
    except BadResponse as exc:
        raise NodeFailed(f"the node answered something malformed: {exc}") from None
    except RetryableError as exc:
        raise NodeUnavailable(f"the node is unavailable ({exc}): retry later") from None
    except ChainError as exc:
        raise NodeFailed(f"the node refused a question: {exc}") from None


# ------------------------------------------------------------------ reverts

# What a revert during estimation means for the client: (status, field, fix).
_REVERTS: dict[str, tuple[int, str | None, str]] = {
    "NotOwner": (400, "/owner", "only the wallet's owner can do this: send from its owner"),
    "SessionIsClosed": (409, "/wallet", "the session is closed"),
    "AlreadyRevoked": (409, "/wallet", "the operator is already revoked"),
    "ZeroAmount": (400, "/amount", "must be above 0"),
    "AmountExceedsBalance": (409, "/amount", "more than the wallet holds: withdraw less"),
    "ExpiryNotLater": (400, "/expiry", "must be later than the current expiry"),
    "FeeAboveMax": (
        409,
        "/max_fee_bps",
        "the factory's fee is above your consent: "
        "prepare again and consent to the fee it charges now",
    ),
    "SessionsPaused": (409, None, "the factory has paused new sessions: try later"),
    "ZeroDeposit": (400, "/deposit", "must be above 0"),
    "ZeroAddress": (400, None, "an address is zero"),
    "UntrustedToken": (400, "/token", "the registry does not trust this token"),
    "UntrustedOperator": (400, "/operator", "the registry does not trust this operator"),
    "UntrustedTarget": (400, "/targets", "a target has no selector the registry trusts"),
    "ExpiryNotInFuture": (400, "/expiry", "must be in the future by chain time"),
    "PolicyTooLong": (400, "/policy", "at most 32 bytes"),
    "InvalidThresholds": (400, "/take_profit", "must be above stop_loss when both are set"),
    "TooManyTargets": (400, "/targets", "at most 16"),
    "TargetNotAllowed": (400, "/targets", "a token, the factory or the wallet is no target"),
    "ERC20InsufficientBalance": (409, None, "the owner's token balance is too small"),
    "ERC20InsufficientAllowance": (409, None, "the approval is too small"),
}


def refusal(data: str | None, step: Step, amount_field: str | None) -> Exception:
    """The answer to a step whose estimate or simulation reverted with `data`."""
    revert = decode_revert(data)
    shown = str(revert)
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    status, where, fix = _REVERTS.get(revert.name, (409, None, ""))
    if revert.name == "ERC20InsufficientBalance":
        where = amount_field
    message = f"the {step.name} transaction would revert with {shown}"
    message += f": {fix}" if fix else " (the token or a target refuses it now)"
    if status == 400:
        return BadParameter(where or "/", message)
    return Conflict(message, where)


async def _gas(
    node: Node, owner: str, steps: Sequence[Step], amount_field: str | None
) -> list[int | None]:
    """Each step's gas limit. The first is estimated as it stands; a second one depends
    on the first (an approval) and is simulated after it."""
    first = steps[0]
    try:
        limits: list[int | None] = [with_margin(await node.estimate(owner, first.to, first.data))]
    except CallReverted as exc:
        raise refusal(exc.data, first, amount_field) from None
    if len(steps) == 1:
        return limits
    try:
        simulated = await node.simulate(owner, [(s.to, s.data) for s in steps])
    except RpcRejected:  # no eth_simulateV1 here: the client estimates after the approval
        return [*limits, *(None for _ in steps[1:])]
    for step, result in zip(steps, simulated, strict=True):
        if result.revert is not None:
            raise refusal(result.revert, step, amount_field)
    return [*limits, *(limit_from_used(r.gas_used) for r in simulated[1:])]


async def _transactions(
    node: Node,
    prep: Preparation,
    owner: str,
    nonce: int,
    steps: Sequence[Step],
    amount_field: str | None,
) -> list[PreparedTransaction]:
    gas = await _gas(node, owner, steps, amount_field)
    fees = await node.fees(prep.fees)
    return [
        PreparedTransaction.model_validate(
            {
                "step": step.name,
                "description": step.description,
                "type": "0x2",
                "chain_id": prep.chain_id,
                "from": owner,
                "to": step.to,
                "data": "0x" + step.data.hex(),
                "value": 0,
                "nonce": nonce + i,
                "gas": limit,
                "max_fee_per_gas": fees.max_fee_per_gas,
                "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
            }
        )
        for i, (step, limit) in enumerate(zip(steps, gas, strict=True))
    ]


# ---------------------------------------------------------------- formatting


def shown(amount: int, meta: TokenMeta, token: str) -> str:
    """An amount as a person reads it: in token units with the symbol when the token
    gives usable ones, always with the exact base units."""
    if meta.decimals is None:
        return f"{amount} base units of token {token}"
    units = token_units(amount, meta.decimals)
    return f"{units} {meta.symbol or 'of token ' + token} ({amount} base units)"


def when(seconds: int) -> str:
    if seconds > 253_402_300_799:  # beyond year 9999: datetime cannot show it
        return f"unix {seconds}"
    moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{moment} (unix {seconds})"


def fee_of(amount: int, bps: int) -> int:
    """The contracts' fee: rounded up (Math.mulDiv(..., Ceil))."""
    return -(-amount * bps // 10_000)


def _future(expiry: int, now: int) -> None:
    if expiry < now + MIN_LEAD:
        raise BadParameter(
            "/expiry",
            (
                f"{when(expiry)} is not far enough in the future by chain time: the latest "
                f"block's time is {when(now)}; send at least {now + MIN_LEAD} (it must still be "
                "in the future when the transaction is mined)"
            ),
        )


def _approve(token: str, spender: str, amount: int, meta: TokenMeta, who: str) -> Step:
    data = call_data("approve(address,uint256)", ["address", "uint256"], [spender, amount])
    text = f"Approve {who} {spender} to take {shown(amount, meta, token)}"
    return Step("approve", token, data, text)


def _prepared(
    action: Action,
    prep: Preparation,
    owner: str,
    wallet: str,
    token: str,
    meta: TokenMeta,
    txs: list[PreparedTransaction],
    fee: int | None,
    salt: str | None = None,
) -> Reply:
    summary = ". Then: ".join(tx.description for tx in txs)
    return Reply(
        Prepared(
            action=action,
            chain_id=prep.chain_id,
            owner=owner,
            wallet=wallet,
            salt=salt,
            token=TokenInfo(address=token, symbol=meta.symbol, decimals=meta.decimals),
            fee=fee,
            transactions=txs,
            summary=summary + ".",
        )
    )


# ------------------------------------------------------------------- create


async def create(ctx: Context, path: None, body: CreateRequest) -> Reply:
    owner, token = body.owner, body.token
    salt = body.salt or "0x" + secrets.token_hex(32)
    async with _node(ctx) as (node, prep):
        f = prep.factory
        views = [
            (f, selector("sessionsPaused()")),
            (f, selector("feeBps()")),
            (f, call_data("isTrustedToken(address)", ["address"], [token])),
            (f, call_data("isTrustedOperator(address)", ["address"], [body.operator])),
            (
                f,
                call_data(
                    "predictWallet(address,bytes32)",
                    ["address", "bytes32"],
                    [owner, bytes.fromhex(salt[2:])],
                ),
            ),
            (token, call_data("balanceOf(address)", ["address"], [owner])),
            (token, call_data("allowance(address,address)", ["address", "address"], [owner, f])),
            (token, selector("decimals()")),
            (token, selector("symbol()")),
        ]
        for target in body.targets:
            views.append((f, call_data("trustedSelectors(address)", ["address"], [target])))
            views.append((f, call_data("isTrustedToken(address)", ["address"], [target])))
        answers = await node.calls(views)
        now, nonce = await node.facts(owner)
        meta = TokenMeta(read_symbol(answers[8]), read_decimals(answers[7]))
        if flag(answers[0], "sessionsPaused()"):
            raise Conflict(
                "the factory has paused new sessions (sessionsPaused): try again "
                "once its owner resumes them"
            )
        bps = word(answers[1], "feeBps()")
        if not flag(answers[2], "isTrustedToken(token)"):
            raise BadParameter(
                "/token",
                f"{token} is not a token the factory's registry "
                "trusts: open the session with a token it lists",
            )
        if body.deposit == 0:
            raise BadParameter("/deposit", "must be above 0")
        _future(body.expiry, now)
        if not flag(answers[3], "isTrustedOperator(operator)"):
            raise BadParameter(
                "/operator",
                f"{body.operator} is not an operator the "
                "factory's registry trusts: name a trusted operator",
            )
        if body.stop_loss and body.take_profit and body.stop_loss >= body.take_profit:
            raise BadParameter(
                "/take_profit",
                f"must be above stop_loss ({body.stop_loss}) when both are set (0 means none)",
            )
        wallet = address(answers[4], "predictWallet(owner, salt)")
        seen: set[str] = set()
        for i, target in enumerate(body.targets):
            selectors = word(answers[9 + 2 * i], "trustedSelectors(target)")
            is_token = flag(answers[10 + 2 * i], "isTrustedToken(target)")
            where = f"/targets/{i}"
            if target in seen:
                raise BadParameter(where, f"{target} is listed twice: list each target once")
            seen.add(target)
            if target in (token, f, wallet) or is_token:
                raise BadParameter(
                    where,
                    f"{target} is a token, the factory or the wallet "
                    "itself, which is never a target: remove it",
                )
            if selectors == 0:
                raise BadParameter(
                    where,
                    f"{target} has no call the registry trusts "
                    "(UntrustedTarget): remove it or have it trusted",
                )
        if bps > body.max_fee_bps:
            raise BadParameter(
                "/max_fee_bps",
                f"the factory charges {bps} bps now, above "
                f"your {body.max_fee_bps}: consent to at least {bps}",
            )
        if await node.code(wallet):
            raise Conflict(
                f"a wallet already exists at {wallet} for this owner and salt: "
                "choose another salt, or leave it out for a random one",
                "/salt",
            )
        fee = fee_of(body.deposit, bps)
        need = body.deposit + fee
        balance = loose_uint(answers[5])
        if balance is not None and balance < need:
            raise Conflict(
                f"the owner holds {shown(balance, meta, token)}; the deposit and "
                f"its fee need {shown(need, meta, token)}",
                "/deposit",
            )
        params = (
            body.operator,
            token,
            body.deposit,
            body.expiry,
            body.budget,
            body.stop_loss,
            body.take_profit,
            body.policy,
            body.targets,
            body.max_fee_bps,
        )
        data = call_data(CREATE, [SESSION_PARAMS, "bytes32"], [params, bytes.fromhex(salt[2:])])
        targets = ", ".join(body.targets) or "none"
        text = (
            f"Create session wallet {wallet}: deposit {shown(body.deposit, meta, token)} plus "
            f"the fee {shown(fee, meta, token)} ({bps} bps, you accept up to "
            f"{body.max_fee_bps}), operator {body.operator}, expiry {when(body.expiry)}, "
            f"budget {shown(body.budget, meta, token)}, stop-loss "
            f"{shown(body.stop_loss, meta, token) if body.stop_loss else 'none'}, take-profit "
            f"{shown(body.take_profit, meta, token) if body.take_profit else 'none'}, policy "
            f"{json.dumps(body.policy, ensure_ascii=False)}, targets {targets}"
        )
        steps = [Step("create", f, data, text)]
        allowance = loose_uint(answers[6])
        if allowance is None or allowance < need:
            steps.insert(0, _approve(token, f, need, meta, "the factory"))
        txs = await _transactions(node, prep, owner, nonce, steps, "/deposit")
    return _prepared("create", prep, owner, wallet, token, meta, txs, fee, salt)


# ------------------------------------------------------------- the wallet's


@dataclass(frozen=True)
class Wallet:
    address: str
    owner: str
    closed: bool
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
    reads = await node.calls(
        [
            (token, call_data("balanceOf(address)", ["address"], [w])),
            (token, call_data("balanceOf(address)", ["address"], [owner])),
            (token, call_data("allowance(address,address)", ["address", "address"], [owner, w])),
            (token, selector("decimals()")),
            (token, selector("symbol()")),
        ]
    )
    now, nonce = await node.facts(owner)
    return Wallet(
        address=w,
        owner=owner,
        closed=False,
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


async def _one_step(
    ctx: Context,
    body: WalletRequest,
    verb: str,
    action: Action,
    amount_field: str | None,
    build: Callable[[Wallet], list[Step]],
    fee: Callable[[Wallet], int | None] = lambda w: None,
) -> Reply:
    async with _node(ctx) as (node, prep):
        w = await _wallet(node, prep, body, verb)
        steps = build(w)
        txs = await _transactions(node, prep, w.owner, w.nonce, steps, amount_field)
    return _prepared(action, prep, w.owner, w.address, w.token, w.meta, txs, fee(w))


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
            steps.insert(0, _approve(w.token, w.address, need, w.meta, "the wallet"))
        return steps

    return await _one_step(
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

    return await _one_step(ctx, body, "withdraw", "withdraw", "/amount", build)


async def extend(ctx: Context, path: None, body: ExtendRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        if body.expiry <= w.expiry:
            raise BadParameter("/expiry", f"must be later than the current expiry {when(w.expiry)}")
        _future(body.expiry, w.now)
        data = call_data("extend(uint64)", ["uint64"], [body.expiry])
        text = f"Extend session {w.address} from {when(w.expiry)} to {when(body.expiry)}"
        return [Step("extend", w.address, data, text)]

    return await _one_step(ctx, body, "extend it", "extend", None, build)


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

    return await _one_step(ctx, body, "revoke it", "revoke", None, build)


async def close(ctx: Context, path: None, body: WalletRequest) -> Reply:
    def build(w: Wallet) -> list[Step]:
        data = call_data("close(uint8)", ["uint8"], [_OWNER_CLOSE])
        balance = "its whole balance" if w.balance is None else shown(w.balance, w.meta, w.token)
        text = f"Close session {w.address} and refund {balance} to {w.owner}, without a fee"
        return [Step("close", w.address, data, text)]

    return await _one_step(ctx, body, "close it", "close", None, build)


_ANSWERS = (409, 413, 502, 503)


def prepare_routes() -> tuple[Route, ...]:
    def route(
        name: str, handler: Handler, summary: str, body: type[WalletRequest] | type[CreateRequest]
    ) -> Route:
        return Route(
            f"/prepare/{name}",
            handler,
            summary,
            Prepared,
            errors=_ANSWERS,
            method="POST",
            body=body,
        )

    return (
        route(
            "create",
            create,
            "Unsigned transactions that open a session: the token "
            "approval if needed, then createSession (predicted wallet address)",
            CreateRequest,
        ),
        route(
            "top-up",
            top_up,
            "Unsigned transactions that top a session up: the approval "
            "if needed, then deposit(amount, maxFeeBps)",
            TopUpRequest,
        ),
        route("withdraw", withdraw, "The unsigned withdraw(amount) of a session", WithdrawRequest),
        route("extend", extend, "The unsigned extend(expiry) of a session", ExtendRequest),
        route("revoke", revoke, "The unsigned revoke() of a session's operator", WalletRequest),
        route("close", close, "The unsigned close(Owner) of a session", WalletRequest),
    )
