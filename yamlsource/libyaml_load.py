"""The fast load: libyaml (PyYAML's C parser) reads the text into events, ruamel's
resolver and round-trip constructor build the document from them.

ruamel's pure-Python scanner and parser take about 4 s for a 10,000-rule file, libyaml's
parser about 0.1 s. Its events carry the same line and column marks, so for the text
this path accepts the document is the one ruamel would build, every key and item at the
same position. Anything else raises `Unsupported` and reader.py reads
the text the reference way (ruamel_load.py): text where libyaml, a YAML 1.1 parser, may
read otherwise than ruamel, explicit tags (ruamel keeps how a tag was written), a
scalar at the top, empty values, more than one document, a reused anchor, and every
error, the guard's refusals included, so that each message and position is the
reference path's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import StreamMark
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from yamlsource.errors import YamlError
from yamlsource.guards import EventGuard
from yamlsource.ruamel_load import Constructor

try:
    from yaml import YAMLError as LibyamlError
    from yaml import events
    from yaml._yaml import CParser
except ImportError:  # PyYAML without its libyaml extension: the reference path reads all
    CParser = None
    LibyamlError = YamlError  # never raised by this path then

AVAILABLE = CParser is not None

# Text libyaml and ruamel may read differently (tests/yamlsource/test_libyaml_load.py
# compares the two paths; the node events are checked too, see _Composer.node):
# - tab, NEL, LS, PS, BOM: YAML 1.1 (libyaml) takes NEL, LS and PS for line breaks, and
#   the two differ on tabs and a BOM within a line;
# - a directive: ruamel reads `%YAML 1.1` documents by the 1.1 rules (the first
#   document's directives are also checked on its start event).
_DIFFERS = re.compile(r"[\t\x85\u2028\u2029\ufeff]|^%", re.MULTILINE)
# What ends an anchor or alias name for both: libyaml's names end at the first
# character other than a letter, digit, '-' or '_', ruamel's only at a space, a line
# break or a flow indicator (`&a:b` is the anchor "a:b" to ruamel).
_NAME_ENDS = frozenset(" \r\n,[]{}")
# A block scalar's header as both read it (libyaml also takes `|#`), and a next line
# that is not spaces only: ruamel refuses that when a later line is indented more.
_BLOCK_HEADER = re.compile(
    r"(?:&[0-9A-Za-z_-]+ +)?[|>](?:[1-9][-+]?|[-+][1-9]?)?(?: +#[^\r\n]*| *)"
    r"(?>\r\n|\r|\n)(?! +(?:\r\n|\r|\n))"
)
_STREAM = "<unicode string>"  # the name ruamel's marks give a text


class Unsupported(Exception):
    """This path cannot promise ruamel's document or error for the text."""


def load(text: str, guard: EventGuard) -> Any:
    """The document ruamel would build from `text`, or `Unsupported`."""
    if CParser is None or _DIFFERS.search(text):
        raise Unsupported
    yaml = YAML(typ="rt")
    yaml.Constructor = Constructor
    parser = CParser(text)
    try:
        node = _Composer(text, parser.get_event, guard, yaml).compose()
    except (LibyamlError, YamlError) as exc:
        raise Unsupported from exc  # the reference path words the error
    finally:
        parser.dispose()
    try:
        return yaml.constructor.construct_document(node)
    except RuamelError as exc:
        raise Unsupported from exc


def _mark(mark: Any) -> StreamMark:
    return StreamMark(_STREAM, mark.index, mark.line, mark.column)


class _Composer:
    """ruamel's composer (ruamel.yaml.composer) over libyaml's events, as a loop; each
    event is guarded before anything is built from it."""

    def __init__(
        self, text: str, next_event: Callable[[], Any], guard: EventGuard, yaml: YAML
    ) -> None:
        self.text = text
        self.next_event = next_event
        self.check = guard.check
        self.resolve = yaml.resolver.resolve
        # ruamel's resolver looks up the YAML version on every call, which cost more than
        # the rest of composing: each distinct scalar is resolved once
        self.scalar_tags: dict[tuple[str, tuple[bool, bool]], Any] = {}
        self.anchors: dict[str, Node] = {}
        self.open: list[Node] = []  # collections whose end event has not come yet
        self.keys: list[Node | None] = []  # per open mapping: the key waiting for its value

    def pull(self) -> Any:
        event = self.next_event()
        self.check(event)
        return event

    def compose(self) -> Node:
        """The root node of the one document."""
        self.pull()  # stream start
        start = self.pull()
        if type(start) is not events.DocumentStartEvent or start.version or start.tags:
            raise Unsupported
        root = self.node(self.pull())
        if not isinstance(root, MappingNode | SequenceNode):
            raise Unsupported  # a scalar at the top: ruamel reads some differently
        self.enter(root)
        while self.open:
            event = self.pull()
            kind = type(event)
            if kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                self.open.pop().end_mark = _mark(event.end_mark)
                self.keys.pop()
                continue
            node = self.node(event)
            parent = self.open[-1]
            if type(parent) is SequenceNode:
                parent.value.append(node)
            elif (key := self.keys[-1]) is None:
                self.keys[-1] = node
            else:
                parent.value.append((key, node))
                self.keys[-1] = None
            if kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
                self.enter(node)
        if type(self.pull()) is not events.DocumentEndEvent:
            raise Unsupported
        if type(self.pull()) is not events.StreamEndEvent:
            raise Unsupported  # a second document
        return root

    def enter(self, node: Node) -> None:
        """The events up to the collection's end event are its children."""
        self.open.append(node)
        self.keys.append(None)

    def node(self, event: Any) -> Node:
        """The node an event starts (an alias: the node it refers to); a collection's
        children come with the events up to its end event."""
        kind = type(event)
        if kind is events.AliasEvent:
            if not self.name_ends(event.end_mark.index):
                raise Unsupported
            return self.anchors[event.anchor]  # the guard refused an undefined one
        anchor = event.anchor
        if event.tag is not None:
            raise Unsupported
        if anchor is not None and (
            anchor in self.anchors  # ruamel warns about a reused one
            or not self.name_ends(event.start_mark.index + 1 + len(anchor))
        ):
            raise Unsupported
        node: Node
        if kind is events.ScalarEvent:
            if not _same_scalar(self.text, event):
                raise Unsupported
            key = (event.value, event.implicit)
            tag = self.scalar_tags.get(key)
            if tag is None:
                tag = self.scalar_tags[key] = self.resolve(ScalarNode, *key)
            node = ScalarNode(
                tag,
                event.value,
                _mark(event.start_mark),
                _mark(event.end_mark),
                style=event.style or None,  # libyaml's plain style is '', ruamel's None
                anchor=anchor,
            )
        elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
            if (
                event.flow_style
                and anchor is None
                and self.text[event.start_mark.index] not in "{["
            ):
                # `[k: v]`: libyaml reads more as such a pair than ruamel (`["k":v]`)
                raise Unsupported
            node_type = MappingNode if kind is events.MappingStartEvent else SequenceNode
            node = node_type(
                self.resolve(node_type, None, True),
                [],
                _mark(event.start_mark),
                None,
                flow_style=event.flow_style,
                anchor=anchor,
            )
        else:
            raise Unsupported  # no other event comes where a node is expected
        if anchor is not None:
            self.anchors[anchor] = node
        return node

    def name_ends(self, index: int) -> bool:
        """Whether an anchor or alias name libyaml ended before `index` ends there for
        ruamel too."""
        return index >= len(self.text) or self.text[index] in _NAME_ENDS


def _same_scalar(text: str, event: Any) -> bool:
    """Whether ruamel reads this scalar event alike: not an empty value (ruamel puts it
    at the end of the next token, libyaml at the end of the ':'), not a block scalar
    but with a header both read alike."""
    style = event.style
    if not style:
        return bool(event.value)
    return style not in "|>" or _BLOCK_HEADER.match(text, event.start_mark.index) is not None
