# ruff: noqa: RUF001  (the look-alike characters are the point of these tests)
"""Property fuzz of the rule loader: arbitrary conditions, arbitrary rule documents and
arbitrary bytes never raise anything (every outcome is a list of Problems with
FILE:LINE:COLUMN, or a usable rule set), never hit an internal error, and never hang.

1,100 examples by default across the three tests; WARDEN_RULES_EXAMPLES multiplies them
(`WARDEN_RULES_EXAMPLES=20 pytest tests/rules/test_fuzz_loader.py` for a long run).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import RulesHolder, RulesHost, check_files
from rules.rule_file import RULE_KEYS
from rules.snapshot import FIELD_TYPES

SCALE = int(os.environ.get("WARDEN_RULES_EXAMPLES", "1"))
# A hang guard, not a speed target (tests never assert timings): an example takes
# milliseconds; before the bounds, `1e999999999` took minutes.
HANG_SECONDS = 10.0
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

FRAGMENTS = [
    *FIELD_TYPES, "position", "and", "or", "not", "of", "tokens", "token",
    "<", "<=", ">", ">=", "==", "!=", "=", "+", "-", "%", "(", ")", "^", "*", "**", "/",
    "0", "1", "50", "1.5", "1_000", "1e18", "1e77", "1e78", "1e999999999", "0." + "0" * 90 + "1",
    "9" * 80, "9" * 5000, str(2**256), str(2**256 - 1), "30s", "10m", "24h", "7d", "1w", "1.5h",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999w",
    '"active"', '"revoked"', "'closed'", '"', "'", '"café"',
    "²", "‹", "٣", "１", "≤", "\u00a0", "“", "а", "\t", "\n", "\\",
]  # fmt: skip
conditions = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.text(max_size=200),
    st.sampled_from(FRAGMENTS).map(lambda f: "(" * 300 + f + ")" * 300),
    st.integers(min_value=1, max_value=3000).map(lambda n: "not " * n + "balance <= 1"),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["close", "sweep", "stop_loss", "idle", "swept", "berzerker", "stop-loss"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(RULE_KEYS), st.text(max_size=8)), inner,
                        max_size=4),
    ),
    max_leaves=20,
)  # fmt: skip
rules_ = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True), values),
        "when": st.one_of(conditions, values),
        "action": st.one_of(st.sampled_from(["close", "sweep"]), values),
        "reason": st.one_of(st.sampled_from(["stop_loss", "idle", "swept"]), values),
        "priority": st.one_of(st.integers(), values),
        "enabled": st.one_of(st.booleans(), values),
        "scope": st.one_of(st.fixed_dictionaries({"policy": values}), values),
        "replaces": values,
    },
)
documents = st.one_of(
    st.fixed_dictionaries({"rules": st.lists(rules_, max_size=4)}).map(json.dumps),
    values.map(json.dumps),
    st.lists(
        st.sampled_from([
            "rules:\n", "  - ", "name: a\n", "    when: ", "balance <= 1", "\n",
            "    action: close\n", "    reason: idle\n", "&x ", "*x ",
            "!!python/object/apply:os.system ",
            "!!binary ", "[", "]", "{", "}", "\0", "\x1b", "\ufeff", "'", '"', "? ", ": ", "---\n",
        ]),
        max_size=60,
    ).map("".join),
)  # fmt: skip


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@pytest.fixture(scope="module")
def holder(workdir: Path) -> RulesHolder:
    good = workdir / "good.yaml"
    good.write_text(
        "rules:\n  - name: g\n    when: balance <= 1\n    action: close\n    reason: idle\n"
    )
    return RulesHolder(RulesHost(), [good])


def _check(path: Path, holder: RulesHolder | None = None) -> None:
    start = time.perf_counter()
    problems, ruleset = check_files([path])  # must not raise
    assert (ruleset is None) == bool(problems)
    for problem in problems:
        assert problem.file == str(path) and problem.line >= 1 and problem.column >= 1
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: ")
        assert "internal error" not in problem.message, problem
    if holder is not None and ruleset is not None:
        result = holder.reload([path])  # compiles it: must not raise either
        assert not any("internal error" in p.message for p in result.problems), result.problems
    assert time.perf_counter() - start < HANG_SECONDS


@settings(FUZZ, max_examples=500 * SCALE)
@given(when=conditions)
def test_arbitrary_conditions_are_problems_or_rules(
    when: str, workdir: Path, holder: RulesHolder
) -> None:
    path = workdir / "cond.yaml"
    rule = {"name": "a", "when": when, "action": "close", "reason": "idle"}
    path.write_text(json.dumps({"rules": [rule]}), encoding="utf-8")
    _check(path, holder)


@settings(FUZZ, max_examples=400 * SCALE)
@given(text=documents)
def test_arbitrary_rule_documents_are_problems_or_rules(
    text: str, workdir: Path, holder: RulesHolder
) -> None:
    path = workdir / "doc.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(path, holder)


@settings(FUZZ, max_examples=200 * SCALE)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_are_problems(data: bytes, workdir: Path) -> None:
    path = workdir / "bytes.yaml"
    path.write_bytes(data)
    _check(path)
