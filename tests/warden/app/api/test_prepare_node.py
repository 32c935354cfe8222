"""A node that is down, hangs, lies, refuses or serves another chain is a 502 or 503 with
a clear message, never a 500 or a traceback, in bounded time; a node without
`eth_simulateV1` still gets an answer (the dependent step's gas left to the client). And
the prepare routes are guarded by the API's token like every other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from chain import HttpTransport, MockTransport, Request, Response, RpcFault, rpc_response
from tests._chain import Chain
from tests.conftest import FEE_BPS, Roles, Session, Stack
from tests.warden.app.api._prepare import key_of, send_prepared, serve_prepare
from warden.devnet import free_port

TOKEN = "prepare-token-0123456789"


def _bodies(chain: Chain, stack: Stack, roles: Roles, wallet: str) -> dict[str, dict[str, Any]]:
    me = {"owner": roles.owner, "wallet": wallet}
    return {
        "create": {
            "owner": roles.owner, "operator": roles.operator, "token": stack.token.address,
            "deposit": "1000", "expiry": chain.now() + 3600, "budget": "1",
            "max_fee_bps": FEE_BPS,
        },
        "top-up": {**me, "amount": "5", "max_fee_bps": FEE_BPS},
        "withdraw": {**me, "amount": "5"},
        "extend": {**me, "expiry": 2**40},
        "revoke": me,
        "close": me,
    }  # fmt: skip


def _mock(methods: dict[str, Callable[[list[Any]], Any]]) -> MockTransport:
    """A node of the right chain whose other answers are sound, but for `methods`."""
    sound: dict[str, Callable[[list[Any]], Any]] = {
        "eth_chainId": lambda p: "0x7a69",
        "eth_getBlockByNumber": lambda p: {"number": "0x10", "timestamp": "0x6553f100"},
        "eth_getTransactionCount": lambda p: "0x0",
    }
    return MockTransport(lambda request: rpc_response(request, {**sound, **methods}))


def _garbage(request: Request) -> Response:
    return Response(200, b"<html>502 from a proxy</html>")


async def _hang(request: Request) -> Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


def _refuse(params: list[Any]) -> Any:
    raise RpcFault(-32601, "the method eth_call does not exist")


NODES: list[tuple[str, Callable[[], dict[str, Any]], int, str]] = [
    ("eth_call answers a short word",
     lambda: {"transport": _mock({"eth_call": lambda p: "0x1234"})}, 502, "malformed"),
    ("eth_call answers non-hex", lambda: {"transport": _mock({"eth_call": lambda p: "0xzz"})},
     502, "malformed"),
    ("eth_call is not a method", lambda: {"transport": _mock({"eth_call": _refuse})}, 502,
     "refused"),
    ("another chain", lambda: {"transport": MockTransport(lambda r: rpc_response(
        r, {"eth_chainId": lambda p: "0x1"}))}, 502, "chain id 1"),
    ("not JSON-RPC at all", lambda: {"transport": MockTransport(_garbage)}, 502, "malformed"),
    ("hangs", lambda: {"transport": MockTransport(_hang), "deadline": 1.0}, 503,
     "did not answer within 1 s"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "settings", "status", "words"), NODES,
                         ids=[n[0] for n in NODES])  # fmt: skip
async def test_a_failing_node_is_a_502_or_503_never_a_500(
    chain: Chain, stack: Stack, roles: Roles, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    case: str, settings: Callable[[], dict[str, Any]], status: int, words: str,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    bodies = _bodies(chain, stack, roles, stack.game.address)
    async with serve_prepare(tmp_path / "w.sqlite", chain, stack.factory.address,
                             **settings()) as api:  # fmt: skip
        for name, body in bodies.items():
            started = time.monotonic()
            got, answer = await api.post(f"/prepare/{name}", body)
            assert got == status, (case, name, answer)
            assert words in answer["error"]["message"], (case, name, answer)
            assert time.monotonic() - started < 30, (case, name)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_node_that_is_down_is_a_503(
    chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    db = tmp_path / "w.sqlite"
    async with serve_prepare(db, chain, stack.factory.address):
        pass  # the database exists now
    dead = f"http://127.0.0.1:{free_port()}"
    bodies = _bodies(chain, stack, roles, stack.game.address)
    async with serve_prepare(db, chain, stack.factory.address, rpc=dead) as api:
        for name, body in bodies.items():
            got, answer = await api.post(f"/prepare/{name}", body)
            assert got == 503 and answer["error"]["code"] == "node_unavailable", (name, answer)
            assert "retry later" in answer["error"]["message"]


async def test_without_eth_simulate_the_dependent_step_has_no_gas(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    real = HttpTransport(30)

    async def no_simulate(request: Request) -> Response:
        if any(c["method"] == "eth_simulateV1" for c in request.calls()):
            return rpc_response(request, {})  # -32601 for every call in it
        return await real.post(request)

    body = _bodies(fresh_chain, stack, roles, "")["create"]
    try:
        async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address,
                                 transport=MockTransport(no_simulate)) as api:  # fmt: skip
            answer = await api.ok("/prepare/create", body)
    finally:
        await real.close()
    approve, create = answer["transactions"]
    assert isinstance(approve["gas"], int) and create["gas"] is None
    send_prepared(fresh_chain, [approve], key_of(fresh_chain, roles.owner))
    estimate = fresh_chain.w3.eth.estimate_gas(
        {"from": roles.owner, "to": create["to"], "data": create["data"]}
    )
    send_prepared(fresh_chain, [{**create, "gas": estimate * 2}], key_of(fresh_chain, roles.owner))
    assert fresh_chain.w3.eth.get_code(answer["wallet"]) != b""


async def test_prepare_routes_need_the_token(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    s = make_session()
    bodies = _bodies(fresh_chain, stack, roles, s.wallet.address)
    async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address,
                             token=TOKEN) as api:  # fmt: skip
        assert "401" in api.document["paths"]["/prepare/create"]["post"]["responses"]
        for name, body in bodies.items():
            for wrong in ({"Authorization": ""}, {"Authorization": f"Bearer {TOKEN}x"}):
                got, answer = await api.post(f"/prepare/{name}", body, headers=wrong)
                assert got == 401, (name, answer)
            got, answer = await api.post(f"/prepare/{name}", body)
            assert got == 200, (name, answer)
        raw = orjson.dumps(bodies["withdraw"])
        got, answer = await api.post("/prepare/withdraw", raw, headers={"Authorization": ""})
        assert got == 401


LIES: list[tuple[str, str, Any, str]] = [
    ("a billion-and-one gas", "eth_estimateGas", hex(10**9 + 1), "more than any block holds"),
    ("a nonce beyond 2**64-1", "eth_getTransactionCount", hex(2**64), "beyond 2**64-1"),
    ("a timestamp that is no quantity", "eth_getBlockByNumber", {"timestamp": "soon"},
     "not a hex quantity"),
    ("fees that are no list", "eth_feeHistory", {"baseFeePerGas": "0x1"}, "baseFeePerGas"),
    ("code that is no hex", "eth_getCode", "0xzz", "not hex"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "method", "lie", "words"), LIES, ids=[c[0] for c in LIES])
async def test_a_node_that_lies_about_one_figure_is_a_502(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    case: str, method: str, lie: Any, words: str,
) -> None:  # fmt: skip
    """Anvil answers everything but `method`, which answers `lie`."""
    real = HttpTransport(30)

    async def lying(request: Request) -> Response:
        calls = request.calls()
        if not any(c["method"] == method for c in calls):
            return await real.post(request)
        answers = orjson.loads((await real.post(request)).body)
        for item in answers if isinstance(answers, list) else [answers]:
            if next(c for c in calls if c["id"] == item["id"])["method"] == method:
                item["result"] = lie
        return Response(200, orjson.dumps(answers))

    body = _bodies(fresh_chain, stack, roles, "")["create"]
    try:
        async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address,
                                 transport=MockTransport(lying)) as api:  # fmt: skip
            status, answer = await api.post("/prepare/create", body)
    finally:
        await real.close()
    assert status == 502 and answer["error"]["code"] == "node_error", (case, answer)
    assert words in answer["error"]["message"], (case, answer)


async def test_concurrent_prepare_requests_are_bounded_by_max_concurrent(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    """A flood of prepare requests does not become a flood of node calls: with one slot,
    the node sees at most one request's own fan-out at a time (its reads asked together),
    and every request is still answered; with eight, it sees several requests at once."""
    real = HttpTransport(30)
    in_flight = peak = 0

    async def slow(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            await asyncio.sleep(0.05)
            return await real.post(request)
        finally:
            in_flight -= 1

    body = _bodies(fresh_chain, stack, roles, "")["create"]
    peaks = {}
    db = tmp_path / "w.sqlite"
    try:
        for slots in (1, 8):
            peak = 0
            async with serve_prepare(db, fresh_chain, stack.factory.address, max_concurrent=slots,
                                     transport=MockTransport(slow)) as api:  # fmt: skip
                answers = await asyncio.gather(
                    *(api.post("/prepare/create", body) for _ in range(6))
                )
            assert [status for status, _ in answers] == [200] * 6, answers
            peaks[slots] = peak
    finally:
        await real.close()
    fan_out = 6  # one request's reads asked together: a views batch, 4 token reads, facts
    assert peaks[1] <= fan_out < peaks[8], peaks


async def test_a_body_trickled_in_is_cut_off(
    chain: Chain, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("warden.app.api.app.BODY_SECONDS", 0.5)
    async with serve_prepare(tmp_path / "w.sqlite", chain, stack.factory.address) as api:
        reader, writer = await asyncio.open_connection(api.server.host, api.server.port)
        writer.write(b"POST /prepare/close HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"owner\"")  # fmt: skip
        await writer.drain()
        started = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head
    assert time.monotonic() - started < 20
