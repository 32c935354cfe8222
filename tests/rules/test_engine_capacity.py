"""Rule sets the engine cannot run are refused when checked, before they are compiled.

durable-rules 2.0, measured: more than 64 matches of one fact fail that session's every
evaluation (error 303), more than 512 alternatives in one ruleset never finish compiling
(a reload would hang in C, deaf to signals), more than 255 fact properties are refused
(error 302). Up to the limits, the worst case (everything true at once) compiles and
evaluates; one past them, `check_files` names the rule that crosses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RulesHost, Snapshot, check_files
from rules.analysis import MAX_FACT_PROPERTIES, MAX_GROUP_BRANCHES
from rules.evaluator import Evaluator

TOO_MANY = (
    "the rules for {group} need more than {limit} alternatives (rules, counting each 'or'), "
    "more than the rules engine evaluates for one session: disable or merge rules, or scope "
    "them to fewer policies"
)
ALL_TRUE = Snapshot(
    wallet="0x1", owner="0x2", operator="0x3", token="0x4", policy="", status="active",
    deposit=10**6, withdrawn=0, balance=1, spent=0, budget=0, stop_loss=0, take_profit=0,
    expiry=0, created_at=0, last_activity=0, execution_count=0, decimals=18, position=0,
)  # fmt: skip


def write(tmp_path: Path, conditions: list[str], scope: str = "") -> Path:
    lines = ["rules:"]
    for i, when in enumerate(conditions):
        lines += [f"  - name: r{i:03d}", f"    when: {when}", "    action: close",
                  "    reason: idle"]  # fmt: skip
        if scope:
            lines.append(f"    scope: {{policy: {scope}}}")
    path = tmp_path / "r.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def or_of(count: int, offset: int = 0) -> str:
    return " or ".join(f"balance<={offset + i + 1}" for i in range(count))


AT_LIMIT = {
    "64 rules": [f"balance <= {i + 1}" for i in range(MAX_GROUP_BRANCHES)],
    "32 rules of 2 alternatives": [
        f"balance <= {i + 1} or deposit >= {i}" for i in range(MAX_GROUP_BRANCHES // 2)
    ],
    "2 rules of 32 alternatives": [or_of(32), or_of(32, 100)],
    "16 rules of (a or b) and (c or d)": [
        f"(balance <= {i + 1} or deposit >= {i}) and (spent <= {i} or budget <= {i})"
        for i in range(MAX_GROUP_BRANCHES // 4)
    ],
    "236 fact properties": [
        " and ".join(f"balance<={r * 28 + j + 1}%of deposit" for j in range(28)) for r in range(16)
    ],
}


@pytest.mark.parametrize("case", list(AT_LIMIT))
def test_at_the_limits_everything_true_at_once_compiles_and_evaluates(
    tmp_path: Path, case: str
) -> None:
    problems, ruleset = check_files([write(tmp_path, AT_LIMIT[case])])
    assert problems == [] and ruleset is not None
    evaluator = Evaluator(RulesHost(), ruleset)
    evaluation = evaluator.evaluate(ALL_TRUE, 1)
    assert len(evaluation.matched) == len(ruleset.rules)


def test_one_rule_past_the_limit_is_refused_at_that_rule(tmp_path: Path) -> None:
    path = write(tmp_path, [f"balance <= {i + 1}" for i in range(MAX_GROUP_BRANCHES + 1)])
    problems, ruleset = check_files([path])
    assert ruleset is None
    # Rules are taken by priority, then name: r064 is the 65th.
    assert [str(p) for p in problems] == [
        f"{path}:{2 + 4 * 64}:11: rule 'r064': "
        + TOO_MANY.format(group="sessions without a scoped policy", limit=MAX_GROUP_BRANCHES)
    ]


def test_alternatives_count_across_rules_and_inside_them(tmp_path: Path) -> None:
    path = write(tmp_path, [or_of(32), or_of(32, 100), "balance <= 7"], scope="berzerker")
    problems, _ = check_files([path])
    assert [p.rule for p in problems] == ["r002"]
    assert problems[0].message == TOO_MANY.format(
        group="policy 'berzerker'", limit=MAX_GROUP_BRANCHES
    )
    nested = [
        "(balance<=1 or deposit<=1) and (spent<=1 or budget<=1) "
        "and (execution_count<=1 or execution_count>=9)"
    ]
    assert check_files([write(tmp_path, nested * 8)])[0] == []  # 8 x 8 = 64
    assert len(check_files([write(tmp_path, nested * 9)])[0]) == 1


def test_scopes_split_the_count(tmp_path: Path) -> None:
    """The limit is per policy group: 600 rules over 10 policies are fine."""
    lines = ["rules:"]
    for i in range(600):
        lines += [f"  - name: r{i:03d}", f"    when: balance <= {i + 1}", "    action: close",
                  "    reason: idle", f"    scope: {{policy: p{i // 60}}}"]  # fmt: skip
    path = tmp_path / "r.yaml"
    path.write_text("\n".join(lines) + "\n")
    problems, ruleset = check_files([path])
    assert problems == [] and ruleset is not None


def test_too_many_fact_properties_are_refused(tmp_path: Path) -> None:
    many = [
        " and ".join(f"balance<={r * 28 + j + 1}%of deposit" for j in range(28)) for r in range(20)
    ]
    problems, _ = check_files([write(tmp_path, many)])
    assert len(problems) == 1
    assert f"more than {MAX_FACT_PROPERTIES} distinct fields and computed values" in (
        problems[0].message
    )
