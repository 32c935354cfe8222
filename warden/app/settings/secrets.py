"""Values from outside the file: a whole `${NAME}` value is read from the environment,
and `api.token_file` / `executor.raw_key_file` / a channel's `secret_file` fill
`api.token` / `executor.raw_key` / `notify.channels[i].secret` from a file. Each such
value is recorded (for `describe()`, which masks it, and for error messages, which never
quote it: `mask`).

What error messages never quote, whatever check or parser wrote them:
- a value from the environment (`${NAME}`, a `WARDEN_*` override) or a secret file;
- a secret field's value, even typed into the file (`api.token`, `executor.raw_key`, a
  notification channel's `secret` and `url` — a Slack or Discord URL is a credential) and
  the parts of an RPC URL that may hold a provider key (its path, query, userinfo);
- anything that looks like a private key (more hex digits than an address holds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Where = tuple[str | int, ...]
Report = Callable[[Where, str], None]

SECRET_FILES: dict[Where, str] = {("api",): "token", ("executor",): "raw_key"}  # *_file
SECRET_FIELDS: frozenset[str] = frozenset({"api.token", "executor.raw_key"})
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"
# Longer than an address's 40 digits: a private key, a hash, a provider key in hex.
_KEY_LIKE = re.compile(r"(?:0[xX])?[0-9a-fA-F]{41,}")
_GLOBAL_MIN = 6  # shorter values are masked only in their own key's messages


@dataclass
class Outside:
    """What came from outside the file, by dotted key."""

    sources: dict[str, str] = field(default_factory=dict)  # "$NAME" or "file PATH"
    values: dict[str, list[str]] = field(default_factory=dict)  # raw text, never shown

    def add(self, where: Where, source: str, value: str) -> None:
        self.sources[dotted(where)] = source
        self.values.setdefault(dotted(where), []).append(value)

    def hide(self, where: Where, value: str) -> None:
        """A value of the file that messages must not quote either (a secret field's)."""
        self.values.setdefault(dotted(where), []).append(value)

    def every_value(self) -> list[str]:
        return [v for values in self.values.values() for v in values]

    def source_at(self, where: Where) -> str | None:
        """Where the value at `where` (or the list it is in) came from, if outside."""
        for i in range(len(where), 0, -1):
            found = self.sources.get(dotted(where[:i]))
            if found is not None:
                return found
        return None

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
        secret = SECRET_FILES.get(where) or channel_secret(where)
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


def channel_secret(where: Where) -> str | None:
    """A notification channel (`notify.channels[i]`) takes `secret_file` for `secret`."""
    return "secret" if len(where) == 3 and where[:2] == ("notify", "channels") else None


def read_into(
    section: dict[str, Any], where: Where, secret: str, path: Path, report: Report,
    outside: Outside,
) -> None:  # fmt: skip
    """`section[secret]` from the file `path` (a problem is reported at `secret`_file)."""
    at = (*where, f"{secret}_file")
    try:
        content = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8, or a NUL in the path
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text, or a bad path"
        shown = str(path) if len(str(path)) <= 120 else f"{str(path)[:60]}…"
        report(at, f"cannot read {shown}: {reason} — check the path (relative to the config)")
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


def mask(message: str, local: list[str], everywhere: list[str]) -> str:
    """`message` with no trace of these values: `local` (the key's own, any length) in
    every form a parser may quote them (as is, stripped, repr'd, case-changed, word by
    word), `everywhere` (every other outside value, when long enough not to mangle
    ordinary words) as is, and anything key-like."""
    forms: set[str] = set()
    for value in local:
        forms.update(_forms(value))
        forms.update(word for word in value.split() if len(word) > 1)
    for form in sorted((f for f in forms if f), key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(form)}(?![\w.])", MASK, message)
    for value in sorted(everywhere, key=len, reverse=True):
        for form in _forms(value):
            if len(form) >= _GLOBAL_MIN:
                message = message.replace(form, MASK)
    return _KEY_LIKE.sub(MASK, message)


def mask_key_like(text: str) -> str:
    """`text` with every run of more hex digits than an address holds as ***."""
    return _KEY_LIKE.sub(MASK, text)


def leaks(message: str, values: list[str]) -> bool:
    """Whether a value still shows in `message` in any case (the last check before a
    message is given out; it is then replaced by one that quotes nothing)."""
    lowered = message.lower()
    return any(
        len(form) >= 4 and form.lower() in lowered for value in values for form in _forms(value)
    )


def _forms(value: str) -> set[str]:
    text = value.strip()
    quoted = repr(value)
    forms = {value, text, quoted, quoted[1:-1], text.lower(), text.upper()}
    if text[:2].lower() == "0x":
        forms.add(text[2:])
    return forms
