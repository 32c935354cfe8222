"""Takeover time: from a kill -9 of the leader to the first close broadcast by the new one,
with two real `warden run` replicas on one PostgreSQL database (docs/deployment.md).

    .venv/bin/python scripts/bench_takeover.py [--takeovers 20] [--ttl 2] [--margin 0.6]
                                               [--no-activity] [--seed 1]

Setup (not measured): a throwaway PostgreSQL server (tests/_postgres.py, the pinned
binaries), an anvil of its own with the stack deployed, two replicas (tests/_replicas.py:
the same relayer key, `leadership.ttl`/`margin` as given, poll interval 0.2 s, zero
confirmations, the shipped config/rules, each replica's node behind a proxy that records
every broadcast with the wall-clock time it left the process) and, unless
`--no-activity`, the chaos workload moving sessions in the background.

One takeover: a probe session is opened (stop-loss 200 of 1,000) and the leader indexes
it; **t0** is just before `kill -9` of the leader; the owner's `withdraw(850)` (balance
150, below the stop-loss) follows at once; **t1** is when the standby's first broadcast
naming the probe wallet reached its node proxy. Reported per takeover: t1 - t0, and the
part of it until the lease's epoch moved (polled from the database: up to ~0.1 s late). The
killed replica is restarted (the supervisor's part) and must stand by before the next
takeover. At the end the oracle of the chaos tests runs (no event lost, nothing doubled,
nothing due left open), so the figures come from a run that was also correct.

Expected shape: the lease expires `ttl` after the last renewal (renewals every ttl/3, so
the kill falls 0 to ttl/3 after one) and the standby notices at its next try (every
ttl/3): the epoch moves ttl - ttl/3 to ttl + ttl/3 after the kill, then the new leader's
first step (catch up, evaluate every open session, send).

Never part of the test suite: timings belong in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, percentile  # noqa: E402
from hexbytes import HexBytes  # noqa: E402

from tests._postgres import PostgresServer  # noqa: E402
from tests._replicas import Probe, closes_of, cluster, verdict, wait_until  # noqa: E402
from tests.chaos._daemon import Activity, workload, world  # noqa: E402
from tests.chaos.conftest import ScenarioResult  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takeovers", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--margin", type=float, default=0.6)
    parser.add_argument("--no-activity", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(header())
    print(
        f"takeovers {args.takeovers}, leadership.ttl {args.ttl:g} s, margin {args.margin:g} s, "
        f"activity {'off' if args.no_activity else 'on'}"
    )
    lease = {"ttl": args.ttl, "margin": args.margin}
    guard = 2 * args.ttl + 20  # a hang guard per takeover
    to_close: list[float] = []
    to_epoch: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp,
        PostgresServer() as server,
        world() as w,
        cluster(w, server.create_database("bench"), Path(tmp)) as c,
    ):
        a, b = c.add("a", **lease), c.add("b", **lease)
        a.start()
        wait_until(lambda: c.lease()[0] == "a", "a leads", guard)
        b.start()
        wait_until(lambda: b.role() == "standby", "b stands by", guard)
        activity = Activity(workload(w, args.seed))
        probe = Probe(w, activity)
        if not args.no_activity:
            activity.start()
        try:
            for i in range(args.takeovers):
                leader = next(r for r in (a, b) if r.name == c.lease()[0])
                standby = b if leader is a else a
                wallet = probe.make()
                wait_until(lambda x=wallet: _indexed(c.dsn, x), "the probe indexed", guard)  # type: ignore[misc]
                epoch = c.lease()[1]
                t0 = time.time()
                leader.kill()
                probe.trigger(wallet)
                moved = wait_until(
                    lambda e=epoch: time.time() if c.lease()[1] > e else None,  # type: ignore[misc]
                    "a new epoch",
                    guard,
                )
                sent = wait_until(
                    lambda r=standby, x=wallet, t=t0: closes_of(r.node, x, t),  # type: ignore[misc]
                    "the new leader's close",
                    guard,
                )
                to_epoch.append(moved - t0)
                to_close.append(sent[0].at - t0)
                print(
                    f"takeover {i + 1:>3}: {leader.name} -> {standby.name}, "
                    f"epoch moved after {to_epoch[-1]:.2f} s, first close after "
                    f"{to_close[-1]:.2f} s",
                    flush=True,
                )
                leader.start()
                wait_until(lambda r=leader: r.role() == "standby", "back as standby", guard)  # type: ignore[misc]
        finally:
            activity.stop()
        foreign = {
            HexBytes(r["transactionHash"]).to_0x_hex().lower()
            for _, r in activity.workload.receipts
        }
        result = ScenarioResult("takeover bench")
        asyncio.run(verdict(c, result, foreign=foreign))
    print()
    for name, values in (("kill -> new epoch", to_epoch), ("kill -> first close", to_close)):
        print(
            f"{name}: p50 {statistics.median(values):.2f} s, p90 {percentile(values, 90):.2f} s, "
            f"max {max(values):.2f} s, min {min(values):.2f} s ({len(values)} takeovers)"
        )
    print(f"oracle: {'ok' if not result.failures else result.failures[:5]}; {result.line()}")
    return 0 if not result.failures else 1


def _indexed(dsn: str, wallet: str) -> bool:
    from tests._db import rows

    return bool(rows(dsn, "SELECT 1 FROM sessions WHERE wallet = ?", wallet))


if __name__ == "__main__":
    sys.exit(main())
