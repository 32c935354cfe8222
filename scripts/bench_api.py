"""The HTTP API under load while the daemon follows a chain with activity.

    .venv/bin/python scripts/bench_api.py [--clients 200] [--seconds 30] [--runs 3]
                                          [--profile FILE]

Each run starts the real daemon as `make run` does (`warden run` on a devnet it starts:
anvil with 1 s blocks, the contracts, the activity generator opening and moving sessions,
the shipped rules, the devnet operator's key) on a new SQLite file and a free port, waits
until `/ready`, lets the activity open sessions for `--warmup` seconds, then runs
`--clients` concurrent clients (aiohttp, one connection each, loopback) for `--seconds`,
each asking one request after another (or, with `--rate R`, one every 1/R s, on time
however long the last one took: the way dashboards poll) from a fixed mix:

    30 % GET /status            30 % GET /sessions?limit=20 (a random owner's, or all)
    20 % GET /sessions/{wallet} 20 % GET /intents?limit=20

Figures: per run the latency p50 / p99 / max (nearest rank) of every answered request,
requests/s, non-200 answers, and the indexing lag (chain head - indexed block, from a
separate client asking /status every 0.5 s) during the load and for the same time before
it (the daemon's own lag when the API is idle). Printed as the median and spread over
runs. The load generator shares the machine's cores with the daemon and anvil, as a
co-located client would: its own CPU time is printed too. `--profile FILE` runs the
daemon under cProfile (`python -m cProfile -o FILE`) for one run.

Never part of the test suite: timings belong in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, percentile, spread  # noqa: E402

from warden.devnet import free_port  # noqa: E402

DEVNET_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)  # ms
    errors: dict[str, int] = field(default_factory=dict)
    lag_idle: list[int] = field(default_factory=list)
    lag_loaded: list[int] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu: float = 0.0  # this process's CPU seconds during the load


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as r:
        return await r.json()


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited with {proc.returncode}")
            try:
                async with http.get(f"{base}/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("the daemon was not ready in time")


async def lag_sampler(base: str, into: list[int], stop: asyncio.Event) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            try:
                status = await get_json(http, f"{base}/status")
                if status["chain_head"] is not None and status["indexed_block"] is not None:
                    into.append(int(status["chain_head"]) - int(status["indexed_block"]))
            except (aiohttp.ClientError, KeyError, ValueError):
                pass
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


async def client(
    base: str, wallets: list[str], owners: list[str], until: float, load: Load, rng: random.Random,
    rate: float | None,
) -> None:  # fmt: skip
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as http:
        if rate:  # clients start spread over one period, not all at once
            await asyncio.sleep(rng.uniform(0, 1 / rate))
        while time.monotonic() < until:
            due = time.monotonic() + 1 / rate if rate else 0.0
            pick = rng.random()
            if pick < 0.3:
                path = "/status"
            elif pick < 0.6:
                path = "/sessions?limit=20"
                if owners and rng.random() < 0.5:
                    path += f"&owner={rng.choice(owners)}"
            elif pick < 0.8 and wallets:
                path = f"/sessions/{rng.choice(wallets)}"
            else:
                path = "/intents?limit=20"
            started = time.perf_counter()
            try:
                async with http.get(base + path) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError as exc:
                load.errors[type(exc).__name__] = load.errors.get(type(exc).__name__, 0) + 1
                continue
            if status != 200:
                load.errors[str(status)] = load.errors.get(str(status), 0) + 1
                continue
            load.latencies.append((time.perf_counter() - started) * 1000)
            if rate:  # the next request at its time, however long this one took
                await asyncio.sleep(max(0.0, due - time.monotonic()))


async def measure(base: str, clients: int, seconds: float, rate: float | None) -> Load:
    load = Load()
    async with aiohttp.ClientSession() as http:
        page = await get_json(http, f"{base}/sessions?limit=200")
    wallets = [s["wallet"] for s in page["items"]]
    owners = sorted({s["owner"] for s in page["items"]})
    stop = asyncio.Event()
    idle = asyncio.create_task(lag_sampler(base, load.lag_idle, stop))
    await asyncio.sleep(seconds)  # the daemon's own lag with the API idle, for comparison
    stop.set()
    await idle
    stop = asyncio.Event()
    sampler = asyncio.create_task(lag_sampler(base, load.lag_loaded, stop))
    rng = random.Random(1)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(
        *(client(base, wallets, owners, until, load, rng, rate) for _ in range(clients))
    )
    load.seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    load.client_cpu = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    stop.set()
    await sampler
    return load


def run_once(args: argparse.Namespace, profile: str | None) -> Load:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        port = free_port()
        python = [sys.executable] + (["-m", "cProfile", "-o", profile] if profile else [])
        # `make run`'s config as it is, on a database and a port of our own, JSON logs
        config = ROOT / "config/devnet.yaml"
        command = [*python, "-m", "warden", "run", "--config", str(config)]
        log = (Path(tmp) / "daemon.log").open("wb")
        env = {**os.environ, "WARDEN_DEVNET_KEY": DEVNET_KEY, "WARDEN_LOGGING__JSON": "true",
               "WARDEN_DATABASE": str(Path(tmp) / "warden.sqlite"),
               "WARDEN_API__PORT": str(port)}  # fmt: skip
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(wait_ready(base, proc))
            time.sleep(args.warmup)  # the activity opens sessions meanwhile
            return asyncio.run(measure(base, args.clients, args.seconds, args.rate))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="load per run (s)")
    parser.add_argument("--warmup", type=float, default=20.0, help="activity before (s)")
    parser.add_argument(
        "--rate", type=float, default=None,
        help="requests/s per client (each at its time, however long the last took); "
        "default: each client asks again as soon as it is answered (a closed loop)",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="runs (median and spread)")
    parser.add_argument("--profile", help="cProfile the daemon of the first run into FILE")
    args = parser.parse_args(argv)
    print(header(), flush=True)
    results = []
    for number in range(1, args.runs + 1):
        load = run_once(args, args.profile if number == 1 else None)
        results.append(load)
        lat = load.latencies
        print(
            f"run {number}: {len(lat):,} answers in {load.seconds:.1f} s "
            f"({len(lat) / load.seconds:,.0f}/s): p50 {percentile(lat, 50):.1f} ms, p99 "
            f"{percentile(lat, 99):.1f} ms, max {max(lat):.1f} ms; failed {load.errors or 0}; "
            f"lag idle max {max(load.lag_idle, default=0)}, under load max "
            f"{max(load.lag_loaded, default=0)} blocks (median "
            f"{percentile(load.lag_loaded, 50) if load.lag_loaded else 0}); load generator CPU "
            f"{load.client_cpu / load.seconds * 100:.0f} % of a core",
            flush=True,
        )
    print(
        f"\nHTTP API, {args.clients} concurrent clients for {args.seconds:g} s "
        f"({f'{args.rate:g} requests/s each' if args.rate else 'closed loop'}), the daemon "
        "following a devnet with activity (1 s blocks):"
    )
    for name, p in (("p50", 50), ("p99", 99)):
        values = [percentile(r.latencies, p) for r in results]
        print(f"  {name}: {spread(values, '.1f', ' ms')}")
    rates = [len(r.latencies) / r.seconds for r in results]
    print(f"  requests/s: {spread(rates, ',.0f', '')}")
    lags = [float(max(r.lag_loaded, default=0)) for r in results]
    print(f"  indexing lag under load, max: {spread(lags, '.0f', ' blocks')}")
    print(json.dumps({"clients": args.clients, "seconds": args.seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
