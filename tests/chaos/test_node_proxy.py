"""The chaos scenarios' own proxy and renewable node: a lie removes exactly the newest
blocks' logs and nothing else, a switch moves every later request to the new upstream,
and a renewed node serves the same chain with time going on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests._chain import Chain
from tests.chaos._node_proxy import NodeProxy
from tests.chaos._segments import SegmentedNode
from tests.conftest import Session
from warden.devnet import Anvil

JSON = {"Content-Type": "application/json"}


async def call(url: str, payload: Any) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.post(url, data=orjson.dumps(payload), headers=JSON) as resp,
    ):
        return orjson.loads(await resp.read())


def logs_query(first: int, last: int, id: int = 1) -> dict[str, Any]:
    flt = {"fromBlock": hex(first), "toBlock": hex(last)}
    return {"jsonrpc": "2.0", "id": id, "method": "eth_getLogs", "params": [flt]}


async def test_a_lie_hides_only_the_newest_blocks_logs(
    anvil: Anvil, fresh_chain: Chain, make_session: Callable[..., Session]
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    for _ in range(6):  # one session per block: logs in each of the newest blocks
        make_session()
    head = fresh_chain.w3.eth.block_number
    truth = (await call(anvil.url, logs_query(start, head)))["result"]
    newest = 3
    with NodeProxy(anvil.url, seed=5) as proxy:
        assert (await call(proxy.url, logs_query(start, head)))["result"] == truth  # honest
        proxy.lie_about_logs(1.0, newest=newest)
        seen: set[int] = set()
        for i in range(40):
            batch = [logs_query(start, head, id=i), logs_query(start, head - newest, id=-1)]
            lied, older = await call(proxy.url, batch)
            got = lied["result"]
            # A prefix of the truth, cut somewhere in the newest blocks (or all of it: blank).
            assert got == truth[: len(got)]
            assert got == [] or int(truth[len(got)]["blockNumber"], 16) > head - newest
            seen.add(len(got))
            # A range that holds none of the newest blocks is never lied about.
            assert older["result"] == [
                log for log in truth if int(log["blockNumber"], 16) <= head - newest
            ]
        assert 0 in seen and len(seen) > 1, seen  # blank and lag both happened
        stats = proxy.stats()
        assert stats["lies_total"] == 40 and set(stats["lies"]) == {"lag", "blank"}
        header = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                  "params": [hex(head), False]}  # fmt: skip
        assert (await call(proxy.url, header))["result"]["number"] == hex(head)  # headers true


async def test_switch_sends_later_requests_to_the_new_upstream(anvil: Anvil) -> None:
    block_number = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
    with Anvil() as other, NodeProxy(anvil.url) as proxy:
        for _ in range(5):
            other.rpc("evm_mine")
        before = (await call(proxy.url, block_number))["result"]
        assert before == anvil.rpc("eth_blockNumber")
        proxy.switch(other.url)
        answers = await asyncio.gather(*(call(proxy.url, block_number) for _ in range(5)))
        assert {a["result"] for a in answers} == {other.rpc("eth_blockNumber")}
        assert proxy.stats()["upstream errors"] == 0


def test_a_renewed_node_serves_the_same_chain_and_time_goes_on(tmp_path: Path) -> None:
    with SegmentedNode(tmp_path) as node:
        node.rpc("evm_increaseTime", 3 * 86_400)  # an offset a dump does not carry
        for _ in range(5):
            node.rpc("evm_mine")
        head = node.rpc("eth_getBlockByNumber", "latest", False)
        url, first = node.url, node.current
        floor = node.renew()
        assert floor == int(head["number"], 16)
        assert node.url == url and node.current is not first
        assert node.rpc("eth_getBlockByNumber", "latest", False)["hash"] == head["hash"]
        node.rpc("evm_mine")
        after = node.rpc("eth_getBlockByNumber", "latest", False)
        assert after["parentHash"] == head["hash"]
        assert int(after["timestamp"], 16) > int(head["timestamp"], 16)
        node.rpc("anvil_reorg", 1, [])  # a block the new node mined itself can be replaced
