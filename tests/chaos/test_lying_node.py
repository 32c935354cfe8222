"""A node that lies about the newest blocks' logs: the daemon's only endpoint is a
`NodeProxy` that, at random, answers an `eth_getLogs` reaching into the newest 3 blocks
without those blocks' logs ("lag": a log index trailing the headers) or with no logs at
all ("blank": a load-balancer member behind the head answering `[]`). Headers, receipts,
calls and everything else are true, so the block hashes the daemon checks match.

While session activity goes straight to anvil, the daemon indexes through the liar; at
the end, the lies still on, it settles and the same verdict as the kill and fault
scenarios holds: every session indexed and the state equal to a fresh index made
directly against anvil, every due close sent exactly once, nothing mined twice.

Without the check of the logs against the header's `logsBloom` (indexer/verify.py), the
daemon committed a block without its logs and never looked again (issue 14, defect 2);
this scenario failed then. The default run has 30 s of activity; `make chaos`
has 5 minutes (CHAOS_LIE_SECONDS, CHAOS_SEED override).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests.chaos._daemon import Activity, Daemon, workload, world, write_config
from tests.chaos._node_proxy import NodeProxy
from tests.chaos._verdict import CHECKED, verdict
from tests.chaos.conftest import ScenarioResult
from warden.devnet import free_port

RATE = 0.3  # of the eth_getLogs answers that hold logs of the newest blocks
NEWEST = 3


async def run_lies(tmp: Path, seconds: float, seed: int, settle: float) -> ScenarioResult:
    result = ScenarioResult(f"lying node: logs of the newest {NEWEST} blocks ({seconds:.0f} s)")
    result.checked = [*CHECKED, f"caught up within {settle:.0f} s after the activity"]
    with world() as w, NodeProxy(w.anvil.url, seed=seed) as proxy:
        proxy.lie_about_logs(RATE, newest=NEWEST)
        config = write_config(tmp, proxy.url, w, port=free_port())
        daemon = Daemon(config, tmp / "daemon.log")
        activity = Activity(workload(w, seed), pause=0.05)
        daemon.start()
        activity.start()
        try:
            time.sleep(seconds)  # the scenario's length, not a wait for a condition
            activity.stop()
            if not daemon.alive():
                result.fail(f"the daemon died under lies; see {daemon.log}")
                daemon.start()
            foreign = {
                HexBytes(r["transactionHash"]).to_0x_hex().lower()
                for _, r in activity.workload.receipts
            }
            await verdict(w, daemon, tmp, result, foreign=foreign, settle_timeout=settle)
        finally:
            activity.stop()
            if daemon.alive():
                daemon.kill()
        stats = proxy.stats()
    result.runs = stats["lies_total"]
    result.figures["lies"] = ", ".join(f"{k} {v}" for k, v in sorted(stats["lies"].items()))
    result.figures["requests"] = str(stats["requests"])
    result.figures["activity"] = (
        f"{activity.steps} steps, {len(activity.workload.sessions)} sessions, "
        f"{len(activity.errors)} errors"
    )
    return result


async def test_lying_node_short(tmp_path: Path, chaos_report: list[ScenarioResult]) -> None:
    result = await run_lies(tmp_path, seconds=30, seed=13, settle=90)
    chaos_report.append(result)
    assert result.runs > 0, "the proxy never lied"
    assert not result.failures, "\n".join(result.failures[:40])


@pytest.mark.chaos
async def test_lying_node_five_minutes(tmp_path: Path, chaos_report: list[ScenarioResult]) -> None:
    seconds = float(os.environ.get("CHAOS_LIE_SECONDS", "300"))
    seed = int(os.environ.get("CHAOS_SEED", "17"))
    result = await run_lies(tmp_path, seconds=seconds, seed=seed, settle=180)
    chaos_report.append(result)
    assert result.runs > 0, "the proxy never lied"
    assert not result.failures, "\n".join(result.failures[:40])
