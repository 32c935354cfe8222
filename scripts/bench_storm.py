"""Expiry storm: 100,000 sessions expire in one block; how long until all are closed on chain.

    .venv/bin/python scripts/bench_storm.py [--runs 3] [--sessions 100000]

What one run measures, end to end through the real daemon:

1. a fresh anvil loads the cached chain (100,000 sessions, operator = the relayer, all with
   the same expiry T, nothing else due: no stop-loss, no take-profit, idle-cleanup 24 h
   after creation is later than T), its clock put back to the chain's head;
2. `python -m warden.cli run --config F` starts as a subprocess on a copy of the cached,
   already indexed database (zero confirmations, the relayer key, batches of
   `--batch-size`, the shipped rules in config/rules); the harness waits until the daemon
   logs that it evaluated every open session at the head (all 100,000 are in its schedule);
3. the harness mines ONE block with timestamp T (`evm_mine`): the clock starts when that
   call returns;
4. the clock stops when the chain itself holds a `Closed` event for every one of the
   100,000 wallets (the harness follows `eth_getLogs` for the Closed topic every 0.1 s);
   the daemon's database is then checked: every session closed, every intent confirmed.

Phases are read from the daemon's own tables after the run (wall-clock milliseconds the
daemon wrote): intents decided and stored (intents.created_ms), first and last transaction
sent (transactions.sent_ms), all mined (the harness's follower: last Closed seen), all
confirmed in the daemon's DB (intents.updated_ms of the last confirmation).

Devnet settings, all things a devnet user could choose: anvil `--gas-limit 300000000`
(anvil's default is 30M; a 256-member batch is sent with a ~15.7M gas limit, so 19 fit a
block) and interval mining every 2 s (`--block-time`; `make run` uses 1 s), switched on
once the loaded chain's clock is restored; fees at anvil's defaults. Daemon:
`chain.confirmations` 0, `chain.poll_interval` 0.2 s, `executor.max_batch_size` 256 (the
factory's `closeBatch` maximum), `executor.max_gas_per_hour` 20 billion (the default 500 M
would open the circuit breaker a sixth of the way through), everything else at its default
(replace_after_blocks 3). The report compares the blocks used with the fewest the relayer's
gas used fits in at the block gas limit.
With 100,000 sessions in its state anvil takes ~1.2 s to produce even an empty block and
answers no request meanwhile: that, not the daemon, sets the pace (see the report).

Caches in .cache/bench/ (the first run builds them; later runs reuse them):
- `storm-<key>.json`: the anvil state with the 100,000 sessions (traces stripped), and its
  `.meta.json`. The key hashes the anvil version, the contract artifacts, the number of
  sessions and CHAIN_VERSION (bump it when the chain-building code below changes).
  Building it takes about 15 minutes on a 2-core machine (100,000 `createSession` in
  blocks of 1B gas, so the base fee stays low) and 0.6 GB of disk; a loaded anvil needs
  ~2 GB of RAM at start and grows to ~10 GB over a storm (it keeps every block's state).
- `storm-<key>.sqlite`: the database the daemon itself wrote backfilling that chain from
  an empty file, keyed on the chain, the indexer's code and the outbox's schema (about a
  minute to rebuild). Each run copies it, so no run re-backfills; the backfill is timed
  apart (`--backfills`, default 1: the daemon indexes the chain from an empty database).
`--notify on|both`: the daemon also delivers every event (all kinds) to two channels, a
signed webhook and a Slack-format one, on the suite's aiohttp receiver
(tests/notify/_receiver.py) in this process, which answers 200 at once; `both`
alternates runs without and with the channels, so the ratio of the medians compares runs
of one sitting. The event log itself is written either way (it feeds `/stream`); the
channels add the delivery task, which routes each event to them after it is logged (one
delivery row per event and channel) and sends. Each run checks that the log holds one
`session.closed` per session, and reports how many POSTs the receiver held when the last
Closed appeared on chain and when the daemon stopped.

A default full run (one backfill, 3 storm runs) takes about 6 to 8 minutes on a loaded
2-core machine once the caches exist.

Importable by path (scripts/ is not a package): bench_memory.py uses `ensure_chain`,
`ensure_database`, `ChainMeta`, `loaded_anvil`, `Daemon`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, spread  # noqa: E402
from bench_executor import send_all  # noqa: E402
from seed_chain import Rpc, anvil_version, strip_traces  # noqa: E402

from chain import ChainClient  # noqa: E402
from contracts import artifact_names, load_artifact  # noqa: E402
from executor.outbox import MIGRATIONS as OUTBOX_MIGRATIONS  # noqa: E402
from tests.notify._receiver import Receiver, receiver_thread  # noqa: E402
from warden.devnet import DEVNET_KEYS, Anvil, deploy_stack, free_port  # noqa: E402

CACHE_DIR = ROOT / ".cache" / "bench"
CHAIN_VERSION = 1  # bump when the way the chain is built changes
CHAIN_ID = 31337
GAS_LIMIT = 300_000_000  # the storm devnet's block gas limit (anvil's default: 30M)
BLOCK_TIME = 2  # seconds: interval mining (`make run`'s devnet mines every second)
# Building only: blocks far below half full keep the base fee from compounding over the
# 100,000 creations (EIP-1559); the storm itself runs at GAS_LIMIT.
BUILD_GAS_LIMIT = 1_000_000_000
GENESIS_TIMESTAMP = 1_760_000_000
TOKEN = 10**18
DEPOSIT = TOKEN
OWNERS = 8
MAX_FEE_BPS = 1_000  # the most a creation accepts: the factory's cap (deploy_stack sets 1 %)
CREATE_GAS = 400_000  # createSession costs ~314k (docs/gas.md); explicit, no estimate
ROUND = 5_000  # transactions sent, then mined, per round while building
EXPIRY_AFTER = 6 * 3600  # T = head timestamp + 6 h (idle-cleanup would come 24 h after creation)
RELAYER_KEY = DEVNET_KEYS[2]
# The relayer's gas budget for the storm: 100,000 closes use about 3.1 billion gas, six
# times the default `max_gas_per_hour` (500 M), whose breaker would stop the storm a sixth
# of the way through. An operator expecting such a storm sets the budget for it.
STORM_GAS_BUDGET = 20_000_000_000
NOTIFY_SECRET = "storm-bench-secret-0123456789"
CLOSED_TOPIC = Web3.keccak(text="Closed(uint64,uint8,address,uint256,uint256)").to_0x_hex()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ the chain
@dataclass(frozen=True)
class ChainMeta:
    key: str
    state_file: str
    state_bytes: int
    sessions: int
    factory: str
    token: str
    relayer: str
    start_block: int  # the factory's deployment: the daemon indexes from here
    head_block: int
    head_hash: str
    head_timestamp: int
    expiry: int  # T: every session's expiry
    building_seconds: float


def chain_key(sessions: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CHAIN_VERSION, sessions, anvil_version(), BUILD_GAS_LIMIT]).encode())
    artifacts = resources.files("contracts") / "artifacts"
    for name in artifact_names():
        h.update(name.encode())
        h.update((artifacts / f"{name}.json").read_bytes())
    return h.hexdigest()[:16]


def _meta_path(key: str) -> Path:
    return CACHE_DIR / f"storm-{key}.meta.json"


def ensure_chain(sessions: int) -> ChainMeta:
    key = chain_key(sessions)
    path = _meta_path(key)
    if path.is_file():
        meta = ChainMeta(**json.loads(path.read_text()))
        state = Path(meta.state_file)
        if state.is_file() and state.stat().st_size == meta.state_bytes:
            return meta
    say(f"building the storm chain ({sessions:,} sessions) into {CACHE_DIR}: this takes a while")
    return asyncio.run(_build_chain(sessions, key))


def loaded_anvil(meta: ChainMeta, gas_limit: int = GAS_LIMIT) -> Anvil:
    """An anvil (start it with `with`) serving the cached chain. It starts with automine
    (no block without a transaction); `set_clock` may switch it to interval mining."""
    return Anvil(
        chain_id=CHAIN_ID,
        extra_args=["--load-state", meta.state_file, "--gas-limit", str(gas_limit)],
        start_timeout=600,
    )


async def _build_chain(sessions: int, key: str) -> ChainMeta:
    started = time.monotonic()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    raw = CACHE_DIR / f".storm-{key}.raw.json"
    final = CACHE_DIR / f"storm-{key}.json"
    args = ["--gas-limit", str(BUILD_GAS_LIMIT), "--timestamp", str(GENESIS_TIMESTAMP)]
    args += ["--accounts", str(3 + OWNERS), "--dump-state", str(raw)]
    with Anvil(chain_id=CHAIN_ID, extra_args=args, stop_timeout=1_800) as node:
        w3 = Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 300}))
        accounts = list(w3.eth.accounts)
        relayer = accounts[2]
        dep = deploy_stack(w3, deployer=accounts[0], operator=relayer, treasury=accounts[1])
        owners = accounts[3 : 3 + OWNERS]
        token = Web3().eth.contract(abi=load_artifact("MockToken").abi)
        factory = Web3().eth.contract(abi=load_artifact("SessionWalletFactory").abi)
        per_owner = -(-sessions // OWNERS) * DEPOSIT * 2  # deposit + fee, generously
        async with ChainClient([node.url], chain_id=CHAIN_ID, timeout=600) as client:
            setup = []
            for owner in owners:
                mint = token.encode_abi("mint", args=[owner, per_owner])
                approve = token.encode_abi("approve", args=[dep.factory, per_owner])
                setup.append({"from": dep.deployer, "to": dep.token, "data": mint})
                setup.append({"from": owner, "to": dep.token, "data": approve})
            await _send_and_mine(client, setup)
            head = await client.get_block("latest")
            assert head is not None
            expiry = int(head["timestamp"], 16) + EXPIRY_AFTER
            counts = await client.batch(
                [("eth_getTransactionCount", [o, "latest"]) for o in owners]
            )
            nonce = {o: int(c, 16) for o, c in zip(owners, counts, strict=True)}
            txs: list[dict[str, str]] = []
            for i in range(sessions):
                owner = owners[i % OWNERS]
                params = (relayer, dep.token, DEPOSIT, expiry, 0, 0, 0, "", [dep.game], MAX_FEE_BPS)
                data = factory.encode_abi("createSession", args=[params, i.to_bytes(32, "big")])
                txs.append({"from": owner, "to": dep.factory, "data": data,
                            "gas": hex(CREATE_GAS), "nonce": hex(nonce[owner])})  # fmt: skip
                nonce[owner] += 1
            for start in range(0, len(txs), ROUND):
                await _send_and_mine(client, txs[start : start + ROUND])
                rate = (start + ROUND) / (time.monotonic() - started)
                say(f"  {min(start + ROUND, sessions):,}/{sessions:,} sessions ({rate:,.0f}/s)")
            head = await client.get_block("latest")
            assert head is not None
        say("  anvil writes its state")
    stripped = CACHE_DIR / f".storm-{key}.stripped.json"
    strip_traces(raw, stripped)
    raw.unlink()
    stripped.replace(final)
    meta = ChainMeta(
        key=key,
        state_file=str(final),
        state_bytes=final.stat().st_size,
        sessions=sessions,
        factory=dep.factory,
        token=dep.token,
        relayer=relayer,
        start_block=dep.block,
        head_block=int(head["number"], 16),
        head_hash=str(head["hash"]),
        head_timestamp=int(head["timestamp"], 16),
        expiry=expiry,
        building_seconds=round(time.monotonic() - started, 1),
    )
    _meta_path(key).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    say(f"  chain built in {meta.building_seconds:.0f} s, state {meta.state_bytes / 1e6:.0f} MB")
    return meta


async def _send_and_mine(client: ChainClient, txs: list[dict[str, str]]) -> None:
    """`bench_executor.send_all`, with each sender's nonces filled in first."""
    senders = sorted({tx["from"] for tx in txs if "nonce" not in tx})
    if senders:
        counts = await client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
        nxt = {s: int(c, 16) for s, c in zip(senders, counts, strict=True)}
        for tx in txs:
            if "nonce" not in tx:
                tx["nonce"] = hex(nxt[tx["from"]])
                nxt[tx["from"]] += 1
    await send_all(client, txs)


# ------------------------------------------------------------------------------ the daemon
class Daemon:
    """`python -m warden.cli run --config F` as a subprocess with JSON logs in a file."""

    def __init__(
        self,
        meta: ChainMeta,
        url: str,
        work: Path,
        database: Path,
        batch: int,
        profile: Path | None = None,
        rpc_timeout: float = 30.0,
        receiver: Receiver | None = None,
        reorg_window: int = 64,
    ) -> None:
        self.log_path = work / "daemon.log"
        config = work / "warden.yaml"
        config.write_text(
            _notify_section(receiver)
            + f"""
chain:
  rpc: ["{url}"]
  chain_id: {CHAIN_ID}
  factory: "{meta.factory}"
  start_block: {meta.start_block}
  confirmations: 0
  poll_interval: 0.2
  timeout: {rpc_timeout}
  reorg_window: {reorg_window}
database: {database}
rules:
  files: [{ROOT / "config" / "rules"}]
  decimals: 18
executor:
  raw_key: "${{WARDEN_BENCH_KEY}}"
  max_batch_size: {batch}
  max_gas_per_hour: {STORM_GAS_BUDGET}
api:
  port: {free_port()}
logging:
  json: true
"""
        )
        env = {**os.environ, "WARDEN_BENCH_KEY": RELAYER_KEY}
        self.started = time.time()
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        self.proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "warden", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=self.log_path.open("ab"),
            env=env,
            cwd=ROOT,
        )
        self._offset = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log_path.read_bytes().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"ts": 0.0, "message": raw.decode(errors="replace")})
        return out

    def wait_for(self, text: str, timeout: float) -> dict[str, Any]:
        """The first log line containing `text` (written after this call's last match)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            for i in range(self._offset, len(lines)):
                if text in str(lines[i].get("message", "")):
                    self._offset = i + 1
                    return lines[i]
            if self.proc.poll() is not None:
                tail = "\n".join(str(x.get("message")) for x in lines[-20:])
                raise SystemExit(f"daemon exited with {self.proc.returncode}:\n{tail}")
            time.sleep(0.1)
        raise SystemExit(f"daemon: no log line with {text!r} within {timeout} s")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _notify_section(receiver: Receiver | None) -> str:
    """With a receiver: every event to a signed webhook and to a Slack-format channel."""
    if receiver is None or receiver.server is None:
        return ""
    return f"""
notify:
  channels:
    - name: backend
      type: webhook
      url: "{receiver.url}"
      secret: "{NOTIFY_SECRET}"
    - name: ops-slack
      type: slack
      url: "{receiver.server.make_url("/slack")}"
"""


def set_clock(url: str, meta: ChainMeta, block_time: int = 0) -> None:
    """A loaded anvil's clock restarts at the wall clock: continue the chain's time; then,
    with `block_time`, mine a block every so many seconds (only now: a block mined before
    the clock is back would carry today's date, far past every expiry)."""
    rpc = Rpc(url)
    head = int(rpc.call("eth_blockNumber"), 16)
    if head != meta.head_block:
        raise SystemExit(f"the loaded chain's head is {head}, the cache says {meta.head_block}")
    rpc.call("anvil_setTime", meta.head_timestamp)
    if block_time:
        rpc.call("evm_setAutomine", False)
        rpc.call("evm_setIntervalMining", block_time)


# ------------------------------------------------------------------------------ the database
def build_database(meta: ChainMeta, path: Path, batch: int) -> tuple[float, float]:
    """Backfill the cached chain into `path` with the daemon itself, from an empty file;
    (seconds from process start to every session evaluated, of which the evaluation)."""
    with loaded_anvil(meta) as node, tempfile.TemporaryDirectory() as tmp:
        set_clock(node.url, meta)
        # The whole chain (a few dozen blocks) is within the default reorg window, where
        # each block is followed and checked against its logsBloom; 5,000 creations a
        # block saturate the bloom, so every block would need its receipts as proof, and
        # anvil takes ~26 s (minutes on a busy machine) to serve eth_getBlockReceipts for
        # such a block. A window of 1 backfills all but the head block by log ranges
        # (then all sessions so far are evaluated at once) and follows the head block.
        # The storm runs use the default window (64).
        daemon = Daemon(meta, node.url, Path(tmp), path, batch, rpc_timeout=600.0, reorg_window=1)
        try:
            line = daemon.wait_for("rules: evaluated all", 3_600)
            done = _wait_indexed(path, meta, daemon, 3_600)
        finally:
            if daemon.stop() != 0:
                raise SystemExit("the daemon did not stop cleanly after the backfill")
    evaluated = float(str(line["message"]).rsplit(" in ", 1)[1].split()[0])
    return done - daemon.started, evaluated


def _wait_indexed(path: Path, meta: ChainMeta, daemon: Daemon, timeout: float) -> float:
    """Wall time at which the daemon's database holds every session, at the chain's head."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):  # busy, or tables not there yet
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
                (head,) = db.execute("SELECT COALESCE(MAX(number), 0) FROM checkpoint").fetchone()
                (count,) = db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            if head == meta.head_block and count == meta.sessions:
                return time.time()
        if daemon.proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.proc.returncode} while indexing")
        time.sleep(0.5)
    raise SystemExit(f"the daemon did not index the chain to block {meta.head_block} in time")


def database_key(meta: ChainMeta) -> str:
    """The chain and the code that writes the tables (indexer, outbox)."""
    h = hashlib.sha256(meta.key.encode())
    for path in sorted((ROOT / "indexer").glob("*.py")):
        h.update(path.read_bytes())
    # the SQLite scripts (a step may name one per dialect): the same key as before
    sqlite = [s if isinstance(s, str) else s["sqlite"] for s in OUTBOX_MIGRATIONS]
    h.update("".join(sqlite).encode())
    return h.hexdigest()[:16]


def ensure_database(meta: ChainMeta) -> Path:
    """The cached database of the chain, indexed by the daemon (built when missing)."""
    path = CACHE_DIR / f"storm-{database_key(meta)}.sqlite"
    if not path.is_file():
        say("indexing the storm chain with the daemon (cached for later runs)")
        fresh = path.with_suffix(".building")
        fresh.unlink(missing_ok=True)
        build_database(meta, fresh, 256)
        fresh.replace(path)
    return path


# ------------------------------------------------------------------------------ one run
class ClosedFollower(threading.Thread):
    """Counts wallets with a Closed log on chain, block by block, from `first` on; notes the
    wall time at which the chain first held all of `wallets` closed."""

    def __init__(self, url: str, first: int, wallets: set[str]) -> None:
        super().__init__(daemon=True)
        self.rpc = Rpc(url)
        self.next = first
        self.wallets = wallets
        self.closed: set[str] = set()
        self.done_at: float | None = None
        self.last_block = first - 1
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set() and self.done_at is None:
            head = int(self.rpc.call("eth_blockNumber"), 16)
            seen_at = time.time()  # every block up to `head` exists by now
            if head >= self.next:
                logs = self.rpc.call(
                    "eth_getLogs",
                    {"fromBlock": hex(self.next), "toBlock": hex(head), "topics": [CLOSED_TOPIC]},
                )
                self.closed.update(str(log["address"]).lower() for log in logs)
                self.next = head + 1
                self.last_block = head
                if self.wallets <= self.closed:
                    self.done_at = seen_at
                    return
            time.sleep(0.1)


@dataclass(frozen=True)
class RunResult:
    total: float  # T block mined → every wallet closed on chain
    stored: float  # → last intent stored
    first_sent: float
    all_sent: float
    confirmed: float  # → last intent confirmed in the daemon's DB
    transactions: int
    batches: int
    replacements: int  # signed transactions beyond one per job (fee bumps, cancels)
    blocks: int
    min_blocks: int  # the fewest blocks the gas used fits in, at the block gas limit
    gas_used: int  # by every mined transaction of the relayer
    ready: float  # daemon start → every session evaluated (copied DB)
    peak_rss_mb: float
    notify: bool = False
    logged: int = 0  # notification events in the daemon's log at the end
    logged_closed: int = 0  # of which session.closed
    delivered_at_close: int = 0  # POSTs the receiver held when the last Closed was seen
    delivered_at_end: int = 0  # … when the daemon stopped


def wallets_of(database: Path) -> set[str]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return {str(r[0]).lower() for r in db.execute("SELECT wallet FROM sessions")}


@dataclass(frozen=True)
class Options:
    batch: int
    gas_limit: int
    block_time: int
    profile: Path | None = None
    notify: bool = False  # both channels on, against a Receiver
    keep_log: Path | None = None  # the daemon's JSON log copied here after the run


def one_run(meta: ChainMeta, database: Path, wallets: set[str], opts: Options) -> RunResult:
    with (
        loaded_anvil(meta, opts.gas_limit) as node,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as stack,
    ):
        set_clock(node.url, meta, opts.block_time)
        work = Path(tmp)
        db_path = work / "warden.sqlite"
        shutil.copyfile(database, db_path)
        # the suite's receiver: answers 200 at once, keeps every request
        receiver = stack.enter_context(receiver_thread()) if opts.notify else None
        daemon = Daemon(meta, node.url, work, db_path, opts.batch, opts.profile, receiver=receiver)
        delivered_at_close = 0
        try:
            line = daemon.wait_for(f"evaluated all {meta.sessions} open sessions", 600)
            ready = float(line["ts"]) - daemon.started
            time.sleep(2.0)  # idle-following: a few polls (and blocks) with nothing due
            rpc = Rpc(node.url)
            # The T block alone, by the harness: interval mining paused around it.
            rpc.call("evm_setIntervalMining", 0)
            rpc.call("anvil_setNextBlockTimestamp", meta.expiry)
            rpc.call("evm_mine")
            t0 = time.time()
            if opts.block_time:
                rpc.call("evm_setIntervalMining", opts.block_time)
            else:
                rpc.call("evm_setAutomine", True)
            storm_block = int(rpc.call("eth_blockNumber"), 16)
            follower = ClosedFollower(node.url, storm_block + 1, wallets)
            follower.start()
            follower.join(timeout=900)
            if follower.done_at is None:
                follower.stop_flag.set()
                raise SystemExit(
                    f"not every session closed on chain within 900 s: {len(follower.closed):,}"
                )
            delivered_at_close = len(receiver.requests) if receiver else 0
            confirmed = _wait_confirmed(database=db_path, n=len(wallets), timeout=300)
            peak = _status_kb(daemon.pid, "VmHWM") / 1024
        finally:
            code = daemon.stop()
            delivered_at_end = len(receiver.requests) if receiver else 0
            if opts.keep_log is not None:
                shutil.copyfile(daemon.log_path, opts.keep_log)
        if code != 0:
            raise SystemExit(f"daemon exited with {code}")
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
            stored = db.execute("SELECT MAX(created_ms) FROM intents").fetchone()[0] / 1000
            first, last = db.execute(
                "SELECT MIN(sent_ms), MAX(sent_ms) FROM transactions"
            ).fetchone()
            jobs = db.execute("SELECT COUNT(*), SUM(kind = 'batch') FROM jobs").fetchone()
            (attempts,) = db.execute("SELECT COUNT(*) FROM transactions").fetchone()
            (gas_used,) = db.execute(
                "SELECT COALESCE(SUM(gas_used), 0) FROM jobs WHERE mined_hash IS NOT NULL"
            ).fetchone()
            (closed,) = db.execute(
                "SELECT COUNT(*) FROM sessions WHERE status = 'closed'"
            ).fetchone()
            # The event log is written with or without channels (it feeds /stream).
            logged, logged_closed = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(kind = 'session.closed'), 0) FROM notify_events"
            ).fetchone()
            kinds = dict(db.execute("SELECT kind, COUNT(*) FROM notify_events GROUP BY kind"))
        if closed != len(wallets):
            raise SystemExit(f"the daemon's DB: {closed:,} closed sessions of {len(wallets):,}")
        if logged_closed != len(wallets):
            raise SystemExit(
                f"the event log holds {logged_closed:,} session.closed events of "
                f"{len(wallets):,} (by kind: {kinds})"
            )
    return RunResult(
        total=follower.done_at - t0,
        stored=stored - t0,
        first_sent=first / 1000 - t0,
        all_sent=last / 1000 - t0,
        confirmed=confirmed - t0,
        transactions=int(jobs[0]),
        batches=int(jobs[1] or 0),
        replacements=int(attempts) - int(jobs[0]),
        blocks=follower.last_block - storm_block,
        min_blocks=-(-int(gas_used) // opts.gas_limit),
        gas_used=int(gas_used),
        ready=ready,
        peak_rss_mb=peak,
        notify=opts.notify,
        logged=int(logged),
        logged_closed=int(logged_closed),
        delivered_at_close=delivered_at_close,
        delivered_at_end=delivered_at_end,
    )


def _wait_confirmed(database: Path, n: int, timeout: float) -> float:
    """Wall time (s) of the last confirmation once all `n` intents are confirmed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
            count, last = db.execute(
                "SELECT COUNT(*), MAX(updated_ms) FROM intents WHERE state = 'confirmed'"
            ).fetchone()
        if count >= n:
            return float(last) / 1000
        time.sleep(0.2)
    raise SystemExit(f"only {count:,} of {n:,} intents confirmed in the daemon's DB")


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def _report_runs(results: list[RunResult]) -> None:
    print("T block mined → every session closed on chain (Closed logs counted on chain):")
    print("  " + spread([r.total for r in results], ".1f", " s") + "   (target ≤ 30 s)")
    print("phases, seconds after the T block was mined:")
    for name, label in (
        ("stored", "rules decided and all intents stored"),
        ("first_sent", "first transaction sent"),
        ("all_sent", "last transaction sent"),
        ("total", "all mined (last Closed on chain)"),
        ("confirmed", "all confirmed in the daemon's DB"),
    ):
        print(f"  {label}: " + spread([getattr(r, name) for r in results], ".1f", " s"))
    print(
        "transactions: "
        + spread([float(r.transactions) for r in results])
        + "; of which closeBatch: "
        + spread([float(r.batches) for r in results])
        + "; replacement transactions: "
        + spread([float(r.replacements) for r in results])
        + "; blocks until the last close: "
        + spread([float(r.blocks) for r in results])
        + " (the fewest the gas used fits in at the block gas limit: "
        + spread([float(r.min_blocks) for r in results])
        + "; gas used "
        + spread([r.gas_used / 1e6 for r in results], ",.0f", " M")
        + ")"
    )
    print(
        "daemon start on the indexed DB → every session evaluated: "
        + spread([r.ready for r in results], ".1f", " s")
    )
    print(
        "daemon peak RSS during the storm (VmHWM): "
        + spread([r.peak_rss_mb for r in results], ",.0f", " MB")
    )
    print(
        "events in the notification log (all kinds; written with or without channels): "
        + spread([float(r.logged) for r in results])
        + ", of which session.closed: "
        + spread([float(r.logged_closed) for r in results])
    )
    if results and results[0].notify:
        print(
            "POSTs the receiver held when the last Closed was seen: "
            + spread([float(r.delivered_at_close) for r in results])
            + "; when the daemon stopped: "
            + spread([float(r.delivered_at_end) for r in results])
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="storm runs (median, spread)")
    parser.add_argument("--batch-size", type=int, default=256, help="executor.max_batch_size")
    parser.add_argument(
        "--backfills", type=int, default=1, help="daemon backfills of the chain from scratch"
    )
    parser.add_argument("--gas-limit", type=int, default=GAS_LIMIT, help="anvil block gas limit")
    parser.add_argument(
        "--block-time", type=int, default=BLOCK_TIME, help="anvil interval mining, s (0: automine)"
    )
    parser.add_argument("--profile", type=Path, help="cProfile the daemon of the last run here")
    parser.add_argument(
        "--keep-log", type=Path, help="copy the daemon's JSON log of each run here (the last stays)"
    )
    parser.add_argument(
        "--notify",
        choices=("off", "on", "both"),
        default="off",
        help="notifications: every event to a signed webhook and a Slack-format channel on a "
        "local receiver; `both` alternates runs without and with them (--runs of each)",
    )
    args = parser.parse_args(argv)
    opts = Options(args.batch_size, args.gas_limit, args.block_time, keep_log=args.keep_log)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.notify]
    meta = ensure_chain(args.sessions)
    database = ensure_database(meta)
    wallets = wallets_of(database)
    if len(wallets) != meta.sessions:
        raise SystemExit(f"the cached database holds {len(wallets):,} sessions")
    backfills: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.backfills):
            backfills.append(build_database(meta, Path(tmp) / f"b{i}.sqlite", args.batch_size))
            say(f"backfill {i + 1}: {backfills[-1][0]:.1f} s")
    results: list[RunResult] = []
    for i in range(args.runs):
        for notify in modes:  # interleaved: both settings meet the same machine
            last = i == args.runs - 1 and notify == modes[-1]
            run_opts = replace(opts, profile=args.profile if last else None, notify=notify)
            result = one_run(meta, database, wallets, run_opts)
            results.append(result)
            say(f"run {i + 1}{' (notifications on)' if notify else ''}: {result}")
    print(header())
    print(
        f"expiry storm: {meta.sessions:,} sessions (operator = relayer, same expiry T) expire "
        "in one block"
    )
    mining = f"a block every {opts.block_time} s" if opts.block_time else "automine"
    print(
        f"devnet: anvil --gas-limit {opts.gas_limit:,}, {mining}; daemon: confirmations 0, "
        f"poll_interval 0.2 s, max_batch_size {opts.batch}, shipped rules"
    )
    for notify in modes:
        if len(modes) > 1 or notify:
            print(
                "\nwith notifications (webhook + Slack channels, every kind, local receiver):"
                if notify
                else "\nwithout notification channels:"
            )
        _report_runs([r for r in results if r.notify == notify])
    if len(modes) == 2:
        off = statistics.median(r.total for r in results if not r.notify)
        on = statistics.median(r.total for r in results if r.notify)
        print(f"\nnotifications on / off, median storm time: {on / off:.3f} (goal ≤ 1.10)")
    if backfills:
        print(
            f"backfill of the chain from an empty DB by the daemon (start → all {meta.sessions:,} "
            "evaluated): "
            + spread([b for b, _ in backfills], ".1f", " s")
            + "; of which evaluating them all: "
            + spread([e for _, e in backfills], ".1f", " s")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
