"""The daemon's only RPC endpoint is a FaultyProxy injecting faults into 20 % of requests
(drops, delays, 429/5xx, truncated JSON, provider errors, log-range refusals, logs from the
wrong blocks, a stale head, partial batches) for the whole run, while session activity
goes straight to anvil. Lag (node head minus the daemon's committed checkpoint, read from its
database) is sampled every 0.5 s. At the end, faults still on, the daemon settles and the
same verdict as the kill scenario holds: state equal to a fresh index made directly
against anvil, due actions done, nothing mined twice. Lag is reported (max, p99, in blocks
and in seconds behind); only catching up within a generous bound is asserted.

The default run has 30 s of activity (about a minute in all); `make chaos` has 5 minutes
(CHAOS_FAULT_SECONDS overrides).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests._rpc_proxy import FaultyProxy
from tests.chaos._daemon import Activity, Daemon, World, workload, world, write_config
from tests.chaos._verdict import CHECKED, verdict
from tests.chaos.conftest import ScenarioResult
from warden.devnet import free_port

RATE = 0.2
SETTLE = 180.0  # seconds the daemon gets to catch up after the activity, faults still on


@dataclass
class LagSampler:
    """Every `every` seconds: the node's head (asked directly), the daemon's checkpoint
    (from its database); lag in blocks, and in seconds since the first block the daemon
    is missing was first seen by the sampler."""

    w: World
    daemon: Daemon
    every: float = 0.5
    blocks: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    _first_seen: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        seen = self.w.start_block - 1
        while not self._stop.wait(self.every):
            try:
                head = self.w.head()
            except OSError:
                continue
            now = time.monotonic()
            for n in range(seen + 1, head + 1):
                self._first_seen[n] = now
            seen = max(seen, head)
            indexed = self.daemon.indexed()
            if indexed is None:
                continue  # not started yet: no lag to speak of
            self.blocks.append(max(0, head - indexed))
            missing = self._first_seen.get(indexed + 1)
            self.seconds.append(now - missing if indexed < head and missing else 0.0)


def percentile(values: list[float] | list[int], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


async def run_faults(tmp: Path, seconds: float, seed: int) -> ScenarioResult:
    result = ScenarioResult(f"rpc faults {RATE:.0%} ({seconds:.0f} s)")
    result.checked = [*CHECKED, f"caught up within {SETTLE:.0f} s after the activity"]
    with world() as w, FaultyProxy(w.anvil.url, seed=seed) as proxy:
        proxy.set_faults(rate=RATE)
        config = write_config(tmp, proxy.url, w, port=free_port())
        daemon = Daemon(config, tmp / "daemon.log")
        activity = Activity(workload(w, seed), pause=0.05)
        sampler = LagSampler(w, daemon)
        daemon.start()
        activity.start()
        sampler.start()
        try:
            time.sleep(seconds)
            activity.stop()
            if not daemon.alive():
                result.fail(f"the daemon died under faults; see {daemon.log}")
                daemon.start()
            foreign = {
                HexBytes(r["transactionHash"]).to_0x_hex().lower()
                for _, r in activity.workload.receipts
            }
            await verdict(w, daemon, tmp, result, foreign=foreign, settle_timeout=SETTLE)
        finally:
            activity.stop()
            sampler.stop()
            if daemon.alive():
                daemon.kill()
        stats = proxy.stats()
    result.runs = stats["faults_total"]
    result.figures["requests"] = str(stats["requests"])
    if sampler.blocks:
        result.figures["lag blocks"] = (
            f"max {max(sampler.blocks)}, p99 {percentile(sampler.blocks, 99):.0f}, "
            f"median {percentile(sampler.blocks, 50):.0f} ({len(sampler.blocks)} samples)"
        )
        result.figures["lag seconds"] = (
            f"max {max(sampler.seconds):.1f}, p99 {percentile(sampler.seconds, 99):.1f}, "
            f"median {percentile(sampler.seconds, 50):.1f}"
        )
    result.figures["faults"] = ", ".join(f"{k} {v}" for k, v in sorted(stats["faults"].items()))
    result.figures["activity"] = (
        f"{activity.steps} steps, {len(activity.workload.sessions)} sessions, "
        f"{len(activity.errors)} errors"
    )
    return result


async def test_twenty_percent_rpc_faults_end_correct_with_bounded_lag(
    tmp_path: Path, chaos_report: list[ScenarioResult]
) -> None:
    result = await run_faults(tmp_path, seconds=30, seed=11)
    chaos_report.append(result)
    assert result.runs > 0, "no fault was injected"
    assert not result.failures, "\n".join(result.failures[:40])


@pytest.mark.chaos
async def test_twenty_percent_rpc_faults_for_five_minutes(
    tmp_path: Path, chaos_report: list[ScenarioResult]
) -> None:
    seconds = float(os.environ.get("CHAOS_FAULT_SECONDS", "300"))
    seed = int(os.environ.get("CHAOS_SEED", "5"))
    result = await run_faults(tmp_path, seconds=seconds, seed=seed)
    chaos_report.append(result)
    assert result.runs > 0, "no fault was injected"
    assert not result.failures, "\n".join(result.failures[:40])
