"""Fuzzing the config loader: arbitrary bytes and text, YAML with a wrong value in every
key (huge numbers, floats, NUL and control characters, nested junk, tags, anchors),
references and overrides with junk values. The loader either returns a config or raises
`ConfigError` whose every problem is one `FILE:LINE: ...` (or `$VARIABLE: ...`) line:
never another exception, never a hang.

The default run tries 1,200 examples; WARDEN_CONFIG_EXAMPLES sets the count per test
(`make chaos` runs more)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from warden.app.settings import ConfigError, WardenConfig, load_config

EXAMPLES = int(os.environ.get("WARDEN_CONFIG_EXAMPLES", "400"))
HANG_SECONDS = 10.0  # a hang guard, not a speed target: the worst cases take milliseconds
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _keys() -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for section, info in WardenConfig.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            out += [(section, f.alias or n) for n, f in model.model_fields.items()]
            out.append((section, "token_file" if section == "api" else "raw_key_file"))
        else:
            out.append((section,))
    return out


KEYS = _keys()
SECTIONS = sorted({k[0] for k in KEYS})

# YAML scalars and structures that are wrong somewhere: each is valid YAML on one line.
SNIPPETS = [
    "1" + "0" * 5000, "-" + "9" * 400, "1e999999999", "-1e999999999", "1e-999", ".inf",
    "-.inf", ".nan", "0x" + "f" * 80, "0o777", "0b101", "1_000", "+1", "-0", "true", "no",
    "~", "null", "''", '""', "' '", '"\\0"', '"\\x01\\x7f\\x9f"', '"\\u2028\\u200b"',
    '"\\ud7ff"', "[]", "{}", "[[]]", "[{}]", "{a: {b: {c: []}}}", "[1, 2, 3]", "{a: 1}",
    "!!binary aGVsbG8=", "!!str 1", "!!int '7'", "!!float 1", "!!seq []", "!!map {}",
    "2024-01-01", "2024-01-01T00:00:00Z", "12:30:00", '"${NOPE}"', '"${}"', '"$${X}"',
    '"${X}"', '"${X"', "'../../../../etc/passwd'", "/", ".", "'\\\\'", "'%s%n'",
    '"' + "a" * 5000 + '"', "&a [*a, *a]", "'0.0.0.0'", "'::'", "'50 gwei'", "'1.5 wei'",
    "'1h30m'", "'-5s'", "'0x5FbDB2315678afecb367f032d93F642f64180aA3'",
]  # fmt: skip
scalar_text = st.one_of(
    st.sampled_from(SNIPPETS),
    st.integers(min_value=-(2**300), max_value=2**300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=60).map(lambda s: '"' + s.encode("unicode_escape").decode() + '"'),
)


def junk_value(depth: int = 0) -> st.SearchStrategy[str]:
    if depth >= 2:
        return scalar_text
    inner = junk_value(depth + 1)
    return st.one_of(
        scalar_text,
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(st.sampled_from(["a", "x", "rpc", "0", "token"]), inner, max_size=3).map(
            lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
        ),
    )


def line_for(where: tuple[str, ...], value: str) -> tuple[str, str]:
    return (where[0], f"  {where[1]}: {value}") if len(where) == 2 else ("", f"{where[0]}: {value}")


documents = st.lists(st.tuples(st.sampled_from(KEYS), junk_value()), min_size=1, max_size=8).map(
    lambda pairs: _document([line_for(k, v) for k, v in pairs])
)


def _document(lines: list[tuple[str, str]]) -> str:
    top = [text for section, text in lines if not section]
    by_section: dict[str, list[str]] = {}
    for section, text in lines:
        if section:
            by_section.setdefault(section, []).append(text)
    out = "\n".join(dict.fromkeys(top))
    for section, texts in by_section.items():
        # the same key twice is a duplicate-key refusal: keep the last of each
        kept = {t.split(":", 1)[0]: t for t in texts}
        out += f"\n{section}:\n" + "\n".join(kept.values())
    return out + "\n"


def assert_clean(path: Path, environ: dict[str, str]) -> None:
    """A config, or a ConfigError of FILE:LINE / $VARIABLE lines; nothing else, no hang."""
    start = time.perf_counter()
    try:
        cfg = load_config(path, environ)
        cfg.describe()
        cfg.warnings()
    except ConfigError as exc:
        assert exc.problems
        place = re.compile(rf"({re.escape(str(path))}:[1-9][0-9]*|\$WARDEN_\S+): ")
        for problem in exc.problems:
            assert place.match(problem), problem[:300]
            assert "\n" not in problem and "Traceback" not in problem
    assert time.perf_counter() - start < HANG_SECONDS


@pytest.fixture(scope="module")
def where(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    (base / "rules").mkdir()
    return base / "warden.yaml"


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=2000).map(str.encode),
        st.text(alphabet="[]{}:,-?&*!|>'\"#% \n\t\x00\x07\x1b\x85ab1$", max_size=2000).map(
            str.encode
        ),
    )
)
def test_arbitrary_bytes(where: Path, data: bytes) -> None:
    where.write_bytes(data)
    assert_clean(where, {})


@FUZZ
@given(text=documents)
@example(text="chain:\n  timeout: 1" + "0" * 400 + "\n")  # found: float() overflowed
@example(text='".\\n!": 1\n')  # found: a line break in a key made a two-line problem
def test_wrong_values_in_every_key(where: Path, text: str) -> None:
    where.write_text(text)
    assert_clean(where, {"X": "1"})


override_names = st.sampled_from(KEYS).map(
    lambda k: "WARDEN_" + "__".join(part.upper() for part in k)
) | st.from_regex(r"WARDEN_[A-Za-z_]{0,12}__[A-Za-z_]{0,12}(__[a-z]{1,4})?", fullmatch=True)
env_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=80,
) | st.sampled_from([s for s in SNIPPETS if "\x00" not in s])


@FUZZ
@given(
    overrides=st.dictionaries(override_names, env_values, max_size=6),
    references=st.lists(st.tuples(st.sampled_from(KEYS), env_values), max_size=4),
)
def test_junk_overrides_and_references(
    where: Path, overrides: dict[str, str], references: list[tuple[tuple[str, ...], str]]
) -> None:
    environ = dict(overrides)
    lines = []
    for i, (key, value) in enumerate(references):
        environ[f"REF_{i}"] = value
        lines.append(line_for(key, f'"${{REF_{i}}}"'))
    where.write_text(_document(lines) if lines else "")
    assert_clean(where, environ)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BOMB, "alias"),
        ("chain: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested"),
        ("chain: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n", "nested"),
        ("chain:\n" + "".join("  " * i + "- \n" for i in range(1, 400)), "nested"),
        ("chain:\n  rpc: [\x00]\n", "control"),
        ("api:\n  host: '\x07'\n", "control"),
        ("api:\n  host: \x1b[31m\n", "control"),
        ("executor: !!python/object/apply:os.system ['true']\n", "tag"),
        ("a: !!python/name:os.system\n", "tag"),
    ],
    ids=["alias-bomb", "deep-list", "deep-map", "deep-block", "nul", "bell", "escape",
         "python-apply", "python-name"],
)  # fmt: skip
def test_hostile_documents_are_refused_with_a_line(where: Path, text: str, words: str) -> None:
    where.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_config(where, {})
    assert time.perf_counter() - start < HANG_SECONDS
    (problem,) = caught.value.problems
    assert re.match(rf"{re.escape(str(where))}:[1-9][0-9]*: ", problem), problem
    assert words in problem.lower() or "tag" in problem.lower(), problem


@pytest.mark.parametrize(
    "text",
    [
        '".\\n!": 1\n',  # found by the fuzzer: a key holding a line break
        'executor:\n  raw_key_file: "a\\nb"\n',  # and a path
        'api:\n  "to\\u2028ken": 1\n',
        'chain:\n  rpc: ["\\r\\x85"]\n',
    ],
)
def test_a_problem_is_one_line_whatever_the_key_or_value_holds(where: Path, text: str) -> None:
    where.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(where, {})
    for problem in caught.value.problems:
        assert problem.startswith(f"{where}:") and len(problem.splitlines()) == 1, problem
