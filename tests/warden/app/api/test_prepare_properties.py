"""What the prepare routes promise, as properties over requests built from the chain's own
addresses and amounts at the edges (the schema fuzz mostly meets random addresses):

- an answer is 200, or a 400/409 naming a field of the request, never a 5xx;
- every 200 is true: its transactions, signed with the owner's key and sent at once, all
  succeed on chain, within their gas;
- every refusal is true too: the same call, unchecked and after an unlimited approval,
  reverts on chain — but for Warden's one stricter rule met here (an expiry less than a
  minute out, which the contract would take and the time to mine it would break).

`WARDEN_PREPARE_EXAMPLES` sets the examples per test (default 40; derandomized, so a run
is repeatable)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chain import Revert
from tests._chain import Chain
from tests.conftest import FEE_BPS, TOKEN, Roles, Stack, create_session, session_params
from tests.indexer._support import config, index_to_head
from tests.warden.app.api._prepare import key_of, send_prepared
from tests.warden.app.api.test_fuzz import served_in_thread
from warden.app.api.prepare_chain import Preparation
from warden.app.api.prepare_steps import MIN_LEAD

EXAMPLES = int(os.environ.get("WARDEN_PREPARE_EXAMPLES", "40"))
UINT256_MAX = 2**256 - 1


@dataclass
class World:
    chain: Chain
    stack: Stack
    roles: Roles
    base: str
    http: requests.Session
    open: str
    revoked: str
    closed: str
    statuses: Counter[tuple[str, int]]

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        r = self.http.post(f"{self.base}/prepare/{path}", json=body, timeout=60)
        return r.status_code, r.json()


@pytest.fixture
def world(fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path) -> Iterator[World]:
    made = []
    for n in range(3):
        params = session_params(fresh_chain, stack, roles)
        made.append(create_session(fresh_chain, stack, roles.owner, params, (700 + n).to_bytes(32)))
    fresh_chain.send(made[1].wallet.functions.revoke(), roles.owner)
    fresh_chain.send(made[2].wallet.functions.close(0), roles.owner)
    db = tmp_path / "w.sqlite"
    asyncio.run(index_to_head(fresh_chain.anvil.url, db, config(stack.factory.address)))
    prepare = Preparation((fresh_chain.anvil.url,), stack.factory.address, 31337)
    with served_in_thread(db, None, prepare) as base, requests.Session() as http:
        opened, revoked, closed = (s.wallet.address for s in made)
        yield World(fresh_chain, stack, roles, base, http, opened, revoked, closed, Counter())


def mostly(valid: Any, *others: Any) -> st.SearchStrategy[Any]:
    """`valid` five times in six: a request with several fields drawn has every one of
    them right often enough to reach the chain's answer."""
    return st.one_of(*[st.just(valid)] * 5, st.sampled_from(others))


def amounts(balance: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([0, 1, balance - 1, balance, balance + 1, UINT256_MAX, TOKEN]),
        st.integers(0, 2 * balance),
    )


def _check(w: World, path: str, body: dict[str, Any]) -> None:
    snap = w.chain.snapshot()
    try:
        status, answer = w.post(path, body)
        w.statuses[(path, status)] += 1
        assert status in (200, 400, 409), (path, body, status, answer)
        if status == 200:
            owner = answer["owner"]
            send_prepared(w.chain, answer["transactions"], key_of(w.chain, owner))
            return
        where = answer["error"].get("parameter")
        if status == 400:
            assert where is not None
        if where is not None:
            field = where.split("/")[1]
            assert field in body or field in ("stop_loss", "take_profit"), (where, body)
        revert = _unchecked(w, path, body)
        if revert is None:  # only Warden's stricter rules may refuse what the contract takes
            assert path == "create" and 0 < body["expiry"] - w.chain.now() < MIN_LEAD, (
                path, body, answer,
            )  # fmt: skip
    finally:
        w.chain.revert_to(snap)


def _unchecked(w: World, path: str, body: dict[str, Any]) -> Revert | None:
    """The refused request sent to the contract as it is, unchecked, after an unlimited
    approval (so only the contract's own rules decide): its revert, or None."""
    s, owner = w.stack, body["owner"]
    if path == "create":
        params = (
            body["operator"], body["token"], int(body["deposit"]), body["expiry"],
            int(body["budget"]), int(body["stop_loss"]), int(body["take_profit"]), "",
            body["targets"], body["max_fee_bps"],
        )  # fmt: skip
        spender, fn = s.factory.address, s.factory.functions.createSession(params, bytes(32))
    else:
        wallet = w.chain.at("SessionWallet", body["wallet"])
        spender = body["wallet"]
        fn = {
            "top-up": lambda: wallet.functions.deposit(int(body["amount"]), body["max_fee_bps"]),
            "withdraw": lambda: wallet.functions.withdraw(int(body["amount"])),
            "extend": lambda: wallet.functions.extend(body["expiry"]),
            "revoke": lambda: wallet.functions.revoke(),
            "close": lambda: wallet.functions.close(0),
        }[path]()
    w.chain.send(s.token.functions.approve(spender, UINT256_MAX), owner)
    _, revert = w.chain.call_raw(spender, fn._encode_transaction_data(), sender=owner)
    return revert


def _run(w: World, draw_body: Callable[[st.DataObject], tuple[str, dict[str, Any]]]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              derandomize=True, suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        path, body = draw_body(data)
        _check(w, path, body)

    prop()


def test_create_answers_are_true(world: World) -> None:
    w, s = world, world.stack
    now = w.chain.now()
    balance = s.token.functions.balanceOf(w.roles.owner).call()

    def body(data: st.DataObject) -> tuple[str, dict[str, Any]]:
        deposit = data.draw(st.one_of(amounts(balance * 100 // 101), st.integers(1, 10**24)))
        stop, take = data.draw(mostly((0, 0), (1, 2), (5, 5), (0, 9), (9, 0)))
        targets = data.draw(mostly([s.game.address], [], [s.game.address, s.overpull.address],
                                   [s.untrusted_game.address], [s.token.address]))  # fmt: skip
        return "create", {
            "owner": data.draw(mostly(w.roles.owner, w.roles.owner2, w.roles.stranger)),
            "operator": data.draw(mostly(w.roles.operator, w.roles.stranger)),
            "token": data.draw(mostly(s.token.address, s.game.address)),
            "deposit": str(deposit),
            "expiry": now + data.draw(mostly(3600, -1, 0, 59, 61, 10**9)),
            "budget": str(data.draw(amounts(balance))),
            "stop_loss": str(stop), "take_profit": str(take),
            "targets": targets,
            "max_fee_bps": data.draw(mostly(FEE_BPS, 0, FEE_BPS - 1, 1_000)),
        }  # fmt: skip

    _run(w, body)
    assert w.statuses[("create", 200)] and w.statuses[("create", 400)], w.statuses


def test_wallet_answers_are_true(world: World) -> None:
    w = world
    held = 1_000 * TOKEN  # each session's deposit
    owner_balance = w.stack.token.functions.balanceOf(w.roles.owner).call()
    expiry = w.chain.at("SessionWallet", w.open).functions.expiry().call()

    def body(data: st.DataObject) -> tuple[str, dict[str, Any]]:
        path = data.draw(st.sampled_from(["top-up", "withdraw", "extend", "revoke", "close"]))
        out: dict[str, Any] = {
            "owner": data.draw(mostly(w.roles.owner, w.roles.owner2, w.roles.stranger)),
            "wallet": data.draw(mostly(w.open, w.revoked, w.closed, w.stack.game.address)),
        }
        if path == "top-up":
            out["amount"] = str(data.draw(amounts(owner_balance * 100 // 101)))
            out["max_fee_bps"] = data.draw(mostly(FEE_BPS, 0, 1_000))
        elif path == "withdraw":
            out["amount"] = str(data.draw(amounts(held)))
        elif path == "extend":
            out["expiry"] = expiry + data.draw(mostly(86_400, -1, 0, 1, 2**40))
        return path, out

    _run(w, body)
    assert sum(n for (p, s), n in w.statuses.items() if s == 200), w.statuses
    assert sum(n for (p, s), n in w.statuses.items() if s == 409), w.statuses
