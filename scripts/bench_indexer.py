"""Backfill benchmark: index a cached seeded chain and compare with the node's raw rate.

    .venv/bin/python scripts/bench_indexer.py [--events 200000] [--runs 3] [--profile]
        [--backend sqlite|postgresql|both]

Seeds (or reuses) a chain with at least `--events` session events (scripts/seed_chain.py),
serves it from a fresh anvil, then per run:

1. index: a backfill into a new database (a SQLite file; with `--backend postgresql` a new
   database on a throwaway PostgreSQL server, or on `WARDEN_BENCH_POSTGRES`'s) from the
   factory's deployment block to the head, through the real `Indexer` (decode, filter,
   project, commit per range);
2. raw: `eth_getLogs` over exactly the block ranges the indexer used, as many in flight,
   parsed with orjson and discarded: what the node and the transport alone can do.

Prints events/s and blocks/s for both, the ratio, the median and spread over runs, and
the peak resident set of each backfill (run in a process of its own), and with
`--profile` the functions where the indexer spends its time.

Every run also prints a digest of what it indexed (every row of `events`, `sessions`,
`ignored_logs`, `blocks` and `checkpoint`, in key order, values as text): all runs must
agree, and `--expect-digest` fails the benchmark when they differ from a digest taken
with other code (e.g. before a change to the hot path) on the same chain. Never part of the test
suite: timings belong in BENCHMARKS.md, not in assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import hashlib
import io
import multiprocessing
import os
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import seed_chain  # noqa: E402

from chain import ChainClient  # noqa: E402
from chain.abi import topics_filter  # noqa: E402
from database import Database, open_database  # noqa: E402
from indexer import ChainSettings, Indexer, IndexerStore  # noqa: E402
from indexer.progress import Progress  # noqa: E402
from tests._postgres import ExternalPostgres, PostgresServer, unique_database_name  # noqa: E402

DEFAULTS = ChainSettings(confirmations=0)  # the first range and the logs per range aimed at


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


DIGESTED = {
    "events": "position", "sessions": "wallet", "ignored_logs": "position",
    "blocks": "number", "checkpoint": "id",
}  # fmt: skip


async def digest(db: Database, page: int = 5_000) -> str:
    """A hash of every indexed row, values as text so both stores give the same one. Read
    a page at a time (keyset order): the process's peak RSS is the backfill's, not that of
    the whole events table loaded at once (which added about 100 MB on the 200k chain)."""
    h = hashlib.sha256()
    for table, key in DIGESTED.items():
        h.update(table.encode())
        columns = await _columns(db, table)
        after: object = None
        while True:
            where = "" if after is None else f"WHERE {key} > ?"
            rows = await db.fetch(
                f"SELECT * FROM {table} {where} ORDER BY {key} LIMIT {page}",
                () if after is None else (after,),
            )
            for row in rows:
                h.update(orjson.dumps([None if v is None else str(v) for v in row]))
            if len(rows) < page:
                break
            after = rows[-1][columns.index(key)]
    return h.hexdigest()[:16]


async def _columns(db: Database, table: str) -> list[str]:
    if db.dialect == "sqlite":
        return [str(r[1]) for r in await db.fetch(f"PRAGMA table_info({table})")]
    rows = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


async def index(
    url: str, meta: seed_chain.SeedMeta, db_path: Path | str, sizing: Sizing
) -> Indexed:
    """Seconds to backfill the seeded chain, the log ranges the indexer used, the digest
    of what it stored, and the backfill phase's own events and seconds."""
    # decode_workers only when asked for: the same script then runs older code (A/B)
    extra: dict[str, Any] = (
        {"decode_workers": sizing.decode_workers} if sizing.decode_workers else {}
    )
    settings = ChainSettings(
        start_block=meta.start_block, confirmations=0, concurrency=sizing.concurrency,
        log_range=sizing.log_range, log_target=sizing.log_target, **extra,
    )  # fmt: skip
    db: Database = await open_database(db_path)
    try:
        store = IndexerStore(db)
        await store.setup()
        async with ChainClient([url]) as client:
            phase = BackfillPhase()
            indexer = Indexer(client, store, settings, factory=meta.factory, progress=phase)
            started, cpu_started = time.perf_counter(), time.process_time()
            await indexer.sync_to_head()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        events = int(await db.fetchval("SELECT COUNT(*) FROM events") or 0)
        if events < meta.session_events:
            raise SystemExit(f"indexed {events} events, the seeded chain has {meta.session_events}")
        ranges, tables = sorted(indexer.fetcher.ranges), await digest(db)
        workers_kb = getattr(indexer, "decode_worker_peak_kb", 0)  # (older code: none)
        return Indexed(elapsed, ranges, tables, phase.total_events, phase.seconds, workers_kb, cpu)
    finally:
        await db.close()


class BackfillPhase(Progress):
    """Progress that prints nothing and keeps the events and seconds of the backfill
    phase alone (the ranges below the reorg window: exactly those `raw_fetch` asks for),
    without the last `reorg_window` blocks, which the indexer follows block by block
    with their headers and logsBloom checks."""

    def __init__(self) -> None:
        super().__init__(io.StringIO(), interval=1e9, clock=time.perf_counter)
        self.seconds = 0.0
        self.total_events = 0

    def done(self) -> None:
        self.seconds += self.clock() - self.started
        self.total_events += self.events


@dataclass(frozen=True)
class Sizing:
    concurrency: int
    log_range: int
    log_target: int
    decode_workers: int = 0


@dataclass(frozen=True)
class Indexed:
    seconds: float  # the whole sync to the head
    ranges: list[tuple[int, int]]  # the backfill's eth_getLogs ranges
    digest: str
    backfill_events: int  # in those ranges
    backfill_seconds: float
    worker_peak_kb: int  # the largest decode worker's peak RSS (0: decoded in-process)
    cpu_seconds: float  # CPU time of the indexing process (every thread; no workers)


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _index_child(
    url: str, meta: seed_chain.SeedMeta, target: Path | str, sizing: Sizing
) -> tuple[Indexed, int]:
    return asyncio.run(index(url, meta, target, sizing)), _peak_kb()


def index_apart(
    url: str, meta: seed_chain.SeedMeta, target: Path | str, sizing: Sizing
) -> tuple[Indexed, int]:
    """`index` in a new process (spawned, not forked: nothing of this one's memory), with
    that process's peak resident set (VmHWM, KiB): what a backfill holds at its worst."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_index_child, url, meta, target, sizing).result()


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
    parser.add_argument(
        "--log-range", type=int, default=DEFAULTS.log_range,
        help="first eth_getLogs range in blocks (chain.log_range, default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--log-target", type=int, default=DEFAULTS.log_target,
        help="logs per range aimed at (chain.log_target, default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="sqlite",
        help="the store to index into (postgresql: a throwaway server, or $WARDEN_BENCH_POSTGRES)",
    )  # fmt: skip
    parser.add_argument(
        "--decode-workers", type=int, default=0,
        help="decode worker processes (chain.decode_workers, default %(default)s: in-process)",
    )  # fmt: skip
    parser.add_argument(
        "--expect-digest", metavar="HEX",
        help="fail unless every run indexes exactly these rows (a digest printed by a run)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    meta = seed_chain.ensure_seeded(events=args.events, sessions=args.sessions)
    blocks = meta.head_block - meta.start_block + 1
    events = meta.session_events
    raw_rates, index_rates, block_rates, peaks = [], [], [], []
    phase_rates: list[float] = []
    cpu_per_event: list[float] = []
    digests: set[str] = set()
    sizing = Sizing(args.concurrency, args.log_range, args.log_target, args.decode_workers)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    by_backend: dict[str, list[float]] = {}
    with (
        seed_chain.seeded_anvil(meta) as anvil,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as stack,
    ):
        server = None
        if "postgresql" in backends:
            url = os.environ.get("WARDEN_BENCH_POSTGRES")
            server = ExternalPostgres(url) if url else PostgresServer().start()
            stack.callback(server.stop)
        for backend in backends:
            for run in range(args.runs):
                target: Path | str = Path(tmp) / f"run{run}.sqlite"
                if backend == "postgresql":
                    assert server is not None
                    target = server.create_database(unique_database_name("bench"))
                done, peak_kb = index_apart(anvil.url, meta, target, sizing)
                idx_s, ranges, tables = done.seconds, done.ranges, done.digest
                phase = done.backfill_events / max(done.backfill_seconds, 1e-9)
                digests.add(tables)
                peaks.append(peak_kb / 1024)
                answers = [hi - lo + 1 for lo, hi in ranges]
                raw_s, raw_n = asyncio.run(raw_fetch(anvil.url, ranges, args.concurrency))
                raw_rates.append(raw_n / raw_s)
                by_backend.setdefault(backend, []).append(events / idx_s)
                if backend == backends[0]:
                    phase_rates.append(phase)
                    cpu_per_event.append(done.cpu_seconds / events * 1e6)
                    index_rates.append(events / idx_s)
                    block_rates.append(blocks / idx_s)
                print(
                    f"{backend} run {run + 1}: raw fetch {raw_n:,} logs in {raw_s:.2f}s "
                    f"({raw_n / raw_s:,.0f}/s); index {events:,} events in {idx_s:.2f}s "
                    f"({events / idx_s:,.0f} events/s, {blocks / idx_s:,.0f} blocks/s); "
                    f"ratio {(events / idx_s) / (raw_n / raw_s):.2f}; backfill phase alone "
                    f"{done.backfill_events:,} events in {done.backfill_seconds:.2f}s ({phase:,.0f}"
                    f"/s, ratio {phase / (raw_n / raw_s):.2f}); CPU {done.cpu_seconds:.2f}s "
                    f"({done.cpu_seconds / events * 1e6:.1f} us/event); peak RSS "
                    f"{peak_kb / 1024:,.0f} MB"
                    + (
                        f" (+ {done.worker_peak_kb / 1024:,.0f} MB per decode worker)"
                        if done.worker_peak_kb
                        else ""
                    )
                    + f"; {len(ranges):,} ranges of {min(answers):,} to "
                    f"{max(answers):,} blocks; digest {tables}",
                    flush=True,
                )
        if len(by_backend) == 2:
            lite, pg = (statistics.median(by_backend[b]) for b in ("sqlite", "postgresql"))
            print(
                f"\nbackfill events/s: SQLite {spread(by_backend['sqlite'])}, PostgreSQL "
                f"{spread(by_backend['postgresql'])}: PostgreSQL at {pg / lite:.2f}x SQLite "
                "(goal >= 0.8x)"
            )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(index(anvil.url, meta, Path(tmp) / "profile.sqlite", sizing))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            print(out.getvalue())
    if len(digests) != 1:
        print(f"\nFAILED: the runs indexed different rows (digests {sorted(digests)})")
        return 1
    (tables,) = digests
    if args.expect_digest and tables != args.expect_digest:
        print(f"\nFAILED: indexed rows digest {tables}, expected {args.expect_digest}")
        return 1
    ratio = statistics.median(index_rates) / statistics.median(raw_rates)
    print(
        f"\nseeded chain: {events:,} session events, {meta.sessions:,} sessions, "
        f"{blocks:,} blocks, {meta.spoofed_logs} spoofed logs\n"
        f"raw node fetch (getLogs + parse): {spread(raw_rates)} logs/s\n"
        f"indexer backfill:                 {spread(index_rates)} events/s, "
        f"{spread(block_rates)} blocks/s\n"
        f"ratio indexer/raw (medians): {ratio:.2f}\n"
        f"CPU of the indexing process per event (less sensitive to a busy machine): "
        f"{statistics.median(cpu_per_event):.1f} (min {min(cpu_per_event):.1f}, max "
        f"{max(cpu_per_event):.1f}) us\n"
        f"backfill phase alone (the same ranges as raw, without the followed reorg window): "
        f"{spread(phase_rates)} events/s, ratio to raw (medians) "
        f"{statistics.median(phase_rates) / statistics.median(raw_rates):.2f}\n"
        f"peak RSS of a backfill (its own process): {spread(peaks)} MB "
        f"(chain.log_range {args.log_range}, log_target {args.log_target}, concurrency "
        f"{args.concurrency}, decode_workers {args.decode_workers})\n"
        f"indexed rows digest: {tables}" + (" (as expected)" if args.expect_digest else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
