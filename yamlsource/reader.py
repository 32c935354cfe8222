"""Text to a position-carrying document, every failure a YamlError with file, line,
column and the fix.

The characters are checked first. Then ruamel reads the text once (ruamel_load.py), each
event guarded as the document is built from it.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from yamlsource import ruamel_load
from yamlsource.errors import YamlError
from yamlsource.guards import EventGuard, Limits, check_characters

# Round-trip types: each remembers where its keys / items were written (positions.py).
YamlMap = CommentedMap
YamlSeq = CommentedSeq

_DEFAULT_LIMITS = Limits()


def read_yaml(text: str, file: str = "<text>", limits: Limits = _DEFAULT_LIMITS) -> Any:
    """The one document in `text`: YamlMap, YamlSeq, a scalar, or None when the text holds
    no value (empty, only comments). YamlError for anything refused."""
    check_characters(text, file, limits)
    return _read_reference(text, file, limits)


def _read_reference(text: str, file: str, limits: Limits) -> Any:
    try:
        return ruamel_load.load(text, EventGuard(file, limits))
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
