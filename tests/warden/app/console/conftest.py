"""A real `warden run` process on the suite's anvil, with an API token, and a real
headless Chromium (Debian's `chromium`, driven by Playwright) looking at its console.

The daemon lives for the module: it follows the shared chain from the block after the
module starts, and the chain is put back when the module ends. Tests add sessions of
their own (unique salts) and look for those, so their order does not matter.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect, sync_playwright  # a dev dependency

from tests._chain import Chain
from tests.conftest import Roles, Session, Stack, create_session, session_params
from tests.warden.cli.test_run_e2e import ROOT, Proc, wait_for
from warden.app.api import LiveState, create_app
from warden.devnet import Anvil, free_port

TOKEN = "console-" + "t0k3n-for-tests"
# Assertions poll until this long: generous, for a machine shared by several test runs
# (Playwright's default is 5 s).
expect.set_options(timeout=30_000)
CHROMIUM_MISSING = "chromium is not installed: `apt-get install chromium` enables the browser tests"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system's Chromium, or the test is skipped (before any costly fixture when
    listed first)."""
    path = chromium_path()
    if path is None:
        pytest.skip(CHROMIUM_MISSING)
    return path


@pytest.fixture(scope="module")  # Playwright's sync API runs its own event loop: the
def browser() -> Iterator[Browser]:  # module's end closes it before any async test runs
    path = chromium_path()
    if path is None:
        pytest.skip(CHROMIUM_MISSING)
    with sync_playwright() as p:
        # Never `playwright install`: the system's Chromium, as CI installs it.
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@dataclass
class Console:
    """The running daemon: its URL, and what the tests need to act on its chain."""

    url: str
    port: int
    chain: Chain
    stack: Stack
    roles: Roles
    log: Path

    def api(self, path: str, token: str | None = TOKEN) -> Any:
        request = urllib.request.Request(f"{self.url}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def status(self, path: str, token: str | None = None) -> int:
        request = urllib.request.Request(f"{self.url}{path}")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def session(self, owner: str | None = None, **overrides: Any) -> Session:
        """A new session on chain (a fresh random salt), created by `owner`."""
        params = session_params(self.chain, self.stack, self.roles, **overrides)
        return create_session(
            self.chain, self.stack, owner or self.roles.owner, params, secrets.token_bytes(32)
        )

    def indexed(self, wallet: str, timeout: float = 90.0) -> dict[str, Any]:
        wait_for(lambda: self.status(f"/sessions/{wallet}", TOKEN) == 200, f"{wallet} indexed",
                 timeout)  # fmt: skip
        return dict(self.api(f"/sessions/{wallet}")["session"])


def _config(tmp: Path, anvil: Anvil, stack: Stack, start: int, port: int) -> Path:
    rules = tmp / "rules"
    shutil.copytree(ROOT / "config/rules", rules)
    config = tmp / "warden.yaml"
    config.write_text(
        f"""
chain:
  rpc: ["{anvil.url}"]
  chain_id: 31337
  factory: "{stack.factory.address}"
  start_block: {start}
  confirmations: 0
  poll_interval: 0.2
  retry_initial: 0.05
database: "{tmp / "warden.sqlite"}"
rules:
  files: [{rules}]
executor:
  raw_key: "${{WARDEN_TEST_KEY}}"
  min_relayer_balance: "0.01 ether"
  replace_after_blocks: 2
api:
  port: {port}
  token: "${{WARDEN_TEST_API_TOKEN}}"
logging:
  json: true
"""
    )
    return config


@pytest.fixture(scope="module")
def console(
    tmp_path_factory: pytest.TempPathFactory, anvil: Anvil, chain: Chain, stack: Stack,
    roles: Roles,
) -> Iterator[Console]:  # fmt: skip
    if chromium_path() is None:  # no daemon for tests that will be skipped anyway
        pytest.skip(CHROMIUM_MISSING)
    tmp = tmp_path_factory.mktemp("console")
    snap = chain.snapshot()
    port = free_port()
    # from the current block: with a start beyond the head the daemon would wait for one
    config = _config(tmp, anvil, stack, chain.w3.eth.block_number, port)
    log = tmp / "daemon.log"
    os.environ["WARDEN_TEST_API_TOKEN"] = TOKEN  # Proc passes its environment on
    try:
        daemon = Proc(config, log)
    finally:
        os.environ.pop("WARDEN_TEST_API_TOKEN", None)
    served = Console(f"http://127.0.0.1:{port}", port, chain, stack, roles, log)
    try:
        wait_for(lambda: served.api("/ready")["ready"] is True, "daemon ready", 120)
        yield served
    finally:
        code = daemon.stop()
        chain.revert_to(snap)
        assert code == 0, log.read_text()[-3000:]


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage) at laptop width, failing the test on any
    script error the page raises."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(60_000)
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors


def sign_in(page: Page, console: Console, token: str = TOKEN) -> None:
    page.goto(console.url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


Opener = Callable[[str], None]


class ThreadServer:
    """The API app without a token over a database (read-only), served on 127.0.0.1 from
    a thread of its own: what a loopback daemon without `api.token` serves. It can be
    stopped and started again on the same port (a daemon restarting)."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner: web.AppRunner | None = None

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def start(self) -> None:
        async def start() -> web.AppRunner:
            runner = web.AppRunner(create_app(self.database, LiveState()))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            return runner

        self.runner = self._run(start())

    def stop(self) -> None:
        if self.runner is not None:
            self._run(self.runner.cleanup())
            self.runner = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def open_console(console: Console) -> Iterator[ThreadServer]:
    """A tokenless API over the module daemon's database."""
    server = ThreadServer(console.log.parent / "warden.sqlite")
    server.start()
    try:
        yield server
    finally:
        server.close()
