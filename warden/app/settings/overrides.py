"""Environment overrides, pydantic-settings' convention: `WARDEN_<SECTION>__<KEY>=value`
replaces `<section>.<key>` of the file (`WARDEN_EXECUTOR__MAX_BATCH_SIZE=50`), and
`WARDEN_DATABASE` replaces `database`. Names are case-insensitive; a list is written as
JSON (`WARDEN_CHAIN__RPC='["https://a", "https://b"]'`); `WARDEN_API__TOKEN_FILE` reads
the secret from a file like `api.token_file`.

Precedence: an override beats the file, including its `${NAME}` and `*_file` values.
A variable with the prefix but without `__` (`WARDEN_DEVNET_KEY`) is no override: it is
read only where a `${NAME}` names it. The loader's own checks apply to overridden values,
and a problem names the variable, never its value.

Implemented here rather than with pydantic-settings: the loader validates the file and the
overrides together so every problem is reported at once, at its line or its variable.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from warden.app.settings.models import WardenConfig
from warden.app.settings.secrets import SECRET_FILES, Outside, Report, Where, read_into

PREFIX = "WARDEN_"
DELIMITER = "__"
_TOP_LEVEL = ("database",)  # top-level keys that are not sections


@dataclass(frozen=True)
class Override:
    variable: str
    where: tuple[str, ...]  # lower case: section, key
    value: str

    def covers(self, where: Where) -> bool:
        """Whether a problem at `where` is this override's: at or below its key, or the
        unknown section it named."""
        if where[: len(self.where)] == self.where:
            return True
        return bool(where) and self.where[: len(where)] == where and not _known(where[0])

    def replaces(self) -> list[tuple[str, ...]]:
        """The file's keys this override leaves out (a secret and its `*_file` go
        together)."""
        if len(self.where) == 2:
            section, key = self.where
            secret = SECRET_FILES.get((section,))
            if secret is not None and key in (secret, f"{secret}_file"):
                return [(section, secret), (section, f"{secret}_file")]
        return [self.where]


def find(environ: Mapping[str, str]) -> list[Override]:
    """The overrides in `environ`, in name order."""
    out: list[Override] = []
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(PREFIX):
            continue
        parts = tuple(name[len(PREFIX) :].lower().split(DELIMITER))
        if len(parts) == 1 and parts[0] not in _TOP_LEVEL:
            continue
        out.append(Override(name, parts, value))
    return out


def apply(
    data: dict[str, Any], overrides: list[Override], base: Path, report: Report,
    outside: Outside,
) -> None:  # fmt: skip
    """Write each override into `data` (the file's values, already read)."""
    for o in overrides:
        *parents, key = o.where
        node: Any = data
        for part in parents:
            if not isinstance(node.get(part, {}), dict):
                node = None  # the file's section is broken; that is reported at its line
                break
            node = node.setdefault(part, {})
        if node is None:
            continue
        secret = SECRET_FILES.get(tuple(parents))
        if secret is not None and key == f"{secret}_file":
            read_into(node, tuple(parents), secret, base / o.value, report, outside)
            continue
        value: Any = o.value
        if _is_list(o.where):
            try:
                value = json.loads(o.value)
            except ValueError:
                report(o.where, 'expected a JSON list, e.g. ["a", "b"]')
                continue
            for i, item in enumerate(value if isinstance(value, list) else []):
                outside.add((*o.where, i), f"${o.variable}", str(item))
        node[key] = value
        outside.add(o.where, f"${o.variable}", o.value)


def _known(section: str | int) -> bool:
    return isinstance(section, str) and section in WardenConfig.model_fields


def _is_list(where: tuple[str, ...]) -> bool:
    """Whether the key holds a list (its override is JSON)."""
    model: Any = WardenConfig
    annotation: Any = None
    for part in where:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        fields = {f.alias or name: f for name, f in model.model_fields.items()}
        if part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation
    options = typing.get_args(annotation) if typing.get_origin(annotation) else ()
    return typing.get_origin(annotation) is list or any(
        typing.get_origin(a) is list for a in options
    )
