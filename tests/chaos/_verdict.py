"""The end-of-run verdict shared by the kill and RPC-fault scenarios: let the daemon
settle, stop it, then hold its database and the chain against the oracle (`_state`)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.chaos._daemon import RULES, Daemon, World
from tests.chaos._state import (
    checkpoint,
    compare,
    double_mined,
    fresh_index,
    intent_counts,
    missed_actions,
    read_only,
    relayer_closes,
    relayer_txs,
    unfinished_intents,
)
from tests.chaos.conftest import ScenarioResult

CHECKED = [
    "no event lost and state equal to a fresh index (sessions, events, ignored logs, checkpoint)",
    "no intent with two mined transactions, every relayer tx written to the outbox first",
    "no due action missed (no open session a rule holds for at the end)",
    "every relayer close has its intent confirmed",
    "every intent in a final state",
    "clean SIGTERM exit after the run",
]


def settle(w: World, daemon: Daemon, timeout: float) -> float | None:
    """Wait (bounded) until the daemon has indexed the head and no intent is open, twice in
    a row one second apart with the head unchanged; seconds it took, None if it did not."""
    began = time.monotonic()
    deadline = began + timeout
    quiet_since: tuple[int, float] | None = None
    while time.monotonic() < deadline:
        head = w.head()
        done = daemon.indexed() == head and not unfinished_intents(daemon.db)
        if not done:
            quiet_since = None
        elif quiet_since is None or quiet_since[0] != head:
            quiet_since = (head, time.monotonic())
        elif time.monotonic() - quiet_since[1] >= 1.0:
            return quiet_since[1] - began
        time.sleep(0.1)
    return None


async def verdict(
    w: World,
    daemon: Daemon,
    tmp: Path,
    result: ScenarioResult,
    *,
    foreign: set[str],
    settle_timeout: float = 60.0,
) -> None:
    """Settle, stop, check; every breach goes to `result.failures`, figures to
    `result.figures`. `foreign`: hashes the test itself sent with the relayer's key."""
    # One empty block after the activity: chain time moves on, time rules get their tick.
    w.chain.mine(w.chain.now() + 1)
    took = settle(w, daemon, settle_timeout)
    if took is None:
        result.fail(
            f"did not settle within {settle_timeout:.0f} s: indexed {daemon.indexed()} of "
            f"head {w.head()}, open intents {unfinished_intents(daemon.db)[:5]}"
        )
    else:
        result.figures["settled in"] = f"{took:.1f} s"
    code = daemon.stop()
    if code != 0:
        result.fail(f"daemon exited {code} on SIGTERM after the run")
    await judge(w, daemon.db, tmp, result, foreign=foreign)


async def judge(
    w: World, db: Path, tmp: Path, result: ScenarioResult, *, foreign: set[str]
) -> None:
    """The oracle on a stopped daemon's SQLite database `db` (or a copy of a PostgreSQL
    one, tests/_db.copy_to_sqlite): every breach to `result.failures`."""
    cp = checkpoint(db)
    if cp is None:
        result.fail("the daemon never committed a checkpoint")
        return
    fresh = tmp / "fresh.sqlite"
    await fresh_index(w.anvil.url, w.stack.factory.address, w.start_block, fresh, upto=cp.number)
    for line in await compare(db, fresh):
        result.fail(f"state: {line}")
    txs = await relayer_txs(w.anvil.url, w.relayer, w.start_block)
    for line in double_mined(db, txs, factory=w.stack.factory.address, foreign=foreign):
        result.fail(f"double: {line}")
    for line in await missed_actions(fresh, [RULES], cp.timestamp):
        result.fail(f"missed: {line}")
    closes = relayer_closes(db, fresh, w.relayer)
    for wallet, state in sorted(closes.items()):
        if state != "confirmed":
            result.fail(f"relayer closed {wallet} but its intent is {state or 'missing'}")
    for line in unfinished_intents(db):
        result.fail(f"unfinished: {line}")
    counts = intent_counts(db)
    result.figures["intents"] = (
        f"{sum(counts.values())} ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
    )
    result.figures["relayer closes"] = str(len(closes))
    result.figures["daemon txs mined"] = str(sum(1 for t in txs if t.hash not in foreign))
    with read_only(fresh) as conn:
        result.figures["events"] = str(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
