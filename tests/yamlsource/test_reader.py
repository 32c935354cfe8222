"""The shared YAML reader: positions, every refusal with FILE:LINE:COLUMN, and arbitrary
text never escaping as anything but YamlError, nor taking a second.

WARDEN_YAML_EXAMPLES raises the property test's example count (default 300)."""

from __future__ import annotations

import os
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yamlsource import (
    Limits,
    YamlError,
    YamlMap,
    YamlSeq,
    item_position,
    key_position,
    position_of,
    read_yaml,
    value_position,
)

EXAMPLES = int(os.environ.get("WARDEN_YAML_EXAMPLES", "300"))
# A hang guard, not a speed target (tests assert no timings): the worst cases run in
# milliseconds; scripts/bench_loaders.py measures them.
HANG_SECONDS = 10.0


def refused(text: str, limits: Limits | None = None) -> YamlError:
    start = time.perf_counter()
    with pytest.raises(YamlError) as info:
        read_yaml(text, "f.yaml", limits or Limits())
    assert time.perf_counter() - start < HANG_SECONDS
    assert str(info.value).startswith(f"f.yaml:{info.value.line}:{info.value.column}: ")
    return info.value


def test_document_carries_positions() -> None:
    doc = read_yaml("chain:\n  rpc: http://x\nfees:\n  - 1\n  - {max: 2}\n", "c.yaml")
    assert isinstance(doc, YamlMap) and isinstance(doc["fees"], YamlSeq)
    assert doc == {"chain": {"rpc": "http://x"}, "fees": [1, {"max": 2}]}
    assert key_position(doc, "fees") == (3, 1)
    assert value_position(doc["chain"], "rpc") == (2, 8)
    assert item_position(doc["fees"], 1) == (5, 5)
    assert position_of(doc, ("fees", 1, "max")) == (5, 6)
    assert position_of(doc, ("chain", "missing")) == (1, 1)  # deepest part present
    assert position_of(doc, ("fees", 7)) == (3, 1)
    assert position_of(doc, ("nothing",)) == (1, 1)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_no_value_is_none(text: str) -> None:
    assert read_yaml(text) is None


def test_plain_anchors_merges_and_standard_tags_are_fine() -> None:
    doc = read_yaml("base: &b {a: 1}\nx:\n  <<: *b\n  c: !!str 5\ny: *b\nz: !!str\n")
    assert doc["x"] == {"a": 1, "c": "5"} and doc["y"] == {"a": 1}
    assert doc["x"]["c"] == "5" and type(doc["x"]["c"]) is str and doc["z"] == ""


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: 1\nb: x\x00y\n", 2, 5, "control character U+0000 (NUL) is not allowed"),
        ("a: \x1b[31m\n", 1, 4, "U+001B (ESC)"),
        ("a: \x7f\n", 1, 4, "U+007F is not allowed"),
        ("a: 1\na: 2\n", 2, 1, "duplicate key 'a' in one mapping: keep only one of them"),
        ('a: "open\n', 2, 1, "YAML syntax error: found unexpected end of stream"),
        ("a: !!python/object:os.system x\n", 1, 4, "tag !!python/object:os.system is not"),
        ("a: !!python/name:os.system\n", 1, 4, "remove the tag"),
        ("a: !custom x\n", 1, 4, "tag !custom is not accepted"),
        ("a: !!set {x}\n", 1, 4, "tag !!set"),
        ("%TAG !! tag:evil.com,2000:\n---\na: !!str x\n", 3, 4, "tag tag:evil.com,2000:str"),
        ("a: *nope\n", 1, 4, "alias *nope refers to no anchor"),
        ("a: &x [1, *x]\n", 1, 11, "alias *x is inside the node &x"),
        ("{[a]: 1}\n", 1, 2, "a mapping key must be text or a number, found a list"),
        ("{" * 30 + "}" * 30, 1, 2, "found a mapping"),
        ("a: 2001-13-45\n", 1, 4, "cannot read the value '2001-13-45'"),
        ("a: 1\n---\nb: 2\n", 2, 1, "expected a single document"),
    ],
)
def test_refusals_say_where_and_what(text: str, line: int, column: int, message: str) -> None:
    error = refused(text)
    assert (error.file, error.line, error.column) == ("f.yaml", line, column)
    assert message in error.message


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "{" * 100_000,
        "[ " * 50_000,
        "[a, " * 25_000,
        "{a: " * 25_000,
        "- " * 50_000,
        "[\n" * 50_000,
        "".join(f"{'  ' * i}k{i}:\n" for i in range(200)),
    ],
)
def test_deep_nesting_is_refused_quickly_without_recursion(text: str) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # the reader must not need more than a modest stack
    try:
        error = refused(text)
    finally:
        sys.setrecursionlimit(limit)
    assert "nested more than 64 levels deep" in error.message


def test_64_levels_are_fine() -> None:
    doc = read_yaml("[" * 64 + "]" * 64)
    for _ in range(63):
        doc = doc[0]
    assert doc == []


def billion_laughs(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bombs_are_refused() -> None:
    assert "too many aliases" in refused(billion_laughs(9)).message
    many = "a: &a 1\nb: [" + ", ".join(["*a"] * 101) + "]\n"
    assert "too many aliases" in refused(many).message
    assert read_yaml(billion_laughs(3))["a2"][0][0][0] == "x"  # 81 repeated values: fine


def test_limits_are_adjustable() -> None:
    assert "nested more than 3" in refused("[[[[1]]]]", Limits(max_depth=3)).message
    assert "characters long" in refused("a: 12345", Limits(max_chars=5)).message


def test_error_is_one_line_per_problem_for_config_loaders() -> None:
    error = refused("a: 1\nb: [\n")
    assert "\n" not in str(error)


junk = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=400).map(lambda b: b.decode("latin-1")),
    st.text(alphabet="[]{}:,-?&*!|>'\"# \n\tab1", max_size=600),
    st.integers(0, 3000).map(lambda n: "[" * n),
    st.tuples(st.integers(0, 200), st.text(max_size=20)).map(lambda t: "{a: " * t[0] + t[1]),
    st.lists(
        st.sampled_from(["&a ", "*a ", "[", "]", ", ", "a: ", "\n", "- ", "&b ", "*b "]),
        max_size=300,
    ).map("".join),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=junk)
def test_arbitrary_text_reads_or_is_refused_without_hanging(text: str) -> None:
    start = time.perf_counter()
    try:
        read_yaml(text, "j.yaml")
    except YamlError as error:
        assert error.file == "j.yaml" and error.line >= 1 and error.column >= 1
    assert time.perf_counter() - start < HANG_SECONDS
