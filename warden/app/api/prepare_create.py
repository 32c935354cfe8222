"""`POST /prepare/create`: the token approval (when the allowance is short) and the
`createSession` an owner signs, at the wallet address the factory predicts for the
owner and salt, checked in the factory's own order (docs/contracts.md)."""

from __future__ import annotations

import asyncio
import json
import secrets

from contracts import UINT256_MAX
from warden.app.api.errors import BadParameter, Conflict
from warden.app.api.prepare_chain import (
    CREATE,
    SESSION_PARAMS,
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
from warden.app.api.prepare_models import CreateRequest
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


async def create(ctx: Context, path: None, body: CreateRequest) -> Reply:
    owner, token = body.owner, body.token
    salt = body.salt or "0x" + secrets.token_hex(32)
    async with asking(ctx) as (node, prep):
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
        ]
        for target in body.targets:
            views.append((f, call_data("trustedSelectors(address)", ["address"], [target])))
            views.append((f, call_data("isTrustedToken(address)", ["address"], [target])))
        token_reads = [
            call_data("balanceOf(address)", ["address"], [owner]),
            call_data("allowance(address,address)", ["address", "address"], [owner, f]),
            selector("decimals()"),
            selector("symbol()"),
        ]
        answers, reads, (now, nonce) = await asyncio.gather(
            node.calls(views), node.token_calls(token, token_reads), node.facts(owner)
        )
        meta = TokenMeta(read_symbol(reads[3]), read_decimals(reads[2]))
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
        future(body.expiry, now)
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
            selectors = word(answers[5 + 2 * i], "trustedSelectors(target)")
            is_token = flag(answers[6 + 2 * i], "isTrustedToken(target)")
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
        if need > UINT256_MAX:
            raise BadParameter("/deposit", "the deposit plus its fee is above 2**256-1")
        balance = loose_uint(reads[0])
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
            f"{json.dumps(body.policy)}, targets {targets}"
        )
        steps = [Step("create", f, data, text)]
        allowance = loose_uint(reads[1])
        if allowance is None or allowance < need:
            steps.insert(0, approve(token, f, need, meta, "the factory"))
        steps = await with_reset(node, owner, allowance, steps)
        txs = await transactions(node, prep, owner, nonce, steps, "/deposit")
    return prepared("create", prep, owner, wallet, token, meta, txs, fee, salt)
