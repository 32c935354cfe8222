"""`load_config(path, environ)`: the YAML file, its secrets and the environment overrides
validated into one `WardenConfig`, or a `ConfigError` with every problem at once as
``FILE:LINE: key.path: message — fix`` (``$VARIABLE: key.path: ...`` for an override).

Defaults are the safe ones: the API on 127.0.0.1, dry-run unless a relayer key is
configured, confirmations above 0 except on a devnet. Relative paths are taken from the
config file's directory, so a config means the same thing whatever directory Warden
starts in. No message quotes a value that came from the environment or a secret file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from executor.settings import ExecutorSettings
from warden.app.settings import overrides
from warden.app.settings.checks import cross_checks
from warden.app.settings.errors import ConfigError
from warden.app.settings.models import ApiConfig, WardenConfig
from warden.app.settings.secrets import Outside, Where, dotted, substitute
from warden.app.settings.yaml_reader import kind, line_of, read_yaml

_SECTIONS = ("chain", "rules", "executor", "api", "logging", "devnet")


def load_config(
    path: str | Path, environ: Mapping[str, str], *, devnet: bool = False
) -> WardenConfig:
    """The validated config in `path` with the `WARDEN_*__*` overrides of `environ`;
    `ConfigError` with every problem otherwise. `devnet` leaves `chain.rpc` out (`warden
    run --devnet`), so what depends on the chain is decided for a devnet."""
    file = Path(path)
    base = file.resolve().parent
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{file}:1: cannot read the config file: {reason}"]) from None
    doc = read_yaml(file, text)
    found = overrides.find(environ)
    outside = Outside()
    out: list[tuple[int, str]] = []
    failed: list[Where] = []

    def report(where: Where, message: str) -> None:
        failed.append(where)
        key = dotted(where) or "(top level)"
        shown = _mask(message, outside.values_at(where))
        override = next((o for o in found if o.covers(where)), None)
        if override is not None:
            out.append((0, f"${override.variable}: {key}: {shown}"))
        else:
            line = line_of(doc, where)
            out.append((line, f"{file}:{line}: {key}: {shown}"))

    skip = {w for o in found for w in o.replaces()}
    data = substitute(doc, (), environ, base, report, outside, skip)
    overrides.apply(data, found, base, report, outside)
    if devnet and isinstance(data.get("chain"), dict):
        data["chain"].pop("rpc", None)
    for where in failed:
        _remove(data, where)
    for section in _SECTIONS:  # so that their defaults resolve relative paths too
        if section not in data:
            data[section] = {}
    cfg: WardenConfig | None = None
    # Each round drops the keys that failed, so the next one finds the problems behind
    # them and the cross-key checks still run: every problem is reported in one go.
    for _ in range(10):
        try:
            cfg = WardenConfig.model_validate(data, context={"base": base})
            break
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where, message = _explain(err, outside.sources)
                report(where, message)
                _remove(data, where)
    if cfg is not None:
        cfg._sources = {
            k: v for k, v in outside.sources.items() if not (devnet and k.startswith("chain.rpc"))
        }
        broken = list(failed)
        for where, message in cross_checks(cfg, environ):
            if not any(where[: len(f)] == f or f[: len(where)] == where for f in broken):
                report(where, message)
    if out or cfg is None:
        # Overrides first, by variable; then the file's problems in line order.
        ordered = sorted(out, key=lambda item: (item[0], item[1] if item[0] == 0 else ""))
        raise ConfigError([text for _, text in ordered])
    return cfg


def _mask(message: str, values: list[str]) -> str:
    """`message` with every appearance of these values (and of their words) as ***."""
    forms: set[str] = set()
    for value in values:
        forms.update((repr(value), value.strip()))
        forms.update(word for word in value.split() if len(word) > 1)
    for form in sorted((f for f in forms if f), key=len, reverse=True):
        message = re.sub(rf"(?<![\w.]){re.escape(form)}(?![\w.])", "***", message)
    return message


def _remove(data: Any, where: Where) -> None:
    """Drop the key at `where` (a list item: the whole list) so its default applies."""
    while where and isinstance(where[-1], int):
        where = where[:-1]
    node = data
    for part in where[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if where and isinstance(node, dict):
        node.pop(where[-1], None)


def _explain(err: Any, sources: Mapping[str, str]) -> tuple[Where, str]:
    """A pydantic error as (key path, message with its fix)."""
    loc = tuple(err["loc"])
    kind_ = err["type"]
    if kind_ == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        names = _field_names(parent)
        where = " ".join(map(str, parent)) or "the top level"
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
        return loc, f"unknown key '{key}' in {where}; {hint}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind_ in ("model_type", "dict_type"):
        return loc, f"expected a mapping of keys under it, found {kind(err['input'])}"
    if kind_ == "list_type":
        return loc, f"expected a list (`- item` lines or [a, b]), found {kind(err['input'])}"
    if kind_ == "literal_error":
        return loc, f"{message} — use one of them"
    if kind_.startswith(("int_", "float_", "bool_", "string_")):
        secret = dotted(loc) in sources or any(p in ("raw_key", "token") for p in map(str, loc))
        shown = "" if secret else f", got {err['input']!r}"
        return loc, f"{message}{shown}"
    return loc, message


def _field_names(loc: Where) -> list[str]:
    model: Any = WardenConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    names = [field.alias or name for name, field in model.model_fields.items()]
    if model in (ApiConfig, ExecutorSettings):
        names.append("token_file" if model is ApiConfig else "raw_key_file")
    return names
