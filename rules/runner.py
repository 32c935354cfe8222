"""Evaluator, latches and time scheduler together: what the daemon drives on each change
and each new block, and what a backtest replays over indexed history."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from rules.evaluator import Evaluation, Evaluator
from rules.latch import Decision, decide
from rules.schedule import TimeScheduler
from rules.snapshot import Snapshot


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run a burst of evaluations without the cyclic garbage collector.

    A burst allocates a few small objects per session (evaluation, decision, intent), and
    every ~700 allocations the collector runs; every tenth of those walks the young
    generations and, a few times per 100,000 sessions, everything the daemon holds (every
    snapshot, latch and heap entry): that alone took 1 to 3 s of a 100,000-session expiry
    burst. Nothing a burst allocates forms reference cycles, so it is all freed by
    reference counting anyway. The pause is bounded by the block: the collector is
    re-enabled when it exits (if it was enabled on entry; nesting is fine), and the next
    allocations trigger a normal collection of whatever cycles anything else made.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class RulesRunner:
    """Latches live here as {wallet: frozenset(rule names)} (only latched wallets).

    Two-phase on purpose: `decide` changes nothing, the caller stores the intents and the
    latch changes in one transaction, then calls `commit`. If the transaction fails the
    runner still holds the old latches, so the next evaluation decides the same again.
    """

    def __init__(
        self, evaluator: Evaluator, latches: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self.evaluator = evaluator
        self.latches: dict[str, frozenset[str]] = {
            wallet: frozenset(names) for wallet, names in (latches or {}).items() if names
        }
        self.scheduler = TimeScheduler()

    @classmethod
    def from_rows(cls, evaluator: Evaluator, rows: Iterable[tuple[str, str]]) -> RulesRunner:
        """Restart from persisted (wallet, rule) latch rows."""
        latches: dict[str, set[str]] = {}
        for wallet, rule in rows:
            latches.setdefault(wallet, set()).add(rule)
        return cls(evaluator, latches)

    def latch_rows(self) -> list[tuple[str, str]]:
        return sorted((w, r) for w, names in self.latches.items() for r in names)

    def latched(self, wallet: str) -> frozenset[str]:
        return self.latches.get(wallet, frozenset())

    def decide(self, snapshot: Snapshot, now: int) -> tuple[Evaluation, Decision]:
        evaluation = self.evaluator.evaluate(snapshot, now)
        return evaluation, decide(evaluation, self.latched(snapshot.wallet))

    def commit(self, evaluation: Evaluation, decision: Decision) -> None:
        """Adopt a decision once it is persisted; schedule the next time-driven check."""
        wallet = evaluation.wallet
        if decision.latch_set or decision.latch_clear:
            latched = decision.apply(self.latched(wallet))
            if latched:
                self.latches[wallet] = latched
            else:
                self.latches.pop(wallet, None)
        self.scheduler.schedule(wallet, evaluation.next_check_at)

    def release(self, decision: Decision) -> None:
        """Adopt a persisted latch-only decision (a reorg undid the crossings that set
        them): no evaluation, so the time schedule is left as it is."""
        latched = decision.apply(self.latched(decision.wallet))
        if latched:
            self.latches[decision.wallet] = latched
        else:
            self.latches.pop(decision.wallet, None)

    def step(self, snapshot: Snapshot, now: int) -> Decision:
        evaluation, decision = self.decide(snapshot, now)
        self.commit(evaluation, decision)
        return decision

    def due(self, now: int) -> list[str]:
        """Wallets whose time-driven check is due at chain time `now`."""
        return self.scheduler.due(now)

    def advance(
        self, now: int, lookup: Callable[[str], Snapshot | None]
    ) -> list[tuple[Evaluation, Decision]]:
        """Evaluate every due wallet at `now` with its latest snapshot (decide only: the
        caller commits each one after storing it). Runs under gc_paused(); a caller that
        stores and commits a large burst can hold gc_paused() around all of it."""
        out = []
        evaluate = self.evaluator.evaluate
        latches = self.latches
        none: frozenset[str] = frozenset()
        with gc_paused():
            for wallet in self.scheduler.due(now):
                snapshot = lookup(wallet)
                if snapshot is not None:
                    evaluation = evaluate(snapshot, now)
                    out.append((evaluation, decide(evaluation, latches.get(wallet, none))))
        return out


def replay(
    evaluator: Evaluator,
    changes: Iterable[tuple[Snapshot, int]],
    latches: Mapping[str, Iterable[str]] | None = None,
    until: int | None = None,
) -> Iterator[tuple[Evaluation, Decision]]:
    """Run rules over history: `changes` are (snapshot after an event, chain time of its
    block) in chain order. Before each change, sessions whose time checks fell due by
    then are evaluated at their due time with their latest snapshot, as the daemon's
    clock sweep would have; after the last change the clock runs on to `until` (e.g. the
    indexed head's time). Yields every evaluation with its decision, committed."""
    runner = RulesRunner(evaluator, latches)
    latest: dict[str, Snapshot] = {}

    def due_until(now: int) -> Iterator[tuple[Evaluation, Decision]]:
        while (at := runner.scheduler.next_due()) is not None and at <= now:
            for evaluation, decision in runner.advance(at, latest.get):
                runner.commit(evaluation, decision)
                yield evaluation, decision

    for snapshot, now in changes:
        yield from due_until(now)
        latest[snapshot.wallet] = snapshot
        evaluation, decision = runner.decide(snapshot, now)
        runner.commit(evaluation, decision)
        yield evaluation, decision
    if until is not None:
        yield from due_until(until)
