"""The daemon woken by the node's websocket (`chain.new_heads`), against the shared anvil:
with a poll ten minutes apart, a stop-loss is still closed and confirmed, because each
block anvil announces wakes the loop. A socket that floods and lies changes nothing of
what the daemon sees: it still indexes and closes by what the node answers over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from tests._chain import Chain
from tests.chain._ws_node import Node, hold, note, serving, subscribed
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import table
from tests.warden.app.test_daemon import _ready_again, plan, running, until
from warden.devnet import Anvil, free_port


def with_chain(p: tuple, **update: object) -> tuple:  # type: ignore[type-arg]
    cfg, target = p
    return cfg.model_copy(update={"chain": cfg.chain.model_copy(update=update)}), target


async def closed_and_confirmed(db: Path, wallet: str) -> bool:
    return table(db, "SELECT state FROM intents WHERE wallet = ?", wallet) == [("confirmed",)]


async def test_announced_blocks_are_acted_on_without_waiting_for_the_poll(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    db = tmp_path / "warden.db"
    port = free_port()
    p = with_chain(plan(anvil, stack, db, start, port), poll_interval=600.0)
    async with running(p) as (daemon, _):

        async def listening() -> bool:
            heads = daemon.live.new_heads
            return daemon.live.caught_up and heads is not None and heads.state == "subscribed"

        await until(listening, timeout=60)
        # From here the loop sleeps up to 600 s between polls: only announcements wake it.
        # The withdrawal's block must be indexed (one wake), the close sent and its block
        # indexed (another) for the intent to be confirmed.
        fresh_chain.send(session.wallet.functions.withdraw(850 * TOKEN), roles.owner)
        await until(lambda: closed_and_confirmed(db, session.wallet.address), timeout=120)
        heads = daemon.live.new_heads
        assert heads is not None and heads.announced >= 2
        status, metrics = await get_text(port, "/metrics")
        assert status == 200
        assert "warden_new_heads_subscribed 1.0" in metrics


async def get_text(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_a_lying_flooding_socket_changes_nothing_the_daemon_sees(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    """The socket announces heads that do not exist, thousands of them, with garbage in
    between, on every connection; polling (0.1 s) carries the daemon through."""

    async def liar(ws: web.WebSocketResponse, n: int) -> None:
        await subscribed(ws)
        for i in range(3_000):
            await ws.send_bytes(note("0xabc", 10**9 + i))  # far beyond anvil's head
            if i % 100 == 0:
                await ws.send_str("{garbage")
        await hold(ws)

    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    db = tmp_path / "warden.db"
    async with serving(Node(liar)) as node:
        p = with_chain(plan(anvil, stack, db, start, free_port()), new_heads=node.url)
        async with running(p) as (daemon, task):
            await until(lambda: _ready_again(daemon), timeout=60)
            fresh_chain.send(session.wallet.functions.withdraw(850 * TOKEN), roles.owner)
            await until(lambda: closed_and_confirmed(db, session.wallet.address), timeout=120)
            assert not task.done()
            heads = daemon.live.new_heads
            assert heads is not None
            assert heads.dropped + heads.ignored > 0
            # what the daemon holds is the chain's head, not the liar's
            assert daemon.live.head is not None and daemon.live.head < 10**9
            indexed = daemon.live.indexed_block
            assert indexed is not None and indexed <= fresh_chain.w3.eth.block_number


async def test_off_polls_only(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, tmp_path: Path
) -> None:
    p = with_chain(
        plan(anvil, stack, tmp_path / "w.db", fresh_chain.w3.eth.block_number, free_port()),
        new_heads="off",
    )
    async with running(p) as (daemon, _):
        await until(lambda: _ready_again(daemon), timeout=60)
        assert daemon.live.new_heads is None
        fresh_chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        head = fresh_chain.w3.eth.block_number

        async def indexed() -> bool:
            return (daemon.live.indexed_block or 0) >= head

        await until(indexed, timeout=60)
