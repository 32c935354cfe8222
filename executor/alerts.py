"""Alerts: what an operator must look at, as an `ALERT` line at ERROR and as a short
structured list the daemon publishes (`/status`).

An alert is raised once per occurrence, not once per step: conditions (the circuit
breaker, a node found inconsistent, a relayer short of funds) raise when they begin and
log at WARNING when they end; events (an intent failed because its closes were mined
without effect, a session taken out of batching, a close tried alone that failed) raise
once. Only the latest `KEEP` alerts are kept, in memory: what they
are about (failed intents, the spend) is in SQLite.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("warden.executor")

KEEP = 50

# The kinds, also the first word of each ALERT line.
NO_EFFECT = "no_effect"  # an intent's closes were mined without closing it
GAS_BUDGET = "gas_budget"  # the relayer-wide gas budget tripped the circuit breaker
NODE_INCONSISTENT = "node_inconsistent"  # the node forgot a transaction it reported mined
RELAYER_BALANCE = "relayer_balance"  # below min_relayer_balance
ISOLATED = "isolated"  # a session's close misbehaved in a batch: it is closed alone
CLOSE_FAILED = "close_failed"  # a close alone reverted, or needs more than its gas cap


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    message: str
    at_ms: int  # wall clock, unix milliseconds


@dataclass(frozen=True, slots=True)
class AlertChange:
    """An alert raised or resolved, for whoever relays them (notifications)."""

    kind: str
    message: str
    at_ms: int
    raised: bool  # False: the condition ended


class Alerts:
    def __init__(self, clock_ms: Callable[[], int], keep: int = KEEP) -> None:
        self.clock_ms = clock_ms
        self._recent: deque[Alert] = deque(maxlen=keep)
        # raised and resolved since the last `drain()`, bounded: a relay that stopped
        # draining loses the oldest, never memory
        self._changes: deque[AlertChange] = deque(maxlen=1000)

    def raise_(self, kind: str, message: str) -> None:
        log.error("ALERT %s: %s", kind, message)
        now = self.clock_ms()
        self._recent.append(Alert(kind, message, now))
        self._changes.append(AlertChange(kind, message, now, True))

    def resolved(self, kind: str, message: str) -> None:
        log.warning("resolved %s: %s", kind, message)
        self._changes.append(AlertChange(kind, message, self.clock_ms(), False))

    def drain(self) -> list[AlertChange]:
        """The changes since the last call, oldest first."""
        out = list(self._changes)
        self._changes.clear()
        return out

    @property
    def recent(self) -> tuple[Alert, ...]:
        """Newest last."""
        return tuple(self._recent)
