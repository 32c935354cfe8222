"""Notifications with two real `warden run` replicas on one PostgreSQL database: only the
leader delivers. Each replica's channel points at its own path of one real receiver, so
every request says who sent it: while `a` leads, the standby `b` sends nothing; `a`
killed (kill -9), `b` takes over and delivers the rest, and `a`, restarted as a standby,
sends nothing; in the end the receiver has
every logged event (duplicates only with the same id and body) and every delivery is
delivered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._db import rows
from tests._replicas import Cluster, cluster, verdict, wait_until
from tests.chaos._daemon import Activity, World, workload, world
from tests.chaos.conftest import ScenarioResult
from tests.notify._receiver import receiver_thread, verify
from tests.warden.cli.test_failover import closes_go_on, foreign, leader_is

SECRET = "failover-notify-secret-0123456789"

pytestmark = pytest.mark.postgres


@pytest.fixture
def chain_world() -> Iterator[World]:
    with world() as w:
        yield w


def add_channel(config: Path, url: str) -> None:
    config.write_text(
        config.read_text()
        + f"""
notify:
  delivery: {{attempts: 1000, base_delay: 0.05, max_delay: 0.5, timeout: 2, poll: 0.2}}
  channels:
    - name: backend
      type: webhook
      url: "{url}"
      secret: "{SECRET}"
"""
    )


def undelivered(c: Cluster) -> int:
    try:
        found = rows(c.dsn, "SELECT COUNT(*) FROM notify_deliveries WHERE state != 'delivered'")
    except Exception:
        return -1
    return int(found[0][0])


async def test_only_the_leader_delivers_and_the_new_leader_finishes(
    chain_world: World, pg_dsn: str, tmp_path: Path
) -> None:
    w = chain_world
    activity = Activity(workload(w, seed=23))
    with receiver_thread() as receiver, cluster(w, pg_dsn, tmp_path) as c:
        a, b = c.add("a"), c.add("b")
        base = receiver.url.split("/hook")[0]
        add_channel(a.config, f"{base}/a")
        add_channel(b.config, f"{base}/b")
        try:
            a.start()
            wait_until(lambda: leader_is(c, "a"), "a leads")
            b.start()
            wait_until(lambda: b.role() == "standby", "b stands by")
            activity.start()
            closes_go_on(c)
            wait_until(lambda: len(receiver.requests) >= 10, "a delivers", 90)
            paths = {r.path for r in receiver.requests}
            assert paths == {"/a"}, paths  # the standby sent nothing
            a.kill()
            killed = time.time()
            wait_until(lambda: any(r.path == "/b" for r in receiver.requests), "b delivers", 60)
            a.start()  # the supervisor restarts it: a standby now, which sends nothing
            wait_until(lambda: a.role() == "standby", "a restarted as a standby")
            closes_go_on(c)
            activity.stop()
            wait_until(lambda: undelivered(c) == 0, "every delivery delivered", 120)
            assert all(r.at <= killed + 0.5 for r in receiver.requests if r.path == "/a")
            assert all(r.at >= killed for r in receiver.requests if r.path == "/b")
            logged = {str(r[0]) for r in rows(c.dsn, "SELECT event_id FROM notify_events")}
            got = {r.body["id"] for r in receiver.accepted()}
            assert logged and logged <= got, sorted(logged - got)[:5]
            first: dict[str, bytes] = {}
            for r in receiver.requests:
                assert verify(SECRET.encode(), r.headers, r.raw, time.time(), 3600)
                assert first.setdefault(r.body["id"], r.raw) == r.raw  # same id, same body
            result = ScenarioResult("notifications across a failover")
            await verdict(c, result, foreign=foreign(activity))
            assert not result.failures, "\n".join(result.failures[:40])
        finally:
            activity.stop()
