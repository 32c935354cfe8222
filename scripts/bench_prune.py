"""Benchmark: notification retention (`notify.prune`) on SQLite — how long one pruning
batch holds the writer, how long a pass takes, and what it does to the loop's commits.

    .venv/bin/python scripts/bench_prune.py [--events 100000] [--batch 1000] [--runs 3]

Each run fills a fresh SQLite file (WAL) with `--events` events, each owed to one
channel (its delivery row), 95 % of them delivered 60 days ago and 5 % still pending,
then prunes with the shipped retention (30 / 7 days) and `--batch` rows per batch on a
connection of its own, as the daemon does — while a writer on another connection (the
loop) appends one event every 5 ms and times each commit. The same writer runs alone
first, for the baseline. Prints markdown for BENCHMARKS.md: medians and spread of
`--runs` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, spread  # noqa: E402

from database import Database, Queries, open_database  # noqa: E402
from notify import (  # noqa: E402
    EventLog,
    NotifyEvent,
    NotifySettings,
    Pruner,
    RetentionSettings,
    Route,
    Router,
    Severity,
)

DAY_MS = 86_400_000
NOW = 1_800_000_000_000
OLD = NOW - 60 * DAY_MS


def event(n: int, at_ms: int) -> NotifyEvent:
    return NotifyEvent(
        id=f"bench:{n}", kind="session.topped_up", severity=Severity.INFO, at_ms=at_ms,
        data={"via": "deposit", "amount": str(10**21 + n), "balance": str(10**22 + n)},
        wallet=f"0x{n % 5_000:040x}", owner="0x" + "11" * 20, policy="merchant",
    )  # fmt: skip


async def fill(path: Path, events: int) -> None:
    db = await open_database(path)
    try:
        cfg = NotifySettings.model_validate(
            {"channels": [{"name": "hook", "type": "command", "command": ["/bin/true"]}]}
        )
        log = EventLog(db, clock_ms=lambda: OLD)
        await log.setup()
        router = Router(db, [Route("hook", cfg.channels[0])], clock_ms=lambda: OLD)
        await router.start()
        for start in range(0, events, 5_000):
            chunk = [event(n, OLD) for n in range(start, min(events, start + 5_000))]
            async with db.transaction() as tx:
                await log.append(tx, chunk)
        await router.drain()
        async with db.transaction() as tx:  # 95 % delivered 60 days ago, 5 % pending
            await tx.execute(
                "UPDATE notify_deliveries SET state = 'delivered', delivered_ms = ? "
                "WHERE id % 20 <> 0",
                (OLD + 1,),
            )
    finally:
        await db.close()


async def writer(db: Database, log: EventLog, stop: asyncio.Event, base: int) -> list[float]:
    """The loop: one event every 5 ms, each in a transaction of its own; commit times."""
    times: list[float] = []
    n = base
    while not stop.is_set():
        t = time.perf_counter()
        async with db.transaction() as tx:
            await log.append(tx, [event(n, NOW)])
        times.append((time.perf_counter() - t) * 1000)
        n += 1
        await asyncio.sleep(0.005)
    return times


@contextlib.asynccontextmanager
async def timed_transactions(db: Database, into: list[float]) -> AsyncIterator[None]:
    real = db.transaction

    @contextlib.asynccontextmanager
    async def transaction() -> AsyncIterator[Queries]:
        t = time.perf_counter()
        async with real() as tx:
            yield tx
        into.append((time.perf_counter() - t) * 1000)

    db.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        db.transaction = real  # type: ignore[method-assign]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_run(events: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        await fill(path, events)
        loop_db, prune_db = await open_database(path), await open_database(path)
        try:
            log = EventLog(loop_db, clock_ms=lambda: NOW)
            stop = asyncio.Event()
            task = asyncio.create_task(writer(loop_db, log, stop, 10_000_000))
            await asyncio.sleep(1.0)
            stop.set()
            alone = await task
            batches: list[float] = []
            pruner = Pruner(prune_db, RetentionSettings(batch=batch), clock_ms=lambda: NOW)
            stop = asyncio.Event()
            task = asyncio.create_task(writer(loop_db, log, stop, 20_000_000))
            t = time.perf_counter()
            async with timed_transactions(prune_db, batches):
                report = await pruner.prune()
            took = time.perf_counter() - t
            stop.set()
            beside = await task
            left = int(await loop_db.fetchval("SELECT COUNT(*) FROM notify_events"))
        finally:
            await loop_db.close()
            await prune_db.close()
    assert report.events >= events * 0.95 - 1, report
    return {
        "pass_s": took, "rows_per_s": (report.events + report.deliveries) / took,
        "batch_p50": statistics.median(batches), "batch_max": max(batches),
        "commit_alone_p50": statistics.median(alone), "commit_alone_p99": pct(alone, 0.99),
        "commit_beside_p50": statistics.median(beside), "commit_beside_p99": pct(beside, 0.99),
        "commit_beside_max": max(beside), "left": left, "batches": report.batches,
    }  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [await one_run(args.events, args.batch) for _ in range(args.runs)]

    def col(key: str) -> list[float]:
        return [r[key] for r in runs]

    print(header())
    print()
    print(f"{args.events:,} events, 95 % delivered 60 days ago, batch {args.batch:,} "
          f"({int(runs[0]['batches'])} batches; {int(runs[0]['left']):,} events left)")  # fmt: skip
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| pass (deliveries, then events) | {spread(col('pass_s'), '.1f', ' s')} |")
    print(f"| rows pruned per second | {spread(col('rows_per_s'), ',.0f', '')} |")
    print(f"| one batch's transaction, p50 | {spread(col('batch_p50'), '.1f', ' ms')} |")
    print(f"| one batch's transaction, max | {spread(col('batch_max'), '.1f', ' ms')} |")
    print(f"| loop commit alone, p50 / p99 | {spread(col('commit_alone_p50'), '.2f', ' ms')} / "
          f"{spread(col('commit_alone_p99'), '.2f', ' ms')} |")  # fmt: skip
    print(f"| loop commit while pruning, p50 / p99 | "
          f"{spread(col('commit_beside_p50'), '.2f', ' ms')} / "
          f"{spread(col('commit_beside_p99'), '.2f', ' ms')} |")  # fmt: skip
    print(f"| loop commit while pruning, max | {spread(col('commit_beside_max'), '.1f', ' ms')} |")


if __name__ == "__main__":
    asyncio.run(main())
