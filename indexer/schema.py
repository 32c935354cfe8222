"""The indexer's tables, their migrations, and how a row is written and read back.

uint256 values are stored as decimal TEXT and read back as Python ints: exact, never
REAL; an event's integer arguments are stored as decimal strings in its JSON `args`.
`IndexerStore` (the writer) and `SessionReads` (the API's reader) share these codecs.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from chain.abi import event_specs
from indexer.projection import Session

COMPONENT = "indexer"

MIGRATIONS = [
    """
    CREATE TABLE blocks (
        number      INTEGER PRIMARY KEY,
        hash        TEXT NOT NULL,
        parent_hash TEXT NOT NULL,
        timestamp   INTEGER NOT NULL
    );
    CREATE TABLE events (
        position     INTEGER PRIMARY KEY,
        block_number INTEGER NOT NULL,
        block_hash   TEXT NOT NULL,
        tx_hash      TEXT NOT NULL,
        tx_index     INTEGER NOT NULL,
        log_index    INTEGER NOT NULL,
        timestamp    INTEGER NOT NULL,
        address      TEXT NOT NULL,
        wallet       TEXT,
        name         TEXT NOT NULL,
        seq          INTEGER,
        args         TEXT NOT NULL
    );
    CREATE INDEX events_by_wallet ON events (wallet, position);
    CREATE TABLE ignored_logs (
        position     INTEGER PRIMARY KEY,
        block_number INTEGER NOT NULL,
        tx_hash      TEXT NOT NULL,
        address      TEXT NOT NULL,
        event        TEXT NOT NULL,
        reason       TEXT NOT NULL
    );
    CREATE TABLE sessions (
        wallet           TEXT PRIMARY KEY,
        owner            TEXT NOT NULL,
        operator         TEXT NOT NULL,
        token            TEXT NOT NULL,
        policy           TEXT NOT NULL,
        targets          TEXT NOT NULL,
        salt             TEXT NOT NULL,
        fee              TEXT NOT NULL,
        initial_deposit  TEXT NOT NULL,
        deposit          TEXT NOT NULL,
        withdrawn        TEXT NOT NULL,
        balance          TEXT NOT NULL,
        spent            TEXT NOT NULL,
        budget           TEXT NOT NULL,
        stop_loss        TEXT NOT NULL,
        take_profit      TEXT NOT NULL,
        expiry           TEXT NOT NULL,
        status           TEXT NOT NULL,
        close_reason     TEXT,
        closed_by        TEXT,
        refund           TEXT NOT NULL,
        execution_count  INTEGER NOT NULL,
        created_block    INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        created_position INTEGER NOT NULL,
        last_seq         INTEGER NOT NULL,
        last_position    INTEGER NOT NULL,
        last_activity    INTEGER NOT NULL,
        revoked_at       INTEGER,
        closed_at        INTEGER,
        seq_gaps         INTEGER NOT NULL,
        gap_note         TEXT
    );
    CREATE INDEX sessions_by_owner ON sessions (owner, created_position);
    CREATE INDEX sessions_by_status ON sessions (status, created_position);
    CREATE INDEX sessions_by_policy ON sessions (policy, created_position);
    CREATE INDEX sessions_by_last_position ON sessions (last_position);
    CREATE TABLE checkpoint (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        number    INTEGER NOT NULL,
        hash      TEXT NOT NULL,
        timestamp INTEGER NOT NULL
    )
    """,
]

SESSION_FIELDS = [f.name for f in dataclasses.fields(Session)]
EXACT = {
    "fee", "initial_deposit", "deposit", "withdrawn", "balance", "spent", "budget",
    "stop_loss", "take_profit", "expiry", "refund",
}  # fmt: skip


def encode_args(args: dict[str, Any]) -> str:
    return orjson.dumps(
        {
            k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in args.items()
        }
    ).decode()


# ABI types whose decoded value is JSON text as itself between quotes with nothing to
# escape: checksummed addresses and 0x-hex fixed bytes (str), integers (decimal text)
def _is_plain(typ: str) -> bool:
    return (
        typ == "address"
        or typ.startswith(("uint", "int"))
        or (typ.startswith("bytes") and typ != "bytes")
    )


ArgsText = tuple[str, Callable[[dict[str, Any]], Any]]


@functools.cache
def args_templates() -> dict[str, ArgsText]:
    """Per event name whose fields are all plain (every wallet event: nearly all of a
    backfill), a %-template and a getter that make `encode_args`'s exact text from the
    decoder's `args` in one step: `template % getter(args)`. Only for args as
    `EventSpec.decode` made them (its keys in its order, its value types): the decoder's
    caller (`indexer.logs.classify`) uses it; everything else goes through `encode_args`."""
    out: dict[str, ArgsText] = {}
    for spec in event_specs().values():
        fields = (*spec.indexed, *spec.data)
        if not fields or not all(_is_plain(t) for _, t in fields):
            continue
        names = [n for n, _ in fields]
        keys = [orjson.dumps(n).decode().replace("%", "%%") for n in names]
        template = "{" + ",".join(f'{k}:"%s"' for k in keys) + "}"
        out[spec.name] = (template, operator.itemgetter(*names))
    return out


def int_fields() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for spec in event_specs().values():
        names = [n for n, t in (*spec.indexed, *spec.data) if t.startswith(("uint", "int"))]
        out[spec.name] = frozenset(names)
    return out


def session_row(s: Session) -> tuple[Any, ...]:
    row: list[Any] = []
    for name in SESSION_FIELDS:
        value = getattr(s, name)
        if name in EXACT:
            value = str(value)
        elif name == "targets":
            value = orjson.dumps(list(value)).decode()
        row.append(value)
    return tuple(row)


def session_from_row(row: Sequence[Any]) -> Session:
    values: dict[str, Any] = {}
    for name, value in zip(SESSION_FIELDS, row, strict=True):
        if name in EXACT:
            value = int(value)
        elif name == "targets":
            value = tuple(orjson.loads(value))
        values[name] = value
    return Session(**values)
