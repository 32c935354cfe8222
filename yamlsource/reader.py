"""Text to a position-carrying document, every failure a YamlError with file, line,
column and the fix.

The characters are checked first. Then one parser reads the text, each event guarded
as the document is built from it: libyaml (libyaml_load.py) when it reads the text as
ruamel would, else ruamel alone (ruamel_load.py). A text refused on the libyaml path is
read again by ruamel, so that every error and its position are ruamel's.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from yamlsource import libyaml_load, ruamel_load
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
    with _collector_paused():
        try:
            return libyaml_load.load(text, EventGuard(file, limits))
        except libyaml_load.Unsupported:
            pass  # a refused text is parsed again here: its error as ruamel words it
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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Builds the document without the cyclic garbage collector: a large file allocates
    objects by the hundred thousand, and the collections they trigger walk everything
    built so far again and again, more than half of reading a 10,000-rule file once the
    parser is fast. Neither nodes nor document hold reference cycles (only the loader's
    few objects do, freed by the next collection); the collector is re-enabled on exit
    if it was enabled on entry."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _mark(exc: MarkedYAMLError) -> tuple[int, int]:
    mark = exc.problem_mark or exc.context_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
