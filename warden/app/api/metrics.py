"""/metrics in the Prometheus text exposition format (0.0.4), through `prometheus_client`.

Each app has a registry of its own (several apps may live in one process, as in the
tests): the process and platform collectors, and a collector of Warden's figures, read at
scrape time from two places: SQLite (events indexed, ignored logs, sessions and intents
by state: `Figures`, read in one snapshot just before rendering) and the daemon's
`LiveState` (chain position, relayer, RPC counters, reorgs, trigger-to-transaction
latency). A figure not known yet is left out rather than reported as zero.

Prometheus samples are float64. The relayer balance is therefore exposed in ether
(`warden_relayer_balance_ether`, correctly rounded from the exact wei): a float of
wei would be no more exact (1e+30 either way past 2**53 wei) and reads worse in
dashboards and alert rules. The exact wei amount is in /status. Nothing reads a metric
back: floats never reach any logic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from warden import __version__
from warden.app.api.live import LiveState
from warden.app.api.reader import Figures

# What generate_latest writes (prometheus_client's CONTENT_TYPE_LATEST may name a newer
# format than the one it renders by default).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WEI_PER_ETHER = 10**18


def _gauge(name: str, help_: str, value: float | None) -> Iterator[Metric]:
    if value is not None:  # unknown yet: no sample rather than a made-up zero
        yield GaugeMetricFamily(name, help_, value=value)


def _counter(name: str, help_: str, value: float) -> Metric:
    return CounterMetricFamily(name, help_, value=value)


class _WardenCollector(Collector):
    def __init__(self, live: LiveState) -> None:
        self.live = live
        self.figures: Figures | None = None  # set for the duration of one scrape

    def collect(self) -> Iterator[Metric]:
        live, figures = self.live, self.figures
        if figures is None:  # only a scrape sets them; a registry may probe without
            return
        build = GaugeMetricFamily(
            "warden_build_info", "The running Warden's version.", labels=["version"]
        )
        build.add_metric([__version__], 1)
        yield build
        yield from self._live_chain(figures)
        logs = figures.logs
        yield GaugeMetricFamily(
            "warden_events_indexed", "Session and factory events stored.", value=logs.events
        )
        yield GaugeMetricFamily(
            "warden_spoofed_logs",
            "Look-alike session logs from other addresses than the factory and its wallets.",
            value=logs.spoofed,
        )
        yield GaugeMetricFamily(
            "warden_malformed_logs", "Logs of known signatures that failed to decode.",
            value=logs.malformed,
        )  # fmt: skip
        yield _counter("warden_reorgs_total", "Chain reorganisations rolled back.", live.reorgs)
        yield _counter(
            "warden_log_bloom_mismatches_total",
            "Answers whose logs contradicted the block header's logsBloom (not committed).",
            live.bloom_mismatches,
        )
        yield _counter(
            "warden_log_bloom_false_positives_total",
            "Blocks whose logsBloom promised logs of ours that their receipts proved absent "
            "(one extra eth_getBlockReceipts each).",
            live.bloom_false_positives,
        )
        yield _counter(
            "warden_rpc_requests_total", "JSON-RPC HTTP requests sent.", live.rpc.requests
        )
        yield _counter(
            "warden_rpc_failovers_total", "Switches to another RPC endpoint.", live.rpc.failovers
        )
        if live.new_heads is not None:
            yield _counter(
                "warden_new_heads_announced_total",
                "Blocks the node announced over its websocket that woke the loop.",
                live.new_heads.announced,
            )
            yield _counter(
                "warden_new_heads_ignored_total",
                "Websocket messages that were no announcement, or over the per-second budget.",
                live.new_heads.ignored + live.new_heads.dropped,
            )
            yield from _gauge(
                "warden_new_heads_subscribed",
                "1 while the node's websocket newHeads subscription is live (else: polling).",
                1 if live.new_heads.state == "subscribed" else 0,
            )
        errors = CounterMetricFamily(
            "warden_rpc_errors_total", "JSON-RPC failures by kind.", labels=["kind"]
        )
        for kind, n in sorted(live.rpc.errors.items()):
            errors.add_metric([kind], n)
        yield errors
        sessions = GaugeMetricFamily(
            "warden_sessions", "Indexed sessions by status.", labels=["status"]
        )
        for status, n in figures.sessions.items():
            sessions.add_metric([status], n)
        yield sessions
        intents = GaugeMetricFamily("warden_intents", "Intents by state.", labels=["state"])
        for state, n in figures.intents.items():
            intents.add_metric([state], n)
        yield intents
        yield from self._latency()
        yield from self._failures()
        yield from self._leadership()
        balance = live.relayer_balance
        yield from _gauge(
            "warden_relayer_balance_ether",
            "Relayer account balance in ether (float; the exact wei is in /status).",
            None if balance is None else balance / WEI_PER_ETHER,
        )
        yield from self._protection()
        yield from self._notify(figures)
        yield from self._audit()
        yield _counter(
            "warden_rules_reload_failures_total",
            "Rule reloads refused (bad files); the previous rules kept running.",
            live.rules_reload_failures,
        )
        if live.rules_version is not None:
            rules = GaugeMetricFamily(
                "warden_rules_info", "The loaded rules version.", labels=["version"]
            )
            rules.add_metric([live.rules_version], 1)
            yield rules

    def _notify(self, figures: Figures) -> Iterator[Metric]:
        """Deliveries by channel and state (the database: every replica sees them), the
        delivery lag, and this leader's attempt counters."""
        rows = GaugeMetricFamily(
            "warden_notifications", "Notification deliveries by channel and state.",
            labels=["channel", "state"],
        )  # fmt: skip
        for (channel, state), n in sorted(figures.deliveries.items()):
            rows.add_metric([channel, state], n)
        yield rows
        lag = GaugeMetricFamily(
            "warden_notify_delivery_lag_seconds",
            "Age of the oldest undelivered notification, by channel (0: none waiting).",
            labels=["channel"],
        )
        now_ms = time.time() * 1000
        channels = {c for c, _ in figures.deliveries}
        for channel in sorted(channels):
            oldest = figures.oldest_pending_ms.get(channel)
            lag.add_metric([channel], 0.0 if oldest is None else max(0.0, now_ms - oldest) / 1000)
        yield lag
        stats = self.live.notify
        if stats is None:
            return
        families = {
            "delivered": CounterMetricFamily(
                "warden_notify_delivered", "Notifications delivered by this process.",
                labels=["channel"],
            ),
            "failed": CounterMetricFamily(
                "warden_notify_failed_attempts", "Failed delivery attempts (retried or not).",
                labels=["channel"],
            ),
            "dead": CounterMetricFamily(
                "warden_notify_dead_lettered", "Deliveries dead-lettered after the last "
                "attempt.", labels=["channel"],
            ),
        }  # fmt: skip
        for name, c in sorted(stats.channels.items()):
            families["delivered"].add_metric([name], c.delivered)
            families["failed"].add_metric([name], c.failed)
            families["dead"].add_metric([name], c.dead)
        yield from families.values()

    def _audit(self) -> Iterator[Metric]:
        """The leader's balance audit (absent on a standby and before the first term)."""
        audit = self.live.audit
        if audit is None:
            return
        yield _counter("warden_balance_audit_passes", "Balance audit passes finished.",
                       audit.passes)  # fmt: skip
        yield _counter("warden_balance_audit_given_up", "Balance audit passes given up "
                       "(the node failed; tried again after audit.interval).",
                       audit.given_up)  # fmt: skip
        yield from _gauge("warden_balance_drifting_sessions", "Sessions whose "
                          "alert.balance_drift is raised now.", audit.drifting)  # fmt: skip
        yield from _gauge("warden_balance_audit_block", "The indexed block the last "
                          "finished balance audit pass asked at.", audit.last_block)  # fmt: skip

    def _live_chain(self, figures: Figures) -> Iterator[Metric]:
        live = self.live
        indexed = live.indexed_block if live.indexed_block is not None else figures.checkpoint
        lag = None if live.head is None or indexed is None else max(0, live.head - indexed)
        yield from _gauge("warden_chain_head_block", "Latest chain block seen.", live.head)
        yield from _gauge("warden_indexed_block", "Last block committed by the indexer.", indexed)
        yield from _gauge("warden_safe_block", "Finalized (safe) block.", live.safe_block)
        yield from _gauge("warden_lag_blocks", "Chain head minus indexed block.", lag)
        yield from _gauge(
            "warden_caught_up", "1 when the indexer has caught up.", int(live.caught_up)
        )

    def _protection(self) -> Iterator[Metric]:
        p = self.live.protection
        if p is None:  # dry-run, or before the executor's first step
            return
        yield GaugeMetricFamily(
            "warden_circuit_breaker_open",
            "1 while the gas budget's circuit breaker stops sending.", value=int(p.breaker_open),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "warden_sending_paused",
            "1 while sending is paused because the node forgot a mined transaction.",
            value=int(p.node_fault is not None),
        )
        yield _counter(
            "warden_relayer_gas_spent_total", "Gas used by the relayer's mined transactions.",
            p.gas_spent_total,
        )  # fmt: skip

    def _failures(self) -> Iterator[Metric]:
        now = time.monotonic()
        streaks = sorted(self.live.failures.items())
        consecutive = GaugeMetricFamily(
            "warden_rpc_consecutive_failures",
            "Failed attempts in a row of each loop (indexer, executor, rules); 0 after a "
            "success.", labels=["loop"],
        )  # fmt: skip
        failing = GaugeMetricFamily(
            "warden_rpc_failing_seconds",
            "Seconds each loop has been failing or waiting on the node; 0 when healthy.",
            labels=["loop"],
        )
        total = CounterMetricFamily(
            "warden_rpc_loop_failures", "Failed attempts of each loop.", labels=["loop"]
        )
        for name, streak in streaks:
            consecutive.add_metric([name], streak.consecutive)
            failing.add_metric([name], streak.failing_for(now) or 0.0)
            total.add_metric([name], streak.total)
        yield consecutive
        yield failing
        yield total
        yield GaugeMetricFamily(
            "warden_node_down",
            "1 while a loop has been failing for longer than chain.max_failure_seconds "
            "(/ready answers 503).", value=int(self.live.over_budget(now) is not None),
        )  # fmt: skip

    def _leadership(self) -> Iterator[Metric]:
        lead = self.live.leadership
        if lead is None:
            return
        yield GaugeMetricFamily(
            "warden_leader", "1 while this replica leads (indexes, decides, sends).",
            value=int(lead.role == "leader"),
        )  # fmt: skip
        yield from _gauge("warden_lease_epoch", "The fencing epoch this replica leads at.",
                          lead.epoch)  # fmt: skip
        yield from _gauge(
            "warden_lease_trust_seconds",
            "How long this leader may still send without another renewal (0: it may not).",
            None if lead.solo or lead.role != "leader" else lead.trust_left(),
        )
        yield _counter("warden_takeovers_total", "Times this replica took the lease.",
                       lead.takeovers)  # fmt: skip

    def _latency(self) -> Iterator[Metric]:
        # The histogram without its `_created` sample: a creation time says nothing here
        # (the daemon's start is process_start_time_seconds).
        for metric in self.live.trigger_to_tx.collect():
            family = HistogramMetricFamily(metric.name, metric.documentation)
            family.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield family


class Metrics:
    """One app's registry."""

    def __init__(self, live: LiveState) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._warden = _WardenCollector(live)
        self.registry.register(self._warden)

    def render(self, figures: Figures) -> str:
        """The exposition with these database figures. Synchronous from setting them to
        rendering, so concurrent scrapes on the event loop cannot mix their figures."""
        self._warden.figures = figures
        try:
            return generate_latest(self.registry).decode()
        finally:
            self._warden.figures = None
