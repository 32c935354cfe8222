"""Text to a position-carrying document: the guards first, then ruamel's round-trip load,
every failure a YamlError with file, line, column and the fix."""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import ConstructorError, DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode

from yamlsource.errors import YamlError
from yamlsource.guards import Limits, check_characters, check_events

# Round-trip types: each remembers where its keys / items were written (positions.py).
YamlMap = CommentedMap
YamlSeq = CommentedSeq

_DEFAULT_LIMITS = Limits()


class _Constructor(RoundTripConstructor):
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


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    return yaml


def read_yaml(text: str, file: str = "<text>", limits: Limits = _DEFAULT_LIMITS) -> Any:
    """The one document in `text`: YamlMap, YamlSeq, a scalar, or None when the text holds
    no value (empty, only comments). YamlError for anything refused."""
    check_characters(text, file, limits)
    try:
        check_events(YAML(typ="rt").parse(text), file, limits)
        return _yaml().load(text)
    except DuplicateKeyError as exc:
        key = re.search(r'duplicate key "([^"]*)"', str(exc.problem))
        shown = key.group(1) if key else "?"
        line, column = _mark(exc)
        raise YamlError(
            file, line, column, f"duplicate key '{shown}' in one mapping: keep only one of them"
        ) from None
    except MarkedYAMLError as exc:
        line, column = _mark(exc)
        context = ""
        if exc.context and exc.context_mark is not None:
            context = (
                f" ({exc.context} started at line {exc.context_mark.line + 1}, "
                f"column {exc.context_mark.column + 1})"
            )
        raise YamlError(
            file,
            line,
            column,
            f"YAML syntax error: {exc.problem}{context}; check quotes and indentation",
        ) from None
    except YAMLError as exc:  # unmarked: ruamel's reader and emitter errors
        raise YamlError(file, 1, 1, f"YAML error: {exc}; check the file's text") from None


def _mark(exc: MarkedYAMLError) -> tuple[int, int]:
    mark = exc.problem_mark or exc.context_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
