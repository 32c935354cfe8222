"""Values from outside the file: a whole `${NAME}` value is read from the environment,
and `api.token_file` / `executor.raw_key_file` fill `api.token` / `executor.raw_key` from
a file. Each such value is recorded (for `describe()`, which masks it, and for error
messages, which never quote it)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Where = tuple[str | int, ...]
Report = Callable[[Where, str], None]

SECRET_FILES: dict[Where, str] = {("api",): "token", ("executor",): "raw_key"}  # *_file
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Outside:
    """What came from outside the file, by dotted key."""

    sources: dict[str, str] = field(default_factory=dict)  # "$NAME" or "file PATH"
    values: dict[str, list[str]] = field(default_factory=dict)  # raw text, never shown

    def add(self, where: Where, source: str, value: str) -> None:
        self.sources[dotted(where)] = source
        self.values.setdefault(dotted(where), []).append(value)

    def values_at(self, where: Where) -> list[str]:
        """The raw values at `where` or around it (a list item, or the list it is in)."""
        found: list[str] = []
        for i in range(1, len(where) + 1):
            found.extend(self.values.get(dotted(where[:i]), ()))
        prefix = dotted(where)
        for key, values in self.values.items():
            if key.startswith((prefix + ".", prefix + "[")):
                found.extend(values)
        return found


def substitute(
    node: Any, where: Where, environ: Mapping[str, str], base: Path, report: Report,
    outside: Outside, skip: Collection[Where] = (),
) -> Any:  # fmt: skip
    """Plain Python data with `${NAME}` and `*_file` secrets resolved, problems reported.
    Keys in `skip` (replaced by an environment override) are left out unread."""
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        secret = SECRET_FILES.get(where)
        for key, value in node.items():
            if (*where, key) in skip:
                continue
            result[str(key)] = substitute(
                value, (*where, key), environ, base, report, outside, skip
            )
        if secret is not None and f"{secret}_file" in result:
            file_value = result.pop(f"{secret}_file")
            if secret in result:
                report((*where, f"{secret}_file"), f"set {secret} or {secret}_file, not both")
            elif isinstance(file_value, str):
                read_into(result, where, secret, base / file_value, report, outside)
        return result
    if isinstance(node, list):
        return [
            substitute(v, (*where, i), environ, base, report, outside, skip)
            for i, v in enumerate(node)
        ]
    if isinstance(node, str) and "${" in node:
        match = _ENV_REF.fullmatch(node.strip())
        if match is None:
            report(
                where,
                "a ${NAME} reference must be the whole value — put the complete value in the "
                'environment variable and write just "${NAME}"',
            )
            return node
        name = match.group(1)
        if name not in environ:
            report(where, f"environment variable {name} is not set — export it before starting")
            return node
        outside.add(where, f"${name}", environ[name])
        return environ[name]
    return node


def read_into(
    section: dict[str, Any], where: Where, secret: str, path: Path, report: Report,
    outside: Outside,
) -> None:  # fmt: skip
    """`section[secret]` from the file `path` (a problem is reported at `secret`_file)."""
    at = (*where, f"{secret}_file")
    try:
        content = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        report(at, f"cannot read {path}: {reason} — check the path (relative to the config)")
        return
    if not content:
        report(at, f"{path} is empty — write the secret in it")
        return
    section[secret] = content
    outside.add((*where, secret), f"file {path}", content)


def dotted(where: Where) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
