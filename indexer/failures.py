"""How long a loop has been failing: the error budget behind `/ready`.

A `FailureStreak` counts consecutive failed attempts of one loop (the indexer's rounds,
the executor's steps) and remembers when the streak began; any success resets it — the
model is Silverback's `max_exceptions`, reset on success, but measured in time, because
a failing attempt can take minutes: the client retries each call with backoff, and a
node that accepts connections but never answers makes every attempt wait its timeout.

So the streak is dated from the *start* of its first failed attempt, and an attempt in
progress counts as failing once it has run without progress for long: a SIGSTOPped node
shows up after the budget, not after the client's ten retries. Progress inside a long
attempt (a backfill committing range after range) calls `succeeded()` and starts anew.

Times are `time.monotonic()` seconds; the owner of the loop calls `begin()`,
`succeeded()`, `failed(exc)` and `end()`; readers call `failing_for(now)`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")  # endpoint URLs often embed an API key


def describe(exc: BaseException) -> str:
    """An error for a readiness reason or a metric: its kind and message, URLs
    replaced, bounded."""
    text = _URL.sub("<url>", str(exc)).strip()
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class FailureStreak:
    consecutive: int = 0  # failed attempts since the last success
    total: int = 0  # failed attempts ever
    since: float | None = None  # monotonic start of the streak's first failed attempt
    attempt_started: float | None = None  # the attempt in progress, if any
    last_error: str | None = None  # `describe()` of the latest failure

    def begin(self, now: float | None = None) -> None:
        """An attempt starts (or starts anew after progress)."""
        self.attempt_started = time.monotonic() if now is None else now

    def succeeded(self) -> None:
        """The node answered and the attempt did what it was for: the streak is over."""
        self.consecutive = 0
        self.since = None
        self.attempt_started = None
        self.last_error = None

    def failed(self, exc: BaseException, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.since is None:
            self.since = self.attempt_started if self.attempt_started is not None else now
        self.consecutive += 1
        self.total += 1
        self.attempt_started = None
        self.last_error = describe(exc)

    def end(self) -> None:
        """The attempt stopped without a verdict (cancelled, or left by its caller)."""
        self.attempt_started = None

    def failing_for(self, now: float | None = None) -> float | None:
        """Seconds this loop has been failing, or None while it is healthy: since the
        streak began, or since the attempt in progress started (an attempt that has not
        answered yet is not known to have failed, but it has not succeeded either)."""
        now = time.monotonic() if now is None else now
        start = self.since if self.since is not None else self.attempt_started
        return None if start is None else max(0.0, now - start)

    def reason(self, name: str, now: float | None = None) -> str:
        seconds = self.failing_for(now) or 0.0
        if self.consecutive == 0:
            return f"{name}: no answer from the node for {seconds:.0f} s"
        return (
            f"{name}: failing for {seconds:.0f} s, {self.consecutive} consecutive "
            f"failures, last: {self.last_error}"
        )
