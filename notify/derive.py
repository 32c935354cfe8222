"""Events derived from what the indexer committed: one session-lifecycle event per
indexed wallet event, and one retraction per event a reorg removed the cause of. Pure:
no I/O, no clock (the caller passes `at_ms`).

Stable ids: a chain-caused event is named by its kind, its position (block << 32 |
logIndex) and the first 8 hex digits of its block's hash, e.g.
`session.closed:3487513739267:0x1a2b3c4d`. The same log indexed again (a restart that
re-reads it, a delivery retried) carries the same id; a different block at the same
height (a reorg) gives a different one. A retraction is `<id>/retracted`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from contracts import CLOSE_REASONS, SWEEP_REASON
from indexer import Event, Session
from notify.catalogue import KINDS, NotifyEvent

RETRACTED = "event.retracted"


def _s(value: int) -> str:
    return str(value)  # uint256 (and uint64): a decimal string in JSON, never a number


def event_id(kind: str, position: int, block_hash: str) -> str:
    return f"{kind}:{position}:{block_hash[:10]}"


def _reason(code: int) -> str:
    return CLOSE_REASONS[code] if code < len(CLOSE_REASONS) else f"reason_{code}"


def _data(e: Event) -> tuple[str, dict[str, Any]] | None:
    """(kind, data) of a wallet event, None for events that are no lifecycle change."""
    a = e.args
    name = e.name
    if name == "SessionCreated":
        return "session.created", {
            "token": a["token"], "operator": a["operator"], "deposit": _s(a["deposit"]),
            "fee": _s(a["fee"]), "budget": _s(a["budget"]), "expiry": _s(a["expiry"]),
            "stop_loss": _s(a["stopLoss"]), "take_profit": _s(a["takeProfit"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    if name == "Deposited":
        return "session.topped_up", {
            "via": "deposit", "from": a["from"], "amount": _s(a["amount"]), "fee": _s(a["fee"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    if name == "Synced":
        amount = a["balanceAfter"] - a["previousBalance"] + a["fee"]
        return "session.topped_up", {
            "via": "transfer", "amount": _s(max(0, amount)), "fee": _s(a["fee"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    if name == "Withdrawn":
        return "session.withdrawn", {
            "to": a["to"],
            "amount": _s(a["amount"]),
            "balance": _s(a["balanceAfter"]),
        }
    if name == "Executed":
        return "session.executed", {
            "target": a["target"], "selector": a["selector"], "spent": _s(a["spent"]),
            "received": _s(a["received"]), "total_spent": _s(a["totalSpent"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    if name == "Revoked":
        return "session.revoked", {"operator": a["operator"], "balance": _s(a["balanceAfter"])}
    if name == "Extended":
        return "session.extended", {
            "previous_expiry": _s(a["previousExpiry"]), "expiry": _s(a["newExpiry"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    if name == "Closed":
        reason = _reason(a["reason"])
        kind = "session.swept" if reason == SWEEP_REASON else "session.closed"
        return kind, {
            "reason": reason, "by": a["by"], "refund": _s(a["refund"]),
            "balance": _s(a["balanceAfter"]),
        }  # fmt: skip
    return None  # Recovered (a foreign asset), factory administration, BatchCloseFailed


def session_events(
    events: Iterable[Event], sessions: Mapping[str, Session], at_ms: int
) -> list[NotifyEvent]:
    """The lifecycle events of one committed batch, in chain order. `sessions` are the
    batch's session states (owner and policy never change, so any state names them)."""
    out: list[NotifyEvent] = []
    for e in events:
        if e.wallet is None:
            continue
        derived = _data(e)
        session = sessions.get(e.wallet)
        if derived is None or session is None:
            continue
        kind, data = derived
        chain = {
            "block": e.block_number, "block_hash": e.block_hash, "tx_hash": e.tx_hash,
            "log_index": e.log_index, "timestamp": e.timestamp, "position": str(e.position),
        }  # fmt: skip
        out.append(
            NotifyEvent(
                id=event_id(kind, e.position, e.block_hash),
                kind=kind,
                severity=KINDS[kind].severity,
                at_ms=at_ms,
                data=data,
                wallet=e.wallet,
                owner=session.owner,
                policy=session.policy,
                position=e.position,
                chain=chain,
            )
        )
    return out


def retraction(original: Mapping[str, Any], at_ms: int) -> NotifyEvent:
    """The event saying `original` (a logged body) is undone: its block left the chain.
    It carries the original's session, so it passes the same channel filters."""
    session = original.get("session") or {}
    return NotifyEvent(
        id=f"{original['id']}/retracted",
        kind=RETRACTED,
        severity=KINDS[RETRACTED].severity,
        at_ms=at_ms,
        data={
            "retracts": original["id"],
            "kind": original["kind"],
            "position": (original.get("chain") or {}).get("position"),
        },
        wallet=session.get("wallet"),
        owner=session.get("owner"),
        policy=session.get("policy"),
        position=None,  # caused by no block: a later reorg never retracts a retraction
    )
