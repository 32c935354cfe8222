"""Indexed changes and chain time in, stored intents out: the rules side of the daemon.

`on_change` receives the indexer's change feed (after each commit): every changed
session is evaluated at the head's chain time, and the decisions (intents and latch
changes) are stored in the outbox in one transaction before the runner adopts them, so
a crash between the two decides the same again and the unique intent key absorbs it.
`tick(now)` evaluates just the sessions whose time-driven check fell due.

While the indexer backfills far behind the head nothing is evaluated: a stop-loss
crossed a year ago would fire at last year's chain time. The first change after the
backfill (and every start, and every rule reload) evaluates every open session once at
the head, which also rebuilds the time schedule the runner keeps only in memory.

After a reorg, a pending intent whose triggering position was rolled back and whose
rule no longer holds on the new chain is settled obsolete before the executor sees it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from executor import Outbox
from indexer import Change, IndexerStore, Session
from rules import Decision, Evaluation, ReloadResult, RulesHolder, RulesRunner, gc_paused
from warden.snapshots import snapshot_of

log = logging.getLogger("warden.rules")

Decimals = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
CHUNK = 2_000  # sessions per stored transaction during a full evaluation


class RulesPipeline:
    def __init__(
        self, holder: RulesHolder, outbox: Outbox, store: IndexerStore, decimals: Decimals
    ) -> None:
        self.holder = holder
        self.outbox = outbox
        self.store = store
        self.decimals = decimals
        self.runner = RulesRunner(holder.current)
        self.stale = True  # evaluate every open session at the next chance
        self.fired = 0

    @property
    def version(self) -> str:
        return self.holder.version

    async def start(self) -> None:
        """Latches from the outbox: what already fired stays fired across a restart."""
        self.runner = RulesRunner.from_rows(self.holder.current, await self.outbox.latch_rows())
        self.stale = True

    def reload(self) -> ReloadResult:
        result = self.holder.reload()
        if result.ok and result.changed:
            self.runner.evaluator = self.holder.current
            self.stale = True  # due times came from the old rules
        return result

    async def on_change(self, change: Change) -> None:
        now = change.head.timestamp
        for wallet in change.removed:
            self.runner.scheduler.cancel(wallet)
        if change.backfill:
            self.stale = True
            return
        if change.reorg is not None:
            await self._reconcile(change)
        if self.stale:
            await self.evaluate_all(now)
        else:
            await self._evaluate(change.sessions, now)

    async def tick(self, now: int) -> int:
        """Evaluate the sessions due by chain time `now`; how many were due."""
        if self.stale:
            return await self.evaluate_all(now)
        due = self.runner.due(now)
        if due:
            sessions = await self.store.sessions(due)
            await self._evaluate([sessions[w] for w in due if w in sessions], now)
        return len(due)

    async def evaluate_all(self, now: int) -> int:
        self.stale = False
        count = 0
        for status in ("active", "revoked"):
            sessions = await self.store.all_sessions(status)
            for start in range(0, len(sessions), CHUNK):
                await self._evaluate(sessions[start : start + CHUNK], now)
            count += len(sessions)
        return count

    async def _evaluate(self, sessions: Iterable[Session], now: int) -> None:
        batch = list(sessions)
        if not batch:
            return
        decimals = await self.decimals(sorted({s.token for s in batch}))
        results: list[tuple[Evaluation, Decision]] = []
        with gc_paused():
            for session in batch:
                snapshot = snapshot_of(session, decimals.get(session.token, 18))
                results.append(self.runner.decide(snapshot, now))
        changed = [d for _, d in results if d.changed]
        if changed:
            fresh = await self.outbox.record(changed, time.time_ns() // 1_000_000)
            for intent in fresh:
                self.fired += 1
                log.info(
                    "rule %s fired for %s: %s (%s) at chain time %d",
                    intent.rule, intent.wallet, intent.action, intent.reason, intent.now,
                )  # fmt: skip
        for evaluation, decision in results:
            self.runner.commit(evaluation, decision)

    async def _reconcile(self, change: Change) -> None:
        """Pending intents triggered at a rolled-back position whose rule does not hold
        on the new chain: obsolete, before anything is sent for them."""
        assert change.reorg is not None
        cut = (change.reorg.ancestor.number + 1) << 32
        by_wallet = {s.wallet: s for s in change.sessions}
        settled: list[tuple[str, str, str]] = []
        for intent in await self.outbox.intents("pending", limit=1_000_000):
            if intent.position < cut:
                continue
            session = by_wallet.get(intent.wallet) or await self.store.session(intent.wallet)
            holds = False
            if session is not None:
                decimals = await self.decimals([session.token])
                snapshot = snapshot_of(session, decimals.get(session.token, 18))
                evaluation = self.runner.evaluator.evaluate(snapshot, change.head.timestamp)
                holds = any(rule.name == intent.rule for rule in evaluation.matched)
            if not holds:
                settled.append(
                    (intent.key, "obsolete", f"trigger at block {intent.position >> 32} "
                     "was reorged out and the rule no longer holds")
                )  # fmt: skip
        if settled:
            log.warning("reorg: %d pending intents no longer hold; obsolete", len(settled))
            await self.outbox.settle(settled, time.time_ns() // 1_000_000)
