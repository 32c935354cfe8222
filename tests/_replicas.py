"""Two (or more) real `warden run` replicas on one PostgreSQL database and one anvil, for
the failover tests (tests/warden/cli/test_failover.py), the failover chaos scenario and
scripts/bench_takeover.py.

- `Replica`: `python -m warden run` as a subprocess with a short lease (ttl 2 s, margin
  0.6 s), its own API port and JSON log, the SAME relayer key as every other replica (a
  real HA pair signs with one key). Its node is a `RecordingNode` in front of anvil, so
  every transaction it broadcasts is known with the wall-clock time it left the process;
  its `database:` is the PostgreSQL URL, or a `PgProxy` in front of it.
- `PgProxy`: a TCP proxy in front of PostgreSQL that can cut a replica off: `cut()`
  holds every byte both ways (a partition: nothing arrives, nothing fails), `reset()`
  aborts every connection and refuses new ones, `heal()` lets traffic through again.
- `Probe`: a session of its own owner whose stop-loss the test crosses at a moment of
  its choosing (the "due close" a takeover is measured by).
- `settle` / `judge`: wait until the leader has indexed the head and no intent is open,
  stop every replica, copy the database to SQLite and hold it against the chaos oracle
  (tests/chaos/_verdict.judge), plus: no wallet closed by two mined relayer transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import orjson
from aiohttp import web
from web3 import Web3

from tests._chain import Chain
from tests._db import copy_to_sqlite, rows
from tests._rpc_proxy import LoopbackServer
from tests.chaos._daemon import RELAYER_KEY, RULES, Activity, World
from tests.chaos._state import close_targets, relayer_txs
from tests.chaos._verdict import CHECKED, judge
from tests.chaos.conftest import ScenarioResult
from tests.conftest import TOKEN, create_session, session_params
from warden.devnet import free_port

ROOT = Path(__file__).resolve().parents[1]
TTL, MARGIN = 2.0, 0.6  # the replicas' lease: short, for test speed
PROBE_OWNER = 7  # anvil's eighth account: no workload uses it
DAY = 86_400


# -- the node a replica talks to: anvil, with every broadcast recorded ---------------------


@dataclass(frozen=True)
class Sent:
    at: float  # time.time() when the request reached the proxy
    hash: str  # lowercase 0x hex
    raw: str


class RecordingNode(LoopbackServer):
    """Forwards JSON-RPC to `upstream` unchanged; records every eth_sendRawTransaction."""

    thread_name = "recording-node"

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.sends: list[Sent] = []

    def sends_since(self, t: float) -> list[Sent]:
        return [s for s in list(self.sends) if s.at >= t]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        at = time.time()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = None
        for item in payload if isinstance(payload, list) else [payload]:
            if isinstance(item, dict) and item.get("method") == "eth_sendRawTransaction":
                raw = str(item["params"][0])
                digest = Web3.keccak(hexstr=raw).to_0x_hex().lower()
                self.sends.append(Sent(at, digest, raw))
        assert self._session is not None
        async with self._session.post(
            self.upstream, data=body, headers={"Content-Type": "application/json"}
        ) as answer:
            data = await answer.read()
            return web.Response(body=data, status=answer.status, content_type="application/json")


# -- a TCP proxy in front of PostgreSQL that can cut a replica off --------------------------


class PgProxy:
    """127.0.0.1:port → the PostgreSQL server of `dsn`; `url(dsn)` is `dsn` through it."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self.host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 5432
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._open: asyncio.Event | None = None  # set: bytes flow
        self._refuse = False
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    def url(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        user = parts.netloc.rsplit("@", 1)
        where = f"127.0.0.1:{self.port}"
        netloc = f"{user[0]}@{where}" if len(user) == 2 else where
        return str(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))

    def start(self) -> Self:
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="pg-proxy", daemon=True)
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.stop()

    def cut(self) -> None:
        """A partition: every byte either way is held (no error, no answer)."""
        self._call(self._set(open_=False, refuse=False))

    def reset(self) -> None:
        """Every connection aborted (RST), new ones refused the same way."""
        self._call(self._set(open_=False, refuse=True))

    def heal(self) -> None:
        self._call(self._set(open_=True, refuse=False))

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _set(self, *, open_: bool, refuse: bool) -> None:
        assert self._open is not None
        self._refuse = refuse
        if refuse:
            for w in list(self._writers):
                w.transport.abort()
            self._writers.clear()
        if open_:
            self._open.set()
        else:
            self._open.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._open is not None
        if self._refuse:
            writer.transport.abort()
            return
        self._writers.add(writer)
        self.connections += 1
        try:
            await self._open.wait()  # a connection made during a partition hangs
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        assert self._open is not None
        while True:
            data = await src.read(65536)
            if not data:
                break
            await self._open.wait()  # held, in order, while cut off
            if self._refuse:
                break
            dst.write(data)
            await dst.drain()
        dst.transport.abort()


# -- one replica -----------------------------------------------------------------------------


def write_config(
    tmp: Path, name: str, w: World, *, rpc: str, database: str, port: int,
    ttl: float = TTL, margin: float = MARGIN,
) -> Path:  # fmt: skip
    rules = tmp / "rules"
    if not rules.exists():
        shutil.copytree(RULES, rules)
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"""
chain:
  rpc: ["{rpc}"]
  chain_id: 31337
  factory: "{w.stack.factory.address}"
  start_block: {w.start_block}
  confirmations: 0
  poll_interval: 0.2
  retry_initial: 0.05
database: "{database}"
rules:
  files: [{rules}]
  decimals: 18
executor:
  raw_key: "${{WARDEN_TEST_KEY}}"
  min_relayer_balance: "0.01 ether"
  replace_after_blocks: 2
  intent_ttl: 365d
api:
  port: {port}
logging:
  json: true
leadership:
  identity: {name}
  ttl: {ttl}
  margin: {margin}
"""
    )
    return config


@dataclass
class Replica:
    """One `warden run` replica. Its node proxy and config outlive its processes: a
    restart (what a supervisor does) keeps its name, port and log."""

    name: str
    config: Path
    log: Path
    port: int
    node: RecordingNode
    proxy: PgProxy | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert not self.alive(), f"{self.name} is already running"
        env = {**os.environ, "WARDEN_TEST_KEY": RELAYER_KEY}
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "warden", "run", "--config", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=ROOT,
            )  # fmt: skip
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one dies too
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM (SIGCONT first, in case it is frozen); the exit code (None: not started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def status(self) -> dict[str, Any] | None:
        """/status, or None while it does not answer."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=2) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError):
            return None

    def role(self) -> str | None:
        status = self.status()
        return None if status is None else str(status["leadership"]["role"])

    def lines(self) -> list[dict[str, Any]]:
        """This replica's JSON log lines (every start), oldest first."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def said(self, text: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [x for x in self.lines() if x["ts"] >= since and text in x["message"]]

    def led_at(self, since: float = 0.0) -> float | None:
        """When it last began to lead (its log's "leads now"), since `since`."""
        found = self.said("leads now", since)
        return float(found[-1]["ts"]) if found else None


@dataclass
class Cluster:
    """Replicas on one database (`dsn`) and one anvil (`w`); the test's processes."""

    w: World
    dsn: str
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    proxies: list[PgProxy] = field(default_factory=list)
    nodes: list[RecordingNode] = field(default_factory=list)

    def add(self, name: str, *, via_proxy: bool = False, **lease: float) -> Replica:
        node = RecordingNode(self.w.anvil.url).start()
        self.nodes.append(node)
        proxy = None
        database = self.dsn
        if via_proxy:
            proxy = PgProxy(self.dsn).start()
            self.proxies.append(proxy)
            database = proxy.url(self.dsn)
        port = free_port()
        config = write_config(
            self.tmp, name, self.w, rpc=node.url, database=database, port=port, **lease
        )
        replica = Replica(name, config, self.tmp / f"{name}.log", port, node, proxy)
        self.replicas.append(replica)
        return replica

    def leader(self) -> Replica | None:
        """The replica the lease row names, if it is running."""
        holder = self.lease()[0]
        return next((r for r in self.replicas if r.name == holder and r.alive()), None)

    def lease(self) -> tuple[str, int, int]:
        """(holder, epoch, expires_ms) from the database."""
        try:
            found = rows(self.dsn, "SELECT holder, epoch, expires_ms FROM leader WHERE id = 1")
        except Exception:  # not migrated yet
            return ("", 0, 0)
        if not found:
            return ("", 0, 0)
        holder, epoch, expires = found[0]
        return str(holder), int(epoch), int(expires)

    def indexed(self) -> int | None:
        try:
            found = rows(self.dsn, "SELECT number FROM checkpoint WHERE id = 1")
        except Exception:
            return None
        return int(found[0][0]) if found else None

    def open_intents(self) -> int:
        try:
            found = rows(
                self.dsn,
                "SELECT COUNT(*) FROM intents WHERE state IN ('pending', 'submitted', 'mined')",
            )
        except Exception:
            return 0
        return int(found[0][0])

    def close(self) -> None:
        """Stop every process and proxy this cluster started (the test's finalizer)."""
        for r in self.replicas:
            with contextlib.suppress(Exception):
                r.kill()
        for p in self.proxies:
            with contextlib.suppress(Exception):
                p.stop()
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()


@contextlib.contextmanager
def cluster(w: World, dsn: str, tmp: Path) -> Iterator[Cluster]:
    c = Cluster(w, dsn, tmp)
    try:
        yield c
    finally:
        c.close()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something true (returned); AssertionError on time-out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


# -- a due close on demand -------------------------------------------------------------------


class Probe:
    """Sessions of an owner no workload uses (anvil's eighth account): `make()` opens one
    (not due: no policy, stop-loss 200 of 1,000, expiry in 30 days); `trigger()` crosses
    its stop-loss (withdraw 850). Each holds the workload for its own turn; the workload's
    clock jumps (up to 24 h) make a probe idle, so where who closes it matters, hold
    `turn()` from `make()` to `trigger()`."""

    def __init__(self, w: World, activity: Activity | None = None) -> None:
        self.w = w
        self.activity = activity
        self.owner = w.chain.accounts[PROBE_OWNER]
        self.salt = 0
        chain, token = w.chain, w.stack.token
        chain.send(token.functions.mint(self.owner, 10**9 * TOKEN), w.roles.deployer)

    @contextlib.contextmanager
    def turn(self) -> Iterator[Chain]:
        """The chain, the workload held off (re-entrant: a turn may hold others)."""
        hold = self.activity.hold if self.activity is not None else contextlib.nullcontext()
        with hold:
            yield self.w.chain
            if self.activity is not None:  # the workload's clock: past what we mined
                wl = self.activity.workload
                wl.clock = max(wl.clock, self.w.chain.now()) + 1

    def make(self, expiry: int | None = None) -> str:
        with self.turn() as chain:
            self.salt += 1
            expiry = chain.now() + 30 * DAY if expiry is None else expiry
            params = session_params(chain, self.w.stack, self.w.roles, policy="", expiry=expiry)
            session = create_session(
                chain, self.w.stack, self.owner, params, self.salt.to_bytes(32, "big")
            )
        return str(session.wallet.address)

    def trigger(self, wallet: str) -> None:
        with self.turn() as chain:
            contract = chain.at("SessionWallet", wallet)
            chain.send(contract.functions.withdraw(850 * TOKEN), self.owner)


def closes_of(node: RecordingNode, wallet: str, since: float = 0.0) -> list[Sent]:
    """Broadcasts through `node` since `since` whose bytes name `wallet` (its close, or a
    factory batch holding it)."""
    needle = wallet.lower().removeprefix("0x")
    return [s for s in node.sends_since(since) if needle in s.raw.lower()]


# -- the verdict -------------------------------------------------------------------------------


def settle(c: Cluster, timeout: float = 90.0) -> float:
    """Wait until the checkpoint is the head and no intent is open, twice one second
    apart with the head unchanged; seconds it took."""
    began = time.monotonic()
    quiet: tuple[int, float] | None = None
    while True:
        head = c.w.head()
        if c.indexed() == head and c.open_intents() == 0:
            if quiet is None or quiet[0] != head:
                quiet = (head, time.monotonic())
            elif time.monotonic() - quiet[1] >= 1.0:
                return quiet[1] - began
        else:
            quiet = None
        if time.monotonic() - began > timeout:
            raise AssertionError(
                f"not settled in {timeout:.0f} s: indexed {c.indexed()} of head {head}, "
                f"{c.open_intents()} intents open, lease {c.lease()}"
            )
        time.sleep(0.2)


async def verdict(
    c: Cluster, result: ScenarioResult, *, foreign: set[str], settle_timeout: float = 90.0
) -> None:
    """Settle, stop every replica (SIGTERM: exit 0 each), then the oracle on a copy of the
    database: equal to a fresh index, no intent or wallet with two mined transactions,
    nothing due left open, every relayer close confirmed, every intent final."""
    result.checked = [*CHECKED, "no wallet closed or swept by two mined relayer transactions"]
    c.w.chain.mine(c.w.chain.now() + 1)  # chain time moves on: time rules get their tick
    try:
        result.figures["settled in"] = f"{settle(c, settle_timeout):.1f} s"
    except AssertionError as exc:
        result.fail(str(exc))
    for r in c.replicas:
        if r.proc is None:
            continue
        code = r.stop()
        if code != 0:
            result.fail(f"replica {r.name} exited {code} on SIGTERM after the run; see {r.log}")
    copy = c.tmp / "daemon-copy.sqlite"
    copy_to_sqlite(c.dsn, copy)
    await judge(c.w, copy, c.tmp, result, foreign=foreign)
    txs = await relayer_txs(c.w.anvil.url, c.w.relayer, c.w.start_block)
    touched: dict[str, int] = {}
    for tx in txs:
        if tx.hash in foreign or tx.status != 1:
            continue
        for wallet in set(close_targets(tx, c.w.stack.factory.address)):
            touched[wallet] = touched.get(wallet, 0) + 1
    for wallet, n in sorted(touched.items()):
        if n > 1:
            result.fail(f"wallet {wallet}: closed or swept by {n} mined relayer transactions")
    result.figures["wallets closed by the relayer"] = str(len(touched))
