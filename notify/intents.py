"""Events of rule firings and intent outcomes (pure), from the intent transitions the
executor's database records (`executor.IntentChanges`; notify does not import the
executor: any object with these attributes will do).

    recorded (or an obsolete intent pending again)  → intent.fired
    → submitted                                      → intent.submitted (its tx hash)
    → confirmed                                      → intent.confirmed
    → failed                                         → intent.failed (the reason)
    → obsolete                                       → intent.obsolete (why)

`mined`, a requeue to pending (a dropped or reorged transaction) and `dry_run` make no
event. The id is `<kind>:<intent key>:<transition number>`: one per transition, the same
on every delivery. A firing carries the trigger's position and a confirmation the
position of the event that confirmed it, so a reorg that removes either retracts the
event (see docs/notify.md).
"""

from __future__ import annotations

from typing import Any, Protocol

from notify.catalogue import KINDS, NotifyEvent


class IntentMove(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def key(self) -> str: ...
    @property
    def old_state(self) -> str | None: ...
    @property
    def new_state(self) -> str: ...
    @property
    def at_ms(self) -> int: ...
    @property
    def wallet(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def position(self) -> int: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def confirmed_position(self) -> int | None: ...
    @property
    def tx_hash(self) -> str | None: ...


def _kind(move: IntentMove) -> str | None:
    new, old = move.new_state, move.old_state
    if new == "pending":
        return "intent.fired" if old in (None, "obsolete") else None
    return {
        "submitted": "intent.submitted", "confirmed": "intent.confirmed",
        "failed": "intent.failed", "obsolete": "intent.obsolete",
    }.get(new)  # fmt: skip


def intent_event(
    move: IntentMove, owner: str | None, policy: str | None, at_ms: int
) -> NotifyEvent | None:
    kind = _kind(move)
    if kind is None:
        return None
    data: dict[str, Any] = {"intent": move.key, "rule": move.rule}
    position: int | None = None
    if kind == "intent.fired":
        data.update(action=move.action, reason=move.reason)
        position = move.position
    elif kind == "intent.submitted":
        data["tx_hash"] = move.tx_hash
    elif kind == "intent.confirmed":
        data["tx_hash"] = move.tx_hash
        position = move.confirmed_position
    else:
        data["reason"] = move.detail or move.new_state
    return NotifyEvent(
        id=f"{kind}:{move.key}:{move.id}", kind=kind, severity=KINDS[kind].severity,
        at_ms=at_ms, data=data, wallet=move.wallet, owner=owner, policy=policy,
        position=position,
    )  # fmt: skip


def rule_event(
    key: str, wallet: str, owner: str, policy: str, rule: str, message: str,
    position: int, at_ms: int,
) -> NotifyEvent:  # fmt: skip
    """An `action: notify` rule fired (`key`: its crossing, as an intent's), with its
    message already filled. Its position is the snapshot's: a reorg that removes the
    block that made it fire retracts it."""
    return NotifyEvent(
        id=f"rule.notify:{key}", kind="rule.notify", severity=KINDS["rule.notify"].severity,
        at_ms=at_ms, data={"rule": rule, "message": message}, wallet=wallet, owner=owner,
        policy=policy, position=position,
    )  # fmt: skip
