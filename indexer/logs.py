"""Raw logs to events: which logs count, and why the others do not.

Pure. Only the configured factory's events and the events of wallets that factory
created count (invariant 3); a wallet is known from its `SessionCreated` on, so a
wallet's own logs are accepted only at positions after its creation. Everything else
with one of our signatures — a look-alike contract, a wallet of another factory, a log
whose data does not decode — becomes an `IgnoredLog` with the reason, so it is counted
exactly and can be inspected.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.abi import EventSpec, MalformedLog, checksum, event_specs
from indexer.projection import Event
from indexer.schema import args_templates
from indexer.store import BlockRef, IgnoredLog

NOT_OURS = "not from the configured factory or a wallet it created"


@dataclass(frozen=True)
class Classified:
    events: list[Event]
    ignored: list[IgnoredLog]
    created: list[str]  # wallets created in these logs, in order


def classify(
    raw_logs: Iterable[dict[str, Any]],
    headers: Mapping[int, BlockRef],
    factory: str,
    is_known_wallet: Callable[[str], bool],
) -> Classified:
    """Decode and filter raw logs (any order) into events in position order.

    `headers` must hold every block the logs are in (for timestamps); `is_known_wallet`
    answers for wallets created before these logs.

    On the backfill's hot path (tens of thousands of logs per call), so the per-log work
    is kept to what the answer needs: topic0 is looked up as the node's hex text, the
    emitter's checksum is cached by that text, and the stored JSON of a plain event's
    arguments is made from the decoded values in one format (`schema.args_templates`).
    """
    specs = _specs_by_hex()
    templates = args_templates()
    factory_key = factory.lower()
    keyed = [(int(r["blockNumber"], 16), int(r["logIndex"], 16), r) for r in raw_logs]
    keyed.sort(key=_BY_POSITION)  # stable: a duplicate position keeps the node's order
    events: list[Event] = []
    ignored: list[IgnoredLog] = []
    created: list[str] = []
    new_wallets: set[str] = set()
    fromhex = bytes.fromhex
    timestamps = {n: h.timestamp for n, h in headers.items()}
    for number, index, raw in keyed:
        pos = (number << 32) | index  # abi.position, inlined
        raw_topics = raw["topics"]
        spec, topic0 = specs[raw_topics[0].lower()]
        topics = [topic0, *[fromhex(t[2:]) for t in raw_topics[1:]]]
        address_key = raw["address"].lower()
        emitter = _checksum_hex(address_key)
        if spec.source == "factory":
            ours = address_key == factory_key
        else:
            ours = address_key in new_wallets or is_known_wallet(address_key)
        if not ours:
            ignored.append(IgnoredLog(pos, number, raw["transactionHash"], emitter, spec.name,
                                      NOT_OURS))  # fmt: skip
            continue
        try:
            args = spec.decode(topics, fromhex(raw["data"][2:]))
        except (MalformedLog, ValueError) as exc:
            ignored.append(IgnoredLog(pos, number, raw["transactionHash"], emitter, spec.name,
                                      f"malformed: {exc}"))  # fmt: skip
            continue
        name = spec.name
        wallet: str | None
        seq: int | None
        if name == "SessionCreated":
            wallet, seq = args["wallet"], 0
            new_wallets.add(args["wallet"].lower())
            created.append(args["wallet"])
        elif spec.source == "wallet":
            wallet, seq = emitter, args["seq"]
        else:
            wallet, seq = args.get("wallet"), None  # BatchCloseFailed names one; admin: none
        text = templates.get(name)
        events.append(
            Event(
                pos, number, raw["blockHash"], raw["transactionHash"],
                int(raw["transactionIndex"], 16), index, timestamps[number], emitter, name,
                wallet, seq, args, text[0] % text[1](args) if text is not None else None,
            )
        )  # fmt: skip
    return Classified(events, ignored, created)


_BY_POSITION = operator.itemgetter(0, 1)


@functools.cache
def _specs_by_hex() -> dict[str, tuple[EventSpec, bytes]]:
    """topic0 as lower-case 0x-hex → its spec and topic0's bytes."""
    return {"0x" + t.hex(): (spec, t) for t, spec in event_specs().items()}


@functools.lru_cache(maxsize=65536)
def _checksum_hex(address_key: str) -> str:
    """`checksum` of a lower-case 0x-hex address, cached by the text (a backfill sees the
    same few thousand wallets over and over). Not hex: ValueError, as before."""
    return checksum(bytes.fromhex(address_key[2:]))


def wallet_addresses(raw_logs: Iterable[dict[str, Any]]) -> set[str]:
    """Lower-case emitters of wallet-event logs: the wallets to look up before `classify`."""
    wallet_topics = _wallet_topics()
    return {r["address"].lower() for r in raw_logs if r["topics"][0] in wallet_topics}


@functools.cache
def _wallet_topics() -> frozenset[str]:
    # compared as the node's hex strings: no decoding on the backfill's hot path
    return frozenset("0x" + t.hex() for t, spec in event_specs().items() if spec.source == "wallet")
