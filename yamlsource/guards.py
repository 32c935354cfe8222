"""The refusals made before a document is built: characters, then each parser event.

Both are loops, never recursion: ruamel's composer and constructor recurse once per
nesting level, so the depth is bounded here, on each start event before the composer
descends into it, and the parser's event stream (a state machine) is read only up to
the first refusal, which keeps the time spent on hostile text small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from yamlsource.errors import YamlError

# What ruamel's reader refuses, plus nothing else: tab, LF and CR are the only C0
# controls YAML allows; DEL, the C1 controls (but NEL) and U+FFFE/U+FFFF are out too.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_C0_NAMES = [
    *("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL"),
    *("BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI"),
    *("DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB"),
    *("CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"),
]
# ruamel's scanner keeps each '[' or '{' of the last 1024 characters of a line as a
# possible key and rescans them all for every token: a line of openers costs it about a
# second before the first event reaches check_events. So more openers on one line than
# the depth allows, none closed in between, are refused first. (Brackets inside a quoted
# string count too; no real config has 65 of them in a row.)
_OPENERS = r"[\[{](?:[^\[\]{}\n]*[\[{]){%d}"
_STANDARD = "tag:yaml.org,2002:"
# Tags that only say which plain value a scalar or collection is; every other tag asks
# a constructor for something else (a Python object, a set, a timestamp, bytes...).
ALLOWED_TAGS = frozenset(
    {"!", *(_STANDARD + kind for kind in ("str", "int", "float", "bool", "null", "map", "seq"))}
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds far above any config or rule file, far below what hurts."""

    max_chars: int = 1_000_000
    max_depth: int = 64  # nested mappings and sequences
    max_aliases: int = 100  # '*name' references in one file
    max_alias_nodes: int = 10_000  # nodes the aliases would add if expanded


def line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of the character at `index`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def check_characters(text: str, file: str, limits: Limits) -> None:
    if len(text) > limits.max_chars:
        raise YamlError(
            file,
            1,
            1,
            f"file is {len(text):,} characters long, more than the {limits.max_chars:,} "
            "accepted: is this the right file?",
        )
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        char = bad.group()
        code = ord(char)
        name = f" ({_C0_NAMES[code]})" if code < 32 else ""
        line, column = line_column(text, bad.start())
        raise YamlError(
            file,
            line,
            column,
            f"control character U+{code:04X}{name} is not allowed in YAML: remove it "
            "(the file may be binary or damaged; tabs, newlines and CR are fine)",
        )
    run = re.search(_OPENERS % limits.max_depth, text)
    if run is not None:
        line, column = line_column(text, run.end() - 1)
        raise YamlError(file, line, column, _too_deep(limits))


def _too_deep(limits: Limits) -> str:
    return f"nested more than {limits.max_depth} levels deep: flatten the structure"


def _where(event: Any) -> tuple[int, int]:
    mark = event.start_mark
    return mark.line + 1, mark.column + 1


class _Open:
    """A mapping or sequence whose end event has not come yet."""

    __slots__ = ("anchor", "children", "mapping", "start")

    def __init__(self, anchor: str | None, start: int, mapping: bool) -> None:
        self.anchor = anchor
        self.start = start  # node count before it
        self.mapping = mapping
        self.children = 0


class EventGuard:
    """Refuses non-standard tags, aliases beyond the limits, cycles, mappings or lists as
    keys (ruamel builds those in exponential time) and deep nesting, one parser event at
    a time.

    The reader calls `check` on each event as the composer pulls it from the parser, so
    the composer never sees, let alone builds, anything past the first refusal. Events
    are ruamel's or PyYAML's (same class names, same attributes).
    """

    __slots__ = ("alias_nodes", "aliases", "file", "limits", "nodes", "sizes", "stack")

    def __init__(self, file: str, limits: Limits) -> None:
        self.file = file
        self.limits = limits
        self.stack: list[_Open] = []
        self.sizes: dict[str, int] = {}  # anchor -> nodes in its subtree, aliases expanded
        self.nodes = 0  # so far, aliases counted as expanded
        self.aliases = 0
        self.alias_nodes = 0

    def check(self, event: Any) -> None:
        kind = type(event).__name__
        stack = self.stack
        if kind in ("SequenceEndEvent", "MappingEndEvent"):
            done = stack.pop()
            if done.anchor is not None:
                self.sizes[done.anchor] = self.nodes - done.start
            return
        if kind not in ("ScalarEvent", "SequenceStartEvent", "MappingStartEvent", "AliasEvent"):
            return
        parent = stack[-1] if stack else None
        is_key = parent is not None and parent.mapping and parent.children % 2 == 0
        if parent is not None:
            parent.children += 1
        if kind == "AliasEvent":
            self._alias(event, is_key)
            return
        tag = event.tag
        if tag is not None and tag not in ALLOWED_TAGS:
            shown = "!!" + tag[len(_STANDARD) :] if tag.startswith(_STANDARD) else tag
            raise YamlError(
                self.file,
                *_where(event),
                f"tag {shown} is not accepted: only plain values are read from this file "
                "(text, numbers, true/false, lists, mappings); remove the tag",
            )
        if kind == "ScalarEvent":
            self.nodes += 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
            return
        if is_key:
            shown = "a mapping" if kind == "MappingStartEvent" else "a list"
            raise YamlError(self.file, *_where(event), _complex_key(shown))
        if len(stack) >= self.limits.max_depth:
            raise YamlError(self.file, *_where(event), _too_deep(self.limits))
        stack.append(_Open(event.anchor, self.nodes, kind == "MappingStartEvent"))
        self.nodes += 1

    def _alias(self, event: Any, is_key: bool) -> None:
        limits = self.limits
        size = _alias_size(event, self.stack, self.sizes, self.file)
        self.aliases += 1
        self.alias_nodes += size
        self.nodes += size
        if self.aliases > limits.max_aliases or self.alias_nodes > limits.max_alias_nodes:
            raise YamlError(
                self.file,
                *_where(event),
                f"too many aliases: more than {limits.max_aliases} '*' references or "
                f"{limits.max_alias_nodes:,} values repeated through them; write the "
                "values out instead",
            )
        if is_key and size > 1:
            raise YamlError(self.file, *_where(event), _complex_key(f"alias *{event.anchor}"))


def _alias_size(event: Any, stack: list[_Open], sizes: dict[str, int], file: str) -> int:
    anchor = event.anchor
    if any(item.anchor == anchor for item in stack):
        raise YamlError(
            file,
            *_where(event),
            f"alias *{anchor} is inside the node &{anchor} it refers to, which makes the "
            "document endless: refer to it only after that node ends",
        )
    if anchor not in sizes:
        raise YamlError(
            file,
            *_where(event),
            f"alias *{anchor} refers to no anchor &{anchor} defined before it: define the "
            "anchor first or write the value out",
        )
    return sizes[anchor]


def _complex_key(found: str) -> str:
    return f"a mapping key must be text or a number, found {found}: write the key out"
