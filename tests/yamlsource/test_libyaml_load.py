"""The fast path (libyaml's events, ruamel's constructor) builds the very document the
reference path (ruamel alone) builds, every key and item at the same position, or leaves
the text to it; either way the text is parsed once.

WARDEN_YAML_EXAMPLES raises the property test's example count (default 300)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yamlsource import Limits, YamlError, YamlMap, YamlSeq, libyaml_load, read_yaml, ruamel_load
from yamlsource.guards import EventGuard
from yamlsource.libyaml_load import Unsupported

pytestmark = pytest.mark.skipif(not libyaml_load.AVAILABLE, reason="PyYAML without libyaml")

EXAMPLES = int(os.environ.get("WARDEN_YAML_EXAMPLES", "300"))
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "config").rglob("*.yaml"))


def fast(text: str) -> Any:
    return libyaml_load.load(text, EventGuard("f.yaml", Limits()))


def reference(text: str) -> Any:
    return ruamel_load.load(text, EventGuard("f.yaml", Limits()))


def shape(value: Any) -> list[object]:
    """Everything the readers of a document can see: types, values and positions."""
    out: list[object] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, YamlMap):
            out.append((type(item), item.lc.line, item.lc.col, len(item)))
            for key in item:
                out.append((type(key), repr(key), (item.lc.data or {}).get(key)))
                stack.append(item[key])
        elif isinstance(item, YamlSeq):
            out.append((type(item), item.lc.line, item.lc.col, len(item)))
            for index, child in enumerate(item):
                out.append((index, (item.lc.data or {}).get(index)))
                stack.append(child)
        else:
            out.append((type(item), repr(item)))
    return out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_shipped_files_take_the_fast_path(path: Path) -> None:
    text = path.read_text()
    assert shape(fast(text)) == shape(reference(text))


@pytest.mark.parametrize(
    "text",
    [
        "a:\tb\n",  # a tab
        "a: b\x85c: d\n",  # NEL: a line break to libyaml only
        "%YAML 1.1\n---\na: 010\n",  # an octal number in YAML 1.1
        "a: &x:y 1\nb: *x:y\n",  # ruamel's anchor is "x:y", libyaml's "x"
        '["k":v]\n',  # libyaml: a mapping; ruamel: refused
        '["k" :v]\n',
        "a:\n  - x\nb: !!str 5\n",  # ruamel keeps how a tag was written
        "a: 1\nb:\nc: 2\n",  # ruamel puts the empty value at the next key
        "a: |#\n  x\n",  # ruamel wants a space before the comment
        "a: |\n \n   x\n",  # ruamel refuses a first line of spaces then a deeper one
        "a: >-\r\n  \r\n    x\r\n",
        ">\n...\n",  # ruamel reads '...' into a top-level block scalar
        "a: &x 1\nb: &x 2\n",  # ruamel warns about the reused anchor
        "a: 1\n---\nb: 2\n",
        "a: [1\n",  # every error: the reference path words it
        "a: *nope\n",
    ],
)
def test_text_libyaml_may_read_otherwise_is_left_to_ruamel(text: str) -> None:
    with pytest.raises(Unsupported):
        fast(text)


def counted(monkeypatch: pytest.MonkeyPatch, module: Any, parser: str) -> list[str]:
    """One entry per parser the module makes from now on."""
    made: list[str] = []
    real = getattr(module, parser)

    def make(*args: Any, **kwargs: Any) -> Any:
        made.append(parser)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, parser, make)
    return made


RULES = "rules:\n" + "".join(
    f"  - name: r{i}\n    when: balance <= {i}\n    action: close\n    reason: idle\n"
    for i in range(50)
)


@pytest.mark.parametrize(
    ("text", "libyaml", "ruamel"),
    [
        (RULES, 1, 0),  # the fast path
        (RULES + "# a tab:\t\n", 0, 1),  # left to ruamel before libyaml parses it
        (RULES + "  - name: x\n    when: [1\n", 1, 1),  # refused: ruamel words the error
    ],
)
def test_each_text_is_parsed_once_unless_it_is_refused(
    monkeypatch: pytest.MonkeyPatch, text: str, libyaml: int, ruamel: int
) -> None:
    c_parsers = counted(monkeypatch, libyaml_load, "CParser")
    ruamel_parsers = counted(monkeypatch, ruamel_load, "_GuardedParser")
    with contextlib.suppress(YamlError):
        read_yaml(text, "f.yaml")
    assert (len(c_parsers), len(ruamel_parsers)) == (libyaml, ruamel)


_INDENTS = st.sampled_from(["", "", " ", "  ", "    "])
_BREAKS = st.sampled_from(["\n", "\n", "\r\n", "\r"])
_SCALARS = st.sampled_from(
    [
        *("a", "b c", "x:y", "p#q", "-r", "?s", "é", "1", "0x1f", "1_000", "1e3", ".inf"),
        *("true", "no", "~", "null", "2001-12-14", "12:30", "'q''s'", '"d\\u00e9\\n"'),
        *("'multi\n  line'", '"esc\\\n  aped"', "plain\n  more", "&a x", "*a", "<<"),
        *("[a, b]", "[a,b,]", "{a: 1, b: [2]}", "[a: b]", "[? a]", "{a}", "[\n a,\n b\n]"),
        *("|\n  lit\n\n   more\n", ">-\n  fold\n  ed\n", "|+\n  k\n\n", ">2\n   two\n"),
        *("", "# c", "a # c", "'#'", "&b [1, *a]", "*b"),
    ]
)
_KEYS = st.sampled_from(["a", "b", "name", "when", "'q k'", '"d"', "1", "é", "<<", "? e"])
_LINES = st.lists(
    st.tuples(
        _INDENTS,
        st.sampled_from(["key", "key", "item", "bare"]),
        _KEYS,
        st.sampled_from([": ", ":", " : ", ":  "]),
        _SCALARS,
    ).map(
        lambda t: (
            t[0]
            + {"key": f"{t[2]}{t[3]}", "item": "- ", "bare": ""}[t[1]]
            + t[4].replace("\n", "\n" + t[0])
        )
    ),
    min_size=1,
    max_size=8,
)
yamlish = st.tuples(_LINES, _BREAKS).map(lambda t: t[1].join(t[0]) + t[1])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yamlish)
def test_the_fast_path_builds_what_ruamel_builds(text: str) -> None:
    try:
        document = fast(text)
    except Unsupported:
        return
    assert shape(document) == shape(reference(text))
