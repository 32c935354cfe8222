"""The chaos scenarios: real processes, real anvil, faults on purpose.

Each scenario runs in two lengths: a short one in the default test run, so the scenario
keeps working, and the full one (`@pytest.mark.chaos`, `make chaos`), left out of the
default run. Every scenario reports one `ScenarioResult`; the run ends with one summary
line per scenario (runs, failures, what was checked), also written to
`.cache/chaos/summary.txt`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = pytest.StashKey[list["ScenarioResult"]]()


@dataclass
class ScenarioResult:
    name: str
    runs: int = 0  # kills, reorgs, fault-injected rounds: the scenario's unit
    failures: list[str] = field(default_factory=list)  # what went wrong, one line each
    # faults of the node itself (an anvil error, a state contradicting its own blocks):
    # reported apart from Warden's failures, one line each
    node_faults: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was verified after the runs
    figures: dict[str, str] = field(default_factory=dict)  # e.g. {"max lag": "3 blocks"}

    def fail(self, what: str) -> None:
        self.failures.append(what)

    def node_fault(self, what: str) -> None:
        self.node_faults.append(what)

    def line(self) -> str:
        figures = "".join(f", {k} {v}" for k, v in self.figures.items())
        verdict = "ok" if not self.failures else f"{len(self.failures)} failures"
        return (
            f"{self.name}: {self.runs} runs, {verdict}, {len(self.node_faults)} node faults"
            f"{figures}; "
            f"checked: {'; '.join(self.checked) or 'nothing'}"
        )


@pytest.fixture
def chaos_report(request: pytest.FixtureRequest) -> Iterator[list[ScenarioResult]]:
    """Append the scenario's result; it is printed in the run's summary."""
    mine: list[ScenarioResult] = []
    yield mine
    request.config.stash.setdefault(RESULTS, []).extend(mine)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    results = terminalreporter.config.stash.get(RESULTS, [])
    if not results:
        return
    terminalreporter.section("chaos scenarios")
    lines = [r.line() for r in results]
    for line in lines:
        terminalreporter.write_line(line)
    out = ROOT / ".cache" / "chaos" / "summary.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    for r in results:
        for failure in r.failures[:20]:
            terminalreporter.write_line(f"  {r.name}: {failure}")
        for fault in r.node_faults[:20]:
            terminalreporter.write_line(f"  {r.name}: node fault: {fault}")
