"""`rules check` warns (exit 0) about a condition that holds for every active session by
construction; the analysis is sound (it never warns about a condition some session can
make false) and says nothing about ordinary rules, the shipped ones included."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import check_files
from rules.analysis import always_true
from rules.syntax import parse
from tests.rules.test_cli import warden_rules

WARNING = (
    "this condition holds for every active session by construction (e.g. status == "
    '"active" alone, balance >= 0): the rule fires for every session as soon as it is '
    "indexed; add what should trigger it, e.g. balance <= stop_loss"
)

ALWAYS = [
    'status == "active"',
    'status != "closed"',
    'not (status == "revoked")',
    "balance >= 0",
    "now >= 0",
    "deposit + withdrawn >= 0",
    "balance <= balance + 1",
    f"balance <= {2**256 - 1}",
    "1 tokens > 0",
    "policy == policy",
    'status == "active" and (balance >= 0 or expiry > now)',
    "0% of balance == 0",
]
SOMETIMES = [
    'status == "active" and balance <= stop_loss',
    'status == "revoked"',
    "balance > 0",
    "remaining_budget >= 0",  # budget - spent may be negative
    "balance <= 1",
    "now >= expiry",
    "expiry - now <= 10m",
    'policy == "berzerker"',
    "1 tokens > 1",  # decimals may be 0
    "balance >= 0 and stop_loss > 0",
]


@pytest.mark.parametrize("when", ALWAYS)
def test_always_true_conditions_are_found(when: str) -> None:
    assert always_true(parse(when), None)


def test_a_tautology_across_comparisons_is_missed_as_documented() -> None:
    """Each comparison is judged alone (sound, not complete): no false warning either."""
    assert not always_true(parse("balance > 0 or balance == 0"), None)


@pytest.mark.parametrize("when", SOMETIMES)
def test_conditions_some_session_makes_false_are_not_flagged(when: str) -> None:
    assert not always_true(parse(when), None)


def test_a_scope_of_one_policy_fixes_the_policy_field() -> None:
    node = parse('policy == "berzerker"')
    assert always_true(node, frozenset({"berzerker"}))
    assert not always_true(node, frozenset({"berzerker", "merchant"}))
    assert not always_true(parse('policy == "merchant"'), frozenset({"berzerker"}))


def test_rules_check_warns_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n"
        '  - name: all\n    when: status == "active"\n    action: close\n    reason: idle\n'
        "  - name: off\n    when: balance >= 0\n    action: close\n    reason: idle\n"
        "    enabled: false\n"
        "  - name: fine\n    when: balance <= stop_loss\n    action: close\n"
        "    reason: stop_loss\n"
    )
    out = warden_rules("check", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stderr == f"{path}:3:11: rule 'all': warning: {WARNING}\n"  # not the disabled one
    assert out.stdout.startswith("ok: 3 rules (2 enabled) in 1 file, version ")
    assert out.stdout.rstrip().endswith(", 1 warning")
    problems, ruleset = check_files([path])
    assert problems == [] and ruleset is not None
    assert [(w.rule, w.severity) for w in ruleset.warnings] == [("all", "warning")]


def test_the_shipped_rules_have_no_warning() -> None:
    problems, ruleset = check_files(["config/rules", "config/devnet/rules"])
    assert problems == [] and ruleset is not None
    assert ruleset.warnings == ()
