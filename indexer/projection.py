"""The session projection: one session's state, rebuilt exactly from its events.

Pure: `apply` takes a session (or nothing, for the creation event) and one decoded event
and returns the next state. The indexer runs it on every new event and, after a
rollback, replays a wallet's remaining events from the start, so indexed state always
equals a replay from scratch (invariant 2). Every wallet event carries `balanceAfter`,
so the balance is taken from the chain, never computed; totals that no event carries
(deposited, withdrawn) are sums of exact integers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contracts import CLOSE_REASONS


@dataclass(frozen=True, slots=True)
class Event:
    """One decoded log that belongs to the configured factory or one of its wallets."""

    position: int
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    timestamp: int
    address: str
    name: str
    wallet: str | None  # the session this event belongs to, None for factory admin events
    seq: int | None
    args: dict[str, Any]
    # `args` as the events table stores it (`indexer.schema.encode_args`'s text), when the
    # decoder made both from the same words: the commit then writes it as is instead of
    # encoding `args` again. Not part of an event's identity.
    args_json: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Session:
    wallet: str
    owner: str
    operator: str
    token: str
    policy: str
    targets: tuple[str, ...]
    salt: str
    fee: int  # every fee paid: the creation (and a prefunded balance), top-ups, inflows
    initial_deposit: int
    deposit: int  # creation deposit + top-ups
    withdrawn: int
    balance: int
    spent: int
    budget: int
    stop_loss: int  # 0 = not set
    take_profit: int  # 0 = not set
    expiry: int
    status: str  # "active" | "revoked" | "closed"
    close_reason: str | None
    closed_by: str | None
    refund: int
    execution_count: int
    created_block: int
    created_at: int
    created_position: int
    last_seq: int
    last_position: int
    last_activity: int
    revoked_at: int | None
    closed_at: int | None
    seq_gaps: int  # how many times the sequence jumped; 0 for a complete history
    gap_note: str | None  # the first jump, e.g. "seq 3 after 1 at block 812"

    @property
    def remaining_budget(self) -> int:
        return max(0, self.budget - self.spent)


class ProjectionError(ValueError):
    """An event that cannot apply: a wallet event for a session never created."""


_FIELDS = tuple(f.name for f in dataclasses.fields(Session))


def apply(session: Session | None, event: Event) -> Session:
    """The state after `event`. `session` is None only for SessionCreated."""
    return apply_all(session, [event])


def replay(events: Iterable[Event]) -> Session | None:
    """A session rebuilt from its events in position order (None if there are none)."""
    events = list(events)
    return apply_all(None, events) if events else None


def apply_all(session: Session | None, events: Iterable[Event]) -> Session:
    """The state after `events` (one wallet's, in position order). Works on a plain dict
    and freezes once: a backfill applies hundreds of thousands of events."""
    state: dict[str, Any] | None = (
        None if session is None else {f: getattr(session, f) for f in _FIELDS}
    )
    for event in events:
        state = _step(state, event)
    if state is None:
        raise ProjectionError("no events to apply")
    return Session(**state)


def _step(s: dict[str, Any] | None, event: Event) -> dict[str, Any]:
    a = event.args
    if event.name == "SessionCreated":
        if s is not None:
            raise ProjectionError(f"{event.wallet} created twice (position {event.position})")
        return {
            "wallet": a["wallet"], "owner": a["owner"], "operator": a["operator"],
            "token": a["token"], "policy": a["policy"], "targets": tuple(a["targets"]),
            "salt": a["salt"], "fee": a["fee"], "initial_deposit": a["deposit"],
            "deposit": a["deposit"], "withdrawn": 0, "balance": a["balanceAfter"], "spent": 0,
            "budget": a["budget"], "stop_loss": a["stopLoss"], "take_profit": a["takeProfit"],
            "expiry": a["expiry"], "status": "active", "close_reason": None, "closed_by": None,
            "refund": 0, "execution_count": 0, "created_block": event.block_number,
            "created_at": event.timestamp, "created_position": event.position, "last_seq": 0,
            "last_position": event.position, "last_activity": event.timestamp,
            "revoked_at": None, "closed_at": None, "seq_gaps": 0, "gap_note": None,
        }  # fmt: skip
    if s is None:
        raise ProjectionError(f"{event.name} at {event.position} for unknown wallet {event.wallet}")
    seq = event.seq
    assert seq is not None
    if seq != s["last_seq"] + 1:
        s["seq_gaps"] += 1
        if s["gap_note"] is None:
            s["gap_note"] = f"seq {seq} after {s['last_seq']} at block {event.block_number}"
    s["balance"] = a["balanceAfter"]
    s["last_seq"] = seq
    s["last_position"] = event.position
    s["last_activity"] = event.timestamp
    name = event.name
    if name == "Executed":
        s["spent"] = a["totalSpent"]
        s["execution_count"] += 1
    elif name == "Deposited":
        s["deposit"] += a["amount"]
        s["fee"] += a["fee"]
    elif name == "Synced":
        s["fee"] += a["fee"]  # a plain transfer in paid its fee out of itself
    elif name == "Withdrawn":
        s["withdrawn"] += a["amount"]
    elif name == "Extended":
        s["expiry"] = a["newExpiry"]
    elif name == "Revoked":
        s["status"] = "revoked"
        s["revoked_at"] = event.timestamp
    elif name == "Closed":
        reason = a["reason"]
        s["status"] = "closed"
        s["close_reason"] = (
            CLOSE_REASONS[reason] if reason < len(CLOSE_REASONS) else f"reason_{reason}"
        )
        s["closed_by"] = a["by"]
        s["refund"] = a["refund"]
        s["closed_at"] = event.timestamp
    # Recovered changes only the balance, already taken from balanceAfter.
    return s
