"""`HeadWatcher` against websocket servers that behave and that do not: a real aiohttp
server on 127.0.0.1 plays the node (a real anvil's socket is in
tests/warden/app/test_new_heads.py). Whatever the socket does, the watcher never
crashes, never hangs, wakes its caller only for announcements of its own subscription,
at most `max_per_second` a second, and comes back when the socket does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from chain import HeadWatcher, websocket_url
from tests.chain._ws_node import Node, hold, note, serving, subscribed


@contextlib.asynccontextmanager
async def watching(url: str, **options: Any) -> AsyncIterator[tuple[HeadWatcher, list[float]]]:
    woken: list[float] = []
    loop = asyncio.get_running_loop()
    options = {"timeout": 2.0, "retry": 0.01, "max_retry": 0.05, **options}
    watcher = HeadWatcher(url, lambda: woken.append(loop.time()), **options)
    task = asyncio.create_task(watcher.run())
    try:
        yield watcher, woken
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled(), "the watcher ended by itself instead of running until cancelled"


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------ behaves
async def test_each_announcement_of_its_subscription_wakes_the_caller_once() -> None:
    sent = asyncio.Event()

    async def three_heads(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        for number in (1, 2, 3):
            await ws.send_bytes(note("0xabc", number))
        sent.set()
        await hold(ws)

    async with serving(Node(three_heads)) as node, watching(node.url) as (watcher, woken):
        await until(lambda: len(woken) == 3)
        assert watcher.stats.state == "subscribed"
        assert watcher.stats.announced == 3
        assert node.connections == 1


# ------------------------------------------------------------------------------ not offered
async def test_an_http_only_endpoint_is_not_offered_and_asked_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chain.heads")
    node = Node(hold, plain_http=True)
    async with serving(node), watching(node.url) as (watcher, woken):
        await until(lambda: watcher.stats.state == "not offered")
        # asked again after max_retry, and the outage is logged once, not per attempt
        await until(lambda: node.requests >= 3)
        said = [r for r in caplog.records if "offers no newHeads" in r.getMessage()]
        assert len(said) == 1
        assert woken == [] and node.connections == 0


async def test_a_refused_subscription_is_not_offered() -> None:
    async def refuse(ws: web.WebSocketResponse, n: int) -> None:
        message = await ws.receive()
        request = orjson.loads(message.data)
        error = {"code": -32601, "message": "the method eth_subscribe does not exist"}
        await ws.send_bytes(orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}))
        await hold(ws)

    async with serving(Node(refuse)) as node, watching(node.url) as (watcher, woken):
        await until(lambda: watcher.stats.state == "not offered")
        assert woken == []


async def test_nothing_listening_is_retried_without_waking_anyone() -> None:
    async with serving(Node(hold)) as node:
        url = node.url  # the port is free again once the server is gone
    async with watching(url) as (watcher, woken):
        await until(lambda: watcher.stats.state == "reconnecting")
        assert woken == [] and watcher.stats.connects == 0


# ------------------------------------------------------------------------------ lies, garbage
GARBAGE: list[bytes | str] = [
    b"not json",
    b"\xff\xfe\x00",
    "[]",
    "null",
    '{"method": "eth_subscription"}',
    '{"method": "eth_subscription", "params": "0xabc"}',
    '{"method": "eth_subscription", "params": {"subscription": "0xother"}}',
    '{"method": "eth_something", "params": {"subscription": "0xabc"}}',
    '{"jsonrpc": "2.0", "id": 1, "result": "0xabc"}',
    "{" * 10_000,
]


async def test_garbage_and_other_subscriptions_wake_nothing() -> None:
    async def garbage(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        for message in GARBAGE:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        await ws.send_bytes(note("0xabc"))  # then one true announcement
        await hold(ws)

    async with serving(Node(garbage)) as node, watching(node.url) as (watcher, woken):
        await until(lambda: len(woken) == 1)
        assert watcher.stats.ignored == len(GARBAGE)
        assert watcher.stats.announced == 1


async def test_garbage_before_the_subscription_answer_is_skipped() -> None:
    async def noisy(ws: web.WebSocketResponse, n: int) -> None:
        message = await ws.receive()
        request = orjson.loads(message.data)
        await ws.send_str("hello")
        await ws.send_bytes(orjson.dumps({"id": 99, "result": "0xnot-ours"}))
        await ws.send_bytes(orjson.dumps({"id": request["id"], "result": "0xabc"}))
        await ws.send_bytes(note("0xabc"))
        await hold(ws)

    async with serving(Node(noisy)) as node, watching(node.url) as (watcher, woken):
        await until(lambda: len(woken) == 1)
        assert watcher.stats.ignored == 2


@pytest.mark.parametrize("result", [None, 7, "", "0x" + "a" * 300, ["0xabc"]])
async def test_a_subscription_answer_without_a_usable_id_is_not_offered(result: Any) -> None:
    async def odd(ws: web.WebSocketResponse, n: int) -> None:
        message = await ws.receive()
        request = orjson.loads(message.data)
        await ws.send_bytes(orjson.dumps({"id": request["id"], "result": result}))
        await hold(ws)

    async with serving(Node(odd)) as node, watching(node.url) as (watcher, woken):
        await until(lambda: watcher.stats.state == "not offered")
        assert woken == []


async def test_an_oversized_message_ends_the_socket_and_it_comes_back() -> None:
    async def huge_once(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        if n == 1:
            await ws.send_bytes(b"x" * 100_000)
        else:
            await ws.send_bytes(note("0xabc"))
        await hold(ws)

    node = Node(huge_once)
    async with serving(node), watching(node.url, max_message=10_000) as (_, woken):
        await until(lambda: len(woken) == 1)
        assert node.connections == 2


# ------------------------------------------------------------------------------ floods
async def test_a_flood_wakes_at_most_the_budget_then_the_socket_is_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chain.heads")
    flooded = asyncio.Event()

    async def flood(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        if n == 1:
            for i in range(5_000):
                await ws.send_bytes(note("0xabc", i))
            flooded.set()
        await hold(ws)

    node = Node(flood)
    async with serving(node), watching(node.url, max_per_second=20) as (watcher, woken):
        await until(lambda: "flood" in watcher.stats.state or node.connections >= 2)
        await asyncio.wait_for(flooded.wait(), 20)
        # no second of wake-ups beyond the budget
        for t in woken:
            assert len([u for u in woken if t <= u < t + 1.0]) <= 20
        assert watcher.stats.dropped > 0
        assert any("left alone" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ drops, stalls
async def test_a_dropped_socket_is_reconnected_and_announces_again() -> None:
    async def drop_first(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws, f"0x{n}")
        await ws.send_bytes(note(f"0x{n}", n))
        if n == 1:
            await ws.close()
            return
        await hold(ws)

    node = Node(drop_first)
    async with serving(node), watching(node.url) as (watcher, woken):
        await until(lambda: len(woken) == 2)
        assert node.connections == 2
        assert watcher.stats.connects == 2


async def test_a_node_that_never_answers_the_subscription_is_given_up_on_and_retried() -> None:
    async def silent(ws: web.WebSocketResponse, n: int) -> None:
        await hold(ws)  # reads eth_subscribe, never answers

    node = Node(silent)
    async with serving(node), watching(node.url, timeout=0.3) as (watcher, woken):
        await until(lambda: node.connections >= 2)
        assert woken == []
        assert watcher.stats.state != "subscribed"


# ------------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    ("rpc", "ws"),
    [
        ("http://127.0.0.1:8545", "ws://127.0.0.1:8545"),
        ("https://eth.example.com/v2/KEY?x=1", "wss://eth.example.com/v2/KEY?x=1"),
        ("HTTP://node:1/", "ws://node:1/"),
        ("ws://already", None),
        ("ftp://node", None),
        ("http://", None),
        ("not a url", None),
        ("http://[::1", None),
    ],
)
def test_the_websocket_address_of_an_rpc_url(rpc: str, ws: str | None) -> None:
    assert websocket_url(rpc) == ws


async def test_a_socket_that_opens_and_closes_at_once_is_logged_once_and_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each connection is subscribed, then closed at once: the watcher reconnects with
    doubling delays (not a fixed retry), and says so once, not once per connection."""
    caplog.set_level(logging.DEBUG, logger="chain.heads")

    async def flap(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        await ws.close()

    node = Node(flap)
    async with serving(node), watching(node.url, retry=0.01, max_retry=5.0) as (watcher, woken):
        await until(lambda: node.connections >= 5, timeout=30)
        said = [r for r in caplog.records if "closed; reconnecting" in r.getMessage()]
        assert len(said) == 1
        assert woken == []
        # the delays doubled: 0.01, 0.02, 0.04, 0.08 ... never reset by a socket that
        # did not stay up
        assert watcher._subscribed_at is None or not watcher._lasted()


async def test_a_new_outage_after_a_socket_that_stayed_up_is_logged_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Connection 1 closes at once (logged), 2 stays up past `max_retry` then closes (a
    new outage: logged again), 3 closes at once (the same outage: not logged), 4 holds."""
    caplog.set_level(logging.INFO, logger="chain.heads")

    async def story(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        if n == 2:
            await asyncio.sleep(0.3)  # the node's behaviour: up a while, then gone
        if n in (1, 2, 3):
            await ws.close()
            return
        await ws.send_bytes(note("0xabc"))
        await hold(ws)

    node = Node(story)
    async with serving(node), watching(node.url, retry=0.01, max_retry=0.1) as (_, woken):
        await until(lambda: len(woken) == 1)
        said = [r for r in caplog.records if "closed; reconnecting" in r.getMessage()]
        assert len(said) == 2
        assert node.connections == 4
