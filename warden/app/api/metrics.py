"""/metrics in the Prometheus text exposition format (version 0.0.4).

Figures come from two places: SQLite (events indexed, ignored logs, sessions and
intents by state) and the daemon's `LiveState` (chain position, relayer, RPC errors,
reorgs, trigger-to-transaction latency). Wei amounts are written as exact integers;
Prometheus reads them as floats, which is its business, not ours."""

from __future__ import annotations

from collections.abc import Iterable

from warden.app.api.live import LiveState
from warden.app.api.queries import ApiReader

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Sample = tuple[dict[str, str], int | float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str, samples: Iterable[Sample]) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {value}")

    def single(self, name: str, kind: str, help_: str, value: int | float | None) -> None:
        if value is not None:  # unknown yet: no sample rather than a made-up zero
            self.family(name, kind, help_, [({}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


async def render_metrics(reader: ApiReader, live: LiveState) -> str:
    out = _Exposition()
    indexed = live.indexed_block if live.indexed_block is not None else await reader.checkpoint()
    lag = None if live.head is None or indexed is None else max(0, live.head - indexed)
    out.single("warden_chain_head_block", "gauge", "Latest chain block seen.", live.head)
    out.single("warden_indexed_block", "gauge", "Last block committed by the indexer.", indexed)
    out.single("warden_safe_block", "gauge", "Finalized (safe) block.", live.safe_block)
    out.single("warden_lag_blocks", "gauge", "Chain head minus indexed block.", lag)
    out.single("warden_caught_up", "gauge", "1 when the indexer has caught up.",
               int(live.caught_up))  # fmt: skip
    counts = await reader.table_counts()
    out.single("warden_events_indexed", "gauge", "Session and factory events stored.",
               counts["events"])  # fmt: skip
    spoofed = "Look-alike session logs from other addresses than the factory and its wallets."
    out.single("warden_spoofed_logs", "gauge", spoofed, counts["spoofed_logs"])
    malformed = "Logs of known signatures that failed to decode."
    out.single("warden_malformed_logs", "gauge", malformed, counts["malformed_logs"])
    out.single("warden_reorgs_total", "counter", "Chain reorganisations rolled back.",
               live.reorgs)  # fmt: skip
    out.single("warden_rpc_requests_total", "counter", "JSON-RPC HTTP requests sent.",
               live.rpc.requests)  # fmt: skip
    out.single("warden_rpc_failovers_total", "counter", "Switches to another RPC endpoint.",
               live.rpc.failovers)  # fmt: skip
    out.family("warden_rpc_errors_total", "counter", "JSON-RPC failures by kind.",
               [({"kind": k}, n) for k, n in sorted(live.rpc.errors.items())])  # fmt: skip
    sessions = await reader.session_counts()
    out.family("warden_sessions", "gauge", "Indexed sessions by status.",
               [({"status": s}, n) for s, n in sessions.items()])  # fmt: skip
    intents = await reader.intent_counts()
    out.family("warden_intents", "gauge", "Intents by state.",
               [({"state": s}, n) for s, n in intents.items()])  # fmt: skip
    h = live.trigger_to_tx
    name = "warden_trigger_to_tx_seconds"
    out.lines += [
        f"# HELP {name} Time from a rule firing to its transaction being sent.",
        f"# TYPE {name} histogram",
        *(f'{name}_bucket{{le="{le}"}} {n}' for le, n in h.cumulative()),
        f"{name}_sum {h.sum}",
        f"{name}_count {h.count}",
    ]
    out.single("warden_relayer_balance_wei", "gauge", "Relayer account balance in wei.",
               live.relayer_balance)  # fmt: skip
    if live.rules_version is not None:
        out.family("warden_rules_info", "gauge", "The loaded rules version.",
                   [({"version": live.rules_version}, 1)])  # fmt: skip
    return out.text()
