"""kill -9 of the daemon at random moments while sessions are created, played, expired
(time jumps), revoked, swept and closed by their owners; restarted on the same database
each time. After the last restart the activity stops and the daemon settles; then: no
event lost and state equal to a fresh index, no intent with two mined transactions, no
due action missed, every relayer close confirmed, every intent final.

The default run kills 5 times (well under 90 s); `make chaos` kills 100 times
(CHAOS_KILLS overrides; about 6 to 8 minutes on a shared 2-core machine).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import urllib.request
from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests.chaos._daemon import Activity, Daemon, workload, world, write_config
from tests.chaos._state import read_only
from tests.chaos._verdict import CHECKED, verdict
from tests.chaos.conftest import ScenarioResult
from warden.devnet import free_port

GAP = (0.3, 3.0)  # seconds between a start and the next kill


def in_flight(db: Path) -> int:
    """Intents the executor is working on right now (pending, submitted or mined)."""
    try:
        with read_only(db) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM intents WHERE state IN ('pending', 'submitted', 'mined')"
            ).fetchone()
    except Exception:  # not created yet: killed during its first start
        return 0
    return int(row[0])


def ready(port: int) -> bool:
    """The API answers and says the indexer caught up: a restart has recovered."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return bool(json.loads(r.read())["ready"])
    except (OSError, ValueError):
        return False  # not listening yet, or 503 while catching up


def fired_since(log: Path, offset: int) -> bool:
    with log.open("rb") as f:
        f.seek(offset)
        return b" fired for " in f.read()


async def run_kills(tmp: Path, kills: int, seed: int, warmup: float = 10.0) -> ScenarioResult:
    """`warmup`: seconds of activity under one daemon before the first kill, so that
    sessions exist and rules come due in every run, short or long."""
    result = ScenarioResult(f"kill -9 ({kills})")
    result.checked = list(CHECKED)
    rng = random.Random(seed)
    with world() as w:
        port = free_port()
        config = write_config(tmp, w.anvil.url, w, port=port)
        daemon = Daemon(config, tmp / "daemon.log")
        activity = Activity(workload(w, seed))
        recoveries: list[float] = []
        busy_kills = hunted = 0
        daemon.start()
        activity.start()
        try:
            time.sleep(warmup)
            for i in range(kills):
                spawned = time.monotonic()
                # Half the kills at a random moment; the other half hunt: the moment the
                # executor has work (a rule fired, an intent open), within the same window.
                hunt = rng.random() < 0.5
                until = spawned + rng.uniform(*GAP)
                offset = daemon.log.stat().st_size
                recovered = i == 0  # the first instance is not a restart
                while time.monotonic() < until:
                    if not recovered and ready(port):
                        recoveries.append(time.monotonic() - spawned)
                        recovered = True
                    if hunt and (fired_since(daemon.log, offset) or in_flight(daemon.db)):
                        hunted += 1
                        break
                    time.sleep(0.01 if hunt else 0.05)
                busy_kills += in_flight(daemon.db) > 0
                if not daemon.alive():
                    code = daemon.proc.poll() if daemon.proc else None
                    result.fail(f"the daemon died by itself (exit {code}); see {daemon.log}")
                daemon.kill()
                result.runs += 1
                daemon.start()
        finally:
            activity.stop()
        try:
            foreign = {
                HexBytes(r["transactionHash"]).to_0x_hex().lower()
                for _, r in activity.workload.receipts
            }
            await verdict(w, daemon, tmp, result, foreign=foreign)
        finally:
            if daemon.alive():
                daemon.kill()
    if recoveries:
        result.figures["recovery"] = (
            f"mean {statistics.mean(recoveries):.2f} s, max {max(recoveries):.2f} s "
            f"from start to ready ({len(recoveries)} of {kills - 1} restarts ready before "
            "the next kill)"
        )
    result.figures["kills just after a rule fired or with intents open"] = str(hunted)
    result.figures["kills with intents open"] = str(busy_kills)
    result.figures["activity"] = (
        f"{activity.steps} steps, {len(activity.workload.sessions)} sessions, "
        f"{len(activity.workload.reverts)} reverted, {len(activity.errors)} errors"
    )
    return result


async def test_kill9_at_random_moments_loses_nothing_and_doubles_nothing(
    tmp_path: Path, chaos_report: list[ScenarioResult]
) -> None:
    result = await run_kills(tmp_path, kills=5, seed=7)
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])


@pytest.mark.chaos
async def test_kill9_hundred_times(tmp_path: Path, chaos_report: list[ScenarioResult]) -> None:
    kills = int(os.environ.get("CHAOS_KILLS", "100"))
    result = await run_kills(tmp_path, kills=kills, seed=int(os.environ.get("CHAOS_SEED", "100")))
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])
