"""Executor benchmark: intents/s from pending to accepted by the node, and gas per session
closed one by one versus in factory batches.

    .venv/bin/python scripts/bench_executor.py [--sessions 1000] [--runs 3] [--profile]

Starts its own anvil, deploys the stack with the relayer (devnet key 2) as trusted
operator, mints to a few owners and approves once per owner. Then per run and per mode,
on fresh sessions:

1. setup (not measured): create `--sessions` sessions with operator = relayer, index them
   into a new SQLite file with the real `Indexer`, record one close intent per session
   in the outbox (`Outbox.record`, as the rules side does);
2. measured, anvil automine OFF (so the node only pools transactions and we time Warden,
   not anvil's mining): wall time from the first `Executor.step()` until every intent is
   `submitted`, i.e. its transaction was accepted by `eth_sendRawTransaction`;
3. then the blocks are mined, the executor steps until every intent is `confirmed`, and
   gas is read from the receipts of the mined transactions.

Modes: singles (`ExecutorSettings(max_batch_size=1)`) and batched (`max_batch_size=100`). Prints
each run, the median and spread over runs, and with `--profile` the top functions of one
measured window per mode. Never part of the test suite: timings belong in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chain import ChainClient, calls  # noqa: E402
from contracts import load_artifact  # noqa: E402
from executor import Executor, ExecutorSettings, Outbox, Signer  # noqa: E402
from indexer import ChainSettings, Indexer, IndexerStore, open_database  # noqa: E402
from rules import Decision, Intent  # noqa: E402
from warden.devnet import DEVNET_KEYS, Anvil, Deployment, deploy_stack  # noqa: E402

TOKEN = 10**18
DEPOSIT = 100 * TOKEN
CHAIN_ID = 31337
GAS_LIMIT = 200_000_000  # per block: a whole run's transactions fit in a few blocks
MAX_FEE_BPS = 1_000  # the most a creation accepts: the factory's cap (deploy_stack sets 1 %)
CREATE_GAS = 400_000  # createSession costs ~314k (docs/gas.md); explicit, no estimate
SEND_CHUNK = 250  # eth_sendTransaction calls per JSON-RPC batch during setup
MODES = {"singles": 1, "batched": 100}


@dataclass(frozen=True)
class RunResult:
    mode: str
    sessions: int
    submit_s: float  # first step → every intent submitted (accepted by the node)
    steps: int  # executor steps in that window
    transactions: int  # transactions sent (jobs), all mined
    confirm_s: float  # after mining: steps (with indexing) until every intent confirmed
    gas_per_session: float  # gasUsed of every transaction / sessions they closed
    gas_per_tx: float  # mean gasUsed of one transaction

    @property
    def rate(self) -> float:
        return self.sessions / self.submit_s


@dataclass(frozen=True)
class Chain:
    url: str
    dep: Deployment
    relayer: str
    owners: tuple[str, ...]


# -- setup (not measured) ----------------------------------------------------------------
def deploy(anvil: Anvil, owners: int) -> Chain:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    accounts: list[str] = list(w3.eth.accounts)
    relayer = Signer.from_raw_key(DEVNET_KEYS[2], chain_id=CHAIN_ID).address
    assert relayer == accounts[2], "devnet key 2 is anvil's third account"
    dep = deploy_stack(w3, deployer=accounts[0], operator=relayer, treasury=accounts[1])
    return Chain(anvil.url, dep, relayer, tuple(accounts[3 : 3 + owners]))


async def send_all(client: ChainClient, txs: list[dict[str, str]]) -> None:
    """Send from unlocked accounts with automine off, then mine until the pool is empty and
    check every receipt: fast setup without one block per transaction."""
    await client.call("evm_setAutomine", False)
    try:
        hashes: list[str] = []
        for start in range(0, len(txs), SEND_CHUNK):
            chunk = txs[start : start + SEND_CHUNK]
            hashes += await client.batch([("eth_sendTransaction", [tx]) for tx in chunk])
        await mine_pool(client)
    finally:
        await client.call("evm_setAutomine", True)
    for start in range(0, len(hashes), SEND_CHUNK):
        sent = hashes[start : start + SEND_CHUNK]
        receipts = await client.batch([("eth_getTransactionReceipt", [h]) for h in sent])
        bad = [h for h, r in zip(sent, receipts, strict=True) if not r or r["status"] != "0x1"]
        if bad:
            raise SystemExit(f"setup transaction failed: {bad[0]}")


async def mine_pool(client: ChainClient) -> int:
    """Mine until the node's pool is empty; the number of blocks mined."""
    blocks = 0
    while int((await client.call("txpool_status"))["pending"], 16):
        await client.call("evm_mine")
        blocks += 1
    return blocks


async def fund(client: ChainClient, chain: Chain, sessions_total: int) -> None:
    """Mint to each owner and approve the factory once for everything it will create."""
    token = Web3().eth.contract(abi=load_artifact("MockToken").abi)
    fee = DEPOSIT * 100 // 10_000  # deploy_stack's default fee_bps = 100
    per_owner = -(-sessions_total // len(chain.owners)) * (DEPOSIT + fee)
    txs: list[dict[str, str]] = []
    for owner in chain.owners:
        mint = token.encode_abi("mint", args=[owner, per_owner])
        approve = token.encode_abi("approve", args=[chain.dep.factory, per_owner])
        txs.append({"from": chain.dep.deployer, "to": chain.dep.token, "data": mint})
        txs.append({"from": owner, "to": chain.dep.token, "data": approve})
    await send_all(client, with_nonces(txs, await nonces(client, txs)))


async def nonces(client: ChainClient, txs: list[dict[str, str]]) -> dict[str, int]:
    senders = sorted({tx["from"] for tx in txs})
    counts = await client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
    return {s: int(c, 16) for s, c in zip(senders, counts, strict=True)}


def with_nonces(txs: list[dict[str, str]], start: dict[str, int]) -> list[dict[str, str]]:
    """Explicit nonces: anvil then never has to guess the pending order of a burst."""
    nxt = dict(start)
    out = []
    for tx in txs:
        out.append({**tx, "nonce": hex(nxt[tx["from"]])})
        nxt[tx["from"]] += 1
    return out


async def create_sessions(client: ChainClient, chain: Chain, n: int, salt0: int) -> int:
    """Create n sessions (operator = relayer), owners round-robin; the first block used."""
    factory = Web3().eth.contract(abi=load_artifact("SessionWalletFactory").abi)
    head = await client.get_block("latest")
    assert head is not None
    expiry = int(head["timestamp"], 16) + 10**7
    txs = []
    for i in range(n):
        params = (chain.relayer, chain.dep.token, DEPOSIT, expiry, 50 * TOKEN, 20 * TOKEN,
                  300 * TOKEN, "berzerker", [chain.dep.game], MAX_FEE_BPS)  # fmt: skip
        salt = (salt0 + i).to_bytes(32, "big")
        data = factory.encode_abi("createSession", args=[params, salt])
        owner = chain.owners[i % len(chain.owners)]
        txs.append({"from": owner, "to": chain.dep.factory, "data": data, "gas": hex(CREATE_GAS)})
    start = await client.block_number() + 1
    await send_all(client, with_nonces(txs, await nonces(client, txs)))
    return start


# -- one measured run ----------------------------------------------------------------------
async def run_mode(
    chain: Chain, mode: str, n: int, salt0: int, db_path: Path, profiler: cProfile.Profile | None
) -> RunResult:
    db = await open_database(db_path)
    try:
        async with ChainClient([chain.url], chain_id=CHAIN_ID) as client:
            start = await create_sessions(client, chain, n, salt0)
            store = IndexerStore(db)
            await store.setup()
            outbox = Outbox(db)
            await outbox.setup()
            chain_settings = ChainSettings(start_block=start, confirmations=0)
            indexer = Indexer(client, store, chain_settings, factory=chain.dep.factory)
            settings = ExecutorSettings(max_batch_size=MODES[mode])
            signer = Signer.from_raw_key(DEVNET_KEYS[2], chain_id=CHAIN_ID)
            executor = Executor(
                client, outbox, store, settings, factory=chain.dep.factory, chain_id=CHAIN_ID,
                dry_run=False, signer=signer, relayer=None,
            )  # fmt: skip
            await executor.start()
            now = await index(indexer, store)
            sessions = await store.all_sessions("active")
            if len(sessions) != n:
                raise SystemExit(f"indexed {len(sessions)} active sessions, created {n}")
            decisions = [
                Decision(s.wallet, (intent(s.wallet, now),), frozenset({"stop_loss"}), frozenset())
                for s in sessions
            ]
            await outbox.record(decisions, int(time.time() * 1000))
            if profiler is not None:
                wallets = [s.wallet for s in sessions]
                print(await components(client, chain, wallets, MODES[mode], signer), flush=True)

            await client.call("evm_setAutomine", False)
            try:
                steps = 0
                if profiler is not None:
                    profiler.enable()
                started = time.perf_counter()
                while (await outbox.counts())["pending"]:
                    report = await executor.step(now)
                    steps += 1
                    if not report.busy:
                        raise SystemExit(f"{mode}: a step did nothing with intents pending")
                submit_s = time.perf_counter() - started
                if profiler is not None:
                    profiler.disable()
                counts = await outbox.counts()
                if counts["submitted"] != n:
                    raise SystemExit(f"{mode}: not every intent was submitted: {counts}")
                await mine_pool(client)
            finally:
                await client.call("evm_setAutomine", True)

            started = time.perf_counter()
            for _ in range(20):
                await executor.step(await index(indexer, store))
                counts = await outbox.counts()
                if counts["confirmed"] == n:
                    break
            else:
                raise SystemExit(f"{mode}: not every intent confirmed: {counts}")
            confirm_s = time.perf_counter() - started
            per_session, per_tx, txs = await gas(client, db_path)
    finally:
        await db.close()
    return RunResult(mode, n, submit_s, steps, txs, confirm_s, per_session, per_tx)


async def components(
    client: ChainClient, chain: Chain, wallets: list[str], size: int, signer: Signer
) -> str:
    """The executor's round trips and signing, timed one by one on the same sessions
    (read-only: nothing is sent), to split the measured window without a profiler."""
    closes = [calls.single(w, "close", "stop_loss") for w in wallets]
    members = [(w, "close", "stop_loss") for w in wallets]
    chunks = [members[i : i + size] for i in range(0, len(members), size)]
    groups = closes if size == 1 else [calls.batch(chain.dep.factory, c) for c in chunks]

    def fields(call: calls.Call) -> dict[str, str]:
        return {"from": chain.relayer, "to": call.to, "data": call.data}

    started = time.perf_counter()
    await client.batch_each([("eth_call", [fields(c), "latest"]) for c in closes])
    preflight = time.perf_counter() - started
    started = time.perf_counter()
    await client.batch_each([("eth_estimateGas", [fields(c)]) for c in groups])
    estimate = time.perf_counter() - started
    started = time.perf_counter()
    for nonce, call in enumerate(groups):
        signer.sign(
            {"type": 2, "chainId": CHAIN_ID, "nonce": nonce, "to": call.to, "value": 0,
             "data": call.data, "gas": 3_000_000, "maxFeePerGas": 10**10,
             "maxPriorityFeePerGas": 10**9}
        )  # fmt: skip
    sign = time.perf_counter() - started
    started = time.perf_counter()
    for _ in groups:
        await client.call("eth_blockNumber")
    trip = time.perf_counter() - started
    return (
        f"components, {len(wallets)} intents in {len(groups)} transactions: preflight "
        f"eth_call batch {preflight:.3f} s; eth_estimateGas batch {estimate:.3f} s; signing "
        f"{sign:.3f} s ({sign / len(groups) * 1000:.2f} ms each); {len(groups)} sequential "
        f"JSON-RPC round trips (eth_blockNumber, as one per eth_sendRawTransaction) {trip:.3f} s"
    )


def intent(wallet: str, now: int) -> Intent:
    return Intent(wallet, "stop_loss", "close", "stop_loss", 1, now, "bench")


async def index(indexer: Indexer, store: IndexerStore) -> int:
    await indexer.sync_to_head()
    checkpoint = await store.checkpoint()
    assert checkpoint is not None
    return checkpoint.timestamp


async def gas(client: ChainClient, db_path: Path) -> tuple[float, float, int]:
    """From the receipts of the run's mined transactions: gas per session (all gasUsed /
    all sessions closed), mean gas per transaction, and how many transactions."""
    db = await open_database(db_path)
    try:
        async with db.execute(
            "SELECT j.mined_hash, COUNT(i.id) FROM jobs j JOIN intents i ON i.job_id = j.id "
            "WHERE j.mined_hash IS NOT NULL GROUP BY j.id"
        ) as cur:
            members = {str(h): int(c) async for h, c in cur}
    finally:
        await db.close()
    hashes = list(members)
    receipts: list[dict[str, Any]] = []
    for start in range(0, len(hashes), SEND_CHUNK):
        chunk = hashes[start : start + SEND_CHUNK]
        receipts += await client.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
    used = {str(r["transactionHash"]).lower(): int(r["gasUsed"], 16) for r in receipts}
    per_session = sum(used.values()) / sum(members.values())
    return per_session, statistics.fmean(used.values()), len(hashes)


# -- report --------------------------------------------------------------------------------
def spread(values: list[float], fmt: str = ",.0f") -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}} to {max(values):{fmt}})"


def summary(results: list[RunResult]) -> str:
    by_mode = {m: [r for r in results if r.mode == m] for m in MODES}
    lines = [
        "| mode | intents/s to accepted | submit window s | steps | transactions "
        "| confirm after mining s | gas per session | gas per tx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, runs in by_mode.items():
        lines.append(
            f"| {mode} (max_batch_size={MODES[mode]}) | {spread([r.rate for r in runs])} "
            f"| {spread([r.submit_s for r in runs], '.2f')} "
            f"| {spread([float(r.steps) for r in runs])} "
            f"| {spread([float(r.transactions) for r in runs])} "
            f"| {spread([r.confirm_s for r in runs], '.2f')} "
            f"| {spread([r.gas_per_session for r in runs])} "
            f"| {spread([r.gas_per_tx for r in runs])} |"
        )
    single = statistics.median(r.gas_per_session for r in by_mode["singles"])
    batched = statistics.median(r.gas_per_session for r in by_mode["batched"])
    speedup = statistics.median(r.rate for r in by_mode["batched"]) / statistics.median(
        r.rate for r in by_mode["singles"]
    )
    lines += [
        "",
        f"gas per session batched / single: {batched / single:.1%} (target ≤ 40 %)",
        f"intents/s batched / singles: {speedup:.1f} times",
    ]
    return "\n".join(lines)


def profile_text(profiler: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def bench(args: argparse.Namespace) -> int:
    results: list[RunResult] = []
    extra = ["--gas-limit", str(GAS_LIMIT), "--accounts", str(3 + args.owners)]
    with Anvil(extra_args=extra) as anvil, tempfile.TemporaryDirectory() as tmp:
        chain = deploy(anvil, args.owners)
        async with ChainClient([chain.url], chain_id=CHAIN_ID) as client:
            await fund(client, chain, args.sessions * args.runs * len(MODES) * 2)
        salt = 1
        for run in range(args.runs):
            for mode in MODES:
                result = await run_mode(
                    chain, mode, args.sessions, salt, Path(tmp) / f"{mode}{run}.sqlite", None
                )
                salt += args.sessions
                results.append(result)
                print(
                    f"run {run + 1} {mode}: {result.sessions} intents submitted in "
                    f"{result.submit_s:.2f} s ({result.rate:,.0f}/s, {result.steps} steps, "
                    f"{result.transactions} transactions); confirmed {result.confirm_s:.2f} s "
                    f"after mining; gas/session {result.gas_per_session:,.0f}, "
                    f"gas/tx {result.gas_per_tx:,.0f}",
                    flush=True,
                )
        if args.profile:
            for mode in MODES:
                profiler = cProfile.Profile()
                result = await run_mode(
                    chain, mode, args.sessions, salt, Path(tmp) / f"{mode}.prof.sqlite", profiler
                )
                salt += args.sessions
                print(f"\n## profile: {mode}, submit window {result.submit_s:.2f} s under cProfile")
                print(profile_text(profiler, 15))
    print()
    print(
        f"{args.sessions:,} close intents per run, {args.runs} runs per mode, "
        f"{args.owners} owners; median (min to max)\n"
    )
    print(summary(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000, help="close intents per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per mode (median, spread)")
    parser.add_argument("--owners", type=int, default=4, help="session owners (round-robin)")
    parser.add_argument(
        "--profile", action="store_true", help="also profile one measured window per mode"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
