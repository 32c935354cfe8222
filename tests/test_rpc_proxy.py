"""The fault-injecting proxy itself, against the real anvil: every fault kind looks to a plain
aiohttp client exactly as documented, the plan is deterministic, and it stops cleanly."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests._chain import Chain
from tests._rpc_proxy import Fault, FaultyProxy
from tests.conftest import Session
from warden.devnet import Anvil, free_port

REPO = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}


def rpc(method: str, *params: Any, id: Any = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": list(params)}


def get_logs(first: int, last: int, id: Any = 1) -> dict[str, Any]:
    return rpc("eth_getLogs", {"fromBlock": hex(first), "toBlock": hex(last)}, id=id)


async def post(url: str, payload: Any, timeout: float | None = None) -> tuple[int, Any, bytes]:
    """One HTTP request in its own session: status, headers, raw body."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.post(url, data=orjson.dumps(payload), headers=JSON) as resp,
    ):
        return resp.status, resp.headers, await resp.read()


async def answer(url: str, payload: Any) -> Any:
    status, _, body = await post(url, payload)
    assert status == 200, body
    return orjson.loads(body)


def block_of(log: dict[str, Any]) -> int:
    return int(log["blockNumber"], 16)


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[FaultyProxy]:
    with FaultyProxy(anvil.url, seed=7, delay=(0.6, 0.6)) as p:
        yield p


@pytest.fixture
def log_blocks(fresh_chain: Chain, make_session: Callable[..., Session]) -> list[int]:
    """Blocks holding logs: three session creations (approve + create each)."""
    blocks = []
    for _ in range(3):
        blocks.append(int(make_session().receipt["blockNumber"]))
    return blocks


async def test_without_faults_answers_are_byte_identical_to_the_node(
    anvil: Anvil, proxy: FaultyProxy, log_blocks: list[int]
) -> None:
    proxy.set_faults(rate=0.0)
    calls = [
        rpc("eth_chainId"),
        rpc("eth_blockNumber", id="b"),
        rpc("eth_getBlockByNumber", "latest", True),
        get_logs(0, log_blocks[-1]),
        [rpc("eth_chainId", id=1), get_logs(log_blocks[0], log_blocks[-1], id=2)],
    ]
    for payload in calls:
        via_proxy, direct = await post(proxy.url, payload), await post(anvil.url, payload)
        assert via_proxy[0] == direct[0] == 200
        assert via_proxy[2] == direct[2], payload
    stats = proxy.stats()
    assert stats["requests"] == len(calls)
    assert stats["faults_total"] == 0
    assert stats["forwarded"] == {"eth_chainId": 2, "eth_blockNumber": 1,
                                  "eth_getBlockByNumber": 1, "eth_getLogs": 2}  # fmt: skip


async def test_drop_closes_the_connection_without_an_answer(proxy: FaultyProxy) -> None:
    proxy.inject(Fault.DROP)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(proxy.url, rpc("eth_chainId"))
    assert (await answer(proxy.url, rpc("eth_chainId")))["result"] == "0x7a69"
    assert proxy.stats()["log"] == [("eth_chainId", Fault.DROP)]


async def test_delay_trips_a_client_timeout_then_answers_correctly(proxy: FaultyProxy) -> None:
    proxy.inject(Fault.DELAY, count=2)
    with pytest.raises(TimeoutError):
        await post(proxy.url, rpc("eth_chainId"), timeout=0.1)
    assert (await answer(proxy.url, rpc("eth_chainId", id=9))) == {
        "jsonrpc": "2.0", "id": 9, "result": "0x7a69"}  # fmt: skip
    assert proxy.stats()["faults"] == {Fault.DELAY: 2}


async def test_429_carries_retry_after_and_a_provider_body(anvil: Anvil) -> None:
    with FaultyProxy(anvil.url, retry_after=3) as proxy:
        proxy.inject(Fault.HTTP_429, count=2)
        status, headers, body = await post(proxy.url, rpc("eth_blockNumber", id=5))
        assert (status, headers["Retry-After"]) == (429, "3")
        error = orjson.loads(body)
        assert error["id"] == 5 and error["error"]["code"] == 429
        assert "exceeded" in error["error"]["message"]
        status, _, body = await post(
            proxy.url, [rpc("eth_chainId", id=1), rpc("eth_chainId", id=2)]
        )
        assert status == 429
        assert [e["id"] for e in orjson.loads(body)] == [1, 2]


@pytest.mark.parametrize("kind, status", [(Fault.HTTP_500, 500), (Fault.HTTP_503, 503)])
async def test_server_errors(proxy: FaultyProxy, kind: Fault, status: int) -> None:
    proxy.inject(kind)
    got, headers, body = await post(proxy.url, rpc("eth_chainId"))
    assert got == status and str(status).encode() in body
    assert headers["Content-Type"].startswith("text/html")


async def test_truncated_is_the_correct_answer_cut_short(anvil: Anvil, proxy: FaultyProxy) -> None:
    call = rpc("eth_getBlockByNumber", "0x0", True)
    proxy.inject(Fault.TRUNCATED)
    status, _, body = await post(proxy.url, call)
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    _, _, full = await post(anvil.url, call)
    assert full.startswith(body) and 0 < len(body) < len(full)


async def test_rpc_error_is_http_200_with_a_retryable_error_object(proxy: FaultyProxy) -> None:
    proxy.inject(Fault.RPC_ERROR, count=2)
    single = await answer(proxy.url, rpc("eth_blockNumber", id=3))
    assert single["id"] == 3 and "result" not in single
    assert (single["error"]["code"], single["error"]["message"]) in (
        (-32603, "internal error"), (-32000, "header not found"))  # fmt: skip
    batch = await answer(proxy.url, [rpc("eth_chainId", id=1), rpc("eth_blockNumber", id=2)])
    assert [item["id"] for item in batch] == [1, 2]
    assert all("error" in item and "result" not in item for item in batch)


async def test_log_limits_refuse_only_queries_over_them(
    proxy: FaultyProxy, log_blocks: list[int]
) -> None:
    first, last = log_blocks[0], log_blocks[-1]
    span = last - first + 1
    proxy.limit_logs(max_range=span)
    logs = (await answer(proxy.url, get_logs(first, last)))["result"]
    assert len(logs) >= 3
    for _ in range(2):  # a policy, not a one-off
        refused = await answer(proxy.url, get_logs(first, last + 1, id=4))
        assert refused["id"] == 4
        assert refused["error"] == {"code": -32000, "message": "block range is too wide"}

    proxy.limit_logs(max_results=len(logs))
    assert (await answer(proxy.url, get_logs(first, last)))["result"] == logs
    proxy.limit_logs(max_results=len(logs) - 1)
    refused = await answer(proxy.url, get_logs(first, last))
    assert refused["error"]["code"] == -32005
    assert refused["error"]["message"] == f"query returned more than {len(logs) - 1} results"
    assert proxy.stats()["faults"] == {Fault.LOG_RANGE_LIMIT: 3}

    proxy.clear()
    assert (await answer(proxy.url, get_logs(first, last + 1)))["result"] == logs


async def test_a_scripted_log_limit_fires_only_over_the_limit(
    proxy: FaultyProxy, log_blocks: list[int]
) -> None:
    first, last = log_blocks[0], log_blocks[-1]
    proxy.max_log_range = last - first + 1
    proxy.inject(Fault.LOG_RANGE_LIMIT, count=2)
    assert "result" in await answer(proxy.url, rpc("eth_blockNumber"))  # not for this method
    assert "result" in await answer(proxy.url, get_logs(first, last))  # within: consumed, no error
    assert "error" in await answer(proxy.url, get_logs(first, last + 1))
    assert "result" in await answer(proxy.url, get_logs(first, last + 1))  # both used up
    assert proxy.stats()["log"] == [("eth_getLogs", Fault.LOG_RANGE_LIMIT)]


async def test_wrong_range_answers_logs_outside_the_asked_blocks(
    anvil: Anvil, fresh_chain: Chain, proxy: FaultyProxy, log_blocks: list[int]
) -> None:
    block = log_blocks[-1]
    proxy.inject(Fault.WRONG_RANGE, count=2)
    assert "result" in await answer(proxy.url, rpc("eth_blockNumber"))  # waits for eth_getLogs

    true_logs = (await answer(anvil.url, get_logs(block, block)))["result"]
    tampered = (await answer(proxy.url, get_logs(block, block)))["result"]
    assert true_logs and len(tampered) == len(true_logs)
    assert all(block_of(log) != block for log in tampered), tampered

    fresh_chain.mine()
    fresh_chain.mine()
    head = int((await answer(anvil.url, rpc("eth_blockNumber")))["result"], 16)
    assert (await answer(anvil.url, get_logs(head - 1, head)))["result"] == []
    foreign = (await answer(proxy.url, get_logs(head - 1, head)))["result"]
    assert foreign and all(block_of(log) < head - 1 for log in foreign), foreign

    assert (await answer(proxy.url, get_logs(block, block)))["result"] == true_logs
    assert proxy.stats()["faults"] == {Fault.WRONG_RANGE: 2}

    # by block hash: the block's logs, claimed for its parent
    header = (await answer(anvil.url, rpc("eth_getBlockByNumber", hex(block), False)))["result"]
    proxy.inject(Fault.WRONG_RANGE)
    by_hash = rpc("eth_getLogs", {"blockHash": header["hash"]})
    moved = (await answer(proxy.url, by_hash))["result"]
    assert len(moved) == len(true_logs)
    assert {(log["blockHash"], block_of(log)) for log in moved} == {
        (header["parentHash"], block - 1)}  # fmt: skip
    assert (await answer(proxy.url, by_hash))["result"] == true_logs


async def test_stale_head_reports_a_lagging_node(
    anvil: Anvil, fresh_chain: Chain, stack: Any
) -> None:
    with FaultyProxy(anvil.url, stale_lag=2) as proxy:
        proxy.inject(Fault.STALE_HEAD, count=2)
        assert "result" in await answer(proxy.url, rpc("eth_chainId"))  # does not apply
        head = int((await answer(anvil.url, rpc("eth_blockNumber")))["result"], 16)
        assert (await answer(proxy.url, rpc("eth_blockNumber", id=8))) == {
            "jsonrpc": "2.0", "id": 8, "result": hex(head - 2)}  # fmt: skip
        latest = (await answer(proxy.url, rpc("eth_getBlockByNumber", "latest", False)))["result"]
        lagging = await answer(anvil.url, rpc("eth_getBlockByNumber", hex(head - 2), False))
        assert latest == lagging["result"]
        assert proxy.stats()["faults"] == {Fault.STALE_HEAD: 2}


async def test_batches_are_forwarded_and_can_come_back_partial(
    anvil: Anvil, proxy: FaultyProxy, stack: Any
) -> None:
    batch = [rpc("eth_chainId", id=1), rpc("eth_blockNumber", id=2),
             rpc("eth_getBlockByNumber", "0x1", False, id=3), get_logs(0, 5, id=4)]  # fmt: skip
    direct = {item["id"]: item for item in await answer(anvil.url, batch)}
    assert {item["id"]: item for item in await answer(proxy.url, batch)} == direct

    proxy.inject(Fault.BATCH_PARTIAL)
    assert (await answer(proxy.url, batch[0]))["result"] == "0x7a69"  # a single call: not hit
    partial = await answer(proxy.url, batch)
    assert 0 < len(partial) < len(batch)
    assert all(item == direct[item["id"]] for item in partial)

    proxy.inject(Fault.HTTP_503)  # any other fault takes the whole batch
    assert (await post(proxy.url, batch))[0] == 503
    assert proxy.stats()["log"] == [
        ("batch(eth_blockNumber,eth_chainId,eth_getBlockByNumber,eth_getLogs)", kind)
        for kind in (Fault.BATCH_PARTIAL, Fault.HTTP_503)
    ]


async def test_scripted_faults_come_first_and_are_consumed(proxy: FaultyProxy) -> None:
    proxy.set_faults(rate=1.0, kinds=[Fault.HTTP_500])
    proxy.inject(Fault.HTTP_429, count=2, method="eth_chainId")
    statuses = [
        (await post(proxy.url, rpc(m)))[0]
        for m in ("eth_blockNumber", "eth_chainId", "eth_chainId", "eth_chainId")
    ]
    assert statuses == [500, 429, 429, 500]
    proxy.clear()
    assert (await post(proxy.url, rpc("eth_chainId")))[0] == 200
    assert [kind for _, kind in proxy.stats()["log"]] == [
        Fault.HTTP_500, Fault.HTTP_429, Fault.HTTP_429, Fault.HTTP_500]  # fmt: skip


async def test_random_faults_can_be_limited_to_methods(proxy: FaultyProxy) -> None:
    proxy.set_faults(rate=1.0, kinds=[Fault.HTTP_503], methods=["eth_getLogs"])
    assert (await post(proxy.url, rpc("eth_blockNumber")))[0] == 200
    assert (await post(proxy.url, get_logs(0, 1)))[0] == 503
    assert (await post(proxy.url, [rpc("eth_blockNumber"), get_logs(0, 1, id=2)]))[0] == 503


async def run_plan(url: str, seed: int, requests: int) -> tuple[list[Any], list[str]]:
    """Drive one proxy with a fixed sequence of requests; what each got, and the fault log."""
    with FaultyProxy(url, seed=seed, delay=(0.0, 0.01), stale_lag=1) as proxy:
        proxy.set_faults(rate=0.3)
        outcomes: list[Any] = []
        for n in range(requests):
            payload: Any = [
                rpc("eth_blockNumber"),
                get_logs(0, 10),
                [rpc("eth_chainId", id=1), get_logs(0, 10, id=2)],
                rpc("eth_getBlockByNumber", "latest", False),
            ][n % 4]
            try:
                outcomes.append((await post(url=proxy.url, payload=payload))[::2])
            except aiohttp.ClientError as exc:
                outcomes.append(type(exc).__name__)
        return outcomes, [f"{method}:{kind}" for method, kind in proxy.stats()["log"]]


async def test_the_same_seed_gives_the_same_faults(anvil: Anvil, stack: Any) -> None:
    first, log = await run_plan(anvil.url, seed=11, requests=60)
    again, same_log = await run_plan(anvil.url, seed=11, requests=60)
    _, other_log = await run_plan(anvil.url, seed=12, requests=60)
    assert (first, log) == (again, same_log)
    assert log != other_log
    assert 0.15 * 60 <= len(log) <= 0.5 * 60, log  # rate 0.3; this count is fixed by the seed
    assert len({entry.split(":")[1] for entry in log}) >= 5, log


async def test_concurrent_requests_are_each_answered_or_faulted_once(
    anvil: Anvil, proxy: FaultyProxy
) -> None:
    whole_request = [Fault.DROP, Fault.HTTP_429, Fault.HTTP_500, Fault.HTTP_503,
                     Fault.RPC_ERROR, Fault.TRUNCATED]  # fmt: skip
    proxy.set_faults(rate=0.5, kinds=whole_request)
    correct = (await post(anvil.url, rpc("eth_chainId")))[::2]

    async def one() -> Any:
        try:
            return (await post(proxy.url, rpc("eth_chainId")))[::2]
        except aiohttp.ClientError as exc:
            return exc

    outcomes = await asyncio.gather(*(one() for _ in range(40)))
    stats = proxy.stats()
    assert stats["requests"] == 40
    assert sum(outcome != correct for outcome in outcomes) == stats["faults_total"] > 0
    assert len(stats["log"]) == stats["faults_total"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_stop_is_prompt_and_frees_the_port(anvil: Anvil) -> None:
    fds = open_fds()
    proxy = FaultyProxy(anvil.url, delay=(60.0, 60.0)).start()
    port, url = proxy.port, proxy.url
    proxy.inject(Fault.DELAY)
    pending = asyncio.create_task(post(url, rpc("eth_chainId")))
    while proxy.stats()["requests"] == 0:
        await asyncio.sleep(0.01)
    proxy.stop()  # cancels the 60 s delay rather than waiting it out
    proxy.stop()  # a second stop is harmless
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pending
    assert not [t for t in threading.enumerate() if t.name == f"rpc-proxy-{port}"]
    assert open_fds() == fds  # listening socket, connections, loop: all closed
    with pytest.raises(aiohttp.ClientConnectorError):
        await post(url, rpc("eth_chainId"))
    with FaultyProxy(anvil.url, port=port) as again:
        assert again.url == url
        assert (await answer(url, rpc("eth_chainId")))["result"] == "0x7a69"


async def test_a_dead_upstream_is_a_bad_gateway() -> None:
    with FaultyProxy(f"http://127.0.0.1:{free_port()}") as proxy:
        status, _, body = await post(proxy.url, rpc("eth_chainId"))
        assert status == 502 and b"upstream failed" in body


async def test_runs_as_a_separate_process(anvil: Anvil) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests._rpc_proxy", "--upstream", anvil.url,
        "--rate", "1", "--kinds", "http_503", "--seed", "3",
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert (await post(url, rpc("eth_chainId")))[0] == 503
        proc.send_signal(2)  # Ctrl-C
        out = await asyncio.wait_for(proc.stdout.read(), 30)
        assert await proc.wait() == 0
        assert orjson.loads(out)["faults"] == {"http_503": 1}
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
