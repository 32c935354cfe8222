"""What every prepare endpoint shares: the node for one request with its failures
answered 502/503, the meaning of a revert met while estimating, the gas and fees of the
answered transactions, and the amounts, times and summary a person reads before signing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from chain import ChainClient, checksum, decode_revert
from chain.errors import BadResponse, CallReverted, ChainError, RetryableError, RpcRejected
from chain.units import token_units
from warden.app.api.errors import BadParameter, Conflict, NodeFailed, NodeUnavailable
from warden.app.api.prepare_chain import (
    Node,
    Preparation,
    TokenMeta,
    call_data,
    limit_from_used,
    with_margin,
)
from warden.app.api.prepare_models import Action, Prepared, PreparedTransaction, TokenInfo
from warden.app.api.routes import Context, Reply

# An expiry must still be in the future when the transaction is mined: at least this far
# past the latest block's time (a block or several on any chain).
MIN_LEAD = 60


@dataclass(frozen=True)
class Prepare:
    """What the handlers reach through `Context.prepare`: the settings, the client the
    app opened for them, and the slots that bound how many requests ask the node at once
    (a flood of prepare requests must not become a flood of node calls)."""

    settings: Preparation
    client: ChainClient
    slots: asyncio.Semaphore


@dataclass(frozen=True)
class Step:
    name: str
    to: str
    data: bytes
    description: str


# --------------------------------------------------------------- node failures


@contextlib.asynccontextmanager
async def asking(ctx: Context) -> AsyncIterator[tuple[Node, Preparation]]:
    """The node for one request, its failures answered 502/503 (never a 500), and all of
    its questions, with the wait for a slot, bounded by the settings' deadline."""
    prep: Prepare = ctx.prepare
    deadline = asyncio.get_running_loop().time() + prep.settings.deadline
    try:
        async with asyncio.timeout_at(deadline):
            await prep.slots.acquire()
    except TimeoutError:
        raise NodeUnavailable(
            f"busy: {prep.settings.max_concurrent} prepare requests were asking the node for "
            f"all of {prep.settings.deadline:g} s: retry later"
        ) from None
    try:
        async with asyncio.timeout_at(deadline):
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
    finally:
        prep.slots.release()


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


async def gas_limits(
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


async def transactions(
    node: Node,
    prep: Preparation,
    owner: str,
    nonce: int,
    steps: Sequence[Step],
    amount_field: str | None,
) -> list[PreparedTransaction]:
    gas = await gas_limits(node, owner, steps, amount_field)
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


def future(expiry: int, now: int) -> None:
    if expiry < now + MIN_LEAD:
        raise BadParameter(
            "/expiry",
            (
                f"{when(expiry)} is not far enough in the future by chain time: the latest "
                f"block's time is {when(now)}; send at least {now + MIN_LEAD} (it must still be "
                "in the future when the transaction is mined)"
            ),
        )


def approve(token: str, spender: str, amount: int, meta: TokenMeta, who: str) -> Step:
    data = call_data("approve(address,uint256)", ["address", "uint256"], [spender, amount])
    text = f"Approve {who} {spender} to take {shown(amount, meta, token)}"
    return Step("approve", token, data, text)


async def with_reset(
    node: Node, owner: str, allowance: int | None, steps: list[Step]
) -> list[Step]:
    """`steps`, with the approval reset to 0 first when the token needs it: some tokens
    (USDT) refuse to change a non-zero allowance to another non-zero one. Asked only when
    a partial allowance stands, by estimating the approval as it is."""
    first = steps[0]
    if first.name != "approve" or not allowance:
        return steps
    try:
        await node.estimate(owner, first.to, first.data)
    except CallReverted:
        spender = checksum(first.data[16:36])
        data = call_data("approve(address,uint256)", ["address", "uint256"], [spender, 0])
        text = (
            f"Reset the approval of {spender} to 0 first (this token refuses to change a "
            "non-zero approval to another)"
        )
        return [Step("reset_approval", first.to, data, text), *steps]
    return steps


def prepared(
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
