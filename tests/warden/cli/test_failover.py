"""Two real `warden run` replicas on one PostgreSQL database and one anvil, both signing
with the same relayer key (as a real HA pair does), a short lease (ttl 2 s, margin 0.6 s),
sessions moving (the chaos workload) and due closes arriving (`Probe`):

- the leader killed (kill -9): the standby takes over and closes what is due, within
  about a TTL (the bound is a hang guard, not a benchmark: BENCHMARKS.md has figures);
- the leader frozen (SIGSTOP) past its TTL: the standby takes over; woken (SIGCONT), the
  old leader steps down and sends nothing new;
- the leader cut off from PostgreSQL (a TCP proxy that holds every byte, then resets):
  it stops sending before the standby takes over, which it does;
- both replicas started at once: exactly one leads;
- PostgreSQL restarted under them: neither stops; the leader stands by when its step
  meets the restart, both try the lease until the server answers, and one leads again
  (under a new epoch) and closes what is due.

Each ends with the oracle (tests/_replicas.verdict): nothing lost, nothing doubled, no
wallet closed by two mined relayer transactions, state equal to a fresh index.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hexbytes import HexBytes

from tests._db import rows
from tests._postgres import PostgresServer
from tests._replicas import (
    MARGIN,
    TTL,
    Cluster,
    Probe,
    Replica,
    closes_of,
    cluster,
    verdict,
    wait_until,
)
from tests.chaos._daemon import Activity, World, workload, world
from tests.chaos.conftest import ScenarioResult

STEP = 3.0  # s: a poll, a catch-up and a send, generously, on 2 loaded cores
HANG_GUARD = TTL + TTL / 3 + STEP  # a takeover found late by the standby's next try, then a step

pytestmark = pytest.mark.postgres


@pytest.fixture
def chain_world() -> Iterator[World]:
    with world() as w:
        yield w


@pytest.fixture
def activities() -> Iterator[list[Activity]]:
    """Activities the test starts, stopped at its end whatever happens."""
    started: list[Activity] = []
    yield started
    for activity in started:
        activity.stop()


def foreign(activity: Activity) -> set[str]:
    return {
        HexBytes(r["transactionHash"]).to_0x_hex().lower() for _, r in activity.workload.receipts
    }


def leader_is(c: Cluster, name: str) -> bool:
    replica = next(r for r in c.replicas if r.name == name)
    status = replica.status()
    return bool(status and status["leadership"]["role"] == "leader" and c.lease()[0] == name)


def a_leads_b_stands_by(c: Cluster, *, a_via_proxy: bool = False) -> tuple[Replica, Replica]:
    """Start "a" and wait until it leads, then "b" and wait until it stands by."""
    a, b = c.add("a", via_proxy=a_via_proxy), c.add("b")
    a.start()
    wait_until(lambda: leader_is(c, "a"), "a leads")
    b.start()
    wait_until(lambda: b.role() == "standby", "b stands by")
    return a, b


def confirmed(c: Cluster) -> int:
    return int(rows(c.dsn, "SELECT COUNT(*) FROM intents WHERE state = 'confirmed'")[0][0])


def closes_go_on(c: Cluster, more: int = 2) -> None:
    """Wait until `more` further intents are confirmed: sessions move, closes happen."""
    target = confirmed(c) + more
    wait_until(lambda: confirmed(c) >= target, f"{more} more confirmed closes", 90)


def busy_moment(c: Cluster, timeout: float = 10.0) -> bool:
    """Wait (bounded) for a moment the leader has work in flight: an intent open."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if c.open_intents():
            return True
        time.sleep(0.02)
    return False


async def finish(c: Cluster, activity: Activity, result: ScenarioResult) -> None:
    activity.stop()
    await verdict(c, result, foreign=foreign(activity))
    assert not result.failures, "\n".join(result.failures[:40])


async def test_the_leader_killed_the_standby_takes_over_and_closes_what_is_due(
    chain_world: World, pg_dsn: str, tmp_path: Path, activities: list[Activity]
) -> None:
    w = chain_world
    activity = Activity(workload(w, seed=11))
    activities.append(activity)
    with cluster(w, pg_dsn, tmp_path) as c:
        a, b = a_leads_b_stands_by(c)
        probe = Probe(w, activity)
        activity.start()
        closes_go_on(c)
        busy_moment(c)  # kill it with work in flight when there is some
        # The workload held from the probe's creation to its trigger: a clock jump of 24 h
        # in between would make the probe idle, and the old leader would close it (as
        # idle) before the kill.
        with probe.turn():
            wallet = probe.make()
            a.kill()
            killed = time.time()
            probe.trigger(wallet)  # a due close arrives right after the kill
        sent = wait_until(lambda: closes_of(b.node, wallet, killed), "b closes the probe", 30)
        took = sent[0].at - killed
        assert took < HANG_GUARD, f"kill -> first close by the new leader took {took:.2f} s"
        assert leader_is(c, "b") and c.lease()[1] == 2
        assert not closes_of(a.node, wallet)  # the old leader never got to it
        # the supervisor restarts the killed one: it stands by
        a.start()
        wait_until(lambda: a.role() == "standby", "a restarted as a standby")
        closes_go_on(c)
        result = ScenarioResult("leader killed")
        result.figures["kill -> first close by the new leader"] = f"{took:.2f} s"
        await finish(c, activity, result)
        print(result.line())


async def test_the_leader_frozen_past_its_ttl_steps_down_when_it_wakes_and_sends_nothing(
    chain_world: World, pg_dsn: str, tmp_path: Path, activities: list[Activity]
) -> None:
    w = chain_world
    activity = Activity(workload(w, seed=12))
    activities.append(activity)
    with cluster(w, pg_dsn, tmp_path) as c:
        a, b = a_leads_b_stands_by(c)
        probe = Probe(w, activity)
        activity.start()
        closes_go_on(c)
        busy_moment(c)  # freeze it with work in flight when there is some
        a.freeze()
        frozen = time.time()
        wait_until(lambda: c.lease()[0] == "b", "b takes over", HANG_GUARD + 10)
        wallet = probe.make()  # a close only the new leader can make
        probe.trigger(wallet)
        wait_until(lambda: closes_of(b.node, wallet, frozen), "b closes the probe", 30)
        written = {h for (h,) in rows(pg_dsn, "SELECT hash FROM transactions")}
        before = {r.name: len(r.node.sends) for r in (a, b)}
        a.thaw()
        woke = time.time()
        wait_until(lambda: a.said("stepping down", woke), "a steps down", 30)
        wait_until(lambda: a.role() == "standby", "a stands by", 30)
        assert a.alive() and leader_is(c, "b")
        # Nothing new from the old leader: whatever it sent after it woke (the broadcast
        # it was about to make when it froze, if any) is bytes written before it froze.
        late = a.node.sends[before["a"] :]
        assert all(s.hash in written for s in late), late
        assert not a.said("leads now", woke)
        closes_go_on(c)
        result = ScenarioResult("leader frozen")
        result.figures["old leader's sends after waking"] = str(len(late))
        await finish(c, activity, result)
        print(result.line())


@pytest.mark.parametrize("then", ["heal", "reset"])
async def test_the_leader_cut_off_from_postgres_stops_sending_before_the_standby_takes_over(
    then: str, chain_world: World, pg_dsn: str, tmp_path: Path, activities: list[Activity]
) -> None:
    """`heal`: the partition ends after the takeover (the old leader's statements go
    through, its renewal is refused: it steps down). `reset`: its connections are reset
    instead (the partition turns into errors, long after its trust ran out: it stands
    by rather than stopping)."""
    w = chain_world
    activity = Activity(workload(w, seed=13))
    activities.append(activity)
    with cluster(w, pg_dsn, tmp_path) as c:
        a, b = a_leads_b_stands_by(c, a_via_proxy=True)
        probe = Probe(w, activity)
        activity.start()
        closes_go_on(c)
        busy_moment(c)
        assert a.proxy is not None
        a.proxy.cut()
        cut = time.time()
        wait_until(lambda: c.lease()[0] == "b", "b takes over", HANG_GUARD + 10)
        took_over = wait_until(lambda: b.led_at(cut), "b's log says it leads")
        wallet = probe.make()
        probe.trigger(wallet)
        wait_until(lambda: closes_of(b.node, wallet, cut), "b closes the probe", 30)
        # a stopped sending on its own clock: at the latest ttl - margin after the last
        # renewal it asked for, which was before the cut
        late = a.node.sends_since(cut + (TTL - MARGIN) + 0.05)
        assert not late, f"a sent {len(late)} transaction(s) after its trust ran out"
        assert all(s.at < took_over for s in a.node.sends_since(cut))
        assert not closes_of(a.node, wallet)
        if then == "heal":
            a.proxy.heal()
            wait_until(lambda: a.said("stepping down", cut), "a steps down", 60)
        else:
            a.proxy.reset()
            # its trust ran out long before the error: it stands by, it does not stop
            wait_until(lambda: a.said("standing by", cut) or not a.alive(), "a gives up", 60)
            assert a.alive(), f"a exited {a.exit_code()} instead of standing by"
            a.proxy.heal()
        wait_until(lambda: a.role() == "standby", "a stands by", 60)
        assert leader_is(c, "b")
        assert not a.node.sends_since(cut + (TTL - MARGIN) + 0.05)
        closes_go_on(c)
        result = ScenarioResult(f"leader cut off ({then})")
        await finish(c, activity, result)
        print(result.line())


async def test_both_replicas_started_at_once_exactly_one_leads(
    chain_world: World, pg_dsn: str, tmp_path: Path, activities: list[Activity]
) -> None:
    w = chain_world
    activity = Activity(workload(w, seed=14))
    activities.append(activity)
    with cluster(w, pg_dsn, tmp_path) as c:
        replicas = [c.add(n) for n in ("a", "b")]
        random.Random(14).shuffle(replicas)
        for r in replicas:
            r.start()
        roles = wait_until(
            lambda: sorted(str(r.role()) for r in replicas) == ["leader", "standby"],
            "one leader, one standby",
        )
        assert roles
        holder, epoch, _ = c.lease()
        assert epoch == 1, f"the lease moved {epoch} times: more than one replica led"
        probe = Probe(w, activity)
        activity.start()
        closes_go_on(c)
        wallet = probe.make()
        probe.trigger(wallet)
        leader = next(r for r in replicas if r.name == holder)
        other = next(r for r in replicas if r.name != holder)
        wait_until(lambda: closes_of(leader.node, wallet), "the leader closes the probe", 30)
        assert not other.node.sends, "the standby sent"
        statuses = [r.status() for r in replicas]
        assert [s["leadership"]["takeovers"] for s in statuses if s] in ([1, 0], [0, 1])
        assert c.lease()[:2] == (holder, 1)
        result = ScenarioResult("started at once")
        await finish(c, activity, result)
        print(result.line())


async def test_postgres_restarted_the_pair_rides_it_out_and_one_leads_again(
    chain_world: World, tmp_path: Path, activities: list[Activity]
) -> None:
    w = chain_world
    activity = Activity(workload(w, seed=15))
    activities.append(activity)
    with PostgresServer() as server, cluster(w, server.create_database("restarted"), tmp_path) as c:
        a, b = a_leads_b_stands_by(c)
        probe = Probe(w, activity)
        activity.start()
        closes_go_on(c)
        busy_moment(c)
        restarted = time.time()
        server.restart()
        # A statement of the leader's in flight at the restart fails: it does not stop (a
        # step stands it by; a failed renewal only shortens its trust until the next one).
        # A pooled connection that was idle then is replaced unseen at its next use
        # (asyncpg), so a leader between statements may ride it out without noticing;
        # which of the two happens is the scheduler's, so both are accepted.
        try:
            wait_until(
                lambda: (
                    a.said("PostgreSQL is unreachable", restarted)
                    or a.said("renewing the lease failed", restarted)
                ),
                "the leader meets the restart",
                30,
            )
            met = True
        except AssertionError:
            met = False
        wait_until(lambda: c.leader() is not None, "a leader again", HANG_GUARD + 10)
        wait_until(
            lambda: sorted(str(r.role()) for r in (a, b)) == ["leader", "standby"],
            "one leader, one standby",
        )
        assert a.alive() and b.alive(), (a.exit_code(), b.exit_code())
        stood_by = bool(a.said("PostgreSQL is unreachable", restarted))
        if stood_by:  # whoever leads now took the lease anew: a new epoch
            assert c.lease()[1] >= 2
        elif not met:  # nothing failed: the leader leads on, in its first term
            assert c.lease()[:2] == (a.name, 1)
        wallet = probe.make()
        probe.trigger(wallet)
        leader = c.leader()
        assert leader is not None
        wait_until(lambda: closes_of(leader.node, wallet, restarted), "the leader closes", 30)
        closes_go_on(c)
        result = ScenarioResult("postgres restarted")
        await finish(c, activity, result)
        print(result.line())
