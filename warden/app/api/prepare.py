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

from warden.app.api.prepare_create import create
from warden.app.api.prepare_models import (
    CreateRequest,
    ExtendRequest,
    Prepared,
    Request,
    TopUpRequest,
    WalletRequest,
    WithdrawRequest,
)
from warden.app.api.prepare_steps import Prepare
from warden.app.api.prepare_wallet import close, extend, revoke, top_up, withdraw
from warden.app.api.routes import Handler, Route

__all__ = ["Prepare", "prepare_routes"]

_ANSWERS = (409, 413, 502, 503)


def prepare_routes() -> tuple[Route, ...]:
    def route(name: str, handler: Handler, summary: str, body: type[Request]) -> Route:
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
