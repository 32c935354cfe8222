"""The reference load: ruamel's pure-Python round-trip parser, composer and constructor.

The text is parsed once: the guard checks each event as the parser makes it, before the
composer sees it. Every error is ruamel's (or the guard's) for reader.py to word.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.parser import RoundTripParser

from yamlsource.guards import EventGuard


class Constructor(RoundTripConstructor):
    """ruamel's round-trip constructor, but a value it cannot build (a date such as
    2001-13-45) is reported at its position instead of escaping as a bare ValueError,
    and `!!str 5` is the text "5" (ruamel keeps it as a TaggedScalar object)."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        if not isinstance(node, ScalarNode):
            return super().construct_non_recursive_object(node, tag)
        try:
            value = super().construct_non_recursive_object(node, tag)
        except (ValueError, OverflowError) as exc:
            raise ConstructorError(
                None, None, f"cannot read the value {node.value!r}: {exc}", node.start_mark
            ) from None
        return value.value if isinstance(value, TaggedScalar) else value


class _GuardedParser(RoundTripParser):
    """ruamel's parser with `guard` checking each event when it is made: every way the
    composer asks for the next event (check, peek, get) goes through `_pull`."""

    guard: EventGuard

    def _pull(self) -> None:
        if self.current_event is None and self.state:
            event = self.state()
            self.guard.check(event)
            self.current_event = event

    def check_event(self, *choices: Any) -> bool:
        self._pull()
        return bool(super().check_event(*choices))

    def peek_event(self) -> Any:
        self._pull()
        return super().peek_event()

    def get_event(self) -> Any:
        self._pull()
        return super().get_event()


class _Composer(Composer):
    """Refuses a second document only once the whole stream has been parsed and guarded:
    a syntax error or a refusal in the later document is reported first, as when the
    guards read the stream in a pass of their own."""

    def get_single_node(self) -> Any:
        try:
            return super().get_single_node()
        except ComposerError:
            parser = self.parser
            while parser.check_event():
                parser.get_event()
            raise


def load(text: str, guard: EventGuard) -> Any:
    """The one document in `text`, built by ruamel; ruamel's errors and the guard's
    YamlError pass through."""
    yaml = YAML(typ="rt")
    yaml.Parser = _GuardedParser
    yaml.Composer = _Composer
    yaml.Constructor = Constructor
    yaml.parser.guard = guard
    return yaml.load(text)
