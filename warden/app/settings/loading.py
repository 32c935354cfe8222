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
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from chain.urls import url_secrets
from executor.settings import ExecutorSettings
from notify.settings import CHANNEL_MODELS, CHANNEL_TYPES
from warden.app.settings import overrides
from warden.app.settings.checks import cross_checks
from warden.app.settings.errors import ConfigError
from warden.app.settings.models import ApiConfig, WardenConfig
from warden.app.settings.secrets import Outside, Where, dotted, leaks, mask, substitute
from warden.app.settings.yaml_reader import kind, line_of, read_yaml

_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SECTIONS = ("chain", "rules", "executor", "api", "logging", "backups", "devnet", "notify", "audit")


def load_config(
    path: str | Path,
    environ: Mapping[str, str],
    *,
    devnet: bool = False,
    only: Collection[tuple[str, ...]] | None = None,
) -> WardenConfig:
    """The validated config in `path` with the `WARDEN_*__*` overrides of `environ`;
    `ConfigError` with every problem otherwise. `devnet` leaves `chain.rpc` out (`warden
    run --devnet`), so what depends on the chain is decided for a devnet. `only`: the key
    paths a command uses (`warden db`: the database and backups, not the relayer's key);
    problems elsewhere are not its concern, and the keys concerned take their defaults."""
    file = Path(path)
    base = file.resolve().parent
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 (or a NUL in the path)
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{file}:1: cannot read the config file: {reason}"]) from None
    doc = read_yaml(file, text)
    found = overrides.find(environ)
    outside = Outside()
    reported: list[tuple[Where, str]] = []
    failed: list[Where] = []

    def report(where: Where, message: str) -> None:
        failed.append(where)
        reported.append((where, message))

    skip = {w for o in found for w in o.replaces()}
    data = substitute(doc, (), environ, base, report, outside, skip)
    overrides.apply(data, found, base, report, outside)
    _hide_secrets(data, outside)
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
    locate = _Locator(file, doc, found)
    if cfg is not None:
        cfg._sources = {
            k: v for k, v in outside.sources.items() if not (devnet and k.startswith("chain.rpc"))
        }
        cfg._places = locate.places()
        broken = list(failed)
        for where, message in cross_checks(cfg, environ):
            if not any(where[: len(f)] == f or f[: len(where)] == where for f in broken):
                report(where, message)
    if only is not None:
        reported = [(w, m) for w, m in reported if any(w[: len(p)] == p for p in only)]
    if reported or cfg is None:
        everywhere = outside.every_value()
        out = [
            locate.line_and_text(where, _safe(where, message, outside, everywhere))
            for where, message in reported
        ]
        # Overrides first, by variable; then the file's problems in line order.
        ordered = sorted(out, key=lambda item: (item[0], item[1] if item[0] == 0 else ""))
        raise ConfigError([text for _, text in ordered])
    return cfg


class _Locator:
    """Where a key was written: `FILE:LINE` in the file, `$VARIABLE` for an override."""

    def __init__(self, file: Path, doc: Any, found: list[overrides.Override]) -> None:
        self.file, self.doc, self.found = file, doc, found

    def place(self, where: Where) -> tuple[int, str]:
        override = next((o for o in self.found if o.covers(where)), None)
        if override is not None:
            return 0, f"${override.variable}"
        line = line_of(self.doc, where)
        return line, f"{self.file}:{line}"

    def line_and_text(self, where: Where, message: str) -> tuple[int, str]:
        line, place = self.place(where)
        text = f"{place}: {dotted(where) or '(top level)'}: {message}"
        # One line per problem, whatever a key or a path held (a quoted "\n" in a key).
        return line, _LINE_BREAKING.sub(lambda m: m.group().encode("unicode_escape").decode(), text)

    def places(self) -> dict[str, str]:
        """Every section key's place, for problems found after loading (`unlock`)."""
        out: dict[str, str] = {}
        for section, info in WardenConfig.model_fields.items():
            out[section] = self.place((section,))[1]
            model = info.annotation
            if isinstance(model, type) and issubclass(model, BaseModel):
                for key, field in model.model_fields.items():
                    name = field.alias or key
                    out[f"{section}.{name}"] = self.place((section, name))[1]
        return out


def _hide_secrets(data: Any, outside: Outside) -> None:
    """Secret fields and RPC URLs' key-holding parts are never quoted, even when the file
    itself holds them (a key typed into the wrong field, an Infura URL)."""
    for section, key in (("api", "token"), ("executor", "raw_key")):
        node = data.get(section) if isinstance(data, dict) else None
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str):
            outside.hide((section, key), value)
    notify = data.get("notify") if isinstance(data, dict) else None
    channels = notify.get("channels") if isinstance(notify, dict) else None
    for i, channel in enumerate(channels if isinstance(channels, list) else []):
        for key in ("secret", "url"):
            value = channel.get(key) if isinstance(channel, dict) else None
            if isinstance(value, str):
                outside.hide(("notify", "channels", i, key), value)
    chain = data.get("chain") if isinstance(data, dict) else None
    rpc = chain.get("rpc") if isinstance(chain, dict) else None
    for i, url in enumerate(rpc if isinstance(rpc, list) else []):
        if isinstance(url, str):
            for part in url_secrets(url):
                outside.hide(("chain", "rpc", i), part)
    heads = chain.get("new_heads") if isinstance(chain, dict) else None
    if isinstance(heads, str) and heads not in ("auto", "off"):
        for part in url_secrets(heads):
            outside.hide(("chain", "new_heads"), part)


def _safe(where: Where, message: str, outside: Outside, everywhere: list[str]) -> str:
    """`message` with no value that came from outside the file or from a secret field;
    when a parser quoted one in a form `mask` does not know, a message quoting nothing."""
    local = outside.values_at(where)
    shown = mask(message, local, everywhere)
    if leaks(shown, local) or leaks(shown, [v for v in everywhere if len(v) >= 6]):
        source = outside.source_at(where)
        origin = f"the value from {source}" if source else "the value (a secret, not shown)"
        shown = f"{origin} is not valid here — check it against docs/config.md"
    return shown


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
    loc = _channel_loc(tuple(err["loc"]))
    kind_ = err["type"]
    if kind_ == "union_tag_invalid":
        return (*loc, "type"), (
            f"unknown channel type {err['ctx'].get('tag')!r}: write one of "
            f"{', '.join(CHANNEL_TYPES)} (docs/notify.md)"
        )
    if kind_ == "union_tag_not_found":
        return loc, f"a channel needs `type`: one of {', '.join(CHANNEL_TYPES)}"
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
        secret = dotted(loc) in sources or any(
            p in ("raw_key", "token", "secret", "url") for p in map(str, loc)
        )
        shown = "" if secret else f", got {err['input']!r}"
        return loc, f"{message}{shown}"
    return loc, message


def _channel_loc(loc: Where) -> Where:
    """pydantic names a channel's fields under its type's tag
    (`notify.channels[0].webhook.url`): the file has no such level."""
    if len(loc) >= 4 and loc[:2] == ("notify", "channels") and loc[3] in CHANNEL_TYPES:
        return (*loc[:3], *loc[4:])
    return loc


def _field_names(loc: Where) -> list[str]:
    if len(loc) == 3 and loc[:2] == ("notify", "channels"):  # any channel type's keys
        keys = {k for m in CHANNEL_MODELS for k in m.model_fields}
        return sorted(keys | {"secret_file"})
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
