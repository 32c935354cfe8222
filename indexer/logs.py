"""Raw logs to events: which logs count, and why the others do not.

Pure. Only the configured factory's events and the events of wallets that factory
created count (invariant 3); a wallet is known from its `SessionCreated` on, so a
wallet's own logs are accepted only at positions after its creation. Everything else
with one of our signatures — a look-alike contract, a wallet of another factory, a log
whose data does not decode — becomes an `IgnoredLog` with the reason, so it is counted
exactly and can be inspected.

In two steps, so that a backfill decodes a range before its turn to commit: `decode`
(pure, needs only the headers: the part that costs) and `select` (the filter, against
the wallets stored when the range commits). `classify` is both.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from chain.abi import EventSpec, MalformedLog, checksum, event_specs
from indexer.collector import gc_paused
from indexer.projection import Event
from indexer.schema import args_templates
from indexer.store import BlockRef, IgnoredLog

NOT_OURS = "not from the configured factory or a wallet it created"


@dataclass(frozen=True)
class Classified:
    events: list[Event]
    ignored: list[IgnoredLog]
    created: list[str]  # wallets created in these logs, in order


# one decoded log: position, block, tx hash, event name, lower-case emitter, checksummed
# emitter, and the Event, or None and why not: the text of a malformed log's fault, or
# what else building it raised (raised again by `select` if the log is ours, as a
# decode-as-you-filter would have; a look-alike's is never looked at)
_Record = tuple[int, int, str, str, str, str, Event | None, str | Exception | None]
# the same with the Event's fields as a tuple: what a decode worker sends back
WireRecord = tuple[int, int, str, str, str, str, tuple[Any, ...] | None, str | Exception | None]


@dataclass(frozen=True)
class Decoded:
    """Logs decoded in position order, not yet filtered: what does not depend on the
    store, so a backfill decodes a range while the range before it commits."""

    records: list[_Record]
    wallets: set[str]  # lower-case emitters of wallet events: the sessions to look up


def decode(raw_logs: Iterable[dict[str, Any]], headers: Mapping[int, BlockRef]) -> Decoded:
    """Decode raw logs (any order; topic0 one of ours, as `fetch.check_logs` ensures)
    into position order. `headers` must hold every block the logs are in (timestamps)."""
    timestamps = {n: h.timestamp for n, h in headers.items()}
    records, wallets = _decode(raw_logs, timestamps, Event)
    return Decoded(records, wallets)


def decode_wire(payload: bytes, timestamps: dict[int, int]) -> tuple[list[WireRecord], set[str]]:
    """`decode` in a worker process: from the logs' JSON text, with each Event as the
    tuple of its fields (cheaper to send back than the object); `from_wire` rebuilds."""
    return _decode(orjson.loads(payload), timestamps, _fields)


def from_wire(wire: tuple[list[WireRecord], set[str]]) -> Decoded:
    records, wallets = wire
    return Decoded(
        [(p, n, tx, name, key, emitter, Event(*f) if f is not None else None, error)
         for p, n, tx, name, key, emitter, f, error in records],
        wallets,
    )  # fmt: skip


def _fields(*values: Any) -> tuple[Any, ...]:
    return values


def _decode(
    raw_logs: Iterable[dict[str, Any]], timestamps: Mapping[int, int], make: Callable[..., Any]
) -> tuple[list[Any], set[str]]:
    # a burst of long-lived containers: the collector would walk them again and again
    with gc_paused():
        return _decode_all(raw_logs, timestamps, make)


def _decode_all(
    raw_logs: Iterable[dict[str, Any]], timestamps: Mapping[int, int], make: Callable[..., Any]
) -> tuple[list[Any], set[str]]:
    """Records in position order, each event made by `make(*Event fields)`.

    On the backfill's hot path (tens of thousands of logs per call), so the per-log work
    is kept to what the answer needs: topic0 is looked up as the node's hex text, the
    emitter's checksum is cached by that text, and the stored JSON of a plain event's
    arguments is made from the decoded values in one format (`schema.args_templates`).
    """
    specs = _specs_by_hex()
    templates = args_templates()
    keyed = [(int(r["blockNumber"], 16), int(r["logIndex"], 16), r) for r in raw_logs]
    keyed.sort(key=_BY_POSITION)  # stable: a duplicate position keeps the node's order
    records: list[Any] = []
    wallets: set[str] = set()
    fromhex = bytes.fromhex
    for number, index, raw in keyed:
        pos = (number << 32) | index  # abi.position, inlined
        raw_topics = raw["topics"]
        spec, topic0 = specs[raw_topics[0].lower()]
        address_key = raw["address"].lower()
        emitter = _checksum_hex(address_key)
        name, tx_hash = spec.name, raw["transactionHash"]
        if spec.source == "wallet":
            wallets.add(address_key)
        topics = [topic0, *[fromhex(t[2:]) for t in raw_topics[1:]]]
        try:
            args = spec.decode(topics, fromhex(raw["data"][2:]))
        except (MalformedLog, ValueError) as exc:
            records.append((pos, number, tx_hash, name, address_key, emitter, None, str(exc)))
            continue
        except Exception as exc:
            records.append((pos, number, tx_hash, name, address_key, emitter, None, exc))
            continue
        try:
            if name == "SessionCreated":
                wallet, seq = args["wallet"], 0
            elif spec.source == "wallet":
                wallet, seq = emitter, args["seq"]
            else:  # BatchCloseFailed names a wallet; admin events none
                wallet, seq = args.get("wallet"), None
            text = templates.get(name)
            event = make(
                pos, number, raw["blockHash"], tx_hash, int(raw["transactionIndex"], 16),
                index, timestamps[number], emitter, name, wallet, seq, args,
                text[0] % text[1](args) if text is not None else None,
            )  # fmt: skip
        except Exception as exc:
            records.append((pos, number, tx_hash, name, address_key, emitter, None, exc))
            continue
        records.append((pos, number, tx_hash, name, address_key, emitter, event, None))
    return records, wallets


def select(decoded: Decoded, factory: str, is_known_wallet: Callable[[str], bool]) -> Classified:
    """Keep the events of the configured factory and of the wallets it created;
    `is_known_wallet` answers (lower-case address) for wallets created before these logs."""
    factory_key = factory.lower()
    events: list[Event] = []
    ignored: list[IgnoredLog] = []
    created: list[str] = []
    new_wallets: set[str] = set()
    sources = _sources()
    for pos, number, tx_hash, name, address_key, emitter, event, error in decoded.records:
        if sources[name] == "factory":
            ours = address_key == factory_key
        else:
            ours = address_key in new_wallets or is_known_wallet(address_key)
        if not ours:
            ignored.append(IgnoredLog(pos, number, tx_hash, emitter, name, NOT_OURS))
        elif event is None:
            # a log of ours whose data does not decode is counted; anything else that
            # failed on it is a fault of ours or of the answer's shape, and is raised
            if not isinstance(error, str):
                raise error if error is not None else AssertionError("no event, no error")
            ignored.append(IgnoredLog(pos, number, tx_hash, emitter, name,
                                      f"malformed: {error}"))  # fmt: skip
        else:
            if name == "SessionCreated":
                new_wallets.add(event.args["wallet"].lower())
                created.append(event.args["wallet"])
            events.append(event)
    return Classified(events, ignored, created)


def classify(
    raw_logs: Iterable[dict[str, Any]],
    headers: Mapping[int, BlockRef],
    factory: str,
    is_known_wallet: Callable[[str], bool],
) -> Classified:
    """Decode and filter raw logs (any order) into events in position order (`decode`,
    then `select`)."""
    return select(decode(raw_logs, headers), factory, is_known_wallet)


_BY_POSITION = operator.itemgetter(0, 1)


@functools.cache
def _sources() -> dict[str, str]:
    """Event name → "factory" | "wallet"."""
    return {spec.name: spec.source for spec in event_specs().values()}


@functools.cache
def _specs_by_hex() -> dict[str, tuple[EventSpec, bytes]]:
    """topic0 as lower-case 0x-hex → its spec and topic0's bytes."""
    return {"0x" + t.hex(): (spec, t) for t, spec in event_specs().items()}


@functools.lru_cache(maxsize=65536)
def _checksum_hex(address_key: str) -> str:
    """`checksum` of a lower-case 0x-hex address, cached by the text (a backfill sees the
    same few thousand wallets over and over). Not hex: ValueError, as before."""
    return checksum(bytes.fromhex(address_key[2:]))
