"""Seed an anvil chain with many session wallet events for the indexer benchmark, and cache it.

    python scripts/seed_chain.py                      # 200,000 events over 5,000 sessions
    python scripts/seed_chain.py --events 20000 --sessions 500
    python scripts/seed_chain.py --verify             # also reload the dump and count its logs

The chain is built by the `Seeder` test contract (contracts/test/Seeder.sol): it owns and
operates its sessions, so one transaction opens sessions and performs hundreds of wallet
operations. Blocks hold one to three such transactions, with empty blocks and time jumps in
between, and a few look-alike (spoofed) logs that an indexer must ignore.

The result is `<cache-dir>/chain-<key>.json`, an anvil state (load it with `--load-state`,
see `seeded_anvil`), and `<cache-dir>/chain-<key>.meta.json`, which says what is in it. The
key hashes the contract artifacts, the anvil version, the seeding parameters and this
script, so a stale cache is never reused; a valid one is reused as is.

After a load, anvil serves every old block, receipt and log (eth_getLogs over the whole
range works), but not the state at old blocks (eth_call at an old block fails: historical
states are not dumped), and its clock restarts at the wall clock: call
`anvil_setTime(meta.head_timestamp)` first if new blocks must continue the chain's time.

anvil dumps every transaction with its full call trace (about 12 KB per wallet event), which
would make a 200,000-event dump several gigabytes. Traces are not needed for logs, so the
chain is seeded in segments: each segment's dump has its traces removed and is loaded by the
next segment's anvil. Blocks, receipts and logs survive a dump and a load unchanged.

Importable by path (scripts/ is not a package): `ensure_seeded(...) -> SeedMeta`,
`seeded_anvil(meta)`, `count_logs(url, meta)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import mmap
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.contract import Contract

from contracts import artifact_names, load_artifact
from warden.devnet import Anvil, deploy_contract, deploy_stack, find_anvil

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = ROOT / ".cache" / "bench"
GAS_LIMIT = 2_000_000_000  # block gas limit: a block holds up to three large seeder calls
TX_GAS = 300_000_000
GENESIS_TIMESTAMP = 1_750_000_000  # fixed, so that the same parameters give the same chain
SEGMENT_EVENTS = 40_000  # events per anvil run; bounds anvil's memory for call traces
WALLET_EVENTS = ("Deposited", "Executed", "Withdrawn", "Extended", "Revoked", "Synced",
                 "Closed", "Recovered")  # fmt: skip
SESSION_EVENTS = ("SessionCreated", *WALLET_EVENTS)

Progress = Callable[[str], None]


def say(message: str) -> None:
    """Progress on stdout, flushed: seeding takes a while and may be logged to a file."""
    print(message, flush=True)


@dataclass(frozen=True)
class SeedParams:
    events: int = 200_000  # at least this many session events (SessionCreated + wallet)
    sessions: int = 5_000  # about this many sessions
    seed: int = 1

    def __post_init__(self) -> None:
        if self.events < 1 or self.sessions < 1 or self.sessions > self.events:
            raise ValueError(f"need 1 <= sessions <= events, got {self}")


@dataclass(frozen=True)
class SeedMeta:
    key: str
    state_file: str  # the anvil state, for --load-state
    state_bytes: int
    params: dict[str, int]
    anvil: str
    chain_id: int
    factory: str
    token: str
    game: str
    seeder: str
    lookalike: str
    start_block: int  # the factory's deployment block: an indexer starts here
    head_block: int
    sessions: int
    session_events: int
    counts: dict[str, int]  # session events by name
    spoofed_logs: int  # session event signatures emitted by the look-alike
    seeding_seconds: float
    first_timestamp: int
    head_timestamp: int
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ json-rpc and topics


class Rpc:
    """Plain JSON-RPC over HTTP, with a timeout long enough for big seeder calls."""

    def __init__(self, url: str, timeout: float = 300.0) -> None:
        self.url = url
        self.timeout = timeout

    def call(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        req = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]


def _signature(item: dict[str, Any]) -> str:
    def canonical(i: dict[str, Any]) -> str:
        t: str = i["type"]
        if t.startswith("tuple"):
            return "(" + ",".join(canonical(c) for c in i["components"]) + ")" + t[5:]
        return t

    return f"{item['name']}({','.join(canonical(i) for i in item['inputs'])})"


def event_topics() -> dict[str, str]:
    """topic0 (0x-hex) -> name, for every session event signature."""
    out: dict[str, str] = {}
    for contract in ("SessionWallet", "SessionWalletFactory"):
        for item in load_artifact(contract).abi:
            if item["type"] == "event" and item["name"] in SESSION_EVENTS:
                out[Web3.keccak(text=_signature(item)).to_0x_hex()] = item["name"]
    return out


class LogTally:
    """Sorts logs into session events (the factory's SessionCreated, and wallet events
    from wallets it created) and spoofed ones (the same signatures from anywhere else)."""

    def __init__(self, factory: str) -> None:
        self.factory = factory.lower()
        self.topics = event_topics()
        self.created = next(t for t, n in self.topics.items() if n == "SessionCreated")
        self.wallets: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.spoofed = 0

    def add(self, log: dict[str, Any]) -> None:
        topics = log["topics"]
        name = self.topics.get(topics[0]) if topics else None
        if name is None:
            return
        address = log["address"].lower()
        if name == "SessionCreated" and address == self.factory:
            self.wallets.add("0x" + topics[1][-40:])
        elif name == "SessionCreated" or address not in self.wallets:
            self.spoofed += 1
            return
        self.counts[name] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# ------------------------------------------------------------------------ cache key


def anvil_version() -> str:
    out = subprocess.run(
        [str(find_anvil()), "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()[0].strip()


def cache_key(params: SeedParams, anvil: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"anvil": anvil, **asdict(params)}).encode())
    h.update(Path(__file__).read_bytes())  # how the chain is seeded
    artifacts = resources.files("contracts") / "artifacts"
    for name in artifact_names():
        h.update(name.encode())
        h.update((artifacts / f"{name}.json").read_bytes())
    return h.hexdigest()[:16]


def cache_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"chain-{key}.json", cache_dir / f"chain-{key}.meta.json"


def load_meta(cache_dir: Path, key: str) -> SeedMeta | None:
    """The cached chain for this key, if it is complete."""
    state, meta_path = cache_paths(cache_dir, key)
    if not meta_path.is_file() or not state.is_file():
        return None
    meta = SeedMeta(**json.loads(meta_path.read_text()))
    if meta.key != key or state.stat().st_size != meta.state_bytes:
        return None
    # the state beside its meta, wherever the directory was reached from when written
    return dataclasses.replace(meta, state_file=str(state))


# ------------------------------------------------------------------------- dumps


def strip_traces(src: Path, dst: Path) -> None:
    """Copy an anvil state dump without the call traces of its transactions.

    anvil writes each mined transaction as `{..."traces":[...],"exit":...}`; no trace holds
    the text `],"exit":`, so the end of a trace list is found without parsing the JSON."""
    with src.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[-1:] != b"}":
            raise RuntimeError(f"{src} is truncated (anvil did not finish its dump)")
        with dst.open("wb") as out:
            pos = 0
            while (start := m.find(b'"traces":[', pos)) >= 0:
                end = m.find(b'],"exit":', start)
                if end < 0:
                    raise RuntimeError(f"{src}: unexpected dump layout near byte {start}")
                out.write(m[pos:start])
                out.write(b'"traces":[')
                pos = end
            out.write(m[pos:])


def seeded_anvil(meta: SeedMeta, extra_args: Sequence[str] = ()) -> Anvil:
    """An anvil (not yet started: use `with`) serving the seeded chain."""
    return Anvil(
        chain_id=meta.chain_id,
        extra_args=["--load-state", meta.state_file, "--gas-limit", str(GAS_LIMIT), *extra_args],
    )


def count_logs(url: str, meta: SeedMeta, chunk: int = 2_000) -> LogTally:
    """Count the chain's session events with eth_getLogs by topic, in block ranges."""
    rpc = Rpc(url)
    tally = LogTally(meta.factory)
    topics = list(tally.topics)
    for start in range(meta.start_block, meta.head_block + 1, chunk):
        end = min(start + chunk - 1, meta.head_block)
        logs = rpc.call(
            "eth_getLogs", {"fromBlock": hex(start), "toBlock": hex(end), "topics": [topics]}
        )
        for log in logs:
            tally.add(log)
    return tally


# ------------------------------------------------------------------------- seeding


@dataclass
class _Deployed:
    chain_id: int
    deployer: str
    factory: str
    token: str
    game: str
    seeder: str
    lookalike: str
    start_block: int


def _contract(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_artifact(name).abi)


def _deployment_block(w3: Web3, address: str, last: int) -> int:
    """The block that deployed `address`: where an indexer of its events starts."""
    for n in range(last + 1):
        for h in w3.eth.get_block(n)["transactions"]:
            assert isinstance(h, bytes)
            if w3.eth.get_transaction_receipt(h)["contractAddress"] == address:
                return n
    raise RuntimeError(f"no deployment of {address} in blocks 0..{last}")


def _deploy(w3: Web3) -> _Deployed:
    accounts = list(w3.eth.accounts)
    dep = deploy_stack(w3, deployer=accounts[0], operator=accounts[2], treasury=accounts[4])
    seeder = deploy_contract(w3, "Seeder", dep.deployer, dep.factory, dep.token, dep.game)
    factory = _contract(w3, "SessionWalletFactory", dep.factory)
    tx = factory.functions.setTrustedOperator(seeder, True).transact({"from": dep.deployer})
    if w3.eth.wait_for_transaction_receipt(tx)["status"] != 1:
        raise RuntimeError("trusting the seeder failed")
    lookalike = deploy_contract(w3, "LookAlikeWallet", dep.deployer)
    start = _deployment_block(w3, dep.factory, dep.block)
    return _Deployed(dep.chain_id, dep.deployer, dep.factory, dep.token, dep.game, seeder,
                     lookalike, start)  # fmt: skip


class _Seeding:
    """One seeding run: the plan (all random choices, from the seed) and the tallies."""

    def __init__(self, params: SeedParams, progress: Progress) -> None:
        self.params = params
        self.progress = progress
        self.rng = random.Random(params.seed)
        self.sessions = 0
        self.calls = 0
        self.blocks = 0  # blocks with seeder calls
        self.tally: LogTally | None = None
        self.started = time.monotonic()
        self.last_report = 0.0
        self.timestamp = GENESIS_TIMESTAMP + 60
        self.first_timestamp = 0

    @property
    def events(self) -> int:
        return self.tally.total if self.tally else 0

    def _next_call(self, planned: int) -> tuple[int, int, int]:
        """(new sessions, operations, close rate in bps) for the next seeder call, with
        `planned` events already asked of the block being built."""
        p = self.params
        # blocks of very different weight, as on a real chain
        size = self.rng.randint(10, 100) if self.rng.random() < 0.5 else self.rng.randint(200, 700)
        left_events = max(p.events - self.events - planned, 1)
        size = min(size, left_events)
        left_sessions = max(p.sessions - self.sessions, 0)
        new = min(left_sessions, -(-left_sessions * size // left_events))
        if self.sessions == 0:
            new = max(new, 1)
        # about 60 % of the sessions end closed
        close_bps = min(5_000, 6_000 * p.sessions // max(p.events - p.sessions, 1))
        return new, max(size - new, 0), close_bps

    def run_segment(self, rpc: Rpc, w3: Web3, dep: _Deployed, until: int) -> None:
        seeder = _contract(w3, "Seeder", dep.seeder)
        lookalike = _contract(w3, "LookAlikeWallet", dep.lookalike)
        assert self.tally is not None
        rpc.call("evm_setAutomine", False)
        while self.events < until:
            hashes: list[str] = []
            planned = 0
            for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
                if self.events + planned >= until:
                    break
                new, ops, close_bps = self._next_call(planned)
                planned += new + ops
                self.calls += 1
                # the call number in the low bits, the run's seed above (seed 1 adds nothing)
                salt = (self.params.seed - 1) << 64 | self.calls
                data = seeder.encode_abi("run", args=[new, ops, close_bps, salt])
                hashes.append(self._send(rpc, dep, dep.seeder, data))
                self.sessions += new
            self.blocks += 1
            if self.blocks % 25 == 1:
                hashes.append(self._send(rpc, dep, dep.lookalike, self._spoof(lookalike)))
            self._mine(rpc, self.rng.randint(1, 24))
            for h in hashes:
                receipt = rpc.call("eth_getTransactionReceipt", h)
                if receipt is None or receipt["status"] != "0x1":
                    raise RuntimeError(f"seeding transaction {h} failed: {receipt}")
                for log in receipt["logs"]:
                    self.tally.add(log)
            if self.rng.random() < 0.05:  # empty blocks, sometimes a longer pause
                for _ in range(self.rng.randint(1, 5)):
                    self._mine(rpc, self.rng.choice((12, 60, 900, 3_600)))
            self.report()
        rpc.call("evm_setAutomine", True)

    def _send(self, rpc: Rpc, dep: _Deployed, to: str, data: str) -> str:
        tx = {"from": dep.deployer, "to": to, "data": data, "gas": hex(TX_GAS)}
        return str(rpc.call("eth_sendTransaction", tx))

    def _mine(self, rpc: Rpc, seconds: int) -> None:
        self.timestamp += seconds
        self.first_timestamp = self.first_timestamp or self.timestamp
        rpc.call("evm_setNextBlockTimestamp", self.timestamp)
        rpc.call("evm_mine")

    def _spoof(self, lookalike: Contract) -> str:
        """Calldata for one look-alike call: a session event signature from a stranger."""
        fake = self.rng.randrange(1 << 160).to_bytes(20, "big")
        addr = Web3.to_checksum_address(fake)
        amount = self.rng.randrange(1, 10**24)
        seq = self.rng.randrange(1, 50)
        calls: list[tuple[str, list[Any]]] = [
            ("fakeDeposited", [seq, addr, amount, amount]),
            ("fakeExecuted", [seq, addr, amount, amount]),
            ("fakeWithdrawn", [seq, addr, amount, 0]),
            ("fakeClosed", [seq, self.rng.randrange(6), amount]),
            ("fakeSessionCreated", [addr, addr, addr, addr]),
        ]
        name, args = self.rng.choice(calls)
        return str(lookalike.encode_abi(name, args=args))

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_report < 2.0:
            return
        self.last_report = now
        elapsed = now - self.started
        self.progress(
            f"seeding: {self.events:,}/{self.params.events:,} events, {self.sessions:,} sessions,"
            f" {self.calls:,} seeder calls, {self.events / max(elapsed, 1e-9):,.0f} events/s"
        )


def seed(
    params: SeedParams,
    cache_dir: Path,
    progress: Progress = say,
    segment_events: int = SEGMENT_EVENTS,
) -> SeedMeta:
    """Build the chain for `params` from scratch and write it into the cache."""
    anvil = anvil_version()
    key = cache_key(params, anvil)
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = cache_dir / f".seeding-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    run = _Seeding(params, progress)
    dep: _Deployed | None = None
    state: Path | None = None
    head: dict[str, Any] = {}
    segment = 0
    try:
        while dep is None or run.events < params.events:
            raw = work / f"segment-{segment}.raw.json"
            args = ["--gas-limit", str(GAS_LIMIT)]
            args += (
                ["--load-state", str(state)] if state else ["--timestamp", str(GENESIS_TIMESTAMP)]
            )
            with Anvil(
                extra_args=[*args, "--dump-state", str(raw)],
                start_timeout=300,  # loading a large state takes a while
                stop_timeout=1_800,  # and so does writing one
            ) as node:
                url = node.url
                rpc = Rpc(url)
                w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 300}))
                if dep is None:
                    dep = _deploy(w3)
                    run.tally = LogTally(dep.factory)
                else:
                    # a loaded anvil's clock restarts at the wall clock: put it back
                    rpc.call("anvil_setTime", run.timestamp)
                run.run_segment(rpc, w3, dep, min(run.events + segment_events, params.events))
                head = rpc.call("eth_getBlockByNumber", "latest", False)
                progress(f"segment {segment}: {run.events:,} events; anvil writes its state")
            stripped = work / f"segment-{segment}.json"
            strip_traces(raw, stripped)
            raw.unlink()
            if state:
                state.unlink()
            state = stripped
            segment += 1
        run.report(force=True)
        assert state is not None and run.tally is not None
        final, meta_path = cache_paths(cache_dir, key)
        state.replace(final)
        meta = SeedMeta(
            key=key,
            state_file=str(final),
            state_bytes=final.stat().st_size,
            params=asdict(params),
            anvil=anvil,
            chain_id=dep.chain_id,
            factory=dep.factory,
            token=dep.token,
            game=dep.game,
            seeder=dep.seeder,
            lookalike=dep.lookalike,
            start_block=dep.start_block,
            head_block=int(head["number"], 16),
            sessions=len(run.tally.wallets),
            session_events=run.tally.total,
            counts=dict(sorted(run.tally.counts.items())),
            spoofed_logs=run.tally.spoofed,
            seeding_seconds=round(time.monotonic() - run.started, 2),
            first_timestamp=run.first_timestamp,
            head_timestamp=int(head["timestamp"], 16),
            extra={"seeder_calls": run.calls, "segments": segment},
        )
        tmp = meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(meta), indent=2) + "\n")
        tmp.replace(meta_path)
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_seeded(
    events: int = 200_000,
    sessions: int = 5_000,
    *,
    seed_value: int = 1,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    progress: Progress = say,
) -> SeedMeta:
    """The cached chain for these parameters, seeding it first if there is none."""
    params = SeedParams(events=events, sessions=sessions, seed=seed_value)
    meta = load_meta(cache_dir, cache_key(params, anvil_version()))
    if meta is not None:
        progress(f"seeded chain cached: {meta.state_file}")
        return meta
    return seed(params, cache_dir, progress)


def verify(meta: SeedMeta, progress: Progress = say) -> bool:
    """Load the dump into a fresh anvil and count its session events with eth_getLogs."""
    started = time.monotonic()
    with seeded_anvil(meta) as node:
        loaded = time.monotonic() - started
        tally = count_logs(node.url, meta)
    ok = dict(tally.counts) == meta.counts and tally.spoofed == meta.spoofed_logs
    progress(
        f"verify: anvil loaded the dump in {loaded:.1f} s; eth_getLogs found "
        f"{tally.total:,} session events ({tally.spoofed} spoofed) in "
        f"{time.monotonic() - started - loaded:.1f} s: {'OK' if ok else 'MISMATCH'}"
    )
    if not ok:
        progress(f"  meta: {meta.counts} spoofed={meta.spoofed_logs}")
        progress(f"  logs: {dict(tally.counts)} spoofed={tally.spoofed}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\nImportable")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="at least this many session events (default: %(default)s)",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        default=5_000,
        help="about this many sessions (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where chain-<key>.json and its .meta.json go (default: %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="seed again even if cached")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="reload the dump in a fresh anvil and check eth_getLogs counts",
    )
    args = parser.parse_args(argv)  # fmt: skip
    try:
        params = SeedParams(events=args.events, sessions=args.sessions, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.force:
        meta = seed(params, args.cache_dir)
    else:
        meta = ensure_seeded(
            args.events, args.sessions, seed_value=args.seed, cache_dir=args.cache_dir
        )
    print(
        f"{meta.session_events:,} session events in {meta.sessions:,} sessions, blocks "
        f"{meta.start_block}..{meta.head_block}, seeded in {meta.seeding_seconds} s; "
        f"state {meta.state_bytes / 1e6:.1f} MB: {meta.state_file}"
    )
    if args.verify and not verify(meta):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
