"""Progress of a long backfill on the terminal: blocks/s, events/s and an ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Prints one line at most every `interval` seconds, and a summary at the end."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        self.lo = self.hi = self.at = 0
        self.events = 0
        self.started = self.last_print = 0.0

    def begin(self, lo: int, hi: int) -> None:
        self.lo, self.hi, self.at, self.events = lo, hi, lo - 1, 0
        self.started = self.last_print = self.clock()
        self._print(f"backfill: blocks {lo:,}-{hi:,} ({hi - lo + 1:,} blocks)")

    def advance(self, block: int, events: int) -> None:
        self.at = block
        self.events += events
        now = self.clock()
        if now - self.last_print >= self.interval:
            self.last_print = now
            self._print(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        done = self.at - self.lo + 1
        total = self.hi - self.lo + 1
        blocks_s = done / elapsed
        eta = (total - done) / blocks_s if blocks_s > 0 else float("inf")
        return (
            f"backfill: block {self.at:,}/{self.hi:,} ({100 * done / total:.1f}%), "
            f"{blocks_s:,.0f} blocks/s, {self.events / elapsed:,.0f} events/s, "
            f"{self.events:,} events, ETA {_duration(eta)}"
        )

    def done(self) -> None:
        now = self.clock()
        elapsed = max(now - self.started, 1e-9)
        self._print(
            f"backfill: done to block {self.hi:,}: {self.events:,} events in {elapsed:.1f}s "
            f"({self.events / elapsed:,.0f} events/s)"
        )

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unknown"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
