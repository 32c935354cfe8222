"""Fire once per crossing, re-arm, restart from persisted latches, time checks, the
scheduler, and hot reload."""

from __future__ import annotations

import dataclasses
import gc
from pathlib import Path

import pytest

from rules import (
    Evaluator,
    RulesError,
    RulesHolder,
    RulesHost,
    RulesRunner,
    TimeScheduler,
    decide,
    gc_paused,
    load_rules,
    replay,
)
from tests.rules._cases import GOOD
from tests.rules._factories import D18, rule, ruleset, snap

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "rules"
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def host() -> RulesHost:
    return RulesHost()


@pytest.fixture(scope="module")
def shipped(host: RulesHost) -> Evaluator:
    return Evaluator(host, load_rules([SHIPPED]))


def test_stop_loss_fires_once_rearms_after_top_up_and_fires_again(shipped: Evaluator) -> None:
    runner = RulesRunner(shipped)
    s = snap(balance=50 * D18, stop_loss=40 * D18, position=1)
    assert runner.step(s, T0).intents == ()
    crossed = dataclasses.replace(s, balance=40 * D18, position=2)
    first = runner.step(crossed, T0 + 1)
    assert [(i.rule, i.action, i.reason, i.position) for i in first.intents] == [
        ("stop-loss", "close", "stop_loss", 2)
    ]
    assert first.intents[0].key == f"{s.wallet}:stop-loss:2"
    lower = dataclasses.replace(crossed, balance=30 * D18, position=3)
    assert runner.step(lower, T0 + 2).intents == ()  # still below: latched, silent
    topped_up = dataclasses.replace(lower, balance=45 * D18, deposit=115 * D18, position=4)
    rearm = runner.step(topped_up, T0 + 3)
    assert rearm.intents == () and rearm.latch_clear == {"stop-loss"}
    again = runner.step(dataclasses.replace(topped_up, balance=39 * D18, position=5), T0 + 4)
    assert [i.key for i in again.intents] == [f"{s.wallet}:stop-loss:5"]


def test_restart_from_persisted_latches_does_not_fire_twice(host: RulesHost) -> None:
    rules = load_rules([SHIPPED])
    runner = RulesRunner(Evaluator(host, rules))
    s = snap(balance=10 * D18, position=7)
    assert len(runner.step(s, T0).intents) == 1
    rows = runner.latch_rows()
    assert rows == [(s.wallet, "stop-loss")]
    restarted = RulesRunner.from_rows(Evaluator(host, rules), rows)  # a new process
    assert restarted.step(s, T0 + 5).intents == ()
    forgetful = RulesRunner(Evaluator(host, rules))  # without the rows it would refire
    assert len(forgetful.step(s, T0 + 5).intents) == 1


def test_decide_is_two_phase_a_failed_store_decides_the_same_again(shipped: Evaluator) -> None:
    runner = RulesRunner(shipped)
    s = snap(balance=10 * D18)
    _, first = runner.decide(s, T0)
    _, second = runner.decide(s, T0)  # commit never happened
    assert first == second and len(first.intents) == 1


def test_closed_session_decides_nothing(shipped: Evaluator) -> None:
    evaluation = shipped.evaluate(snap(status="closed", balance=0, expiry=T0 - 1), T0)
    assert evaluation.next_check_at is None
    decision = decide(evaluation, frozenset({"expiry"}))
    assert decision.intents == () and not decision.changed


def test_only_the_highest_priority_close_is_emitted(shipped: Evaluator) -> None:
    # Below stop-loss, expired and idle at once: one close, with the stop-loss reason.
    s = snap(balance=1, expiry=T0, last_activity=T0 - 90_000)
    evaluation = shipped.evaluate(s, T0)
    assert [r.name for r in evaluation.matched] == ["stop-loss", "expiry", "idle-cleanup"]
    decision = decide(evaluation, frozenset())
    assert [(i.rule, i.reason) for i in decision.intents] == [("stop-loss", "stop_loss")]
    assert decision.latch_set == {"stop-loss", "expiry", "idle-cleanup"}


def test_next_check_at_for_expiry_and_idle(shipped: Evaluator) -> None:
    s = snap(expiry=T0 + 500, last_activity=T0 - 100, balance=60 * D18)
    assert shipped.evaluate(s, T0).next_check_at == T0 + 500  # expiry first
    later = dataclasses.replace(s, expiry=T0 + 200_000)
    assert shipped.evaluate(later, T0).next_check_at == T0 - 100 + 86_400  # idle first
    assert shipped.evaluate(later, T0 + 86_299).matched == ()
    assert [r.name for r in shipped.evaluate(later, T0 + 86_300).matched] == ["idle-cleanup"]
    berzerker = dataclasses.replace(later, policy="berzerker")
    assert shipped.evaluate(berzerker, T0).next_check_at == T0 - 100 + 3_600


def test_presets_replace_generic_rules_for_their_policy_only(shipped: Evaluator) -> None:
    # No owner stop-loss: berzerker closes at 40% of net deposit, a plain session never.
    s = snap(stop_loss=0, balance=40 * D18, deposit=100 * D18)
    assert [r.name for r in shipped.evaluate(s, T0).matched] == []
    b = shipped.evaluate(dataclasses.replace(s, policy="berzerker"), T0)
    assert [r.name for r in b.matched] == ["berzerker-stop-loss"]
    assert "stop-loss" not in {r.name for r in b.in_scope}
    m = shipped.evaluate(dataclasses.replace(s, policy="merchant"), T0)
    assert [r.name for r in m.matched] == ["merchant-stop-loss"]
    d = shipped.evaluate(dataclasses.replace(s, policy="disciple", balance=81 * D18), T0)
    assert [r.name for r in d.matched] == []  # disciple stops at 80%
    unknown = shipped.evaluate(dataclasses.replace(s, policy="other", balance=1), T0)
    assert {r.name for r in unknown.in_scope} == {
        "stop-loss", "take-profit", "expiry", "idle-cleanup", "sweep-revoked"
    }  # fmt: skip


def test_revoked_session_is_swept_not_closed(shipped: Evaluator) -> None:
    s = snap(status="revoked", balance=1, expiry=T0 - 5)
    decision = decide(shipped.evaluate(s, T0), frozenset())
    assert [(i.action, i.reason) for i in decision.intents] == [("sweep", "swept")]


def test_scheduler_replaces_and_pops_due_wallets() -> None:
    scheduler = TimeScheduler()
    scheduler.schedule("a", 100)
    scheduler.schedule("b", 50)
    scheduler.schedule("a", 30)  # reschedule replaces
    scheduler.schedule("c", 200)
    assert scheduler.next_due() == 30
    assert scheduler.due(29) == []
    assert scheduler.due(100) == ["a", "b"]  # a's old 100 entry is stale and skipped
    assert scheduler.due(150) == []
    scheduler.schedule("c", None)
    assert len(scheduler) == 0 and scheduler.next_due() is None
    for i in range(1000):  # repeated reschedules stay bounded
        scheduler.schedule("d", i)
    assert len(scheduler._heap) <= 2 * len(scheduler) + 65


def test_runner_schedules_time_checks_and_expiry_fires_when_due(shipped: Evaluator) -> None:
    runner = RulesRunner(shipped)
    s = snap(expiry=T0 + 600, balance=60 * D18)
    runner.step(s, T0)
    assert runner.scheduler.due_at(s.wallet) == T0 + 600
    assert runner.advance(T0 + 599, {s.wallet: s}.get) == []
    [(evaluation, decision)] = runner.advance(T0 + 600, {s.wallet: s}.get)
    assert [(i.rule, i.reason, i.now) for i in decision.intents] == [
        ("expiry", "expired", T0 + 600)
    ]
    runner.commit(evaluation, decision)
    assert runner.latched(s.wallet) == {"expiry"}


def test_expiry_burst_decides_every_due_session_once_honouring_latches(
    shipped: Evaluator,
) -> None:
    runner = RulesRunner(shipped)
    sessions = {
        f"0x{i:040x}": snap(
            wallet=f"0x{i:040x}",
            policy=("", "berzerker", "merchant", "disciple")[i % 4],
            status="revoked" if i % 7 == 0 else "active",
            expiry=T0 + 600,
            last_activity=T0,
            balance=60 * D18,
            take_profit=0,
            stop_loss=0,
        )
        for i in range(300)
    }
    for s in sessions.values():
        runner.commit(*runner.decide(s, T0))

    def burst(now: int) -> dict[str, list[tuple[str, str]]]:
        assert gc.isenabled()
        decided = runner.advance(now, sessions.get)
        assert gc.isenabled()
        for evaluation, decision in decided:
            runner.commit(evaluation, decision)
        # Revoked sessions are due too (time atoms do not look at status); their sweep
        # is latched since T0, so they decide nothing.
        return {d.wallet: [(i.rule, i.reason) for i in d.intents] for _, d in decided if d.intents}

    active = [f"0x{i:040x}" for i in range(300) if i % 7]
    assert burst(T0 + 600) == {w: [("expiry", "expired")] for w in active}
    # An hour later berzerker sessions are idle; their expiry stays latched.
    assert burst(T0 + 3600) == {
        w: [("berzerker-idle", "idle")] for w in active if sessions[w].policy == "berzerker"
    }
    assert burst(T0 + 3601) == {}


def test_gc_paused_restores_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves the outer pause alone
        raise RuntimeError
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # disabled by someone else before: stays disabled
    finally:
        gc.enable()


def test_replay_evaluates_time_checks_between_changes(shipped: Evaluator) -> None:
    a = snap(wallet="0xa", expiry=T0 + 100, balance=60 * D18, position=1)
    b = snap(wallet="0xb", expiry=T0 + 10_000, balance=60 * D18, position=2)
    b2 = dataclasses.replace(b, balance=1, position=3)
    fired = [
        (i.wallet, i.rule, i.now)
        for _, decision in replay(shipped, [(a, T0), (b, T0 + 1), (b2, T0 + 500)])
        for i in decision.intents
    ]
    assert fired == [("0xa", "expiry", T0 + 100), ("0xb", "stop-loss", T0 + 500)]


def test_reload_swaps_on_good_files_and_keeps_old_rules_on_bad(
    host: RulesHost, tmp_path: Path
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD)
    holder = RulesHolder(host, [path])
    old = holder.current
    s = snap(balance=50 * D18, stop_loss=40 * D18)
    assert old.evaluate(s, T0).matched == ()
    assert holder.reload().changed is False
    path.write_text(GOOD.replace("balance <= stop_loss", "balance <= stop_loss + 20 tokens"))
    result = holder.reload()
    assert result.ok and result.changed and result.version != old.version
    assert [r.name for r in holder.current.evaluate(s, T0).matched] == ["stop-loss"]
    running = holder.current
    path.write_text(GOOD.replace("action: close", "action: clos"))
    bad = holder.reload()
    assert not bad.ok and holder.current is running and bad.version == running.version
    assert [str(p) for p in bad.problems] == [
        f"{path}:4:13: rule 'stop-loss': unknown action 'clos': did you mean 'close'? (close "
        "ends the session with a reason, sweep refunds a revoked or expired one, notify only "
        "tells the channels)"
    ]
    assert [r.name for r in holder.current.evaluate(s, T0).matched] == ["stop-loss"]


def test_holder_refuses_to_start_on_bad_files(host: RulesHost, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("")
    with pytest.raises(RulesError):
        RulesHolder(host, [path])


def test_disabled_rule_is_not_evaluated_and_latch_outside_scope_is_kept(host: RulesHost) -> None:
    rs = ruleset(rule("a", "balance <= 5", enabled=False), rule("b", "balance <= 5"))
    evaluation = Evaluator(host, rs).evaluate(snap(balance=1), T0)
    assert [r.name for r in evaluation.matched] == ["b"]
    decision = decide(evaluation, frozenset({"a"}))
    assert "a" not in decision.latch_clear


def test_shipped_rules_load_as_one_directory() -> None:
    rs = load_rules([SHIPPED])
    assert len({r.name for r in rs.rules}) == len(rs.rules) == 14
