"""Benchmark of the prepare routes: the time a `POST /prepare/...` takes over real HTTP
against a real anvil, and how many node calls (JSON-RPC requests and calls) one costs.

    .venv/bin/python scripts/bench_prepare.py [--requests 200] [--runs 3]

Starts anvil, deploys the devnet stack, opens one session, serves the API with its
prepare routes on 127.0.0.1 and sends `--requests` sequential requests per route and run
(create with its approval, top-up with its approval, withdraw, close). Prints the header
(machine, load, versions), then per route the p50 and p99 of each run as the median with
its spread, and the node requests per API request. Nothing is sent on chain, so every
request sees the same state.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import aiohttp  # noqa: E402
from _report import header, spread  # noqa: E402
from aiohttp import web  # noqa: E402
from web3 import Web3  # noqa: E402
from web3.logs import DISCARD  # noqa: E402

from chain import ChainClient  # noqa: E402
from contracts import load_artifact  # noqa: E402
from indexer import ChainSettings, Indexer, IndexerStore, open_database  # noqa: E402
from warden.app.api import LiveState, Preparation, create_app  # noqa: E402
from warden.app.api.app import CONTEXT  # noqa: E402
from warden.devnet import Anvil, deploy_stack, free_port  # noqa: E402

TOKEN = 10**18


def _session(w3: Web3, dep: Any, owner: str) -> str:
    token = w3.eth.contract(address=dep.token, abi=load_artifact("MockToken").abi)
    factory = w3.eth.contract(address=dep.factory, abi=load_artifact("SessionWalletFactory").abi)
    token.functions.mint(owner, 10**9 * TOKEN).transact({"from": dep.deployer})
    token.functions.approve(dep.factory, 10**40).transact({"from": owner})
    expiry = w3.eth.get_block("latest")["timestamp"] + 86_400
    params = (
        dep.operator,
        dep.token,
        1_000 * TOKEN,
        expiry,
        500 * TOKEN,
        0,
        0,
        "",
        [dep.game],
        100,
    )
    tx = factory.functions.createSession(params, bytes(32)).transact({"from": owner})
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    wallet: str = factory.events.SessionCreated().process_receipt(receipt, errors=DISCARD)[0][
        "args"
    ]["wallet"]
    token.functions.approve(dep.factory, 0).transact({"from": owner})  # create: approval step
    return wallet


async def _index(url: str, db: Path, factory: str) -> None:
    database = await open_database(db)
    try:
        store = IndexerStore(database)
        await store.setup()
        async with ChainClient([url]) as client:
            settings = ChainSettings(factory=factory, confirmations=0, reorg_window=16)
            await Indexer(client, store, settings, factory=factory).sync_to_head()
    finally:
        await database.close()


async def main(requests: int, runs: int) -> None:
    print(header())
    with Anvil() as anvil, tempfile.TemporaryDirectory() as tmp:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        accounts = list(w3.eth.accounts)
        dep = deploy_stack(w3, deployer=accounts[0], operator=accounts[2], treasury=accounts[4])
        owner = accounts[1]
        wallet = _session(w3, dep, owner)
        db = Path(tmp) / "w.sqlite"
        await _index(anvil.url, db, dep.factory)
        now = w3.eth.get_block("latest")["timestamp"]
        bodies: dict[str, dict[str, Any]] = {
            "create": {"owner": owner, "operator": dep.operator, "token": dep.token,
                       "deposit": str(10 * TOKEN), "expiry": now + 3600, "budget": "1",
                       "targets": [dep.game], "max_fee_bps": 100},
            "top-up": {"owner": owner, "wallet": wallet, "amount": str(TOKEN), "max_fee_bps": 100},
            "withdraw": {"owner": owner, "wallet": wallet, "amount": str(TOKEN)},
            "close": {"owner": owner, "wallet": wallet},
        }  # fmt: skip
        app = create_app(db, LiveState(), prepare=Preparation((anvil.url,), dep.factory, 31337))
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            stats = app[CONTEXT].prepare.client.stats
            print(f"\n{requests} sequential requests per route and run, {runs} runs\n")
            print("| route | steps | p50 | p99 | node HTTP requests / calls per request |")
            print("|---|---|---|---|---|")
            async with aiohttp.ClientSession() as http:
                for name, body in bodies.items():
                    p50s, p99s = [], []
                    before = (stats.requests, stats.calls)
                    steps = 0
                    for _ in range(runs):
                        times = []
                        for _ in range(requests):
                            started = time.perf_counter()
                            url = f"http://127.0.0.1:{port}/prepare/{name}"
                            async with http.post(url, json=body) as r:
                                answer = await r.json()
                                assert r.status == 200, answer
                            times.append((time.perf_counter() - started) * 1000)
                            steps = len(answer["transactions"])
                        times.sort()
                        p50s.append(statistics.median(times))
                        p99s.append(times[min(len(times) - 1, int(len(times) * 0.99))])
                    total = runs * requests
                    per = ((stats.requests - before[0]) / total, (stats.calls - before[1]) / total)
                    row = [name, str(steps), spread(p50s, ".1f", " ms"),
                           spread(p99s, ".1f", " ms"), f"{per[0]:.0f} / {per[1]:.0f}"]  # fmt: skip
                    print("| " + " | ".join(row) + " |")
        finally:
            await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per route and run")
    parser.add_argument("--runs", type=int, default=3, help="runs per route")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.runs))
