"""The console's files as the API app serves them (real HTTP, no browser): every answer
carries the Content-Security-Policy, they load without the token while the data does
not, nothing outside the package is reachable, and the files themselves hold no inline
script or style and never parse a string as HTML."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from indexer import IndexerStore, open_database
from warden.app.api import LiveState, create_app
from warden.app.console import CSP, console_paths

TOKEN = "page-token"
STATIC = Path(str(resources.files("warden.app.console") / "static"))


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession]]:
    path = tmp_path / "warden.sqlite"
    db = await open_database(path)
    await IndexerStore(db).setup()
    await db.close()
    server = TestServer(create_app(path, LiveState(), token=TOKEN), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        yield server, http
    await server.close()


async def test_every_console_file_loads_without_the_token_with_the_csp(
    served: tuple[TestServer, aiohttp.ClientSession],
) -> None:
    server, http = served
    paths = console_paths()
    assert "/" in paths and "/console/main.js" in paths and "/console/console.css" in paths
    for path in sorted(paths):
        async with http.get(server.make_url(path)) as r:
            assert r.status == 200, path
            assert r.headers["Content-Security-Policy"] == CSP
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["X-Frame-Options"] == "DENY"
            kind = {"": "text/html", ".js": "text/javascript", ".css": "text/css"}
            assert r.content_type == kind[Path(path).suffix], path
        async with http.head(server.make_url(path)) as r:
            assert r.status == 200 and await r.read() == b""
    for path in ("/status", "/sessions", "/activity"):  # the data still needs the token
        async with http.get(server.make_url(path)) as r:
            assert r.status == 401, path
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "*" not in CSP


@pytest.mark.parametrize(
    "path",
    [
        "/console/", "/console/missing.js", "/console/../pages.py", "/console/%2e%2e/pages.py",
        "/console/__init__.py", "/console/static/main.js", "/index.html", "/console/main.js/",
    ],
)  # fmt: skip
async def test_nothing_beyond_the_files_is_served(
    served: tuple[TestServer, aiohttp.ClientSession], path: str
) -> None:
    server, http = served
    async with http.get(server.make_url(path)) as r:
        assert r.status in (401, 404), (path, r.status)  # unknown: 401 first with a token
        body = await r.read()
        assert b"import" not in body and b"<html" not in body


async def test_other_methods_are_refused(
    served: tuple[TestServer, aiohttp.ClientSession],
) -> None:
    server, http = served
    async with http.post(server.make_url("/"), data=b"x") as r:
        assert r.status == 405 and r.headers["Allow"] == "GET,HEAD"


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    html = (STATIC / "index.html").read_text()
    for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
        assert script.strip() == "", "inline script"
    assert re.findall(r"<script\b(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_no_script_parses_a_string_as_html_or_loads_from_elsewhere() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        code = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                     "new Function", "setAttribute(\"style\"", "https://"):  # fmt: skip
            assert sink not in code, (script.name, sink)
        for target in re.findall(r"""from\s+["']([^"']+)["']""", code):
            assert target.startswith("./"), (script.name, target)  # our own modules only
