"""Where one loop step's time went, for the step's log line (and the latency benchmark,
which reads it back)."""

from __future__ import annotations

import time
from typing import Any


class StepTiming:
    """Where one loop step's time went, for the step's log line: the head check, fetch and
    commit ("index"), the rules on each commit's update and on due sessions ("rules"),
    and the executor."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def begin(self) -> None:
        self.started = self.last = time.perf_counter()
        self.phases = {"index": 0.0, "rules": 0.0, "executor": 0.0}

    def mark(self, phase: str) -> None:
        """The time since the last mark goes to `phase`."""
        now = time.perf_counter()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self.last
        self.last = now

    def __str__(self) -> str:
        total = (time.perf_counter() - self.started) * 1000
        parts = ", ".join(f"{k} {v * 1000:.1f}" for k, v in self.phases.items())
        return f"step {total:.1f} ms: {parts}"


def step_summary(report: Any) -> str:
    """The executor report's non-zero counts: "submitted 1, confirmed 2"."""
    return ", ".join(f"{k} {v}" for k, v in vars(report).items() if v)
