"""The chain client against anvil, a dead port, and the fault proxy: retries, failover,
429 with Retry-After, fatal errors raised at once, chain id checked; an endpoint's API key
(in its path, query or userinfo) never in a log line or an error."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chain import ChainClient, RetryPolicy, WrongChain
from chain.errors import (
    CallReverted,
    LogRangeTooLarge,
    ProviderError,
    RateLimited,
    RpcRejected,
    RpcUnavailable,
    TxRejected,
    UnknownBlock,
    classify_rpc_error,
)
from chain.transport import MockTransport, Request, Response
from chain.urls import redact_url, url_secrets
from tests._rpc_proxy import Fault, FaultyProxy
from warden.devnet import Anvil, free_port

QUICK = RetryPolicy(initial=0.01, factor=1.5, max_delay=0.05, attempts=4)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_chain_id_mismatch_is_fatal_and_names_the_fix(anvil: Anvil) -> None:
    async with ChainClient([anvil.url], chain_id=1, retry=QUICK) as client:
        with pytest.raises(WrongChain, match="serves chain id 31337, but the config says 1"):
            await client.block_number()
    async with ChainClient([anvil.url], chain_id=31337, retry=QUICK) as client:
        assert await client.connect() == 31337


async def test_batch_answers_in_order(anvil: Anvil) -> None:
    async with ChainClient([anvil.url], retry=QUICK) as client:
        chain_id, block0 = await client.batch(
            [("eth_chainId", []), ("eth_getBlockByNumber", ["0x0", False])]
        )
        assert int(chain_id, 16) == 31337 and block0["number"] == "0x0"
        assert client.stats.requests == 1 and client.stats.calls == 2


async def test_a_dead_endpoint_is_retried_then_reported() -> None:
    sleeps = Sleeps()
    url = f"http://127.0.0.1:{free_port()}"
    async with ChainClient([url], retry=QUICK, sleep=sleeps) as client:
        with pytest.raises(RpcUnavailable, match="eth_blockNumber"):
            await client.block_number()
    assert len(sleeps.delays) == QUICK.attempts - 1
    assert sleeps.delays == sorted(sleeps.delays) or max(sleeps.delays) <= QUICK.max_delay * 1.25


async def test_failover_moves_to_the_next_endpoint(anvil: Anvil) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with ChainClient([dead, anvil.url], retry=QUICK, sleep=Sleeps()) as client:
        assert await client.block_number() >= 0
        assert client.url == anvil.url and client.stats.failovers == 1
        assert client.stats.errors == {"RpcUnavailable": 1}


async def test_429_waits_at_least_retry_after(anvil: Anvil) -> None:
    sleeps = Sleeps()
    with FaultyProxy(anvil.url, retry_after=3) as proxy:
        proxy.inject(Fault.HTTP_429, count=2)
        async with ChainClient([proxy.url], retry=QUICK, sleep=sleeps) as client:
            assert await client.block_number() >= 0
    assert sleeps.delays[:2] == [3.0, 3.0]
    assert len(sleeps.delays) == 2


async def test_invalid_params_are_fatal_at_once(anvil: Anvil) -> None:
    sleeps = Sleeps()
    async with ChainClient([anvil.url], retry=QUICK, sleep=sleeps) as client:
        with pytest.raises(RpcRejected):
            await client.call("eth_getBlockByNumber", "not-a-block", False)
    assert sleeps.delays == []


async def test_a_revert_is_fatal_and_keeps_its_data(anvil: Anvil) -> None:
    # 0xfe is INVALID: an eth_call to fresh code that reverts without data; a call into
    # creation code that reverts with data is enough to see `data` carried through.
    revert_code = "0x6080604052600a6000fd"  # mstore-free revert(0, 10)
    async with ChainClient([anvil.url], retry=QUICK, sleep=Sleeps()) as client:
        with pytest.raises(CallReverted) as info:
            await client.call("eth_call", {"data": revert_code}, "latest")
    assert info.value.data is not None and info.value.data.startswith("0x")


@pytest.mark.parametrize(
    ("error", "method", "kind"),
    [
        ({"code": -32005, "message": "query returned more than 10000 results"}, "eth_getLogs",
         LogRangeTooLarge),
        ({"code": -32000, "message": "block range is too wide"}, "eth_getLogs", LogRangeTooLarge),
        ({"code": -32602, "message": "Log response size exceeded."}, "eth_getLogs",
         LogRangeTooLarge),
        ({"code": -32000, "message": "unknown block"}, "eth_getLogs", UnknownBlock),
        ({"code": 429, "message": "Too Many Requests"}, "eth_call", RateLimited),
        ({"code": -32000, "message": "header not found"}, "eth_getBlockByNumber", ProviderError),
        ({"code": -32603, "message": "internal error"}, "eth_blockNumber", ProviderError),
        ({"code": -32601, "message": "the method foo does not exist"}, "foo", RpcRejected),
        # anvil mid-reorg: the block asked for is past its new head (found by the chaos run)
        ({"code": -32602, "message": "BlockOutOfRangeError: block height is 1129 but "
          "requested was 1130"}, "eth_call", ProviderError),
        ({"code": -32602, "message": "header not found"}, "eth_getBlockByNumber",
         ProviderError),
        ({"code": -32602, "message": "invalid argument 0: hex string without 0x prefix"},
         "eth_call", RpcRejected),
        ({"code": 3, "message": "execution reverted", "data": "0x12"}, "eth_call",
         CallReverted),
    ],
)  # fmt: skip
def test_provider_errors_are_classified(error: dict[str, Any], method: str, kind: type) -> None:
    assert type(classify_rpc_error(error, method)) is kind


@pytest.mark.parametrize(
    "message",
    [
        "exceeds block gas limit",  # geth
        "intrinsic gas too high -- tx.gas_limit > env.block.gas_limit",  # anvil
    ],
)
def test_a_transaction_larger_than_a_block_is_refused_not_retried(message: str) -> None:
    error = classify_rpc_error({"code": -32000, "message": message}, "eth_sendRawTransaction")
    assert isinstance(error, TxRejected) and error.kind == "other"


# -- RPC URLs carry API keys: only ever shown redacted ----------------------------------------
KEY, QUERY_KEY, PASSWORD = "PaThKeY0123456789abc", "QuErYkEy9876543210", "UsErPaSs4242"


def keyed(base: str) -> list[str]:
    """`base` (http://host:port) with a key in each place providers put one."""
    return [
        f"{base}/v3/{KEY}",
        f"{base}/rpc?apikey={QUERY_KEY}&x=1",
        base.replace("://", f"://user:{PASSWORD}@") + "/",
    ]


def assert_no_key(*texts: str) -> None:
    for text in texts:
        for secret in (KEY, QUERY_KEY, PASSWORD):
            assert secret not in text, f"{secret} in {text!r}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://eth-mainnet.g.alchemy.com/v2/{KEY}", "https://eth-mainnet.g.alchemy.com/…"),
        (f"https://mainnet.infura.io/v3/{KEY}", "https://mainnet.infura.io/…"),
        (f"https://node.example:8545/?key={QUERY_KEY}", "https://node.example:8545/…"),
        (f"https://u:{PASSWORD}@node.example/", "https://node.example"),
        (f"http://[::1]:8545/{KEY}", "http://[::1]:8545/…"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545"),
        (f"not a url {KEY}", "(unparsable URL)"),
        (f"http://host:99999999/{KEY}", "(unparsable URL)"),
    ],
)
def test_redacted_url_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert_no_key(redact_url(url))
    assert any(KEY in s or QUERY_KEY in s or PASSWORD in s for s in url_secrets(url)) or (
        KEY not in url and QUERY_KEY not in url and PASSWORD not in url
    )


async def test_retries_failovers_and_errors_never_show_the_key(
    anvil: Anvil, caplog: pytest.LogCaptureFixture
) -> None:
    """Dead endpoints, HTTP 500s and drops through the fault proxy, a wrong chain id:
    every retry and failover is logged and every error raised, all without the key."""
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    dead = keyed(f"http://127.0.0.1:{free_port()}")
    async with ChainClient(dead, retry=QUICK, sleep=Sleeps()) as client:
        with pytest.raises(RpcUnavailable) as info:
            await client.block_number()
        errors.append(str(info.value))
        assert client.stats.failovers >= 2
    with FaultyProxy(anvil.url) as proxy:
        urls = keyed(proxy.url.rstrip("/"))
        for fault in (Fault.HTTP_500, Fault.DROP, Fault.TRUNCATED):
            proxy.inject(fault, count=2)
            async with ChainClient(urls, retry=QUICK, sleep=Sleeps()) as client:
                assert await client.block_number() >= 0
        async with ChainClient(urls, chain_id=1, retry=QUICK, sleep=Sleeps()) as client:
            with pytest.raises(WrongChain) as wrong:
                await client.block_number()
            errors.append(str(wrong.value))
    assert "attempt" in caplog.text and "now using" in caplog.text
    assert "/…" in caplog.text and "/…" in errors[-1]
    assert_no_key(caplog.text, *errors)


async def test_a_provider_echoing_its_key_in_an_http_error_is_scrubbed() -> None:
    """A 401/500 page that quotes the URL or the key back: the error keeps the status and
    the page, without the key."""

    def handler(request: Request) -> Response:
        status = 401 if "v3" in request.url else 500
        return Response(status, f"invalid key {KEY} for {request.url}".encode())

    for urls in ([f"https://node.example/v3/{KEY}"], [f"https://node.example/x/{KEY}"]):
        transport = MockTransport(handler)
        async with ChainClient(urls, retry=QUICK, sleep=Sleeps(), transport=transport) as c:
            with pytest.raises((RpcRejected, RpcUnavailable)) as info:
                await c.block_number()
        assert "HTTP" in str(info.value) and "invalid key ***" in str(info.value)
        assert_no_key(str(info.value))


async def test_batch_each_keeps_one_calls_transient_error_in_place_when_asked() -> None:
    """A contract whose call fails its own way makes some nodes answer a transient-looking
    error (anvil: -32603 "EVM error InvalidFEOpcode"): by default it retries the batch;
    with `transient_in_place` it comes back in its place, once, beside the other answers."""
    from chain.transport import RpcFault, rpc_response

    def call(params: list[Any]) -> str:
        if params[0]["to"] == "0xbad":
            raise RpcFault(-32603, "EVM error InvalidFEOpcode")
        return "0x" + "00" * 31 + "07"

    transport = MockTransport(lambda r: rpc_response(r, {"eth_call": call}))
    calls = [("eth_call", [{"to": to}, "latest"]) for to in ("0xa", "0xbad", "0xb")]
    async with ChainClient(["http://node"], retry=QUICK, sleep=Sleeps(), transport=transport) as c:
        ok, failed, ok2 = await c.batch_each(calls, transient_in_place=True)
        assert len(transport.requests) == 1
        assert ok == ok2 == "0x" + "00" * 31 + "07"
        assert isinstance(failed, ProviderError) and "InvalidFEOpcode" in str(failed)
        with pytest.raises(ProviderError):
            await c.batch_each(calls)
        assert len(transport.requests) == 1 + QUICK.attempts
