"""Operator alerts as notification events: the executor's alerts (relayer balance, the
circuit breaker, an inconsistent node, a resend loop broken) and the daemon's own
conditions (indexing lag, a transaction unmined for N blocks, a refused rules reload,
leadership taken), each `raised` when it begins and `cleared` when it ends (one-off
alerts — a loop broken, leadership taken — are raised only). Logged in a transaction of
their own after the step that saw them: nothing stored caused them, so nothing is
retracted."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from executor import Job
from executor.alerts import (
    GAS_BUDGET,
    ISOLATED,
    NO_EFFECT,
    NODE_INCONSISTENT,
    RELAYER_BALANCE,
    AlertChange,
)
from notify import KINDS, EventLog, NotifyEvent

EXECUTOR_KINDS = {
    RELAYER_BALANCE: "alert.relayer_balance_low",
    GAS_BUDGET: "alert.circuit_breaker",
    NODE_INCONSISTENT: "alert.node_inconsistent",
    NO_EFFECT: "alert.resend_loop",
    ISOLATED: "alert.resend_loop",
}
# the daemon's own conditions (raised and cleared here, so restored across a restart)
CONDITIONS = ("alert.indexing_lag", "alert.tx_unmined", "alert.rules_reload_failed")
_SEQ = itertools.count(1)


def alert(
    kind: str, raised: bool, data: Mapping[str, Any], at_ms: int | None = None
) -> NotifyEvent:
    now = at_ms if at_ms is not None else time.time_ns() // 1_000_000
    state = "raised" if raised else "cleared"
    return NotifyEvent(
        id=f"{kind}:{state}:{now}:{next(_SEQ)}", kind=kind, severity=KINDS[kind].severity,
        at_ms=now, data={"state": state, **data},
    )  # fmt: skip


class AlertEvents:
    """Collects this step's alert events; `flush` logs them."""

    def __init__(self, log: EventLog, lag_blocks: int) -> None:
        self.log = log
        self.lag_blocks = lag_blocks
        self.active: set[str] = set()  # conditions raised and not cleared
        self.pending: list[NotifyEvent] = []

    async def restore(self) -> None:
        """The daemon's own conditions left raised by the previous process (killed, or
        stopped while they held): active again, so the first step that finds the
        condition over clears them instead of leaving them raised for good."""
        rows = await self.log.db.fetch(
            "SELECT kind, body FROM notify_events WHERE kind IN (?, ?, ?) ORDER BY id DESC "
            "LIMIT 1000",
            CONDITIONS,
        )
        seen: set[str] = set()
        for kind, body in rows:
            if kind in seen:
                continue
            seen.add(kind)
            if orjson.loads(body).get("data", {}).get("state") == "raised":
                self.active.add(kind)

    def executor(self, changes: list[AlertChange]) -> None:
        for c in changes:
            kind = EXECUTOR_KINDS.get(c.kind)
            if kind is not None:
                self.pending.append(alert(kind, c.raised, {"detail": c.message}, c.at_ms))

    def condition(self, kind: str, active: bool, data: Mapping[str, Any]) -> None:
        """Raise `kind` when it turns active, clear it when it stops."""
        if active and kind not in self.active:
            self.active.add(kind)
            self.pending.append(alert(kind, True, data))
        elif not active and kind in self.active:
            self.active.discard(kind)
            self.pending.append(alert(kind, False, data))

    def lag(self, head: int | None, indexed: int | None) -> None:
        if head is None or indexed is None:
            return
        lag = max(0, head - indexed)
        self.condition("alert.indexing_lag", lag > self.lag_blocks,
                       {"lag_blocks": lag, "threshold": self.lag_blocks})  # fmt: skip

    def unmined(
        self, head: int | None, live: Sequence[Job], sent_block: Mapping[str, int],
        threshold: int,
    ) -> None:  # fmt: skip
        """alert.tx_unmined while a live job's first send is `threshold` or more blocks
        behind the head (replacements do not restart its age: the nonce is what waits)."""
        if head is None:
            return
        ages = []
        for job in live:
            sent = [sent_block[a.hash] for a in job.attempts if a.hash in sent_block]
            if sent and job.attempts:
                ages.append((head - min(sent), job.latest.hash))
        stuck = [age for age in ages if age[0] >= threshold]
        oldest = max(stuck) if stuck else max(ages, default=(0, None))
        self.condition("alert.tx_unmined", bool(stuck),
                       {"tx_hash": oldest[1], "blocks": oldest[0], "stuck": len(stuck),
                        "threshold": threshold})  # fmt: skip

    def once(self, kind: str, data: Mapping[str, Any]) -> None:
        self.pending.append(alert(kind, True, data))

    async def flush(self) -> bool:
        if not self.pending:
            return False
        events, self.pending = self.pending, []
        await self.log.append_now(events)
        return True
