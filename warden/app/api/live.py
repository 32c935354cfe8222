"""What the API reports that is not in SQLite: the daemon's live view of the chain, the
relayer and its own counters. One mutable `LiveState` is shared between the daemon (the
only writer) and the API (reads it per request); both run on one event loop, so plain
attribute updates need no lock."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from chain import RpcStats

# Seconds from a rule firing (chain time of the evaluation) to its transaction being sent.
DEFAULT_LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass
class LatencyHistogram:
    """A cumulative-ready histogram in the Prometheus shape: counts per upper bound, the
    sum and the count. `counts[i]` holds observations in (buckets[i-1], buckets[i]];
    the last slot holds those above the largest bound (+Inf)."""

    buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if list(self.buckets) != sorted(set(self.buckets)):
            raise ValueError("histogram buckets must be strictly increasing")
        if not self.counts:
            self.counts = [0] * (len(self.buckets) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le label, cumulative count) pairs, ending with +Inf."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*self.buckets, None), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound is None else _number(bound), running))
        return out


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


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
    rpc: RpcStats = field(default_factory=RpcStats)
    reorgs: int = 0
    trigger_to_tx: LatencyHistogram = field(default_factory=LatencyHistogram)
