"""Where keys, values and items of a read document were written, 1-based."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from ruamel.yaml.comments import CommentedMap, CommentedSeq


class Position(NamedTuple):
    line: int
    column: int


def key_position(mapping: Any, key: object) -> Position:
    """Where `key` of a YamlMap was written."""
    line, column = mapping.lc.key(key)
    return Position(line + 1, column + 1)


def value_position(mapping: Any, key: object) -> Position:
    """Where the value of `key` of a YamlMap starts."""
    line, column = mapping.lc.value(key)
    return Position(line + 1, column + 1)


def item_position(sequence: Any, index: int) -> Position:
    """Where item `index` of a YamlSeq starts."""
    line, column = sequence.lc.item(index)
    return Position(line + 1, column + 1)


def position_of(root: Any, path: Sequence[object]) -> Position:
    """Where the deepest part of `path` present in the document was written: a mapping's
    key, a sequence's item; (1, 1) when not even the first part is present."""
    where, node = Position(1, 1), root
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            where = key_position(node, part)
        elif (
            isinstance(node, CommentedSeq)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node)
        ):
            where = item_position(node, part)
        else:
            break
        node = node[part]
    return where
