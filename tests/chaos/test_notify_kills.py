"""kill -9 of the daemon while it delivers notifications: a real `warden run` on a real
anvil with session activity, a webhook channel pointing at a real HTTP receiver (a
thread of this test) that answers slowly and sometimes 500, and the daemon killed at
random moments and restarted on the same database. After the last restart the activity
stops and the daemon delivers what is left; then:

- no event lost: every lifecycle event of the indexed chain (`events` table) was logged
  under its stable id, and the receiver accepted every logged event;
- duplicates only ever carry the same id and the same body;
- every request's signature passes an independent check;
- every delivery row ended delivered.

The default run kills 6 times; `make chaos` kills 25 (CHAOS_NOTIFY_KILLS overrides).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from notify.derive import event_id
from tests.chaos._daemon import Activity, Daemon, workload, world, write_config
from tests.chaos.conftest import ScenarioResult
from tests.notify._receiver import Receiver, receiver_thread, verify
from warden.devnet import free_port

SECRET = "chaos-notify-signing-secret-0123456789"
GAP = (0.4, 2.5)
LIFECYCLE = {
    "SessionCreated": "session.created", "Deposited": "session.topped_up",
    "Synced": "session.topped_up", "Withdrawn": "session.withdrawn",
    "Executed": "session.executed", "Revoked": "session.revoked",
    "Extended": "session.extended",
}  # fmt: skip


async def moody(receiver: Receiver, request: web.Request, body: dict[str, Any]) -> int:
    """Slow enough that kills land while requests are in flight, and sometimes a 500."""
    rng = random.Random(f"{body['id']}:{receiver.attempts[body['id']]}")
    await asyncio.sleep(rng.uniform(0.0, 0.15))
    return 500 if rng.random() < 0.15 else 200


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def expected_ids(db: Path) -> set[str]:
    """The stable id of every lifecycle event of the indexed chain (no reorgs here)."""
    out = set()
    for pos, block_hash, name, args in rows(
        db, "SELECT position, block_hash, name, args FROM events WHERE wallet IS NOT NULL"
    ):
        kind = LIFECYCLE.get(name)
        if name == "Closed":
            kind = "session.swept" if '"reason":"5"' in args else "session.closed"
        if kind is not None:
            out.add(event_id(kind, int(pos), block_hash))
    return out


def settled(db: Path) -> bool:
    try:
        pending = rows(db, "SELECT COUNT(*) FROM notify_deliveries WHERE state != 'delivered'")
        return int(pending[0][0]) == 0
    except sqlite3.Error:
        return False


async def run(tmp: Path, kills: int, seed: int) -> ScenarioResult:
    result = ScenarioResult(f"kill -9 during delivery ({kills})")
    result.checked = [
        "every lifecycle event logged and accepted by the receiver",
        "duplicates carry the same id and body", "signatures verified independently",
        "every delivery delivered", "every intent's fired and confirmed events logged",
        "no alert condition left raised",
    ]  # fmt: skip
    rng = random.Random(seed)
    with world() as w, receiver_thread(moody) as receiver:
        config = write_config(tmp, w.anvil.url, w, port=free_port())
        config.write_text(
            config.read_text()
            + f"""
notify:
  delivery: {{attempts: 1000, base_delay: 0.05, max_delay: 0.5, timeout: 2, poll: 0.2}}
  channels:
    - name: backend
      type: webhook
      url: "{receiver.url}"
      secret: "{SECRET}"
"""
        )
        daemon = Daemon(config, tmp / "daemon.log")
        activity = Activity(workload(w, seed))
        daemon.start()
        activity.start()
        busy = 0
        try:
            time.sleep(6)
            for _ in range(kills):
                time.sleep(rng.uniform(*GAP))
                if not daemon.alive():
                    result.fail(f"the daemon died by itself; see {daemon.log}")
                busy += not settled(daemon.db)
                daemon.kill()
                result.runs += 1
                daemon.start()
        finally:
            activity.stop()
        try:
            deadline = time.monotonic() + 300
            last = -1
            while time.monotonic() < deadline:  # settled: indexed to the head, all sent
                head = w.head()
                if daemon.indexed() == head and settled(daemon.db) and last == head:
                    break
                last = head if daemon.indexed() == head else -1
                time.sleep(0.5)
            else:
                result.fail("the daemon did not deliver everything within 300 s")
        finally:
            code = daemon.stop()
        if code != 0:  # SIGTERM with the delivery task running: an orderly stop
            result.fail(f"the daemon's SIGTERM exit was {code}, not 0; see {daemon.log}")
        check(daemon.db, receiver, result)
        result.figures["kills with deliveries owed"] = str(busy)
        result.figures["requests"] = str(len(receiver.requests))
        result.figures["duplicates"] = str(
            len(receiver.accepted()) - len({r.body["id"] for r in receiver.accepted()})
        )
    return result


def check(db: Path, receiver: Receiver, result: ScenarioResult) -> None:
    logged = {r[0]: r[1] for r in rows(db, "SELECT event_id, kind FROM notify_events")}
    missing_log = expected_ids(db) - set(logged)
    if missing_log:
        result.fail(f"{len(missing_log)} lifecycle events never logged, e.g. {min(missing_log)}")
    accepted = receiver.accepted()
    got = {r.body["id"] for r in accepted}
    lost = set(logged) - got
    if lost:
        result.fail(f"{len(lost)} logged events never accepted, e.g. {min(lost)}")
    bodies: dict[str, bytes] = {}
    for r in receiver.requests:
        if not verify(SECRET.encode(), r.headers, r.raw, time.time(), 3600):
            result.fail(f"bad signature on {r.body.get('id')}")
        first = bodies.setdefault(r.body["id"], r.raw)
        if first != r.raw:
            result.fail(f"{r.body['id']} arrived with two different bodies")
    stuck = rows(db, "SELECT COUNT(*) FROM notify_deliveries WHERE state != 'delivered'")[0][0]
    if stuck:
        result.fail(f"{stuck} deliveries not delivered")
    if not logged:
        result.fail("no event was logged: the scenario exercised nothing")
    # intents: every intent fired, every confirmed one confirmed, whatever the kills hit
    for state, kind in (("%", "intent.fired"), ("confirmed", "intent.confirmed")):
        keys = {r[0] for r in rows(db, f"SELECT key FROM intents WHERE state LIKE '{state}'")}
        told = {i.split(":", 1)[1].rsplit(":", 1)[0] for i, k in logged.items() if k == kind}
        if keys - told:
            result.fail(f"{len(keys - told)} intents without {kind}, e.g. {min(keys - told)}")
    # the daemon's own alert conditions: none left raised once everything settled, even
    # when the process that raised one was killed
    last: dict[str, str] = {}
    alerts = rows(
        db, "SELECT kind, body FROM notify_events WHERE kind IN "
        "('alert.indexing_lag', 'alert.tx_unmined') ORDER BY id",
    )  # fmt: skip
    for kind, body in alerts:
        last[kind] = orjson.loads(body)["data"]["state"]
    for kind, state in last.items():
        if state != "cleared":
            result.fail(f"{kind} left {state} after the run settled")
    kinds: dict[str, int] = {}
    for k in logged.values():
        kinds[k] = kinds.get(k, 0) + 1
    result.figures["events"] = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))


async def test_kill9_during_delivery_loses_nothing(
    tmp_path: Path, chaos_report: list[ScenarioResult]
) -> None:
    result = await run(tmp_path, kills=6, seed=17)
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])


@pytest.mark.chaos
async def test_kill9_during_delivery_many_times(
    tmp_path: Path, chaos_report: list[ScenarioResult]
) -> None:
    kills = int(os.environ.get("CHAOS_NOTIFY_KILLS", "25"))
    result = await run(tmp_path, kills=kills, seed=int(os.environ.get("CHAOS_SEED", "117")))
    chaos_report.append(result)
    assert not result.failures, "\n".join(result.failures[:40])
