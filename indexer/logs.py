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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chain.abi import MalformedLog, checksum, event_specs, position
from indexer.projection import Event
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
    """
    specs = event_specs()
    factory_key = factory.lower()
    keyed = sorted(
        ((int(r["blockNumber"], 16), int(r["logIndex"], 16), r) for r in raw_logs),
        key=lambda t: (t[0], t[1]),
    )
    events: list[Event] = []
    ignored: list[IgnoredLog] = []
    created: list[str] = []
    new_wallets: set[str] = set()
    for number, index, raw in keyed:
        pos = position(number, index)
        topics = [bytes.fromhex(t[2:]) for t in raw["topics"]]
        spec = specs[topics[0]]
        address_key = raw["address"].lower()
        emitter = checksum(bytes.fromhex(address_key[2:]))
        if spec.source == "factory":
            ours = address_key == factory_key
        else:
            ours = address_key in new_wallets or is_known_wallet(address_key)
        if not ours:
            ignored.append(IgnoredLog(pos, number, raw["transactionHash"], emitter, spec.name,
                                      NOT_OURS))  # fmt: skip
            continue
        try:
            args = spec.decode(topics, bytes.fromhex(raw["data"][2:]))
        except (MalformedLog, ValueError) as exc:
            ignored.append(IgnoredLog(pos, number, raw["transactionHash"], emitter, spec.name,
                                      f"malformed: {exc}"))  # fmt: skip
            continue
        wallet: str | None
        seq: int | None
        if spec.name == "SessionCreated":
            wallet, seq = args["wallet"], 0
            new_wallets.add(args["wallet"].lower())
            created.append(args["wallet"])
        elif spec.source == "wallet":
            wallet, seq = emitter, args["seq"]
        else:
            wallet, seq = args.get("wallet"), None  # BatchCloseFailed names one; admin: none
        events.append(
            Event(
                position=pos,
                block_number=number,
                block_hash=raw["blockHash"],
                tx_hash=raw["transactionHash"],
                tx_index=int(raw["transactionIndex"], 16),
                log_index=index,
                timestamp=headers[number].timestamp,
                address=emitter,
                name=spec.name,
                wallet=wallet,
                seq=seq,
                args=args,
            )
        )
    return Classified(events, ignored, created)


def wallet_addresses(raw_logs: Iterable[dict[str, Any]]) -> set[str]:
    """Lower-case emitters of wallet-event logs: the wallets to look up before `classify`."""
    wallet_topics = _wallet_topics()
    return {r["address"].lower() for r in raw_logs if r["topics"][0] in wallet_topics}


@functools.cache
def _wallet_topics() -> frozenset[str]:
    # compared as the node's hex strings: no decoding on the backfill's hot path
    return frozenset("0x" + t.hex() for t, spec in event_specs().items() if spec.source == "wallet")
