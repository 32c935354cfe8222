"""Indexed changes and chain time in, stored intents out: the rules side of the daemon.

`handle` receives what the indexer yields after each commit: every session a `Block` or
`Reorg` changed is evaluated at the head's chain time, and the decisions (intents and latch
changes) are stored in the outbox in one transaction before the runner adopts them, so
a crash between the two decides the same again and the unique intent key absorbs it.
`tick(now)` evaluates just the sessions whose time-driven check fell due.

While the indexer backfills far behind the head nothing is evaluated: a stop-loss
crossed a year ago would fire at last year's chain time. The first change after the
backfill (and every start, and every rule reload) evaluates every open session once at
the head, which also rebuilds the time schedule the runner keeps only in memory.

After a reorg, what it undid is made right before the executor's next step (see
`_reconcile`): jobs mined in replaced blocks are tracked again, open intents whose
trigger was orphaned and whose rule no longer holds are obsolete (their jobs cancelled),
and intents made obsolete by a close the reorg removed are pending again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace

from contracts import OPEN_STATUSES
from database import Queries
from executor import ORPHANED, IntentRow, Outbox
from indexer import Block, Finalized, IndexerStore, Reorg, Session, Update
from notify import EventLog, NotifyEvent
from notify.intents import rule_event
from rules import Decision, Evaluation, ReloadResult, RulesHolder, RulesRunner, Snapshot, gc_paused
from rules.template import FIELDS, render
from warden.app.snapshots import snapshot_of

log = logging.getLogger("warden.rules")

Decimals = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
CHUNK = 2_000  # sessions per stored transaction during a full evaluation
LOGGED_FIRINGS = 100  # firings logged one by one per evaluation; beyond, counts per rule


class RulesPipeline:
    def __init__(
        self,
        holder: RulesHolder,
        outbox: Outbox,
        store: IndexerStore,
        decimals: Decimals,
        *,
        events: EventLog | None = None,
    ) -> None:
        self.holder = holder
        self.events = events  # where `action: notify` firings are logged
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

    async def handle(self, update: Update) -> None:
        """Act on one commit of the indexer, before its next commit."""
        if isinstance(update, Finalized):
            return  # nothing here depends on finality
        if isinstance(update, Block) and update.backfill:
            self.stale = True
            return
        if isinstance(update, Reorg):
            for wallet in update.removed:
                self.runner.scheduler.cancel(wallet)
            await self._reconcile(update)
        now = update.head.timestamp
        if self.stale:
            await self.evaluate_all(now)
        else:
            await self._evaluate(update.sessions, now)

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
        started = time.monotonic()
        count = 0
        for status in OPEN_STATUSES:
            async for page in self.store.sessions_pages(status, CHUNK):
                await self._evaluate(page, now)
                count += len(page)
        # Operators (and the benchmarks) learn here that every open session is scheduled.
        log.info(
            "rules: evaluated all %d open sessions at chain time %d in %.1f s",
            count, now, time.monotonic() - started,
        )  # fmt: skip
        return count

    async def _evaluate(self, sessions: Iterable[Session], now: int) -> None:
        batch = list(sessions)
        if not batch:
            return
        decimals = await self.decimals(sorted({s.token for s in batch}))
        results: list[tuple[Evaluation, Decision]] = []
        snapshots: dict[str, Snapshot] = {}
        with gc_paused():
            for session in batch:
                snapshot = snapshot_of(session, decimals.get(session.token, 18))
                snapshots[session.wallet] = snapshot
                results.append(self.runner.decide(snapshot, now))
        changed = [d for _, d in results if d.changed]
        if changed:
            now_ms = time.time_ns() // 1_000_000
            changed, notes = self._notes(changed, snapshots, now_ms)
            also = None
            if notes and self.events is not None:
                log_, events = self.events, notes

                async def also(tx: Queries) -> None:  # in the latches' transaction
                    await log_.append(tx, events)

            fresh = await self.outbox.record(changed, now_ms, also=also)
            self.fired += len(fresh) + len(notes)
            for intent in fresh[:LOGGED_FIRINGS]:
                log.info(
                    "rule %s fired for %s: %s (%s) at chain time %d",
                    intent.rule, intent.wallet, intent.action, intent.reason, intent.now,
                )  # fmt: skip
            if len(fresh) > LOGGED_FIRINGS:
                # A burst (an expiry storm) would write a line per session: say how many
                # fired of each rule instead; every intent is in the outbox (/intents).
                rest = Counter(f"{i.rule} ({i.action}, {i.reason})" for i in fresh[LOGGED_FIRINGS:])
                log.info(
                    "... and %d more firings at chain time %d: %s",
                    len(fresh) - LOGGED_FIRINGS, now,
                    ", ".join(f"{rule} x{n}" for rule, n in sorted(rest.items())),
                )  # fmt: skip
        for evaluation, decision in results:
            self.runner.commit(evaluation, decision)

    def _notes(
        self, decisions: list[Decision], snapshots: dict[str, Snapshot], now_ms: int
    ) -> tuple[list[Decision], list[NotifyEvent]]:
        """`action: notify` firings taken out of the decisions (they are no intents: the
        executor never sees them; their latches stay in the decisions) as `rule.notify`
        events with their messages filled from the snapshot that fired them."""
        rules = self.holder.current.ruleset
        notes: list[NotifyEvent] = []
        kept: list[Decision] = []
        for d in decisions:
            if not any(i.action == "notify" for i in d.intents):
                kept.append(d)
                continue
            for i in d.intents:
                if i.action != "notify":
                    continue
                snap = snapshots[i.wallet]
                values = {f: getattr(snap, f) for f in FIELDS if hasattr(snap, f)}
                values.update(rule=i.rule, now=i.now)
                message = render(rules.by_name(i.rule).message, values)
                notes.append(rule_event(i.key, i.wallet, snap.owner, snap.policy, i.rule,
                                        message, i.position, now_ms))  # fmt: skip
            kept.append(replace(d, intents=tuple(i for i in d.intents if i.action != "notify")))
        return kept, notes

    async def _reconcile(self, reorg: Reorg) -> None:
        """Make right what a reorg undid, before the executor's next step:

        - relayer transactions mined above the common ancestor are gone with their
          blocks: their jobs are live again and what they settled is open again, so the
          executor finds them on the new branch, sends them again, or cancels them;
        - an open intent (pending, or submitted and so not mined on this branch) whose
          triggering position was rolled back and whose rule no longer holds is obsolete:
          nothing more is sent for it, and a job left with nothing to do is cancelled at
          its nonce (a batch is replaced without it); its rule is unlatched, so a new
          crossing on the new branch fires again (as do all rules of a session whose
          creation was rolled back);
        - an obsolete intent of a session the reorg reopened (the close that made it
          obsolete is gone), whose rule still holds and is still latched so it cannot
          fire again, is pending again.
        """
        ancestor = reorg.ancestor.number
        now, now_ms = reorg.head.timestamp, time.time_ns() // 1_000_000
        by_wallet = {s.wallet: s for s in reorg.sessions}
        jobs = await self.outbox.reorged(ancestor, now_ms)
        if jobs:
            log.warning(
                "reorg: %d relayer transactions were in replaced blocks; tracking them again",
                len(jobs),
            )
        cut = (ancestor + 1) << 32
        settled: list[tuple[str, str, str]] = []
        release: dict[str, set[str]] = {w: set(self.runner.latched(w)) for w in reorg.removed}
        for state in ("pending", "submitted"):
            for intent in await self.outbox.intents(state, limit=1_000_000):
                if intent.position >= cut and not await self._holds(intent, by_wallet, now):
                    release.setdefault(intent.wallet, set()).add(intent.rule)
                    settled.append(
                        (intent.key, "obsolete", f"{ORPHANED}: block {intent.position >> 32} "
                         "was replaced and the rule no longer holds")
                    )  # fmt: skip
        if settled:
            log.warning("reorg: %d open intents no longer hold; obsolete", len(settled))
            await self.outbox.settle(settled, now_ms)
        # The crossings that latched these rules are gone: unlatched, the rule fires again
        # if the new branch crosses again (a session whose creation was rolled back keeps
        # nothing).
        unlatch = [
            Decision(w, (), frozenset(), frozenset(names) & self.runner.latched(w))
            for w, names in release.items()
            if names & self.runner.latched(w)
        ]
        if unlatch:
            await self.outbox.record(unlatch, now_ms)
            for decision in unlatch:
                self.runner.release(decision)
        reopened: list[str] = []
        for session in reorg.sessions:
            latched = self.runner.latched(session.wallet)
            if session.status not in OPEN_STATUSES or not latched:
                continue
            mine = await self.outbox.intents(wallet=session.wallet, limit=1_000_000)
            if any(i.state in ("pending", "submitted", "mined") for i in mine):
                continue
            last = {i.rule: i for i in mine if i.rule in latched}  # the latest per rule
            for intent in last.values():
                if intent.state == "obsolete" and await self._holds(intent, by_wallet, now):
                    reopened.append(intent.key)
        if reopened:
            log.warning("reorg: %d obsolete intents hold again on the new chain", len(reopened))
            detail = "reopened: a reorg undid what made it obsolete"
            await self.outbox.reopen(reopened, detail, now_ms)

    async def _holds(self, intent: IntentRow, by_wallet: dict[str, Session], now: int) -> bool:
        """Whether the intent's rule holds for its session on the current chain."""
        session = by_wallet.get(intent.wallet) or await self.store.session(intent.wallet)
        if session is None:
            return False
        decimals = await self.decimals([session.token])
        snapshot = snapshot_of(session, decimals.get(session.token, 18))
        evaluation = self.runner.evaluator.evaluate(snapshot, now)
        return any(rule.name == intent.rule for rule in evaluation.matched)
