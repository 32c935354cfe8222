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
from dataclasses import dataclass
from typing import Any

from indexer.abi import CLOSE_REASONS


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


@dataclass(frozen=True, slots=True)
class Session:
    wallet: str
    owner: str
    operator: str
    token: str
    policy: str
    targets: tuple[str, ...]
    salt: str
    fee: int
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


def apply(session: Session | None, event: Event) -> Session:
    """The state after `event`. `session` is None only for SessionCreated."""
    a = event.args
    if event.name == "SessionCreated":
        if session is not None:
            raise ProjectionError(f"{event.wallet} created twice (position {event.position})")
        return Session(
            wallet=a["wallet"],
            owner=a["owner"],
            operator=a["operator"],
            token=a["token"],
            policy=a["policy"],
            targets=tuple(a["targets"]),
            salt=a["salt"],
            fee=a["fee"],
            initial_deposit=a["deposit"],
            deposit=a["deposit"],
            withdrawn=0,
            balance=a["balanceAfter"],
            spent=0,
            budget=a["budget"],
            stop_loss=a["stopLoss"],
            take_profit=a["takeProfit"],
            expiry=a["expiry"],
            status="active",
            close_reason=None,
            closed_by=None,
            refund=0,
            execution_count=0,
            created_block=event.block_number,
            created_at=event.timestamp,
            created_position=event.position,
            last_seq=0,
            last_position=event.position,
            last_activity=event.timestamp,
            revoked_at=None,
            closed_at=None,
            seq_gaps=0,
            gap_note=None,
        )
    if session is None:
        raise ProjectionError(f"{event.name} at {event.position} for unknown wallet {event.wallet}")
    changes: dict[str, Any] = {
        "balance": a["balanceAfter"],
        "last_seq": event.seq,
        "last_position": event.position,
        "last_activity": event.timestamp,
    }
    assert event.seq is not None
    if event.seq != session.last_seq + 1:
        changes["seq_gaps"] = session.seq_gaps + 1
        if session.gap_note is None:
            changes["gap_note"] = (
                f"seq {event.seq} after {session.last_seq} at block {event.block_number}"
            )
    name = event.name
    if name == "Deposited":
        changes["deposit"] = session.deposit + a["amount"]
    elif name == "Withdrawn":
        changes["withdrawn"] = session.withdrawn + a["amount"]
    elif name == "Executed":
        changes["spent"] = a["totalSpent"]
        changes["execution_count"] = session.execution_count + 1
    elif name == "Extended":
        changes["expiry"] = a["newExpiry"]
    elif name == "Revoked":
        changes["status"] = "revoked"
        changes["revoked_at"] = event.timestamp
    elif name == "Closed":
        reason = a["reason"]
        changes["status"] = "closed"
        changes["close_reason"] = (
            CLOSE_REASONS[reason] if reason < len(CLOSE_REASONS) else f"reason_{reason}"
        )
        changes["closed_by"] = a["by"]
        changes["refund"] = a["refund"]
        changes["closed_at"] = event.timestamp
    # Synced and Recovered change only the balance, already taken from balanceAfter.
    return dataclasses.replace(session, **changes)


def replay(events: Iterable[Event]) -> Session | None:
    """A session rebuilt from its events in position order (None if there are none)."""
    session: Session | None = None
    for event in events:
        session = apply(session, event)
    return session
