"""Revert data as a named error, and what it means for an intent.

Every custom error in the committed ABIs of the wallet, the factory and the devnet token
(OpenZeppelin's errors included, since they are in those ABIs), plus Solidity's built-in
`Error(string)` and `Panic(uint256)`, decodes to its name and exact arguments.

Three errors mean the intent is *obsolete*: the session is already in the state the intent
wanted, or can no longer be acted on by anyone the relayer may act for, so there is nothing
left to do (docs/contracts.md, "Custom errors"). Every other revert, including an empty one
and a selector no ABI here knows (a target's own error bubbled up), is a failure to report.

Decoding never raises: revert data comes from a node and may be anything, and the caller
is always in the middle of recording an outcome.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.abi import MalformedLog, event_specs
from chain.errors import BadResponse
from contracts import load_artifact

OBSOLETE_ERRORS = frozenset({"SessionIsClosed", "NotSweepable", "OperatorRevoked"})
ERROR_SOURCES = ("SessionWallet", "SessionWalletFactory", "MockToken")
EMPTY = "empty revert"
MALFORMED = "malformed revert data"
UNKNOWN = "unknown error"
_HEX = frozenset(string.hexdigits)
_BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "Error(string)": ("Error", ("string",)),
    "Panic(uint256)": ("Panic", ("uint256",)),
}


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    types: tuple[str, ...]
    selector: str  # 0x + 8 hex digits


@dataclass(frozen=True)
class Revert:
    """A decoded revert. Field order keeps `Revert(name, args)` working; `selector` is
    filled in from the ABIs when left out and `obsolete` always follows from the name."""

    name: str
    args: tuple[Any, ...] = ()
    selector: str | None = None  # 0x-hex of the first 4 bytes; None for an empty revert
    obsolete: bool = field(init=False)
    data: str = field(default="0x", compare=False, repr=False)  # the whole revert data

    def __post_init__(self) -> None:
        object.__setattr__(self, "obsolete", self.name in OBSOLETE_ERRORS)
        if self.selector is None and self.name in _selectors_by_name():
            object.__setattr__(self, "selector", _selectors_by_name()[self.name])

    def __str__(self) -> str:
        if self.name == EMPTY:
            return EMPTY
        if self.name.startswith(UNKNOWN):
            return self.name
        if self.name == MALFORMED:
            return f"{MALFORMED}: {self.data if len(self.data) <= 74 else self.data[:74] + '…'}"
        if self.name == "Panic" and len(self.args) == 1 and isinstance(self.args[0], int):
            return f"Panic({self.args[0]:#x})"
        if self.name == "Error" and len(self.args) == 1 and isinstance(self.args[0], str):
            return f"Error({json.dumps(self.args[0], ensure_ascii=False)})"
        return f"{self.name}({', '.join(_show(a) for a in self.args)})"


CUT = 36  # closeBatch keeps a failed member's revert up to the selector and one word


def decode_revert(data: str | bytes | None, *, cut: bool = False) -> Revert:
    """The named error in `data` (0x-hex or bytes, as an `eth_call` error or a
    `BatchCloseFailed` log carries it); never raises. `cut`: `data` may be the first
    36 bytes of a longer revert (a batch member's): a known error whose arguments were cut
    off keeps its name, without arguments."""
    raw = _bytes(data)
    if raw is None:
        shown = data if isinstance(data, str) else repr(data)
        return Revert(MALFORMED, (), None, data=shown[:200])
    hex_data = "0x" + raw.hex()
    if not raw:
        return Revert(EMPTY, (), None, data=hex_data)
    if len(raw) < 4:
        return Revert(MALFORMED, (), None, data=hex_data)
    selector = "0x" + raw[:4].hex()
    spec = error_specs().get(selector)
    if spec is None:
        return Revert(f"{UNKNOWN} {selector}", (), selector, data=hex_data)
    try:
        values = abi_decode(list(spec.types), raw[4:])
    except Exception:  # eth_abi's errors are not one family; bad data must not escape
        if cut and len(raw) == CUT:
            return Revert(spec.name, (), selector, data=hex_data)
        return Revert(MALFORMED, (), selector, data=hex_data)
    args = tuple(_normalize(t, v) for t, v in zip(spec.types, values, strict=True))
    return Revert(spec.name, args, selector, data=hex_data)


def _factory_events(
    receipt_logs: Sequence[Mapping[str, Any]], factory_address: str, name: str
) -> Iterator[dict[str, Any]]:
    """The decoded arguments of each `name` log `factory_address` emitted, in log order.
    Logs may be raw JSON-RPC (hex strings) or web3's (bytes); a log that is not hex or
    does not decode is the node's fault (`BadResponse`)."""
    factory = factory_address.lower()
    spec = next(s for s in event_specs().values() if s.name == name)
    for log in receipt_logs:
        if str(log.get("address", "")).lower() != factory:
            continue
        topics = [_bytes(t) for t in log.get("topics") or ()]
        if not topics or topics[0] != spec.topic:
            continue
        data = _bytes(log.get("data"))
        if data is None or any(t is None for t in topics):
            raise BadResponse(f"receipt log {log.get('logIndex')} is not hex: {log!r:.200}")
        try:
            yield spec.decode([t for t in topics if t is not None], data)
        except MalformedLog as exc:
            raise BadResponse(f"receipt log {log.get('logIndex')}: {exc}") from exc


def batch_failures(
    receipt_logs: Sequence[Mapping[str, Any]], factory_address: str
) -> dict[str, Revert]:
    """The members a `closeBatch` receipt reports as not closed: checksummed wallet → the
    wallet's revert. Only `BatchCloseFailed` logs emitted by `factory_address` count. A
    wallet listed twice in one batch keeps its first failure."""
    failures: dict[str, Revert] = {}
    for args in _factory_events(receipt_logs, factory_address, "BatchCloseFailed"):
        failures.setdefault(args["wallet"], decode_revert(args["reason"], cut=True))
    return failures


def batch_unreached(receipt_logs: Sequence[Mapping[str, Any]], factory_address: str) -> list[str]:
    """The members a `closeBatch` receipt reports it did not try (`BatchIncomplete`: it
    stopped to keep its reserve), checksummed, in batch order; [] when it reached all."""
    for args in _factory_events(receipt_logs, factory_address, "BatchIncomplete"):
        return [to_checksum_address(w) for w in args["unreached"]]
    return []


@functools.cache
def error_specs() -> dict[str, ErrorSpec]:
    """0x-selector → error, for every error the executor can meet."""
    signatures = dict(_BUILTIN)
    for contract in ERROR_SOURCES:
        for item in load_artifact(contract).abi:
            if item["type"] == "error":
                types = tuple(_canonical(i) for i in item["inputs"])
                signatures[f"{item['name']}({','.join(types)})"] = (item["name"], types)
    specs: dict[str, ErrorSpec] = {}
    for signature, (name, types) in signatures.items():
        selector = "0x" + keccak(text=signature)[:4].hex()
        specs[selector] = ErrorSpec(name, types, selector)
    return specs


@functools.cache
def _selectors_by_name() -> dict[str, str]:
    """Names with one signature only: a name shared by two signatures has no default."""
    by_name: dict[str, set[str]] = {}
    for spec in error_specs().values():
        by_name.setdefault(spec.name, set()).add(spec.selector)
    return {name: next(iter(sels)) for name, sels in by_name.items() if len(sels) == 1}


def _canonical(item: Mapping[str, Any]) -> str:
    typ = str(item["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_canonical(c) for c in item["components"])
        return f"({inner}){typ[5:]}"
    return typ


def _normalize(typ: str, value: Any) -> Any:
    """Addresses checksummed, byte strings as 0x-hex, integers untouched (exact)."""
    if typ.endswith("]") and isinstance(value, tuple | list):
        element = typ[: typ.rindex("[")]
        return tuple(_normalize(element, v) for v in value)
    if typ == "address":
        return to_checksum_address(value)
    if typ.startswith("bytes") and isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def _show(value: Any) -> str:
    if isinstance(value, str) and not value.startswith("0x"):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple):
        return f"[{', '.join(_show(v) for v in value)}]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _bytes(value: object) -> bytes | None:
    """Raw bytes from 0x-hex or bytes; None when it is neither."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        digits = value[2:] if value[:2] in ("0x", "0X") else value
        if len(digits) % 2 or not _HEX.issuperset(digits):
            return None  # bytes.fromhex would skip whitespace; a node's hex has none
        return bytes.fromhex(digits)
    return None


def closed_wallets(receipt_logs: Sequence[Mapping[str, Any]]) -> set[str]:
    """The wallets (lowercase) that emitted `Closed` in a receipt: what the transaction
    really closed, whatever the job meant it to do."""
    topic = next(s for s in event_specs().values() if s.name == "Closed").topic
    return {
        str(log.get("address", "")).lower()
        for log in receipt_logs
        if (topics := log.get("topics")) and _bytes(topics[0]) == topic
    }
