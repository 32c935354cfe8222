"""The config as `key.path: value` lines, safe to print and to log: secrets and values
taken from the environment or a file are masked, RPC URLs redacted, anything that looks
like a private key masked, amounts and durations in words."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import SecretStr

from chain.units import format_amount, format_duration
from chain.urls import redact_url
from warden.app.settings.secrets import mask_key_like

_AMOUNTS = ("min_relayer_balance", "max_fee_per_gas", "min_tip")
_DURATIONS = ("intent_ttl", "rate_window")


def describe(dumped: Mapping[str, Any], sources: Mapping[str, str]) -> list[str]:
    """`dumped` is `model_dump(by_alias=True)`; `sources` maps dotted keys to where their
    value came from ("$NAME", "file PATH"): those are shown as `*** (from ...)`."""
    # A key typed into the wrong field (api.host, a path) is not printed either.
    return [mask_key_like(line) for line in _lines(dict(dumped), (), sources)]


def _lines(value: Any, where: tuple[str, ...], sources: Mapping[str, str]) -> Iterator[str]:
    key = ".".join(where)
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _lines(v, (*where, k), sources)
        return
    if key in sources:
        yield f"{key}: *** (from {sources[key]})"
    elif isinstance(value, SecretStr):
        yield f"{key}: ***"
    elif where[-1] in _AMOUNTS and value is not None:
        yield f"{key}: {format_amount(value)} ({value} wei)"
    elif where[-1] in _DURATIONS:
        yield f"{key}: {format_duration(value)}"
    elif key == "chain.new_heads" and value not in ("auto", "off"):
        yield f"{key}: {redact_url(value)}"  # a websocket URL holds the key like an RPC URL
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):  # notify.channels: each key on its own line
            for k, v in item.items():
                yield from _lines(v, (*where[:-1], f"{where[-1]}[{i}]", k), sources)
    elif isinstance(value, list):
        # An RPC URL usually holds the provider's key in its path: shown redacted.
        shown = [redact_url(v) if key == "chain.rpc" else str(v) for v in value]
        items = [
            f"*** (from {sources[f'{key}[{i}]']})" if f"{key}[{i}]" in sources else shown[i]
            for i in range(len(value))
        ]
        yield f"{key}: [{', '.join(items)}]"
    else:
        yield f"{key}: {'null' if value is None else value}"
