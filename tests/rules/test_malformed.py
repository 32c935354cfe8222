# ruff: noqa: E501  (expected messages are kept whole so they can be grepped)
"""Malformed rule files: every problem reported, with its exact message and position."""

from __future__ import annotations

from pathlib import Path

import pytest

from rules import RulesError, check_files, load_rules
from tests.rules._cases import CASES, GOOD

# id -> [(line, column, rule, message)]; "{file}" stands for the file's path.
EXPECTED: dict[str, list[tuple[int, int, str | None, str]]] = {
    "empty": [
        (1, 1, None, "file is empty: add a 'rules:' list (see docs/rules.md)"),
    ],
    "only-comments": [
        (1, 1, None, "file is empty: add a 'rules:' list (see docs/rules.md)"),
    ],
    "yaml-syntax-unclosed-quote": [
        (
            4,
            1,
            None,
            "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar started at line 2, column 11); check quotes and indentation",
        ),
    ],
    "yaml-syntax-bad-indent": [
        (
            3,
            4,
            None,
            "YAML syntax error: expected <block end>, but found '<block mapping start>' (while parsing a block collection started at line 2, column 3); check quotes and indentation",
        ),
    ],
    "top-level-list": [
        (1, 1, None, "expected a mapping with a 'rules:' list at the top, found a list"),
    ],
    "unknown-top-level-key": [
        (1, 1, None, "unknown top-level key 'rule': did you mean 'rules'?"),
        (1, 1, None, "missing 'rules:' list at the top of the file"),
    ],
    "rules-not-list": [
        (1, 8, None, "'rules' must be a non-empty list of rules, each starting with '- name: ...'"),
    ],
    "rule-not-mapping": [
        (2, 5, None, "a rule must be a mapping with name, when and action; found text"),
    ],
    "missing-name": [
        (2, 5, None, "missing 'name': give the rule a unique name, e.g. name: stop-loss"),
    ],
    "missing-when": [
        (2, 5, "a", "missing 'when': e.g. when: balance <= stop_loss"),
    ],
    "missing-action": [
        (2, 5, "a", "missing 'action': e.g. action: close"),
    ],
    "unknown-rule-key": [
        (5, 5, "a", "unknown key 'priorty' in rule: did you mean 'priority'?"),
    ],
    "unknown-action": [
        (
            4,
            13,
            "a",
            "unknown action 'clsoe': did you mean 'close'? (close ends the session with a reason, sweep refunds a revoked or expired one, notify only tells the channels)",
        ),
    ],
    "bad-reason": [
        (5, 13, "a", "bad reason 'stoploss' for close: did you mean 'stop_loss'?"),
    ],
    "close-without-reason": [
        (4, 5, "a", "action 'close' needs a reason: stop_loss, take_profit, expired, idle"),
    ],
    "sweep-with-reason": [
        (
            5,
            13,
            "a",
            "bad reason 'idle' for sweep: a sweep's reason is always 'swept' (leave it out)",
        ),
    ],
    "duplicate-name": [
        (
            5,
            11,
            "a",
            "duplicate rule name 'a': first defined at {file}:2:11; rule names must be unique across all loaded files, rename one",
        ),
    ],
    "priority-not-int": [
        (5, 15, "a", "'priority' must be a whole number, e.g. priority: 100, found text 'high'"),
    ],
    "enabled-not-bool": [
        (5, 14, "a", "'enabled' must be true or false, found text 'yes'"),
    ],
    "bad-name": [
        (
            2,
            11,
            None,
            "rule name must be 1-64 letters, digits, '-', '_' or '.' (e.g. stop-loss), found 'stop loss!'",
        ),
    ],
    "unknown-field": [
        (3, 11, "a", "in 'when': unknown field 'balanse': did you mean 'balance'?"),
    ],
    "amount-vs-time": [
        (
            3,
            19,
            "a",
            "in 'when': type mismatch: 'balance' is an amount but 'expiry' is a time; compare amounts with amounts, times with times, durations with durations",
        ),
    ],
    "bad-duration": [
        (
            3,
            34,
            "a",
            "in 'when': bad duration '24x': write a whole number followed by s, m, h, d or w (e.g. 30s, 10m, 24h, 7d), or put a space before a word",
        ),
    ],
    "syntax-missing-operand": [
        (3, 21, "a", "in 'when': condition ends too early: a value is missing here"),
    ],
    "unclosed-paren": [
        (3, 11, "a", "in 'when': this '(' is not closed: add ')' before the end of the condition"),
    ],
    "decimal-base-units": [
        (
            3,
            22,
            "a",
            "in 'when': '1.5' is not a whole number: amounts without a unit are base units; write '1.5 tokens' for token units",
        ),
    ],
    "unquoted-text": [
        (
            3,
            21,
            "a",
            "in 'when': unknown field 'active': to compare status with text, quote it: \"active\"",
        ),
    ],
    "unknown-status": [
        (
            3,
            21,
            "a",
            'in \'when\': unknown status "activ": did you mean "active"? a session is "active", "revoked" or "closed"',
        ),
    ],
    "not-a-condition": [
        (
            3,
            11,
            "a",
            "in 'when': the expression is an amount, not a condition: compare it, e.g. balance <= stop_loss",
        ),
    ],
    "order-on-text": [
        (3, 17, "a", "in 'when': '<' does not apply to text: compare text with == or !="),
    ],
    "percent-of-time": [
        (
            3,
            18,
            "a",
            "in 'when': a percentage applies to an amount, but 'expiry' is a time: write e.g. 50% of deposit",
        ),
    ],
    "time-plus-time": [
        (
            3,
            25,
            "a",
            "in 'when': cannot add 'created_at' (a time) to 'expiry' (a time): add durations to times, e.g. last_activity + 24h",
        ),
    ],
    "plain-number-as-duration": [
        (
            3,
            32,
            "a",
            "in 'when': cannot add '86400' (a number) to 'last_activity' (a time): give plain numbers a unit: 30s, 10m, 24h, 7d",
        ),
    ],
    "chained-comparison": [
        (
            3,
            23,
            "a",
            "in 'when': chained comparison: write 'a < b and b < c' instead of 'a < b < c'",
        ),
    ],
    "c-style-and": [
        (3, 24, "a", "in 'when': unexpected character '&': use 'and'"),
    ],
    "single-equals": [
        (3, 19, "a", "in 'when': '=' is not a comparison: use '=='"),
    ],
    "unterminated-string": [
        (3, 22, "a", "in 'when': unterminated string: close it with \""),
    ],
    "when-not-text": [
        (3, 11, "a", "'when' must be a condition written as text, found a number 5"),
    ],
    "empty-when": [
        (3, 11, "a", "in 'when': empty condition: write e.g. balance <= stop_loss"),
    ],
    "scope-unknown-key": [
        (5, 13, "a", "unknown key 'polcy' in scope: did you mean 'policy'?"),
    ],
    "scope-policy-wrong-type": [
        (5, 21, "a", "scope policy must be a policy name or a list of names, found a number"),
    ],
    "replaces-unknown": [
        (2, 11, "a", "replaces unknown rule 'stop-los': did you mean 'stop-loss'?"),
    ],
    "replaces-without-scope": [
        (
            5,
            5,
            "a",
            "'replaces' needs a scope: a preset stands in for a generic rule only for the policies in its scope",
        ),
    ],
    "duplicate-key": [
        (3, 5, None, "duplicate key 'name' in one mapping: keep only one of them"),
    ],
    "multiline-when-error": [
        (
            5,
            15,
            "a",
            "in 'when': type mismatch: 'balance' is an amount but 'expiry' is a time; compare amounts with amounts, times with times, durations with durations",
        ),
    ],
    "several-errors-at-once": [
        (
            3,
            19,
            "a",
            "in 'when': type mismatch: 'balance' is an amount but 'expiry' is a time; compare amounts with amounts, times with times, durations with durations",
        ),
        (
            4,
            13,
            "a",
            "unknown action 'clos': did you mean 'close'? (close ends the session with a reason, sweep refunds a revoked or expired one, notify only tells the channels)",
        ),
        (5, 15, "a", "'priority' must be a whole number, e.g. priority: 100, found text 'x'"),
    ],
    "duplicate-name-first-broken": [
        (
            4,
            13,
            "a",
            "unknown action 'clsoe': did you mean 'close'? (close ends the session with a reason, sweep refunds a revoked or expired one, notify only tells the channels)",
        ),
        (
            5,
            11,
            "a",
            "duplicate rule name 'a': first defined at {file}:2:11; rule names must be unique across all loaded files, rename one",
        ),
    ],
    "duplicate-name-both-broken": [
        (
            3,
            19,
            "a",
            "in 'when': type mismatch: 'balance' is an amount but 'expiry' is a time; compare amounts with amounts, times with times, durations with durations",
        ),
        (7, 5, "a", "action 'close' needs a reason: stop_loss, take_profit, expired, idle"),
        (
            5,
            11,
            "a",
            "duplicate rule name 'a': first defined at {file}:2:11; rule names must be unique across all loaded files, rename one",
        ),
    ],
    "control-character": [
        (
            2,
            12,
            None,
            "control character U+0000 (NUL) is not allowed in YAML: remove it (the file may be binary or damaged; tabs, newlines and CR are fine)",
        ),
    ],
    "object-tag": [
        (
            2,
            11,
            None,
            "tag !!python/object/apply:os.system is not accepted: only plain values are read from this file (text, numbers, true/false, lists, mappings); remove the tag",
        ),
    ],
    "alias-bomb": [
        (
            2,
            409,
            None,
            "too many aliases: more than 100 '*' references or 10,000 values repeated through them; write the values out instead",
        ),
    ],
    "replaces-broken-rule": [
        (
            4,
            13,
            "a",
            "unknown action 'clsoe': did you mean 'close'? (close ends the session with a reason, sweep refunds a revoked or expired one, notify only tells the channels)",
        ),
    ],
}


def test_every_case_has_an_expectation() -> None:
    assert set(EXPECTED) == set(CASES)
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file(case: str, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(CASES[case])
    problems, ruleset = check_files([path])
    assert ruleset is None
    got = [(p.file, p.line, p.column, p.rule, p.message) for p in problems]
    want = [
        (str(path), line, column, rule, message.format(file=path))
        for line, column, rule, message in EXPECTED[case]
    ]
    assert got == want


def test_errors_from_several_files_all_reported_and_names_unique_across_files(
    tmp_path: Path,
) -> None:
    good = tmp_path / "a.yaml"
    good.write_text(GOOD)
    again = tmp_path / "b.yaml"
    again.write_text(GOOD.replace("balance <= stop_loss", "balance < stop_loss"))
    bad = tmp_path / "c.yaml"
    bad.write_text(CASES["unknown-action"])
    with pytest.raises(RulesError) as info:
        load_rules([tmp_path])
    messages = [str(p) for p in info.value.problems]
    assert messages == [
        f"{bad}:4:13: rule 'a': unknown action 'clsoe': did you mean 'close'? (close ends the "
        "session with a reason, sweep refunds a revoked or expired one, notify only tells the channels)",
        f"{again}:2:11: rule 'stop-loss': duplicate rule name 'stop-loss': first defined at "
        f"{good}:2:11; rule names must be unique across all loaded files, rename one",
    ]
    assert str(info.value).startswith("2 problems in rule files\n")


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems, ruleset = check_files([tmp_path / "nope.yaml"])
    assert ruleset is None
    assert len(problems) == 1
    assert problems[0].message.startswith("cannot read file: ")


def test_quoted_condition_columns_point_inside_the_quotes(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text('rules:\n  - name: a\n    when: "balance <= expiry"\n    action: sweep\n')
    problems, _ = check_files([path])
    assert [(p.line, p.column) for p in problems] == [(3, 20)]
