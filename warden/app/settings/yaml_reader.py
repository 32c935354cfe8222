"""Reading the YAML file with the position of every key, so a problem names its line.

Kept apart from the rest of the loader: a shared position-keeping reader for config and
rule files replaces this module.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from warden.app.settings.errors import ConfigError


def read_yaml(file: Path, text: str) -> Any:
    """The document as ruamel's position-carrying mapping ({} for an empty file)."""
    try:
        doc = YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        key = re.search(r'duplicate key "([^"]*)"', str(exc.problem))
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        shown = key.group(1) if key else "?"
        raise ConfigError(
            [f"{file}:{line}: {shown}: duplicate key in one mapping — keep only one of them"]
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(
            [f"{file}:{line}: YAML syntax error: {exc.problem} — check quotes and indentation"]
        ) from None
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(
            [f"{file}:1: (top level): expected a mapping of sections (chain:, executor:, ...), "
             f"found {kind(doc)}"]
        )  # fmt: skip
    return doc


def line_of(doc: Any, where: tuple[str | int, ...]) -> int:
    """The line of the deepest part of `where` present in the file (1 when none is)."""
    line, node = 1, doc
    for part in where:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def kind(value: object) -> str:
    """What a value is, in words, for a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
