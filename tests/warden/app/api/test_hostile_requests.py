"""Requests no client library would send, over raw sockets to the app as the daemon serves
it (the same connection limits and server logger): each is a 4xx, none is logged as an
ERROR or with a traceback, the server keeps answering, and connections that sit idle or
trickle their headers are closed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from executor.outbox import Outbox
from indexer import IndexerStore, open_database
from tests.warden.app.api.conftest import Api, serve_api
from warden.app.api import LiveState
from warden.app.api.server import HttpLimits

WALLET = "0x" + "ab" * 20


@pytest.fixture
async def empty(tmp_path: Path) -> AsyncIterator[Api]:
    """The API over a database with every table and no rows: what matters here is how
    the server treats the request, not what it finds."""
    path = tmp_path / "warden.sqlite"
    db = await open_database(path)
    await IndexerStore(db).setup()
    await Outbox(db).setup()
    await db.close()
    async with serve_api(path, LiveState(), limits=HttpLimits(keepalive_timeout=1.0)) as api:
        yield api


async def exchange(api: Api, raw: bytes) -> bytes:
    """Send `raw` on a fresh connection; everything the server answers until it closes
    the connection or goes quiet."""
    port = api.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        chunks = []
        while True:
            try:  # a keep-alive answer is complete long before the server closes
                chunk = await asyncio.wait_for(reader.read(65536), 10)
            except TimeoutError:
                break
            except ConnectionResetError:
                # the server may close with a reset once it answered (its keep-alive
                # timeout on a loaded machine): what came before is the answer
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and raw.startswith(b"HEAD"):
                break
        return b"".join(chunks)
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    line = answer.split(b"\r\n", 1)[0].split()
    assert len(line) >= 2 and line[0].startswith(b"HTTP/"), answer[:200]
    return int(line[1])


def get(target: bytes, *headers: bytes, version: bytes = b"1.1") -> bytes:
    head = b"GET " + target + b" HTTP/" + version + b"\r\nHost: x\r\nConnection: close\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


HOSTILE = {
    "query over the line limit": get(b"/sessions?policy=" + b"a" * 20_000),
    "path over the line limit": get(b"/sessions/" + b"a" * 20_000),
    "header over the field limit": get(b"/status", b"X-Big: " + b"a" * 20_000),
    "too many headers": get(b"/status", *(b"X-%d: 1" % i for i in range(200))),
    "header without a colon": get(b"/status", b"no colon here"),
    "header name with a space": get(b"/status", b"Bad Name: 1"),
    "NUL in a header": get(b"/status", b"X-A: a\x00b"),
    "raw non-UTF-8 bytes in the target": get(b"/sessions?policy=\xff\xfe"),
    "raw control byte in the target": get(b"/sessions?policy=a\x01b"),
    "space inside the target": get(b"/sessions?policy=a b"),
    "asterisk target": get(b"*"),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
    "unknown method token": b"G\x00T / HTTP/1.1\r\n\r\n",
    "HTTP/3.7": get(b"/status", version=b"3.7"),
    "negative Content-Length": get(b"/status", b"Content-Length: -1"),
    "two Content-Lengths": get(b"/status", b"Content-Length: 1", b"Content-Length: 2") + b"ab",
    "bad chunked body": get(b"/status", b"Transfer-Encoding: chunked") + b"zz\r\n",
    "body on GET": get(b"/status", b"Content-Length: 5") + b"hello",
    "chunked body on GET": get(b"/status", b"Transfer-Encoding: chunked")
    + b"5\r\nhello\r\n0\r\n\r\n",
    "body on HEAD": get(b"/status", b"Content-Length: 2").replace(b"GET", b"HEAD", 1) + b"hi",
    "bad percent-encoding in a value": get(b"/sessions?policy=%zz"),
    "truncated percent-encoding": get(b"/sessions?policy=abc%"),
    "invalid UTF-8 in a value": get(b"/sessions?policy=%ff%fe"),
    "overlong UTF-8 in a value": get(b"/intents?rule=%c0%af"),
    "lone surrogate in a value": get(b"/intents?rule=%ed%a0%80"),
    "invalid UTF-8 in a name": get(b"/sessions?%ff=1"),
    "bad escape in the path": get(b"/sessions/%zz"),
    "invalid UTF-8 in the path": get(b"/sessions/%ff%fe/events"),
    "huge limit": get(b"/sessions?limit=" + b"9" * 5_000),
    "limit in other digits": get(b"/sessions?limit=%d9%a3"),  # ARABIC-INDIC DIGIT THREE
    "cursor of NULs": get(b"/sessions?cursor=%00%00%00%00"),
    "dot segments": get(b"/sessions/../../etc/passwd"),
    "POST with a body": get(b"/status", b"Content-Length: 2").replace(b"GET", b"POST", 1) + b"{}",
}


@pytest.mark.parametrize("raw", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_request_is_a_4xx_and_no_error_is_logged(
    empty: Api, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await exchange(empty, raw)
    assert 400 <= status_of(answer) < 500, answer[:300]
    assert b"Traceback" not in answer
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [(r.name, r.levelname, r.getMessage()) for r in loud]
    assert status_of(await exchange(empty, get(b"/health"))) == 200  # still serving


BAD_VALUES = [
    ("/sessions?policy=%zz", "policy"),
    ("/sessions?policy=abc%", "policy"),
    ("/sessions?policy=%ff", "policy"),
    ("/intents?rule=%ed%a0%80", "rule"),
    ("/intents?rule=%c0%af", "rule"),
    ("/sessions?%ff=1", "query"),
    ("/sessions?%zz=1", "query"),
    ("/sessions?cursor=%", "cursor"),
    ("/sessions?owner=%f0%28%8c%28", "owner"),
]


@pytest.mark.parametrize(("target", "parameter"), BAD_VALUES)
async def test_undecodable_query_is_a_400_naming_the_parameter(
    empty: Api, target: str, parameter: str
) -> None:
    answer = await exchange(empty, get(target.encode()))  # raw: yarl would re-encode `%zz`
    assert status_of(answer) == 400, answer
    body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["parameter"] == parameter, body


async def test_a_body_on_get_is_a_400_and_the_error_says_why(empty: Api) -> None:
    for path in ("/status", "/sessions", f"/sessions/{WALLET}"):
        async with empty.http.get(empty.server.make_url(path), data=b"x" * 100) as r:
            assert r.status == 400
            body = await r.json()
            assert body["error"]["code"] == "bad_request"
            assert "takes no request body" in body["error"]["message"]


async def test_plus_and_escapes_still_decode_as_before(empty: Api) -> None:
    """Strict decoding refuses only what cannot be decoded: `+` is a space, escapes of
    valid UTF-8 are their characters, an empty value is empty."""
    for target in ("/sessions?policy=a+b", "/sessions?policy=%E2%82%AC", "/sessions?policy=",
                   "/intents?rule=x&&limit=2", "/sessions?policy=%00"):  # fmt: skip
        status, body = await empty.get(target)
        assert status == 200, (target, body)


async def read_until_closed(reader: asyncio.StreamReader, bound: float) -> bool:
    """True when the server closed the connection within `bound` seconds (the bound only
    stops a broken test; the server's timeout in these tests is 1 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while loop.time() < deadline:
        try:
            if await asyncio.wait_for(reader.read(4096), 0.5) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


async def test_idle_connection_is_closed(empty: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", empty.server.port)
    try:
        assert await read_until_closed(reader, 60), "an idle connection stayed open"
    finally:
        writer.close()


async def test_idle_keep_alive_connection_is_closed_after_its_answer(empty: Api) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", empty.server.port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        assert await read_until_closed(reader, 60), "a kept-alive connection stayed open"
    finally:
        writer.close()


async def test_slowloris_headers_are_cut_off(empty: Api) -> None:
    """A client that keeps sending header lines, never finishing the head, is
    disconnected: it cannot hold a connection forever by trickling."""
    reader, writer = await asyncio.open_connection("127.0.0.1", empty.server.port)
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        closed = False
        n = 0
        while loop.time() < deadline and not closed:
            try:
                writer.write(b"X-%d: a\r\n" % n)
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            n += 1
            try:
                closed = await asyncio.wait_for(reader.read(4096), 0.2) == b""
            except TimeoutError:
                pass
            except ConnectionError:
                closed = True
        assert closed, f"still connected after trickling {n} header lines"
        assert n < 64, "cut off by the header count, not by time"  # max_headers is 64
    finally:
        writer.close()
