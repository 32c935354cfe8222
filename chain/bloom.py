"""The 2048-bit `logsBloom` of a block header (Ethereum yellow paper, section 4.3.1).

Every log puts its emitter's address (20 bytes) and each of its topics (32 bytes) into
the block's bloom: three bits per item, each chosen by one of the first three byte pairs
of the item's keccak-256, modulo 2048. The bloom holds the bits as one big-endian
2048-bit number, so bit `b` is `1 << b` of `int.from_bytes(bloom, "big")`.

A bloom has no false negatives: a log whose address or a topic is not in the header's
bloom was not in that block, whatever a node says. It does have false positives: a bit
pattern can be set by other items, more often the fuller the bloom (a busy mainnet block
sets most bits). The indexer uses both facts (`indexer/verify.py`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from eth_hash.auto import keccak as keccak256

BLOOM_BITS = 2048
BLOOM_BYTES = BLOOM_BITS // 8


class MalformedBloom(ValueError):
    """A `logsBloom` that is not 256 bytes of hex."""


@functools.lru_cache(maxsize=65536)
def bloom_mask(item: bytes) -> int:
    """The (up to three) bits `item` sets in a bloom, as an int mask."""
    digest = keccak256(item)
    mask = 0
    for i in (0, 2, 4):
        mask |= 1 << (((digest[i] << 8) | digest[i + 1]) & (BLOOM_BITS - 1))
    return mask


def parse_bloom(value: str) -> int:
    """A header's `logsBloom` (0x + 512 hex digits) as an int."""
    if (
        not isinstance(value, str)
        or not value.startswith("0x")
        or len(value) != 2 + 2 * BLOOM_BYTES
    ):
        raise MalformedBloom(
            f"logsBloom must be 0x and {2 * BLOOM_BYTES} hex digits: {value!r:.80}"
        )
    try:
        return int(value[2:], 16)
    except ValueError as exc:
        raise MalformedBloom(f"logsBloom is not hex: {value!r:.80}") from exc


def _raw(hex_value: str) -> bytes:
    return bytes.fromhex(hex_value[2:] if hex_value.startswith("0x") else hex_value)


@functools.lru_cache(maxsize=65536)
def _hex_mask(hex_value: str) -> int:
    """`bloom_mask` of a 0x-hex item, cached by the text itself: a block's logs repeat the
    same few topic0s and emitters, so the follow path skips the hex parse as well as the
    hash (a malformed value raises ValueError, and is not cached)."""
    return bloom_mask(_raw(hex_value))


def may_contain(bloom: int, item: bytes) -> bool:
    """False means `item` is certainly not in the bloom; True means maybe."""
    mask = bloom_mask(item)
    return bloom & mask == mask


def log_mask(entry: Mapping[str, Any]) -> int:
    """The bits a JSON-RPC log (`address`, `topics` as 0x-hex) sets in its block's bloom."""
    mask = _hex_mask(entry["address"])
    for topic in entry["topics"]:
        mask |= _hex_mask(topic)
    return mask


def log_in_bloom(bloom: int, entry: Mapping[str, Any]) -> bool:
    """Whether the header's bloom admits this log: its address and every topic."""
    mask = log_mask(entry)
    return bloom & mask == mask


def logs_bloom(logs: Iterable[Mapping[str, Any]]) -> int:
    """The bloom these logs make together: for a block's complete logs (all its
    receipts'), exactly the header's `logsBloom`."""
    bloom = 0
    for entry in logs:
        bloom |= log_mask(entry)
    return bloom
