"""The config file read with the position of every key (through `yamlsource`, the reader
rule files use too), so a problem names its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from warden.app.settings.errors import ConfigError
from yamlsource import YamlError, YamlMap, position_of
from yamlsource import read_yaml as read_document


def read_yaml(file: Path, text: str) -> Any:
    """The document as a position-carrying mapping ({} for an empty file)."""
    try:
        doc = read_document(text, str(file))
    except YamlError as exc:
        raise ConfigError([f"{file}:{exc.line}: {exc.message}"]) from None
    if doc is None:
        return YamlMap()
    if not isinstance(doc, YamlMap):
        raise ConfigError(
            [f"{file}:1: (top level): expected a mapping of sections (chain:, executor:, ...), "
             f"found {kind(doc)}"]
        )  # fmt: skip
    return doc


def line_of(doc: Any, where: tuple[str | int, ...]) -> int:
    """The line of the deepest part of `where` present in the file (1 when none is)."""
    return position_of(doc, where).line


def kind(value: object) -> str:
    """What a value is, in words, for a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"
