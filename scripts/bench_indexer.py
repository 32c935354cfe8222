"""Backfill benchmark: index a cached seeded chain and compare with the node's raw rate.

    .venv/bin/python scripts/bench_indexer.py [--events 200000] [--runs 3] [--profile]

Seeds (or reuses) a chain with at least `--events` session events (scripts/seed_chain.py),
serves it from a fresh anvil, then per run:

1. index: a backfill into a new SQLite file from the factory's deployment block to the
   head, through the real `Indexer` (decode, filter, project, commit per range);
2. raw: `eth_getLogs` over exactly the block ranges the indexer used, as many in flight,
   parsed with orjson and discarded: what the node and the transport alone can do.

Prints events/s and blocks/s for both, the ratio, the median and spread over runs, and
with `--profile` the functions where the indexer spends its time. Never part of the test
suite: timings belong in BENCHMARKS.md, not in assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import seed_chain  # noqa: E402

from chain import ChainClient  # noqa: E402
from chain.abi import topics_filter  # noqa: E402
from indexer import ChainSettings, Indexer, IndexerStore, open_database  # noqa: E402

RANGE = 2_000  # the first range; the indexer adapts it


async def raw_fetch(url: str, ranges: list[tuple[int, int]], concurrency: int) -> tuple[float, int]:
    """Seconds to fetch and parse every matching log of these ranges, and how many."""
    topics = topics_filter()
    count = 0
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as http:

        async def one(a: int, b: int) -> int:
            query = {"fromBlock": hex(a), "toBlock": hex(b), "topics": [topics]}
            body = orjson.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs", "params": [query]}
            )
            headers = {"Content-Type": "application/json"}
            async with sem, http.post(url, data=body, headers=headers) as r:
                return len(orjson.loads(await r.read())["result"])

        started = time.perf_counter()
        for n in await asyncio.gather(*(one(a, b) for a, b in ranges)):
            count += n
        return time.perf_counter() - started, count


async def index(
    url: str, meta: seed_chain.SeedMeta, db_path: Path, concurrency: int
) -> tuple[float, list[tuple[int, int]]]:
    """Seconds to backfill the seeded chain, and the log ranges the indexer used."""
    settings = ChainSettings(
        start_block=meta.start_block, confirmations=0, concurrency=concurrency, log_range=RANGE
    )
    db = await open_database(db_path)
    try:
        store = IndexerStore(db)
        await store.setup()
        async with ChainClient([url]) as client:
            indexer = Indexer(client, store, settings, factory=meta.factory)
            started = time.perf_counter()
            await indexer.sync_to_head()
            elapsed = time.perf_counter() - started
        async with db.execute("SELECT COUNT(*) FROM events") as cur:
            row = await cur.fetchone()
        events = int(row[0]) if row else 0
        if events < meta.session_events:
            raise SystemExit(f"indexed {events} events, the seeded chain has {meta.session_events}")
        return elapsed, sorted(indexer.fetcher.ranges)
    finally:
        await db.close()


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="session events to seed")
    parser.add_argument("--sessions", type=int, default=5_000, help="sessions to seed")
    parser.add_argument("--runs", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--concurrency", type=int, default=4, help="ranges in flight")
    parser.add_argument("--profile", action="store_true", help="profile one indexing run")
    args = parser.parse_args(argv)

    meta = seed_chain.ensure_seeded(events=args.events, sessions=args.sessions)
    blocks = meta.head_block - meta.start_block + 1
    events = meta.session_events
    raw_rates, index_rates, block_rates = [], [], []
    with seed_chain.seeded_anvil(meta) as anvil, tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            db_path = Path(tmp) / f"run{run}.sqlite"
            idx_s, ranges = asyncio.run(index(anvil.url, meta, db_path, args.concurrency))
            raw_s, raw_n = asyncio.run(raw_fetch(anvil.url, ranges, args.concurrency))
            raw_rates.append(raw_n / raw_s)
            index_rates.append(events / idx_s)
            block_rates.append(blocks / idx_s)
            print(
                f"run {run + 1}: raw fetch {raw_n:,} logs in {raw_s:.2f}s "
                f"({raw_n / raw_s:,.0f}/s); "
                f"index {events:,} events in {idx_s:.2f}s ({events / idx_s:,.0f} events/s, "
                f"{blocks / idx_s:,.0f} blocks/s); ratio {(events / idx_s) / (raw_n / raw_s):.2f}",
                flush=True,
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(index(anvil.url, meta, Path(tmp) / "profile.sqlite", args.concurrency))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            print(out.getvalue())
    ratio = statistics.median(index_rates) / statistics.median(raw_rates)
    print(
        f"\nseeded chain: {events:,} session events, {meta.sessions:,} sessions, "
        f"{blocks:,} blocks, {meta.spoofed_logs} spoofed logs\n"
        f"raw node fetch (getLogs + parse): {spread(raw_rates)} logs/s\n"
        f"indexer backfill:                 {spread(index_rates)} events/s, "
        f"{spread(block_rates)} blocks/s\n"
        f"ratio indexer/raw (medians): {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
