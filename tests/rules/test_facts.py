"""The fast evaluation path's parts on their own: the number encoding the engine compares,
the generated fact builder against the generic one, odd text, refused snapshots, and the
direct action dispatch staying usable after an engine surprise."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import EngineError, Evaluator, RulesHost, Snapshot, SnapshotError, load_rules
from rules.facts import encode
from tests.rules._factories import D18, rule, ruleset, snap

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "rules"
HOST = RulesHost()

BOUNDARIES = [
    s * (b + d)
    for b in (0, 10**24, 10**78 - 1, 2**256 - 1)
    for d in (-1, 0, 1)
    for s in (1, -1)
    if abs(b + d) < 10**78
]
integers = st.one_of(st.sampled_from(BOUNDARIES), st.integers(-(10**78) + 1, 10**78 - 1))


@settings(max_examples=500, deadline=None)
@given(a=integers, b=integers, width=st.sampled_from([78, 79, 90]))
def test_encoding_sorts_bytewise_like_the_integers(a: int, b: int, width: int) -> None:
    ea, eb = encode(a, width), encode(b, width)
    assert (ea.encode() < eb.encode()) == (a < b)
    assert (ea == eb) == (a == b)


def test_short_form_for_everyday_values_long_form_past_1e24() -> None:
    assert encode(0, 78) == "pA" + "0" * 24
    assert encode(10**24 - 1, 78) == "pA" + "9" * 24
    assert encode(10**24, 78) == "pB" + str(10**24).zfill(78)
    assert encode(-1, 78) == "nB" + "9" * 24
    assert encode(-(10**24), 78) == "nA" + str(10**78 - 10**24).zfill(78)


def odd_snapshots() -> list[Snapshot]:
    out = []
    for i, policy in enumerate(["", "berzerker", "merchant", "disciple", 'x"y', "50%\\"]):
        for balance in (0, 40 * D18, 10**24 - 1, 10**24, 2**256 - 1):
            out.append(
                snap(
                    policy=policy,
                    balance=balance,
                    deposit=max(balance, 100 * D18),
                    withdrawn=i * D18,
                    stop_loss=(i % 3) * 10**24,
                    take_profit=0 if i % 2 else 2**255,
                    status=("active", "revoked", "closed")[i % 3],
                    owner="ü%s\n\t\\",
                )
            )
    return out


@pytest.mark.parametrize("now", [0, 1_700_000_000, 2**64 + 1])
def test_generated_builder_equals_the_generic_one_on_the_shipped_rules(now: int) -> None:
    evaluator = Evaluator(HOST, load_rules([SHIPPED]))
    for index, snapshot in enumerate(odd_snapshots()):
        facts = evaluator.group_for(snapshot.policy).facts
        values = facts.read(snapshot, now)
        payload, at = facts.build(index, snapshot, now, True)
        assert orjson.loads(payload) == facts.fact(index, snapshot, values)
        assert at == facts.next_check_at(values, now)
        assert facts.build(index, snapshot, now, False) == (payload, None)


def test_odd_text_compares_exactly() -> None:
    rs = ruleset(
        rule("quote", "policy == 'x\"y'"),
        rule("percent", 'policy == "50%s\\\\"'),
        rule("same", "owner == operator"),
    )
    cases = [
        (snap(policy='x"y'), {"quote"}),
        (snap(policy="x'y"), set()),
        (snap(policy="50%s\\\\"), {"percent"}),
        (snap(policy="50%s\\"), set()),
        (snap(owner="ü\n%", operator="ü\n%"), {"same"}),
        (snap(owner="ü\n%", operator="ü\n%d"), set()),
    ]
    evaluator = Evaluator(HOST, rs)
    for snapshot, want in cases:
        got = {r.name for r in evaluator.evaluate(snapshot, 0).matched}
        assert got == want, (snapshot.policy, snapshot.owner)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"balance": -1}, "balance=-1 is not a uint256"),
        ({"balance": 2**256}, f"balance={2**256} is not a uint256"),
        ({"stop_loss": True}, "stop_loss=True is not a uint256"),
        ({"expiry": 1.5}, "expiry=1.5 is not a uint256"),
        ({"decimals": 78}, "decimals 78 outside 0..77"),
        ({"owner": 5}, "a text field is not a string"),
    ],
)
def test_refused_snapshot_names_the_field(changes: dict[str, object], message: str) -> None:
    rs = ruleset(rule("r", "balance <= stop_loss + 1 token and now < expiry and owner != ''"))
    evaluator = Evaluator(HOST, rs)
    with pytest.raises(SnapshotError, match=message.replace(".", r"\.")):
        evaluator.evaluate(snap(**changes), 0)
    assert evaluator.evaluate(snap(), 0).matched == ()  # nothing left behind


def test_a_firing_for_another_fact_is_an_engine_error_and_leaves_the_engine_clean() -> None:
    evaluator = Evaluator(HOST, ruleset(rule("r", "balance <= stop_loss")))
    group = evaluator.group_for("")
    payload, _ = group.facts.build(10**9, snap(balance=1), 0, True)
    handle = HOST.handle_of(group.engine_name)
    with pytest.raises(EngineError, match=f"r0 fired for fact {10**9} while evaluating 5"):
        HOST.fire(handle, 5, payload)
    # The foreign action was consumed and the fact retracted: later evaluations are exact.
    assert [bool(evaluator.evaluate(snap(balance=b), 0).matched) for b in (1, 10**30, 1)] == [
        True,
        False,
        True,
    ]


def test_every_matching_rule_fires_once_per_evaluation() -> None:
    rs = ruleset(*(rule(f"r{i}", f"balance >= {i}", priority=-i) for i in range(6)))
    evaluator = Evaluator(HOST, rs)
    for balance in range(7):
        got = [r.name for r in evaluator.evaluate(snap(balance=balance), 0).matched]
        assert got == [f"r{i}" for i in range(min(balance + 1, 6))]
