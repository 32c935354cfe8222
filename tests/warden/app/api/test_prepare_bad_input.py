"""Every invalid field of every prepare endpoint gets its answer: a 400 whose JSON names
the field by its JSON pointer (or a 409 naming it, when the chain's state refuses it),
with the fix in the message, documented in the OpenAPI document, in under a second.
Nothing is prepared from a half-understood request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._chain import Chain
from tests.conftest import FEE_BPS, TOKEN, Roles, Stack, create_session, session_params
from tests.indexer._support import config, index_to_head
from tests.warden.app.api._prepare import PrepareApi, serve_prepare
from warden.app.api.prepare_models import depth_of

MIXED_BAD_CHECKSUM = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"  # owner, one letter lowered


@dataclass(frozen=True)
class World:
    db: Path
    now: int
    open: str  # an open session of roles.owner
    revoked: str
    closed: str
    expiry: int  # the open session's


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, chain: Chain, stack: Stack, roles: Roles
) -> Iterator[World]:
    snap = chain.snapshot()
    try:
        made = []
        for n in range(3):
            params = session_params(chain, stack, roles)
            made.append(create_session(chain, stack, roles.owner, params, (900 + n).to_bytes(32)))
        opened, revoked, closed = made
        chain.send(revoked.wallet.functions.revoke(), roles.owner)
        chain.send(closed.wallet.functions.close(0), roles.owner)
        db = tmp_path_factory.mktemp("prepare") / "w.sqlite"
        asyncio.run(index_to_head(chain.anvil.url, db, config(stack.factory.address)))
        yield World(db, chain.now(), opened.wallet.address, revoked.wallet.address,
                    closed.wallet.address, opened.params["expiry"])  # fmt: skip
    finally:
        chain.revert_to(snap)


@pytest.fixture
async def api(world: World, chain: Chain, stack: Stack) -> AsyncIterator[PrepareApi]:
    async with serve_prepare(world.db, chain, stack.factory.address) as served:
        yield served


def create_body(w: World, stack: Stack, roles: Roles) -> dict[str, Any]:
    return {
        "owner": roles.owner, "operator": roles.operator, "token": stack.token.address,
        "deposit": str(10 * TOKEN), "expiry": w.now + 86_400, "budget": str(5 * TOKEN),
        "stop_loss": "0", "take_profit": "0", "policy": "p", "targets": [stack.game.address],
        "max_fee_bps": FEE_BPS,
    }  # fmt: skip


Edit = Callable[[dict[str, Any], World, Stack, Roles], None]


def put(field: str, value: Any) -> Edit:
    def edit(body: dict[str, Any], w: World, s: Stack, r: Roles) -> None:
        body[field] = value

    return edit


def drop(field: str) -> Edit:
    def edit(body: dict[str, Any], w: World, s: Stack, r: Roles) -> None:
        del body[field]

    return edit


def with_(field: str, value: Callable[[World, Stack, Roles], Any]) -> Edit:
    def edit(body: dict[str, Any], w: World, s: Stack, r: Roles) -> None:
        body[field] = value(w, s, r)

    return edit


# Malformed amounts: every one is refused, naming the field, whatever the endpoint.
BAD_AMOUNTS = [
    (10**18, "JSON numbers"), (1.5, "JSON numbers"), ("1e18", "exponent"), ("1E3", "exponent"),
    ("-1", "negative"), ("+1", "'+'"), ("1.5", "fraction"), ("007", "leading zeros"),
    ("", "empty"), (" 1", "whitespace"), ("1 ", "whitespace"), ("0x10", "not a decimal"),
    (str(2**256), "2**256-1"), ("9" * 5000, "2**256-1"), ("1_000", "not a decimal"),
    ("١٢", "not a decimal"),
    (None, "decimal string"), (True, "decimal string"), (["1"], "decimal string"),
    ("NaN", "not a decimal"), ("Infinity", "not a decimal"),
]  # fmt: skip

CREATE_CASES: list[tuple[str, Edit, int, str, str]] = [
    *[(f"deposit {v!r}", put("deposit", v), 400, "/deposit", words) for v, words in BAD_AMOUNTS],
    ("deposit 0", put("deposit", "0"), 400, "/deposit", "above 0"),
    ("deposit and fee overflow", put("deposit", str(2**256 - 1)), 400, "/deposit",
     "plus its fee is above 2**256-1"),
    ("budget malformed", put("budget", "5 ether"), 400, "/budget", "not a decimal"),
    ("stop_loss malformed", put("stop_loss", -1), 400, "/stop_loss", "JSON numbers"),
    ("take_profit malformed", put("take_profit", "1e3"), 400, "/take_profit", "exponent"),
    ("owner short", put("owner", "0x1234"), 400, "/owner", "40 hex digits"),
    ("owner bad checksum", put("owner", MIXED_BAD_CHECKSUM), 400, "/owner", "EIP-55"),
    ("owner missing", drop("owner"), 400, "/owner", "required"),
    ("operator zero", put("operator", "0x" + "0" * 40), 400, "/operator", "zero address"),
    ("operator untrusted", with_("operator", lambda w, s, r: r.stranger), 400, "/operator",
     "not an operator the factory's registry trusts"),
    ("token untrusted", with_("token", lambda w, s, r: s.game.address), 400, "/token",
     "not a token the factory's registry trusts"),
    ("token zero", put("token", "0x" + "0" * 40), 400, "/token", "zero address"),
    ("expiry past", with_("expiry", lambda w, s, r: w.now - 10), 400, "/expiry", "future"),
    ("expiry too soon", with_("expiry", lambda w, s, r: w.now + 5), 400, "/expiry", "future"),
    ("expiry string", with_("expiry", lambda w, s, r: str(w.now + 9999)), 400, "/expiry",
     "JSON integer"),
    ("expiry float", put("expiry", 2e9), 400, "/expiry", "JSON integer"),
    ("expiry above uint64", put("expiry", 2**64), 400, "/expiry", "18446744073709551615"),
    ("expiry 0", put("expiry", 0), 400, "/expiry", "1 to"),
    ("expiry bool", put("expiry", True), 400, "/expiry", "JSON integer"),
    ("thresholds crossed", lambda b, w, s, r: b.update(stop_loss="5", take_profit="5"), 400,
     "/take_profit", "above stop_loss"),
    ("policy too long", put("policy", "é" * 17), 400, "/policy", "34 bytes"),
    ("policy lone surrogate", put("policy", "\ud800"), 400, "/policy", "surrogate"),
    ("policy number", put("policy", 5), 400, "/policy", "string"),
    ("targets too many", with_("targets", lambda w, s, r: [s.game.address] * 17), 400,
     "/targets", "at most 16"),
    ("targets not a list", put("targets", "0x" + "ab" * 20), 400, "/targets", "list"),
    ("target malformed", put("targets", ["0xzz"]), 400, "/targets/0", "40 hex digits"),
    ("target untrusted", with_("targets", lambda w, s, r: [s.game.address,
     s.untrusted_game.address]), 400, "/targets/1", "no call the registry trusts"),
    ("target is the token", with_("targets", lambda w, s, r: [s.token.address]), 400,
     "/targets/0", "never a target"),
    ("target is the factory", with_("targets", lambda w, s, r: [s.factory.address]), 400,
     "/targets/0", "never a target"),
    ("target twice", with_("targets", lambda w, s, r: [s.game.address, s.game.address]), 400,
     "/targets/1", "listed twice"),
    ("max_fee_bps below the fee", put("max_fee_bps", FEE_BPS - 1), 400, "/max_fee_bps",
     f"charges {FEE_BPS} bps"),
    ("max_fee_bps above the cap", put("max_fee_bps", 1_001), 400, "/max_fee_bps", "0 to 1000"),
    ("max_fee_bps negative", put("max_fee_bps", -1), 400, "/max_fee_bps", "0 to 1000"),
    ("max_fee_bps string", put("max_fee_bps", "100"), 400, "/max_fee_bps", "JSON integer"),
    ("max_fee_bps missing", drop("max_fee_bps"), 400, "/max_fee_bps", "required"),
    ("salt short", put("salt", "0x1234"), 400, "/salt", "64 hex digits"),
    ("unknown field", put("wallet", "0x" + "ab" * 20), 400, "/wallet", "unknown field"),
    ("owner without tokens", with_("owner", lambda w, s, r: r.stranger), 409, "/deposit",
     "the owner holds 0 WTT"),
    ("deposit above the balance", put("deposit", str(2**255)), 409, "/deposit",
     "the owner holds"),
]  # fmt: skip


def wallet_body(w: World, r: Roles, **extra: Any) -> dict[str, Any]:
    return {"owner": r.owner, "wallet": w.open, **extra}


WALLET_PATHS: dict[str, dict[str, Any]] = {
    "top-up": {"amount": str(TOKEN), "max_fee_bps": FEE_BPS},
    "withdraw": {"amount": str(TOKEN)},
    "extend": {"expiry": 2**63},
    "revoke": {},
    "close": {},
}

WALLET_CASES: list[tuple[str, str, Edit, int, str, str]] = [
    *[(p, "wallet malformed", put("wallet", "0x12"), 400, "/wallet", "40 hex digits")
      for p in WALLET_PATHS],
    *[(p, "wallet an EOA", with_("wallet", lambda w, s, r: r.stranger), 400, "/wallet",
       "not a session wallet of the factory") for p in WALLET_PATHS],
    *[(p, "wallet another contract", with_("wallet", lambda w, s, r: s.game.address), 400,
       "/wallet", "not a session wallet") for p in WALLET_PATHS],
    *[(p, "wallet a look-alike", with_("wallet", lambda w, s, r: s.lookalike.address), 400,
       "/wallet", "not a session wallet") for p in WALLET_PATHS],
    *[(p, "not the owner", with_("owner", lambda w, s, r: r.stranger), 400, "/owner",
       "only its owner") for p in WALLET_PATHS],
    *[(p, "closed", with_("wallet", lambda w, s, r: w.closed), 409, "/wallet", "closed")
      for p in WALLET_PATHS],
    *[(p, "unknown field", put("salt", "0x" + "00" * 32), 400, "/salt", "unknown field")
      for p in WALLET_PATHS],
    *[(p, "owner missing", drop("owner"), 400, "/owner", "required") for p in WALLET_PATHS],
    *[(p, f"amount {v!r}", put("amount", v), 400, "/amount", words)
      for p in ("top-up", "withdraw") for v, words in BAD_AMOUNTS],
    ("top-up", "amount 0", put("amount", "0"), 400, "/amount", "above 0"),
    ("top-up", "amount and fee overflow", put("amount", str(2**256 - 1)), 400, "/amount",
     "plus its fee is above 2**256-1"),
    ("top-up", "fee consent too low", put("max_fee_bps", 0), 400, "/max_fee_bps",
     f"charges {FEE_BPS} bps"),
    ("top-up", "fee consent missing", drop("max_fee_bps"), 400, "/max_fee_bps", "required"),
    ("top-up", "more than the owner holds", put("amount", str(2**255)), 409, "/amount",
     "the owner holds"),
    ("withdraw", "amount 0", put("amount", "0"), 400, "/amount", "above 0"),
    ("withdraw", "more than the wallet holds", put("amount", str(1_000 * TOKEN + 1)), 409,
     "/amount", "can pay out 1,000 WTT"),
    ("extend", "not later", with_("expiry", lambda w, s, r: w.expiry), 400, "/expiry",
     "later than the current expiry"),
    ("extend", "above uint64", put("expiry", 2**64), 400, "/expiry", "18446744073709551615"),
    ("extend", "a string", put("expiry", "99999999999"), 400, "/expiry", "JSON integer"),
    ("revoke", "already revoked", with_("wallet", lambda w, s, r: w.revoked), 409, "/wallet",
     "already revoked"),
]  # fmt: skip


async def _expect(
    api: PrepareApi, path: str, body: Any, status: int, where: str | None, words: str
) -> None:
    started = time.monotonic()
    got, answer = await api.post(path, body)
    assert got == status, (path, body, got, answer)
    error = answer["error"]
    assert error["status"] == status and error.get("parameter") == where, (path, answer)
    assert words in error["message"], (words, error["message"])
    assert time.monotonic() - started < 5  # "under a second" on a quiet machine


@pytest.mark.parametrize(("case", "edit", "status", "where", "words"), CREATE_CASES,
                         ids=[c[0] for c in CREATE_CASES])  # fmt: skip
async def test_create_refuses(
    api: PrepareApi, world: World, stack: Stack, roles: Roles,
    case: str, edit: Edit, status: int, where: str, words: str,
) -> None:  # fmt: skip
    body = create_body(world, stack, roles)
    edit(body, world, stack, roles)
    await _expect(api, "/prepare/create", body, status, where, words)


@pytest.mark.parametrize(("path", "case", "edit", "status", "where", "words"), WALLET_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in WALLET_CASES])  # fmt: skip
async def test_wallet_endpoints_refuse(
    api: PrepareApi, world: World, stack: Stack, roles: Roles,
    path: str, case: str, edit: Edit, status: int, where: str, words: str,
) -> None:  # fmt: skip
    body = wallet_body(world, roles, **WALLET_PATHS[path])
    edit(body, world, stack, roles)
    await _expect(api, f"/prepare/{path}", body, status, where, words)


RAW_CASES = [
    (b"", "empty body"),
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b'{"owner": NaN}', "not JSON"),
    (b'{"owner": Infinity}', "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"amount": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # an int of 5,001 digits
    (b"[" * 15_000, "nests deeper than 8"),
    (b'{"a":' * 3_000, "nests deeper than 8"),
    (b'{"owner": {"a": [' + b"[" * 5_000 + b"]" * 5_000 + b"]}}", "nests deeper than 8"),
    (b'{"policy": "' + b"[" * 9_000 + b'"', "not valid JSON"),  # brackets in a string
]


@pytest.mark.parametrize(("raw", "words"), RAW_CASES, ids=[c[1] for c in RAW_CASES])
async def test_malformed_bodies_are_a_400_bad_request(
    api: PrepareApi, raw: bytes, words: str
) -> None:
    for path in ("/prepare/create", "/prepare/withdraw"):
        status, answer = await api.post(path, raw)
        assert status == 400 and answer["error"]["code"] == "bad_request", (path, answer)
        assert words in answer["error"]["message"], answer


async def test_a_chunked_body_over_16_kib_is_a_413(api: PrepareApi) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 1024

    url = api.server.make_url("/prepare/create")
    headers = {"Content-Type": "application/json", **api.headers}
    async with api.http.post(url, data=chunks(), headers=headers) as r:
        assert r.status == 413, await r.text()
        assert (await r.json())["error"]["status"] == 413


async def test_a_repeated_key_is_refused_naming_it(
    api: PrepareApi, world: World, roles: Roles
) -> None:
    raw = (f'{{"owner": "{roles.owner}", "wallet": "{world.open}", "amount": "1", '
           '"amount": "1000"}').encode()  # fmt: skip
    status, answer = await api.post("/prepare/withdraw", raw)
    assert status == 400 and answer["error"]["parameter"] == "/amount", answer
    assert "more than once" in answer["error"]["message"]


async def test_wrong_content_type_query_parameters_size_and_method(
    api: PrepareApi, world: World, roles: Roles
) -> None:
    body = wallet_body(world, roles)
    status, answer = await api.post("/prepare/revoke", body, content_type="text/plain")
    assert status == 400 and "Content-Type: application/json" in answer["error"]["message"]
    status, answer = await api.post("/prepare/revoke?dry=1", body)
    assert status == 400 and answer["error"]["parameter"] == "dry", answer
    status, answer = await api.post("/prepare/revoke", b'{"owner": "' + b"a" * 20_000 + b'"}')
    assert status == 413, answer
    async with api.http.get(api.server.make_url("/prepare/revoke")) as r:
        assert r.status == 405 and r.headers["Allow"] == "POST", r.headers
    async with api.http.put(api.server.make_url("/prepare/revoke"), json=body) as r:
        assert r.status == 405


async def test_a_sessions_pause_is_a_409(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    fresh_chain.send(stack.factory.functions.setSessionsPaused(True), roles.deployer)
    w = World(tmp_path / "w.sqlite", fresh_chain.now(), "", "", "", 0)
    async with serve_prepare(w.db, fresh_chain, stack.factory.address) as api:
        status, answer = await api.post("/prepare/create", create_body(w, stack, roles))
    assert status == 409 and "paused" in answer["error"]["message"], answer


async def test_a_fee_raised_above_the_consent_is_refused(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    fresh_chain.send(stack.factory.functions.setFee(250), roles.deployer)
    w = World(tmp_path / "w.sqlite", fresh_chain.now(), "", "", "", 0)
    async with serve_prepare(w.db, fresh_chain, stack.factory.address) as api:
        status, answer = await api.post("/prepare/create", create_body(w, stack, roles))
        assert status == 400 and answer["error"]["parameter"] == "/max_fee_bps", answer
        assert "consent to at least 250" in answer["error"]["message"]
        body = {**create_body(w, stack, roles), "max_fee_bps": 250}
        answer = (await api.post("/prepare/create", body))[1]
    assert answer["fee"] == str(10 * TOKEN * 250 // 10_000), answer


def _nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    return 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{}"\\a'), inner, max_size=4)
    ),
    max_leaves=30,
)


@given(JSON)
def test_the_depth_check_counts_nesting_and_skips_strings(value: Any) -> None:
    assert depth_of(json.dumps(value)) == _nesting(value)
    assert depth_of(json.dumps(value, ensure_ascii=False, indent=1)) == _nesting(value)
