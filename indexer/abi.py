"""Event signatures of the factory and the wallets, and a fast exact decoder for them.

Most of our events have only static fields, so their data is decoded by slicing 32-byte
words (an order of magnitude faster than a generic ABI decoder on a backfill); the two
with dynamic fields go through eth_abi. Every value is exact: uint256 stays a Python
int, addresses are checksummed, fixed bytes are 0x-hex.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from contracts import load_artifact

WALLET_EVENTS = frozenset(
    {"Deposited", "Executed", "Withdrawn", "Extended", "Revoked", "Synced", "Closed", "Recovered"}
)
CLOSE_REASONS = ("owner", "stop_loss", "take_profit", "expired", "idle", "swept")


class MalformedLog(ValueError):
    """A log whose topics or data do not fit the event its first topic names."""


def position(block: int, log_index: int) -> int:
    """The sortable key of a log. `logIndex` counts across the whole block, so ordering
    by it is ordering by (transaction index, log index) too; a block's first position
    is `block << 32`."""
    return (block << 32) | log_index


def block_of(pos: int) -> int:
    return pos >> 32


@functools.lru_cache(maxsize=65536)
def checksum(raw: bytes) -> str:
    return to_checksum_address(raw)


@dataclass(frozen=True)
class EventSpec:
    name: str
    topic: bytes
    source: str  # "factory" | "wallet"
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    static: bool

    def decode(self, topics: Sequence[bytes], data: bytes) -> dict[str, Any]:
        if len(topics) != 1 + len(self.indexed):
            raise MalformedLog(
                f"{self.name} needs {1 + len(self.indexed)} topics, the log has {len(topics)}"
            )
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(self.indexed, topics[1:], strict=True):
            args[name] = _word(typ, topic, self.name)
        if self.static:
            if len(data) != 32 * len(self.data):
                raise MalformedLog(
                    f"{self.name} data must be {32 * len(self.data)} bytes, got {len(data)}"
                )
            for i, (name, typ) in enumerate(self.data):
                args[name] = _word(typ, data[32 * i : 32 * i + 32], self.name)
        else:
            try:
                values = abi_decode([t for _, t in self.data], data, strict=True)
            except (DecodingError, OverflowError, ValueError) as exc:
                raise MalformedLog(f"{self.name} data does not decode: {exc}") from exc
            for (name, typ), value in zip(self.data, values, strict=True):
                args[name] = _value(typ, value)
        return args


def _word(typ: str, word: bytes, event: str) -> Any:
    if len(word) != 32:
        raise MalformedLog(f"{event}: a {typ} word must be 32 bytes, got {len(word)}")
    if typ == "address":
        if any(word[:12]):
            raise MalformedLog(f"{event}: address word has non-zero high bytes")
        return checksum(word[12:])
    if typ.startswith("uint"):
        value = int.from_bytes(word, "big")
        bits = int(typ[4:] or 256)
        if value >> bits:
            raise MalformedLog(f"{event}: {typ} value out of range")
        return value
    if typ == "bool":
        value = int.from_bytes(word, "big")
        if value > 1:
            raise MalformedLog(f"{event}: bool word is {value}")
        return value == 1
    if typ.startswith("bytes"):
        size = int(typ[5:])
        if any(word[size:]):
            raise MalformedLog(f"{event}: {typ} has non-zero padding")
        return "0x" + word[:size].hex()
    raise MalformedLog(f"{event}: unsupported static type {typ}")


def _value(typ: str, value: Any) -> Any:
    if typ == "address":
        return to_checksum_address(value)
    if typ == "address[]":
        return [to_checksum_address(v) for v in value]
    if typ in ("bytes", "bytes32") or typ.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


def _spec(item: dict[str, Any], source: str) -> EventSpec:
    def canonical(inp: dict[str, Any]) -> str:
        return str(inp["type"])

    inputs = item["inputs"]
    signature = f"{item['name']}({','.join(canonical(i) for i in inputs)})"
    indexed = tuple((i["name"], canonical(i)) for i in inputs if i["indexed"])
    data = tuple((i["name"], canonical(i)) for i in inputs if not i["indexed"])
    static = all(t not in ("string", "bytes") and not t.endswith("[]") for _, t in data)
    return EventSpec(item["name"], keccak(text=signature), source, indexed, data, static)


@functools.cache
def event_specs() -> dict[bytes, EventSpec]:
    """topic0 → spec, for every event the factory and the wallets emit."""
    specs: dict[bytes, EventSpec] = {}
    for contract, source in (("SessionWalletFactory", "factory"), ("SessionWallet", "wallet")):
        for item in load_artifact(contract).abi:
            if item["type"] != "event" or item.get("anonymous"):
                continue
            if source == "wallet" and item["name"] not in WALLET_EVENTS:
                continue  # e.g. OpenZeppelin's Initialized: not part of a session's story
            if source == "factory" and item["name"] in WALLET_EVENTS:
                continue
            spec = _spec(item, source)
            specs[spec.topic] = spec
    return specs


def topics_filter() -> list[str]:
    """The first-topic filter for eth_getLogs that matches every event we index."""
    return ["0x" + t.hex() for t in event_specs()]
