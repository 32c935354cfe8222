"""The durable-rules path against the reference evaluator, on generated rules and snapshots
with amounts at the int64 / uint64 / uint256 edges: zero disagreements allowed.

WARDEN_RULES_EXAMPLES raises the example count (default 150)."""

from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import Evaluator, RulesHost, Snapshot
from tests.rules import _reference as ref
from tests.rules._factories import rule, ruleset, snap

EXAMPLES = int(os.environ.get("WARDEN_RULES_EXAMPLES", "150"))

EDGES = sorted(
    {
        v
        for base in (0, 2**63, 2**64, 2**255, 2**256 - 1, 10**18, 10**20, 10**24)
        for v in (base - 1, base, base + 1)
        if 0 <= v <= 2**256 - 1
    }
)
amounts = st.one_of(st.sampled_from(EDGES), st.integers(0, 2**256 - 1), st.integers(0, 1000))
T0 = 1_700_000_000
times = st.integers(T0 - 200_000, T0 + 200_000)
AMOUNT_FIELDS = ["balance", "deposit", "withdrawn", "spent", "budget", "remaining_budget",
                 "stop_loss", "take_profit"]  # fmt: skip
TIME_FIELDS = ["now", "expiry", "created_at", "last_activity"]
# Text that JSON must escape or a %-template must not interpret, in values and literals.
ODD = ['x"y', "50%", "a%sb\\c", "ünï", "%d%%"]


def literal_amount() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(EDGES).map(str),
        st.sampled_from(["1.5 tokens", "100 tokens", "0.000001 tokens", "1 token", "1e18"]),
    )


def amount_expr(depth: int) -> st.SearchStrategy[str]:
    leaf = st.one_of(st.sampled_from(AMOUNT_FIELDS), literal_amount())
    if depth == 0:
        return leaf
    sub = amount_expr(depth - 1)
    return st.one_of(
        leaf,
        st.tuples(st.sampled_from(["50", "12.5", "100", "150", "0.01", "33"]), sub).map(
            lambda t: f"{t[0]}% of ({t[1]})"
        ),
        st.tuples(sub, st.sampled_from(["+", "-"]), sub).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    )


durations = st.sampled_from(["0s", "1s", "30s", "10m", "24h", "7d", "1w", "90m"])
time_expr = st.one_of(
    st.sampled_from(TIME_FIELDS),
    st.tuples(st.sampled_from(TIME_FIELDS), st.sampled_from(["+", "-"]), durations).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"
    ),
)
duration_expr = st.one_of(
    durations,
    st.tuples(st.sampled_from(TIME_FIELDS), st.sampled_from(TIME_FIELDS)).map(
        lambda t: f"{t[0]} - {t[1]}"
    ),
)
ops = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
comparison = st.one_of(
    st.tuples(amount_expr(2), ops, amount_expr(2)),
    st.tuples(time_expr, ops, time_expr),
    st.tuples(duration_expr, ops, duration_expr),
    st.tuples(
        st.sampled_from(["execution_count", "decimals", "3"]), ops, st.just("execution_count")
    ),
    st.tuples(
        st.just("status"), st.sampled_from(["==", "!="]), st.sampled_from(['"active"', '"closed"'])
    ),
    st.tuples(
        st.sampled_from(["policy", "owner"]),
        st.sampled_from(["==", "!="]),
        st.sampled_from(['"berzerker"', "policy", "operator", '""', *(f"'{t}'" for t in ODD)]),
    ),
).map(lambda t: f"{t[0]} {t[1]} {t[2]}")


def condition(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return comparison
    sub = condition(depth - 1)
    return st.one_of(
        comparison,
        st.tuples(sub, st.sampled_from(["and", "or"]), sub).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        sub.map(lambda c: f"not ({c})"),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[Snapshot, int]:
    amount_values = {f: draw(amounts) for f in ("deposit", "withdrawn", "balance", "spent",
                                                "budget", "stop_loss", "take_profit")}  # fmt: skip
    s = snap(
        policy=draw(st.sampled_from(["", "berzerker", "merchant", *ODD])),
        status=draw(st.sampled_from(["active", "revoked", "closed"])),
        expiry=draw(times),
        created_at=draw(times),
        last_activity=draw(times),
        execution_count=draw(st.integers(0, 5)),
        decimals=draw(st.integers(0, 30)),
        operator=draw(
            st.sampled_from(["0xop", "0x00000000000000000000000000000000000000B2", *ODD, "a\tb\n"])
        ),
        **amount_values,
    )
    return s, draw(times)


HOST = RulesHost()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    conditions=st.lists(condition(2), min_size=1, max_size=4),
    cases=st.lists(snapshots(), min_size=1, max_size=6),
    scoped=st.booleans(),
)
def test_engine_agrees_with_reference(
    conditions: list[str], cases: list[tuple[Snapshot, int]], scoped: bool
) -> None:
    rules = [
        rule(f"r{i}", text, priority=i, policies=frozenset({"berzerker"}) if scoped and i else None)
        for i, text in enumerate(conditions)
    ]
    rs = ruleset(*rules)
    evaluator = Evaluator(HOST, rs)
    for snapshot, now in cases:
        in_scope = rs.in_scope(snapshot.policy)
        if snapshot.policy not in rs.scoped_policies():
            in_scope = tuple(r for r in in_scope if r.policies is None)
        want = {r.name for r in in_scope if ref.holds(r.condition, snapshot, now)}
        got = evaluator.evaluate(snapshot, now)
        assert {r.name for r in got.matched} == want, (snapshot, now)
        assert {r.name for r in got.in_scope} == {r.name for r in in_scope}
        check_next(got.next_check_at, in_scope, snapshot, now)


def truths(rules: tuple[object, ...], snapshot: Snapshot, now: int) -> list[bool]:
    return [
        ref.holds(c, snapshot, now)
        for r in rules
        for c in ref.comparisons(r.condition)  # type: ignore[attr-defined]
    ]


def check_next(at: int | None, in_scope: tuple[object, ...], snapshot: Snapshot, now: int) -> None:
    if snapshot.status == "closed":
        assert at is None
        return
    base = truths(in_scope, snapshot, now)
    if at is None:
        # Nothing can change with time: the far future looks the same as now.
        assert truths(in_scope, snapshot, now + 10**9) == base
        return
    assert at > now
    assert truths(in_scope, snapshot, at - 1) == base  # nothing changes before `at`
    assert truths(in_scope, snapshot, at) != base  # something does at `at`


@pytest.mark.parametrize(
    ("when", "field", "threshold"),
    [
        ("balance <= stop_loss", "balance", 2**63),
        ("balance <= stop_loss", "balance", 2**64),
        ("balance <= stop_loss", "balance", 2**255),
        ("balance >= take_profit", "balance", 2**256 - 2),
        ("balance <= 50% of deposit", "balance", 2**255 - 1),
    ],
)
def test_margins_of_one_base_unit(when: str, field: str, threshold: int) -> None:
    """The engine's own numbers would get these wrong past int64 (DESIGN.md)."""
    evaluator = Evaluator(HOST, ruleset(rule("r", when)))
    for delta in (-1, 0, 1):
        other = threshold + delta
        s = snap(
            stop_loss=threshold, take_profit=threshold, deposit=2 * threshold, **{field: other}
        )
        want = ref.holds(evaluator.ruleset.rules[0].condition, s, 0)
        got = evaluator.evaluate(s, 0)
        assert bool(got.matched) == want


def test_one_wei_above_a_threshold_past_int64_does_not_match() -> None:
    evaluator = Evaluator(HOST, ruleset(rule("r", "balance <= stop_loss")))
    got = [
        bool(evaluator.evaluate(snap(stop_loss=10**20, balance=b), 0).matched)
        for b in (10**20 - 1, 10**20, 10**20 + 1)
    ]
    assert got == [True, True, False]


def test_token_units_follow_decimals() -> None:
    evaluator = Evaluator(HOST, ruleset(rule("r", "balance >= 1.5 tokens")))
    assert evaluator.evaluate(snap(decimals=6, balance=1_500_000), 0).matched
    assert not evaluator.evaluate(snap(decimals=6, balance=1_499_999), 0).matched
    assert not evaluator.evaluate(snap(decimals=0, balance=1), 0).matched  # 1 < 1.5
    assert evaluator.evaluate(snap(decimals=0, balance=2), 0).matched


def test_snapshot_outside_uint256_is_refused() -> None:
    from rules import SnapshotError

    evaluator = Evaluator(HOST, ruleset(rule("r", "balance <= stop_loss")))
    with pytest.raises(SnapshotError):
        evaluator.evaluate(snap(balance=2**256), 0)
    with pytest.raises(SnapshotError):
        evaluator.evaluate(snap(balance=-1), 0)


def test_replace_keeps_snapshot_frozen() -> None:
    s = snap()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.balance = 1  # type: ignore[misc]
