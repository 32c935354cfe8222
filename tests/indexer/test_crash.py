"""kill -9 of a real `warden index` process at random moments, during backfill and
while following the head: after a restart the database equals a fresh index, with no
event twice."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests._chain import Chain
from tests._rpc_proxy import Fault, FaultyProxy
from tests.conftest import Roles, Session, Stack
from tests.indexer._support import config, index_to_head, rows
from tests.indexer.test_indexing import activity

KILLS_IN_BACKFILL = 12
KILLS_WHILE_FOLLOWING = 12


def start_indexer(url: str, factory: str, db: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "warden", "index", "--rpc", url, "--factory", factory,
         "--db", str(db), "--quiet", "--retry-initial", "0.05", "--reorg-window", "8", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def kill9(proc: subprocess.Popen[bytes]) -> bool:
    """SIGKILL; True if the process was still running (a real kill, not a clean exit)."""
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    return alive


def checkpoint(db: Path) -> int:
    if not db.exists():
        return -1
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute("SELECT number FROM checkpoint").fetchone()
        except sqlite3.OperationalError:  # killed before the first migration committed
            return -1
    return int(row[0]) if row else -1


def committed(db: Path, *, after: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the indexer has committed a checkpoint past `after`."""
    deadline = time.monotonic() + 60
    while checkpoint(db) <= after:
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, f"no checkpoint past {after} within 60 s"
        time.sleep(0.02)


async def test_kill_9_during_backfill_and_following(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    rng = random.Random(20261121)
    chain, factory, url = fresh_chain, stack.factory.address, fresh_chain.anvil.url
    for _ in range(8):
        activity(chain, stack, roles, make_session)
    db = tmp_path / "killed.sqlite"

    # Backfill in one-block ranges through a slow node, so it spans many commits and
    # several seconds, killed again and again. Every third kill lands anywhere from the
    # spawn on, interpreter start included; the others wait for the process's first
    # commit and then land in the middle of its ranges, so the backfill advances however
    # slowly this machine starts a Python process (CI's took over 1.6 s).
    real_kills, progress = 0, []
    with FaultyProxy(url, seed=3, delay=(0.03, 0.06)) as slow:
        slow.set_faults(rate=1.0, kinds=[Fault.DELAY])
        for i in range(KILLS_IN_BACKFILL):
            before = checkpoint(db)
            proc = start_indexer(
                slow.url,
                factory,
                db,
                "--to-head",
                "--range",
                "1",
                "--max-range",
                "1",
                "--concurrency",
                "1",
            )
            if i % 3 == 0:
                time.sleep(rng.uniform(0.0, 1.6))
            else:
                committed(db, after=before, proc=proc)
                time.sleep(rng.uniform(0.0, 0.3))
            real_kills += kill9(proc)
            progress.append(checkpoint(db))
    assert progress == sorted(progress), progress
    assert progress[0] < progress[-1] < chain.w3.eth.block_number, progress

    # Following the head while sessions keep changing, killed at random moments.
    for _ in range(KILLS_WHILE_FOLLOWING):
        proc = start_indexer(url, factory, db, "--poll", "0.05")
        activity(chain, stack, roles, make_session)
        time.sleep(rng.uniform(0.0, 0.8))
        real_kills += kill9(proc)
    assert real_kills >= 20

    proc = start_indexer(url, factory, db, "--to-head")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()

    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(url, fresh, config(factory))
    killed = rows(db)
    assert killed == rows(fresh)
    positions = [e[0] for e in killed["events"]]
    assert len(positions) == len(set(positions)) > 8 * 13
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
