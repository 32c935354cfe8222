"""Failover chaos on PostgreSQL: two real `warden run` replicas on one database and one
anvil, signing with the same relayer key, while the workload moves sessions. Every round
hits whichever replica leads with one fault:

- kill -9 (the supervisor restarts it at once or after the takeover: with its own
  identity it may take the lease straight back, which is as safe);
- SIGSTOP past its TTL, then SIGCONT once the other one leads;
- a partition from PostgreSQL (its TCP proxy holds every byte), healed, or turned into
  resets first, once the other one leads;

and every tenth round an expiry storm first: sessions of their own expire in one block
just before the fault, so the new leader finds a crowd of due closes. After the last
round the activity stops and the oracle runs (tests/_replicas.verdict): no event lost and
state equal to a fresh index, no intent or wallet with two mined transactions, no due
action missed, every intent final.

The default run does 4 rounds (one of each fault and a storm, about a minute); `make
chaos` does 50 (CHAOS_FAILOVERS overrides).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests._replicas import TTL, Cluster, Probe, Replica, cluster, verdict, wait_until
from tests.chaos._daemon import Activity, workload, world
from tests.chaos.conftest import ScenarioResult

FAULTS = ("kill", "freeze", "cut")
GAP = (0.2, 2.0)  # s of leading before the fault
TAKEOVER_GUARD = 4 * TTL + 10  # a hang guard per takeover, not a benchmark
STORM = 12  # sessions expiring in one block


def _leader(c: Cluster) -> Replica:
    return wait_until(c.leader, "a running leader", TAKEOVER_GUARD)  # type: ignore[no-any-return]


def _other(c: Cluster, leader: Replica) -> Replica:
    return next(r for r in c.replicas if r is not leader)


def _revive(c: Cluster, result: ScenarioResult, i: int, spare: Replica | None) -> None:
    """A replica that died by itself (any but `spare`, the one just killed) is a
    failure; the supervisor restarts it so the run goes on."""
    for r in c.replicas:
        if r is not spare and r.proc is not None and not r.alive():
            result.fail(f"round {i}: {r.name} died by itself (exit {r.exit_code()}); see {r.log}")
            r.start()


def _storm(probe: Probe, n: int) -> list[str]:
    """`n` sessions of the probe's owner expiring together, then a block past it (the
    workload held off throughout, so none expires early)."""
    with probe.turn() as chain:
        expiry = chain.now() + 600
        wallets = [probe.make(expiry=expiry) for _ in range(n)]
        chain.mine(max(chain.now(), expiry) + 1)
    return wallets


async def run_failovers(
    tmp: Path, dsn: str, rounds: int, seed: int, *, storm_every: int = 10
) -> ScenarioResult:
    result = ScenarioResult(f"failover on PostgreSQL ({rounds})")
    rng = random.Random(seed)
    takeovers: list[float] = []
    counts = dict.fromkeys(FAULTS, 0)
    stormed = 0
    with world() as w, cluster(w, dsn, tmp) as c:
        a, b = c.add("a", via_proxy=True), c.add("b", via_proxy=True)
        a.start()
        b.start()
        activity = Activity(workload(w, seed))
        probe = Probe(w, activity)
        activity.start()
        try:
            for i in range(rounds):
                leader = _leader(c)
                other = _other(c, leader)
                if not other.alive():  # restarted late after a kill: the supervisor's turn
                    other.start()
                if storm_every and i % storm_every == storm_every - 1:
                    _storm(probe, STORM)
                    stormed += 1
                else:
                    time.sleep(rng.uniform(*GAP))  # the leader works for a while
                fault = FAULTS[i % len(FAULTS)] if i < len(FAULTS) else rng.choice(FAULTS)
                counts[fault] += 1
                epoch = c.lease()[1]
                began = time.monotonic()
                if fault == "kill":
                    leader.kill()
                    if rng.random() < 0.5:
                        leader.start()  # at once: with its own identity it may lead again
                elif fault == "freeze":
                    leader.freeze()
                else:
                    assert leader.proxy is not None
                    leader.proxy.cut()

                def taken_over(e: int = epoch, r: int = i, hit: Replica = leader) -> bool:
                    _revive(c, result, r, spare=hit)  # a takeover needs someone alive
                    return c.lease()[1] > e

                wait_until(taken_over, f"round {i}: a takeover", TAKEOVER_GUARD)
                takeovers.append(time.monotonic() - began)
                if fault == "freeze":
                    leader.thaw()
                elif fault == "cut":
                    assert leader.proxy is not None
                    if rng.random() < 0.5:
                        leader.proxy.reset()
                    leader.proxy.heal()
                if fault != "kill" or leader.alive():
                    wait_until(
                        lambda r=leader: r.role() == "standby" or c.leader() is r,  # type: ignore[misc]
                        f"round {i}: {leader.name} back as a standby",
                        TAKEOVER_GUARD,
                    )
                _revive(c, result, i, spare=None if leader.alive() else leader)
                result.runs += 1
        finally:
            activity.stop()
        foreign = {
            HexBytes(r["transactionHash"]).to_0x_hex().lower()
            for _, r in activity.workload.receipts
        }
        for r in c.replicas:
            if not r.alive():
                r.start()  # everything stops through SIGTERM below
        await verdict(c, result, foreign=foreign)
    if takeovers:
        result.figures["fault -> new epoch"] = (
            f"p50 {statistics.median(takeovers):.2f} s, max {max(takeovers):.2f} s"
        )
    result.figures["faults"] = ", ".join(f"{k} {v}" for k, v in counts.items())
    result.figures["expiry storms"] = f"{stormed} x {STORM} sessions"
    result.figures["activity"] = (
        f"{activity.steps} steps, {len(activity.workload.sessions)} sessions, "
        f"{len(activity.errors)} errors"
    )
    return result


async def test_failovers_during_activity_lose_nothing_and_double_nothing(
    tmp_path: Path, pg_dsn: str, chaos_report: list[ScenarioResult]
) -> None:
    result = await run_failovers(tmp_path, pg_dsn, rounds=4, seed=21, storm_every=4)
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])


@pytest.mark.chaos
async def test_fifty_failovers(
    tmp_path: Path, pg_dsn: str, chaos_report: list[ScenarioResult]
) -> None:
    rounds = int(os.environ.get("CHAOS_FAILOVERS", "50"))
    seed = int(os.environ.get("CHAOS_SEED", "50"))
    result = await run_failovers(tmp_path, pg_dsn, rounds=rounds, seed=seed)
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])
