"""Reaction latency: from the block that pushes one session below its stop-loss to the
close transaction accepted by the node, with 10,000 active sessions tracked by the real
daemon.

    .venv/bin/python scripts/bench_latency.py [--sessions 10000] [--trials 200] [--runs 3]
                                              [--poll-interval 0.01]

Default run: about 3 minutes (setup ~40 s, then per run ~15 s of daemon start-up and
~25 s of trials). Never part of the test suite: timings belong in BENCHMARKS.md.

Setup (not measured): one anvil of our own (zero confirmations, automine until the
trials start), the stack deployed with the relayer (devnet key 2) as trusted operator,
and `--sessions` + runs x (trials + warm-up) sessions created with raw JSON-RPC batches
(operator = relayer, deposit 100, stop-loss 20, no take-profit, no policy: the shipped
config/rules stop-loss rule is the one that fires), so every run starts with at least
`--sessions` active sessions.

Each run starts `python -m warden.cli run --config F` as a subprocess on a new SQLite
file (JSON logs to a file, API on a free port), waits until `/ready` says it has caught
up (it has indexed and evaluated every session), then, with anvil's automine off, runs
`--warmup` uncounted trials and `--trials` measured ones. One trial:

1. the owner's `withdraw(85)` is put in anvil's pool (balance 100 -> 15 <= stop-loss 20);
2. **t0** = wall clock (`time.time()`) in this script just before `evm_mine`, the call
   that mines the block holding that withdrawal;
3. the daemon indexes the block, its rules fire, its executor preflights, signs, writes
   ahead and sends the close; **t1** = the `sent_ms` the executor stores for that
   transaction: `time.time_ns() // 1e6` taken right after `eth_sendRawTransaction`
   answered (automine is off, so the answer means "accepted into the pool", not mined).
   t1 is floored to the millisecond, so the latency below is (t1 + 1 ms) - t0: an upper
   bound at most 1 ms above the true value. Both clocks are this machine's wall clock.
4. not measured: the close is mined and the harness waits until the daemon has
   confirmed it (the intent `confirmed`), so every trial starts from a quiet daemon.

Figures: p50 and p99 (nearest rank) of each run's trials, then the median and spread of
those over runs. Where the time goes (medians over every measured trial), from
timestamps the product already writes: anvil's `evm_mine` answer (harness clock), the
daemon's per-step timing line (log `ts`, rounded to the ms, minus the step's measured
phases), `intents.created_ms` (rules decided), the `rule ... fired` log line (intent
stored), `transactions.created_ms` (signed, before the write-ahead) and `sent_ms`. Each
boundary is good to about 1 ms. The executor's part before signing is then split by
timing its round trips one by one on the same node (read-only, like bench_executor).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, percentile, spread  # noqa: E402
from bench_executor import Chain, deploy, fund, nonces, send_all, with_nonces  # noqa: E402

from contracts import load_artifact  # noqa: E402
from executor import Signer, calls  # noqa: E402
from indexer import ChainClient  # noqa: E402
from warden.devnet import DEVNET_KEYS, Anvil, free_port  # noqa: E402

TOKEN = 10**18
DEPOSIT = 100 * TOKEN
STOP_LOSS = 20 * TOKEN
WITHDRAW = 85 * TOKEN  # leaves 15 <= 20: below the stop-loss
CHAIN_ID = 31337
GAS_LIMIT = 1_000_000_000  # per block: a part of the setup in one block
CREATE_CHUNK = 2_500  # sessions created per part (~790M gas)
CREATE_GAS = 400_000  # createSession costs ~314k (docs/gas.md)
OWNERS = 8
RELAYER_KEY = DEVNET_KEYS[2]
JITTER_S = 0.1  # random pause before each trial's block, well above the poll interval
WAIT_S = 20.0  # give up on a trial step after this long: something is broken


# -- setup (not measured) ----------------------------------------------------------------
async def create_sessions(client: ChainClient, chain: Chain, n: int) -> None:
    """n sessions, operator = relayer, owners round-robin, with a stop-loss and no policy."""
    factory = Web3().eth.contract(abi=load_artifact("SessionWalletFactory").abi)
    head = await client.get_block("latest")
    assert head is not None
    expiry = int(head["timestamp"], 16) + 10**7
    txs = []
    for i in range(n):
        params = (chain.relayer, chain.dep.token, DEPOSIT, expiry, 50 * TOKEN, STOP_LOSS, 0, "",
                  [chain.dep.game])  # fmt: skip
        data = factory.encode_abi("createSession", args=[params, (i + 1).to_bytes(32, "big")])
        owner = chain.owners[i % len(chain.owners)]
        txs.append({"from": owner, "to": chain.dep.factory, "data": data, "gas": hex(CREATE_GAS)})
    # In parts of about one block each: a longer run of full blocks raises the base fee
    # past what anvil's default fees for the pooled transactions allow.
    for start in range(0, n, CREATE_CHUNK):
        part = txs[start : start + CREATE_CHUNK]
        await send_all(client, with_nonces(part, await nonces(client, part)))


async def setup_chain(anvil: Anvil, total: int) -> tuple[Chain, int]:
    """Deploy, fund and create `total` sessions; the factory's first block."""
    chain = deploy(anvil, OWNERS)
    async with ChainClient([chain.url], chain_id=CHAIN_ID) as client:
        start = await client.block_number()
        await fund(client, chain, total)
        await create_sessions(client, chain, total)
    return chain, start


# -- talking to anvil and the daemon -------------------------------------------------------
class Rpc:
    """Blocking JSON-RPC over one kept-alive connection: the least overhead around t0."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
        self.ids = 0

    def call(self, method: str, *params: Any) -> Any:
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params})
        self.conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(self.conn.getresponse().read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        self.conn.close()


class LogTail:
    """The daemon's JSON log lines as they are written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.recent: list[str] = []  # the last messages, for an error report
        self.unread: list[dict[str, Any]] = []  # read from the file, not yet matched

    def lines(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        return [json.loads(c) for c in chunks if c.startswith(b"{")]

    def wait(self, match: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The first unread line that matches (the lines before it are passed over)."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if not self.unread:
                self.unread = self.lines()
            while self.unread:
                line = self.unread.pop(0)
                self.recent = [*self.recent[-19:], f"{line['ts']:.3f} {line['message']}"]
                if line.get("level") in ("error", "critical"):
                    print(f"daemon error: {line['message']}", file=sys.stderr, flush=True)
                if match(line):
                    return line
            time.sleep(0.001)
        recent = "\n  ".join(self.recent)
        raise SystemExit(f"timed out waiting for the daemon: {what}; its last lines:\n  {recent}")


@dataclass
class Daemon:
    config: Path
    log: Path
    db: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "WARDEN_BENCH_KEY": RELAYER_KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warden.cli", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), env=env, cwd=ROOT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 180.0) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited with {self.proc.returncode}: see {self.log}")
            try:
                url = f"http://127.0.0.1:{self.port}/ready"
                with urllib.request.urlopen(url, timeout=5) as r:
                    if json.loads(r.read())["ready"]:
                        return time.monotonic() - started
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"daemon not ready after {timeout:.0f} s: see {self.log}")

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def write_config(
    tmp: Path, name: str, url: str, factory: str, start: int, poll_interval: float
) -> Daemon:
    port = free_port()
    db = tmp / f"{name}.sqlite"
    config = tmp / f"{name}.yaml"
    config.write_text(
        f"""
chain:
  rpc: ["{url}"]
  chain_id: {CHAIN_ID}
  factory: "{factory}"
  start_block: {start}
  confirmations: 0
  poll_interval: {poll_interval}
database: {db}
rules:
  files: [{ROOT / "config/rules"}]
  decimals: 18
executor:
  raw_key: "${{WARDEN_BENCH_KEY}}"
  min_relayer_balance: "0.01 ether"
api:
  port: {port}
logging:
  json: true
"""
    )
    return Daemon(config, tmp / f"{name}.log", db, port)


# -- one trial -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Trial:
    confirmed: bool  # else obsolete: the executor's nonce race (see `settled`)
    t0: float  # s, before evm_mine
    mined: float  # s, evm_mine answered
    step_start: float | None  # s, the daemon step that handled the block began
    step_index_ms: float | None  # that step: head check, fetch, commit (rules excluded)
    step_rules_ms: float | None  # that step: rules on the changed sessions, intent stored
    decided_ms: int  # intents.created_ms
    stored: float  # s, "rule ... fired" log ts
    signed_ms: int  # transactions.created_ms
    sent_ms: int  # transactions.sent_ms

    @property
    def latency_ms(self) -> float:
        return self.sent_ms + 1 - self.t0 * 1000

    @property
    def from_block_ms(self) -> float:
        return self.sent_ms + 1 - self.mined * 1000


STEP_PREFIX = "executor: "


def parse_step(message: str) -> dict[str, float]:
    """Phase timings the daemon appends to its step line: `(... step 12.3 ms: x 1.0, ...)`."""
    if "(step " not in message:
        return {}
    inner = message.rsplit("(step ", 1)[1].rstrip(")")
    total, _, phases = inner.partition(" ms: ")
    out = {"total": float(total)}
    for part in phases.split(", "):
        name, _, value = part.rpartition(" ")
        if name:
            out[name] = float(value)
    return out


def settled(line: dict[str, Any]) -> bool:
    """The step that settled the mined close. Usually "confirmed 1"; sometimes the executor
    reads anvil's nonce count of the new block before its receipt is served, takes the
    nonce for another sender's ("dropped"), and settles the intent obsolete once the
    session's `Closed` (from our own transaction) is indexed. Measurement is unaffected
    (it ended at the send); the run reports how often this happened."""
    message = str(line["message"])
    return message.startswith(STEP_PREFIX) and ("confirmed 1" in message or "obsolete 1" in message)


def run_trial(rpc: Rpc, tail: LogTail, db: sqlite3.Connection, wallet: str, owner: str) -> Trial:
    data = WALLET.encode_abi("withdraw", args=[WITHDRAW])
    # Blocks come when they come: a random pause so t0 falls anywhere in the daemon's
    # poll cycle (right after the last trial's log line it would always fall at its start).
    time.sleep(random.uniform(0, JITTER_S))
    rpc.call("eth_sendTransaction", {"from": owner, "to": wallet, "data": data, "gas": "0x40000"})
    t0 = time.time()
    rpc.call("evm_mine")
    mined = time.time()
    fired = tail.wait(
        lambda e: e["message"].startswith("rule stop-loss fired for " + wallet), "rule fired"
    )
    step = tail.wait(
        lambda e: e["message"].startswith(STEP_PREFIX) and "submitted 1" in e["message"],
        "close submitted",
    )
    row = db.execute(
        "SELECT i.created_ms, t.created_ms, t.sent_ms FROM intents i "
        "JOIN transactions t ON t.job_id = i.job_id WHERE i.wallet = ? AND i.reason = 'stop_loss'",
        (wallet,),
    ).fetchone()
    if row is None or row[2] is None:
        raise SystemExit(f"no sent close for {wallet} after the daemon said submitted")
    phases = parse_step(step["message"])
    step_start = step["ts"] - phases["total"] / 1000 if phases else None
    # not measured: mine the close and wait until the daemon confirmed it
    rpc.call("evm_mine")
    tail.wait(settled, "close confirmed")
    deadline = time.monotonic() + WAIT_S
    while True:  # an obsolete intent (preflight saw the close) may precede the indexed close
        closed = db.execute("SELECT status FROM sessions WHERE wallet = ?", (wallet,)).fetchone()
        if closed == ("closed",) or time.monotonic() > deadline:
            break
        time.sleep(0.002)
    state = db.execute("SELECT state FROM intents WHERE wallet = ?", (wallet,)).fetchone()
    if state not in (("confirmed",), ("obsolete",)) or closed != ("closed",):
        raise SystemExit(f"{wallet}: intent {state}, session {closed} after the close was mined")
    return Trial(
        state == ("confirmed",), t0, mined, step_start, phases.get("index"), phases.get("rules"),
        int(row[0]), float(fired["ts"]), int(row[1]), int(row[2]),
    )  # fmt: skip


WALLET = Web3().eth.contract(abi=load_artifact("SessionWallet").abi)


# -- one run -------------------------------------------------------------------------------
@dataclass
class RunResult:
    trials: list[Trial]
    start_s: float  # daemon start until ready (indexed and evaluated every session)
    active: int  # active sessions when the trials began
    untouched: str  # a session no trial used

    @property
    def latencies(self) -> list[float]:
        return [t.latency_ms for t in self.trials]


@dataclass
class Plan:
    url: str
    factory: str
    start: int
    poll_interval: float
    trials: int
    warmup: int
    tmp: Path


def run_once(plan: Plan, number: int) -> RunResult:
    daemon = write_config(
        plan.tmp, f"run{number}", plan.url, plan.factory, plan.start, plan.poll_interval
    )
    daemon.start()
    rpc = Rpc(plan.url)
    try:
        start_s = daemon.wait_ready()
        db = sqlite3.connect(f"file:{daemon.db}?mode=ro", uri=True, isolation_level=None)
        active = sessions_of(db)
        if len(active) < plan.warmup + plan.trials:
            raise SystemExit(f"only {len(active)} active sessions for the trials")
        tail = LogTail(daemon.log)
        rpc.call("evm_setAutomine", False)
        try:
            trials = []
            for i, (wallet, owner) in enumerate(active[: plan.warmup + plan.trials]):
                trial = run_trial(rpc, tail, db, wallet, owner)
                if i >= plan.warmup:
                    trials.append(trial)
        finally:
            rpc.call("evm_setAutomine", True)
            db.close()
    finally:
        code = daemon.stop()
        rpc.close()
    if code != 0:
        raise SystemExit(f"daemon exited with {code}: see {daemon.log}")
    return RunResult(trials, start_s, len(active), active[-1][0])


def sessions_of(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """Active sessions (wallet, owner), oldest first: earlier runs closed the first ones."""
    rows = db.execute(
        "SELECT wallet, owner FROM sessions WHERE status = 'active' ORDER BY created_position"
    ).fetchall()
    return [(str(w), str(o)) for w, o in rows]


# -- where the time goes -------------------------------------------------------------------
def breakdown(trials: list[Trial]) -> list[tuple[str, float]]:
    """Median ms of each stage over every trial; consecutive boundaries."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = [("anvil mines the block (t0 -> evm_mine answered)",
             med([(t.mined - t.t0) * 1000 for t in trials]))]  # fmt: skip
    timed = [t for t in trials if t.step_start is not None]
    if timed:
        rows += [
            ("the block waits for the daemon's next step (-> step starts)",
             med([(t.step_start - t.mined) * 1000 for t in timed if t.step_start])),
            ("head check, headers, logs, index and commit (step's index phase)",
             med([t.step_index_ms or 0.0 for t in timed])),
            ("rules decide, intent stored; due sessions (step's rules phase)",
             med([t.step_rules_ms or 0.0 for t in timed])),
            ("executor: track, confirm, guards, fees, balance, preflight, gas, sign",
             med([t.signed_ms - executor_start(t) for t in timed])),
        ]  # fmt: skip
    else:
        rows += [
            ("block -> rules decided (no step timing in the log)",
             med([t.decided_ms - t.mined * 1000 for t in trials])),
            ("decided -> intent stored (log ts - intents.created_ms)",
             med([t.stored * 1000 - t.decided_ms for t in trials])),
            ("executor: track, confirm, guards, fees, balance, preflight, gas, sign",
             med([t.signed_ms - t.stored * 1000 for t in trials])),
        ]  # fmt: skip
    rows.append(("executor: write-ahead (job + signed tx committed), send answered",
                 med([float(t.sent_ms + 1 - t.signed_ms) for t in trials])))  # fmt: skip
    return rows


def executor_start(t: Trial) -> float:
    """Wall ms at which the trial's step began its executor phase."""
    assert t.step_start is not None
    return t.step_start * 1000 + (t.step_index_ms or 0.0) + (t.step_rules_ms or 0.0)


async def components(url: str, factory: str, wallet: str) -> list[tuple[str, float]]:
    """The executor's round trips before signing, and signing, one by one on the same node
    (read-only; median ms of 50)."""
    signer = Signer.from_raw_key(RELAYER_KEY, chain_id=CHAIN_ID)
    close = calls.single(wallet, "close", "stop_loss")
    tx = {"from": signer.address, "to": close.to, "data": close.data}
    probes: list[tuple[str, Callable[[ChainClient], Any]]] = [
        ("eth_feeHistory", lambda c: c.call("eth_feeHistory", "0xa", "latest", [50])),
        ("eth_getBalance", lambda c: c.call("eth_getBalance", signer.address, "latest")),
        ("eth_call (preflight)", lambda c: c.batch_each([("eth_call", [tx, "latest"])])),
        ("eth_estimateGas", lambda c: c.batch_each([("eth_estimateGas", [tx])])),
        ("eth_blockNumber", lambda c: c.call("eth_blockNumber")),
    ]
    out = []
    async with ChainClient([url], chain_id=CHAIN_ID) as client:
        for name, probe in probes:
            times = []
            for _ in range(50):
                started = time.perf_counter()
                await probe(client)
                times.append((time.perf_counter() - started) * 1000)
            out.append((name, statistics.median(times)))
    fields = {"type": 2, "chainId": CHAIN_ID, "nonce": 1, "to": close.to, "value": 0,
              "data": close.data, "gas": 200_000, "maxFeePerGas": 10**10,
              "maxPriorityFeePerGas": 10**9}  # fmt: skip
    times = []
    for _ in range(50):
        started = time.perf_counter()
        signer.sign(fields)
        times.append((time.perf_counter() - started) * 1000)
    out.append(("signing (coincurve)", statistics.median(times)))
    return out


# -- main ----------------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> int:
    print(header(), flush=True)
    per_run = args.trials + args.warmup
    total = args.sessions + args.runs * per_run
    extra = ["--gas-limit", str(GAS_LIMIT), "--accounts", str(3 + OWNERS)]
    with Anvil(extra_args=extra) as anvil, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.workdir or tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        chain, start = asyncio.run(setup_chain(anvil, total))
        setup_s = time.monotonic() - started
        print(f"setup: {total:,} sessions created in {setup_s:.1f} s", flush=True)
        plan = Plan(anvil.url, chain.dep.factory, start, args.poll_interval, args.trials,
                    args.warmup, tmp)  # fmt: skip
        results: list[RunResult] = []
        for number in range(1, args.runs + 1):
            result = run_once(plan, number)
            results.append(result)
            lat = result.latencies
            print(
                f"run {number}: {result.active:,} active sessions, daemon ready in "
                f"{result.start_s:.1f} s; {len(lat)} trials: p50 {percentile(lat, 50):.1f} ms, "
                f"p99 {percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms; closes confirmed "
                f"{sum(t.confirmed for t in result.trials)}, obsolete after the nonce race "
                f"{sum(not t.confirmed for t in result.trials)}",
                flush=True,
            )
        parts = asyncio.run(components(anvil.url, chain.dep.factory, results[-1].untouched))
    trials = [t for r in results for t in r.trials]
    p50 = [percentile(r.latencies, 50) for r in results]
    p99 = [percentile(r.latencies, 99) for r in results]
    print()
    print(
        f"reaction latency, block crossing a stop-loss -> close accepted by the node; "
        f"≥{args.sessions:,} active sessions, {args.trials} trials per run, poll_interval "
        f"{args.poll_interval} s, confirmations 0"
    )
    print(f"p50: {spread(p50, '.1f', ' ms')}   target ≤ 50 ms")
    print(f"p99: {spread(p99, '.1f', ' ms')}   target ≤ 250 ms")
    p50b = [percentile([t.from_block_ms for t in r.trials], 50) for r in results]
    p99b = [percentile([t.from_block_ms for t in r.trials], 99) for r in results]
    print(
        f"from the block existing (evm_mine answered) instead of t0: p50 "
        f"{spread(p50b, '.1f', ' ms')}, p99 {spread(p99b, '.1f', ' ms')}"
    )
    print()
    print(f"where the time goes (median ms over all {len(trials)} trials; boundaries ±1 ms):")
    for name, value in breakdown(trials):
        print(f"  {value:7.1f}  {name}")
    print("executor round trips timed one by one on the same node (median ms of 50):")
    for name, value in parts:
        print(f"  {value:7.2f}  {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="active sessions (at least)")
    parser.add_argument("--trials", type=int, default=200, help="measured trials per run")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted trials per run")
    parser.add_argument("--runs", type=int, default=3, help="runs (median and spread)")
    parser.add_argument(
        "--poll-interval", type=float, default=0.01, help="the daemon's chain.poll_interval (s)"
    )
    parser.add_argument(
        "--workdir",
        help="keep the daemon's configs, logs and databases here (default: a "
        "temporary directory, removed at the end)",
    )
    args = parser.parse_args(argv)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
