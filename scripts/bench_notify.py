"""Benchmark: event → webhook POST latency on loopback, and delivery throughput.

    .venv/bin/python scripts/bench_notify.py [--events 300] [--runs 3] [--burst 5000]

Latency: one event at a time is committed to the event log (in one transaction, as the
indexer's commit does) and the delivery task is woken as the daemon wakes it, routes it
to the channel and sends it; the time is from just before that commit to the moment a
real aiohttp receiver on 127.0.0.1 has the signed POST in hand. Throughput: `--burst` events
committed at once (as a storm's commits do), the time until the receiver has them all.
Overhead: the indexer's own commits of `--commits` session creations, with and without
the event log written inside them (what notifications cost the loop; routing to the
channels and delivery run beside it, `notify.routing`).
SQLite (WAL), the shipped defaults (4 in flight per channel). Prints markdown for
BENCHMARKS.md: median and spread of `--runs` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, spread  # noqa: E402
from aiohttp import web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402

from database import open_database  # noqa: E402
from indexer import Batch, Event, IndexerStore  # noqa: E402
from indexer.projection import apply_all  # noqa: E402
from indexer.store import BlockRef  # noqa: E402
from notify import (  # noqa: E402
    Deliverer,
    EventLog,
    HttpPoster,
    NotifyEvent,
    NotifySettings,
    Severity,
)

SECRET = "bench-secret-0123456789abcdef0123"


class Sink:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}
        self.count = asyncio.Event()
        self.want = 0

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers["X-Warden-Event-Id"]
        self.arrived.setdefault(event_id, time.perf_counter())
        waiter = self.waiters.pop(event_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.want and len(self.arrived) >= self.want:
            self.count.set()
        return web.Response(status=204)


def event(n: int, run: int) -> NotifyEvent:
    wallet = "0x" + f"{n % 500:040x}"
    return NotifyEvent(
        id=f"session.closed:{run}:{n}", kind="session.closed", severity=Severity.INFO,
        at_ms=time.time_ns() // 1_000_000, wallet=wallet, owner=wallet, policy="merchant",
        position=(run << 40) | n,
        data={"reason": "expired", "by": wallet, "refund": str(10**21 + n), "balance": "0"},
    )  # fmt: skip


async def one_run(run: int, events: int, burst: int) -> tuple[list[float], float]:
    sink = Sink()
    app = web.Application()
    app.router.add_post("/hook", sink.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    cfg = NotifySettings.model_validate({"channels": [{
        "name": "bench", "type": "webhook", "url": str(server.make_url("/hook")),
        "secret": SECRET,
    }]})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        db = await open_database(path)
        log = EventLog(db)
        await log.setup()
        own = await open_database(path)
        stop = asyncio.Event()
        try:
            async with HttpPoster() as poster:
                deliverer = Deliverer(own, cfg, poster, rng=random.Random(run))
                await deliverer.start()  # before the first event: the channel is owed it
                task = asyncio.create_task(deliverer.run(stop))
                await asyncio.sleep(0.2)
                latencies = []
                for n in range(events):
                    e = event(n, run)
                    arrived = asyncio.get_running_loop().create_future()
                    sink.waiters[e.id] = arrived
                    started = time.perf_counter()
                    await log.append_now([e])
                    deliverer.wake()
                    await asyncio.wait_for(arrived, 60)
                    latencies.append((sink.arrived[e.id] - started) * 1000)
                sink.want = events + burst
                many = [event(events + n, run) for n in range(burst)]
                started = time.perf_counter()
                for i in range(0, burst, 1000):  # commits of 1,000 events, as a storm's
                    await log.append_now(many[i : i + 1000])
                    deliverer.wake()
                await asyncio.wait_for(sink.count.wait(), 600)
                elapsed = time.perf_counter() - started
                stop.set()
                await task
        finally:
            await own.close()
            await db.close()
            await server.close()
    return latencies, burst / elapsed


def _created(n: int) -> Event:
    wallet = "0x" + f"{n + 1:040x}"
    owner = "0x" + "11" * 20
    return Event(
        position=((n // 100 + 1) << 32) | (n % 100), block_number=n // 100 + 1,
        block_hash="0x" + f"{n // 100 + 1:064x}", tx_hash="0x" + f"{n:064x}", tx_index=0,
        log_index=n % 100, timestamp=1_000, address=owner, wallet=wallet,
        name="SessionCreated", seq=None,
        args=dict(wallet=wallet, owner=owner, operator=owner, token=owner,
                  deposit=10**21, fee=10**18, expiry=2**40, budget=10**21, stopLoss=0,
                  takeProfit=0, policy="merchant", targets=[owner],
                  salt="0x" + "00" * 32, balanceAfter=10**21),
    )  # fmt: skip


async def commit_cost(events: int, logged: bool) -> float:
    """Seconds the indexer's commits of `events` creations take, with or without the
    event log written inside them (the channels' rows are routed outside them)."""
    batches = []
    for start in range(0, events, 1000):
        evs = [_created(n) for n in range(start, min(events, start + 1000))]
        blocks = sorted({(e.block_number, e.block_hash) for e in evs})
        refs = [BlockRef(n, h, "0x" + "00" * 32, 1_000) for n, h in blocks]
        batches.append(Batch(refs, evs, [], [apply_all(None, [e]) for e in evs], refs[-1]))
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(Path(tmp) / "c.sqlite")
        try:
            log = EventLog(db)
            await log.setup()
            store = IndexerStore(db, hooks=log if logged else None)
            await store.setup()
            started = time.perf_counter()
            for batch in batches:
                await store.commit(batch, 64)
            return time.perf_counter() - started
        finally:
            await db.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=300, help="events timed one at a time per run")
    p.add_argument("--burst", type=int, default=5000, help="events committed at once per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--commits",
        type=int,
        default=20000,
        help="session creations committed by the indexer, with and without the log",
    )
    args = p.parse_args()
    print(header())
    p50s, p99s, rates = [], [], []
    for run in range(args.runs):
        latencies, rate = await one_run(run, args.events, args.burst)
        p50s.append(statistics.median(latencies))
        p99s.append(pct(latencies, 0.99))
        rates.append(rate)
        print(f"run {run + 1}: p50 {p50s[-1]:.1f} ms, p99 {p99s[-1]:.1f} ms, "
              f"burst {rate:.0f} events/s", file=sys.stderr)  # fmt: skip
    plain, logged = [], []
    for _ in range(args.runs):
        plain.append(await commit_cost(args.commits, False))
        logged.append(await commit_cost(args.commits, True))
    overhead = [100 * (b - a) / a for a, b in zip(plain, logged, strict=True)]
    print()
    print("| figure | value |")
    print("|---|---|")
    print(f"| event → webhook POST, p50 ({args.events} events one at a time) | "
          f"{spread(p50s, '.1f', ' ms')} |")  # fmt: skip
    print(f"| event → webhook POST, p99 | {spread(p99s, '.1f', ' ms')} |")
    print(f"| delivery throughput, {args.burst} events committed at once | "
          f"{spread(rates, '.0f', ' events/s')} |")  # fmt: skip
    print(f"| indexer commits of {args.commits} creations, without the log | "
          f"{spread(plain, '.2f', ' s')} |")  # fmt: skip
    print(
        f"| the same with the event log and 2 channels' deliveries written inside | "
        f"{spread(logged, '.2f', ' s')} (overhead {spread(overhead, '.0f', ' %')}) |"
    )


if __name__ == "__main__":
    asyncio.run(main())
