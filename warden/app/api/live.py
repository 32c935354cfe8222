"""What the API reports that is not in SQLite: the daemon's live view of the chain, the
relayer and its own counters. One mutable `LiveState` is shared between the daemon (the
only writer) and the API (reads it per request); both run on one event loop, so plain
attribute updates need no lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import Histogram, Metric

from chain import HeadStats, RpcStats
from executor.gate import Protection
from indexer.failures import FailureStreak
from notify import DeliveryStats
from warden.app.leadership import Leadership

# Seconds from a rule firing (chain time of the evaluation) to its transaction being sent.
DEFAULT_LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class LatencyHistogram:
    """`warden_trigger_to_tx_seconds`: a Prometheus histogram owned by the daemon's
    `LiveState` rather than by a registry, so that every app serving that state (tests
    make several in one process) exposes the same observations."""

    name = "warden_trigger_to_tx_seconds"

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)):
            raise ValueError("histogram buckets must be strictly increasing")
        self._histogram = Histogram(
            self.name,
            "Time from a rule firing to its transaction being sent.",
            buckets=buckets,
            registry=None,
        )

    def observe(self, seconds: float) -> None:
        self._histogram.observe(seconds)

    def collect(self) -> Iterable[Metric]:
        return self._histogram.collect()


class Wakeup:
    """The daemon calls `notify()` after it commits notification rows: every /stream
    waiting in this process looks at the log at once instead of at its next poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass
class AuditFigures:
    """The leader's balance audit (`warden.app.audit`), for /metrics."""

    passes: int = 0  # full passes finished
    given_up: int = 0  # passes given up (the node failed)
    drifting: int = 0  # wallets whose alert.balance_drift is raised now
    last_block: int | None = None  # the indexed block the last finished pass asked at


@dataclass
class LiveState:
    """The daemon's live figures. `None` means not known yet (or, for the relayer, not
    configured: a dry run has no key)."""

    head: int | None = None  # latest chain block seen
    indexed_block: int | None = None  # last block committed by the indexer
    safe_block: int | None = None  # finalized block (head - confirmations on a devnet)
    caught_up: bool = False  # drives /ready
    relayer_address: str | None = None
    relayer_balance: int | None = None  # wei, exact
    rules_version: str | None = None
    rules_reload_failures: int = 0  # SIGHUP reloads refused (the old rules kept running)
    rpc: RpcStats = field(default_factory=RpcStats)
    new_heads: HeadStats | None = None  # the websocket announcing heads (None: polling only)
    reorgs: int = 0
    bloom_mismatches: int = 0  # blocks whose logs contradicted their header's logsBloom
    bloom_false_positives: int = 0  # blocks whose bloom over-promised (receipts proved it)
    trigger_to_tx: LatencyHistogram = field(default_factory=LatencyHistogram)
    protection: Protection | None = None  # circuit breaker, paused sending, alerts
    # each loop's failure streak by name ("indexer", "executor", "rules"): the error budget
    failures: dict[str, FailureStreak] = field(default_factory=dict)
    max_failure_seconds: float = 60.0  # chain.max_failure_seconds
    leadership: Leadership | None = None  # this replica's role (leader / standby)
    # decimals() of each token the rules read (address → decimals), for clients' formatting
    token_decimals: dict[str, int] = field(default_factory=dict)
    events: Wakeup = field(default_factory=Wakeup)  # new notification events committed
    notify: DeliveryStats | None = None  # the leader's delivery counters, by channel
    audit: AuditFigures | None = None  # the leader's balance audit (None: a standby)

    def over_budget(self, now: float | None = None) -> str | None:
        """Why the node counts as down (a loop failing for longer than
        `max_failure_seconds`), or None. Drives /ready with `caught_up`."""
        for name, streak in self.failures.items():
            seconds = streak.failing_for(now)
            if seconds is not None and seconds > self.max_failure_seconds:
                return (
                    f"{streak.reason(name, now)} (chain.max_failure_seconds is "
                    f"{self.max_failure_seconds:g})"
                )
        return None
