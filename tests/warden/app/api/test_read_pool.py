"""The API's read connections under load and abuse (`api.read_connections`, `read_queue`,
`read_wait`), over real HTTP on both stores: when every connection is taken a request
waits in a bounded line for a bounded time, then gets 503 `busy` with Retry-After and
a message naming the setting; many clients at once get exactly the answers one client
gets alone; an answer asked after a commit shows it, whichever connection reads it;
clients that open connections and never read hold no read connection; and a shutdown
with requests waiting answers them before the database is closed."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from eth_utils.address import to_checksum_address

from database import open_database
from executor.outbox import Outbox
from indexer import IndexerStore
from tests.indexer.test_store_backends import commit, created
from tests.warden.app.api.conftest import Indexed
from warden.app.api import LiveState, ReadLimits, create_app
from warden.app.api.app import CONTEXT
from warden.app.api.server import runner_options


@contextlib.asynccontextmanager
async def served(db: Any, reads: ReadLimits) -> AsyncIterator[tuple[TestServer, web.Application]]:
    app = create_app(db, LiveState(), reads=reads)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**runner_options())
    try:
        yield server, app
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def holding(app: web.Application, slots: int = 1) -> AsyncIterator[None]:
    """Take `slots` of the API's read connections from the test, as slow requests would."""
    ready, release = asyncio.Event(), asyncio.Event()
    taken = 0

    async def hold() -> None:
        nonlocal taken
        async with app[CONTEXT].reader.snapshot():
            taken += 1
            if taken == slots:
                ready.set()
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(slots)]
    await asyncio.wait_for(ready.wait(), 30)
    try:
        yield
    finally:
        release.set()
        await asyncio.gather(*tasks)


async def _get(http: aiohttp.ClientSession, server: TestServer, path: str) -> tuple[int, Any, Any]:
    async with http.get(server.make_url(path)) as r:
        return r.status, await r.json(), r.headers


@pytest.fixture
async def empty_db(backend: str) -> str:
    """Every table and no rows, on either store."""
    db = await open_database(backend)
    try:
        await IndexerStore(db).setup()
        await Outbox(db).setup()
    finally:
        await db.close()
    return backend


async def test_no_room_in_line_is_a_503_at_once(empty_db: str) -> None:
    async with (
        served(empty_db, ReadLimits(connections=1, queue=0, wait=30)) as (server, app),
        aiohttp.ClientSession() as http,
    ):
        async with holding(app):
            started = time.monotonic()
            status, body, headers = await _get(http, server, "/intents?limit=5")
            assert time.monotonic() - started < 10  # not the 30 s wait
        assert status == 503 and headers["Retry-After"].isdigit()
        error = body["error"]
        assert error["code"] == "busy" and "api.read_queue" in error["message"]
        assert "retry" in error["message"]
        status, body, _ = await _get(http, server, "/intents?limit=5")  # free again
        assert status == 200 and body["items"] == []


async def test_a_wait_past_read_wait_is_a_503_and_the_line_is_bounded(empty_db: str) -> None:
    limits = ReadLimits(connections=1, queue=2, wait=1.0)
    async with (
        served(empty_db, limits) as (server, app),
        aiohttp.ClientSession() as http,
    ):
        gate = app[CONTEXT].reader.gate
        async with holding(app):
            waiting = [
                asyncio.create_task(_get(http, server, f"/sessions?limit={n}")) for n in (1, 2)
            ]
            while gate.waiting < 2:  # both in line
                await asyncio.sleep(0.01)
            status, body, _ = await _get(http, server, "/sessions?limit=3")  # a third
            assert status == 503 and "2 requests are already waiting" in body["error"]["message"]
            answers = await asyncio.wait_for(asyncio.gather(*waiting), 30)
        for status, body, headers in answers:
            assert status == 503 and "api.read_wait" in body["error"]["message"]
            assert "within 1 s" in body["error"]["message"] and "Retry-After" in headers
        assert gate.waiting == 0 and gate.refused == 3
        status, _, _ = await _get(http, server, "/sessions?limit=3")
        assert status == 200


async def test_requests_waiting_in_line_are_answered_when_a_connection_frees(
    empty_db: str,
) -> None:
    async with (
        served(empty_db, ReadLimits(connections=2, queue=100, wait=30)) as (server, app),
        aiohttp.ClientSession() as http,
    ):
        async with holding(app, slots=2):
            queued = [
                asyncio.create_task(_get(http, server, f"/intents?limit={n}")) for n in range(1, 21)
            ]
            while app[CONTEXT].reader.gate.waiting < 20:
                await asyncio.sleep(0.01)
        answers = await asyncio.wait_for(asyncio.gather(*queued), 60)
        assert [status for status, _, _ in answers] == [200] * 20


def _paths(indexed: Indexed) -> list[str]:
    paths = [f"/sessions/{w}" for w in indexed.wallets]
    paths += [f"/sessions?limit={n}" for n in (1, 7, 50, 1000)]
    paths += [f"/intents?limit={n}" for n in (1, 10, 1000)]
    paths += ["/stats", "/activity?limit=50", "/notifications?limit=100"]
    return paths


async def test_many_clients_at_once_get_what_one_client_gets_alone(indexed: Indexed) -> None:
    paths = _paths(indexed)
    async with aiohttp.ClientSession() as http:
        async with served(indexed.path, ReadLimits(connections=1)) as (server, _):
            alone = {p: await _get(http, server, p) for p in paths}
        # a new app (nothing kept), four connections, every path asked five times at once
        limits = ReadLimits(connections=4, queue=10_000, wait=60)  # no refusal on a busy box
        async with served(indexed.path, limits) as (server, app):
            together = await asyncio.wait_for(
                asyncio.gather(*(_get(http, server, p) for p in paths * 5)), 120
            )
            assert app[CONTEXT].reader.gate.refused == 0
    for path, (status, body, _) in zip(paths * 5, together, strict=True):
        assert status == alone[path][0] == 200, (path, status, body)
        assert body == alone[path][1], path


async def test_an_answer_asked_after_a_commit_shows_it_on_any_connection(
    indexed: Indexed, tmp_path: Path
) -> None:
    """The writer commits a new session; then 40 requests at once (sessions pages,
    /status, the new session): every one shows it, whichever connection read it and
    whatever was kept or was being computed. Ten rounds."""
    path = tmp_path / "copy.sqlite"
    shutil.copy(indexed.path, path)
    writer = await open_database(path)
    store = IndexerStore(writer)
    try:
        async with (
            served(path, ReadLimits(connections=3)) as (server, _),
            aiohttp.ClientSession() as http,
        ):
            top = await store.checkpoint()
            assert top is not None
            block = top.number
            total = sum((await _get(http, server, "/status"))[1]["sessions"].values())
            for n in range(10):
                # warm the cache at this version, with requests still in flight
                warm = [asyncio.create_task(_get(http, server, "/sessions?limit=1000"))
                        for _ in range(5)]  # fmt: skip
                block += 1
                wallet = to_checksum_address(f"0x{0x7E00 + n:040x}")
                await commit(store, [block], [created(wallet, block, 10**30 + n)])
                await asyncio.gather(*warm)
                asked = (
                    ["/sessions?limit=1000"] * 20 + ["/status"] * 10 + [f"/sessions/{wallet}"] * 10
                )
                answers = await asyncio.gather(*(_get(http, server, p) for p in asked))
                for p, (status, body, _) in zip(asked, answers, strict=True):
                    assert status == 200, (p, body)
                    if p == "/status":
                        assert sum(body["sessions"].values()) == total + n + 1
                    elif p.startswith("/sessions?"):
                        assert wallet in {s["wallet"] for s in body["items"]}, n
                    else:
                        assert body["session"]["deposit"] == str(10**30 + n)
    finally:
        await writer.close()


async def test_clients_that_never_read_hold_no_read_connection(indexed: Indexed) -> None:
    """200 connections that send nothing, and clients that pipeline the biggest pages
    again and again without reading a byte of the answers: once their socket buffers
    are full they wait to write, holding no read connection; everyone else is answered."""
    async with (
        served(indexed.path, ReadLimits(connections=1, queue=100, wait=10)) as (server, app),
        aiohttp.ClientSession() as http,
    ):
        gate = app[CONTEXT].reader.gate
        port = server.port
        assert port is not None
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
        greedy = []
        for n in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = f"GET /sessions?limit={1000 - n} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            writer.write(request * 200)  # pipelined, never read
            greedy.append((reader, writer))
        try:
            for n in range(1, 31):  # a new answer each (nothing kept): each needs the connection
                status, body, _ = await _get(http, server, f"/intents?limit={n}")
                assert status == 200, body
            deadline = time.monotonic() + 60
            while gate.reading and time.monotonic() < deadline:  # the greedy ones stall
                await asyncio.sleep(0.05)
            assert gate.reading == 0 and gate.waiting == 0
            assert gate.refused == 0
        finally:
            for _, writer in silent + greedy:
                writer.close()


async def test_a_shutdown_answers_the_requests_in_line_then_closes_the_database(
    empty_db: str,
) -> None:
    """The documented order: the server stops taking connections, the requests in
    flight finish (here: waiting for a read connection the test holds until the shutdown
    began), and only then is the database closed. None hangs, none is a 500."""
    app = create_app(empty_db, LiveState(), reads=ReadLimits(connections=1, queue=50, wait=20))
    began = asyncio.Event()

    async def on_shutdown(_: web.Application) -> None:
        began.set()

    app.on_shutdown.append(on_shutdown)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(**runner_options())
    closing: asyncio.Task[None] | None = None
    async with aiohttp.ClientSession() as http:
        try:
            async with holding(app):
                asked = [asyncio.create_task(_get(http, server, f"/intents?limit={n}"))
                         for n in range(1, 11)]  # fmt: skip
                while app[CONTEXT].reader.gate.waiting < 10:
                    await asyncio.sleep(0.01)
                closing = asyncio.create_task(server.close())
                await asyncio.wait_for(began.wait(), 30)
                db = app[CONTEXT].reader.db
            answers = await asyncio.wait_for(asyncio.gather(*asked), 60)
            assert [status for status, _, _ in answers] == [200] * 10
            await asyncio.wait_for(closing, 60)
        finally:
            if closing is None:
                await server.close()
    with pytest.raises(Exception):  # noqa: B017 - closed: either store's own error
        await db.fetch("SELECT 1")
