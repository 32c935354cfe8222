"""`warden run`: indexer → rules → executor in one loop, the API beside it.

One task drives the loop so the database has one writer and every step sees the last
one's commits: index what is new, handing what each commit changed to the rules (which
store intents) before the next commit; evaluate the sessions whose time came; let the
executor track, confirm and submit; publish live figures for the API; then wait for the
next poll unless there is more to do.

Before anything else touches the database, a start backs it up when a migration is due,
migrates it in one transaction and checks it belongs to the chain and factory served
(`warden.app.schema.upgrade`).

Shutdown (SIGTERM/SIGINT) runs in a known order: stop HTTP, stop intake (the loop ends
after its current step, so in-flight work finishes and every write is committed), stop
the activity generator, checkpoint the WAL (SQLite), release the database, close it, stop
the devnet. A second
signal exits at once: every write is transactional, so a forced exit is a crash the next
start recovers from. SIGHUP reloads the rule files; a bad file keeps the old rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from chain import ChainClient, FatalError, RetryableError
from database import Database, DatabaseBusy, DatabaseError, Deposed, Ownership, open_database
from executor import Executor, IntentChanges, Job, Outbox
from indexer import Indexer, IndexerStore, Progress
from indexer.failures import FailureStreak
from notify import Deliverer, DeliveryStats, EventLog
from rules import ReloadResult, RulesHolder, RulesHost
from warden.app.alerts import AlertEvents
from warden.app.api import LiveState, Preparation, ReadLimits, check_binding, create_app
from warden.app.api.server import runner_options
from warden.app.audit import BalanceAudit
from warden.app.leadership import Leadership
from warden.app.pipeline import RulesPipeline
from warden.app.relay import IntentRelay
from warden.app.schema import upgrade
from warden.app.settings import WardenConfig, where
from warden.app.settings import target as database_target
from warden.app.storage import STORAGE_ERRORS, STORAGE_EXIT, server_gone, storage_problem
from warden.app.target import Target, TokenDecimals
from warden.app.term_tasks import delivering, pruning
from warden.app.timing import StepTiming, step_summary
from warden.app.wakeup import Wakeup

log = logging.getLogger("warden.daemon")

FORCED_EXIT = 130
CONFIG_EXIT = 2  # warden.cli.exit_codes.ExitCode.CONFIG: the database is not this one's


class Daemon:
    def __init__(self, cfg: WardenConfig, target: Target, *, activity: Any = None) -> None:
        self.cfg = cfg
        self.target = target
        self.activity = activity  # an object with `async run(stop)`, devnet only
        self.live = LiveState()
        self.intake_stop = asyncio.Event()
        self.activity_stop = asyncio.Event()  # apart: SIGHUP wakes intake, not this
        self.wakeup = Wakeup(self.intake_stop)  # poll, a block announced, stop or SIGHUP
        self.stopping = False
        self._signals = 0
        self._hup = False
        self._http: web.AppRunner | None = None
        # A stop signal may arrive while the API is starting: stopping waits for the start
        # to finish, so it never cleans up a runner that is half set up.
        self._http_lock = asyncio.Lock()
        self._ownership = Ownership()  # the database's hold (`Database.exclusive`)
        self._stopper: asyncio.Task[None] | None = None
        self.rules_failures = FailureStreak()  # the rules' own node calls (token decimals)
        self.deliverer: Deliverer | None = None  # the leader's notification delivery
        self.relay: IntentRelay | None = None  # intent transitions → notification events
        self.alerts: AlertEvents | None = None  # this term's alerts → notification events
        self.audit: BalanceAudit | None = None  # this term's balance audit → drift alerts
        self.delivery_stats = DeliveryStats()

    # -- lifecycle -------------------------------------------------------------------
    async def run(self) -> int:
        """Until a signal; 0 after a clean shutdown, 1 on a fatal runtime error,
        `STORAGE_EXIT` (3) when the database cannot be written (disk full, read-only)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        try:
            async with self._resources() as (db, client, store, outbox):
                return await self._serve(db, client, store, outbox)
        except DatabaseBusy as exc:
            log.error("stopping: %s", exc)
            return STORAGE_EXIT
        except DatabaseError as exc:  # a newer schema, another chain's, a failed migration
            log.error("not starting: %s", exc)
            return CONFIG_EXIT
        except STORAGE_ERRORS as exc:
            # HTTP, intake and the activity are stopped and the database closed by now
            problem = storage_problem(exc, where(self.cfg.database))
            if problem is None:
                raise
            log.error("stopping: %s", problem)
            return STORAGE_EXIT
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def request_stop(self) -> None:
        """Stop HTTP first, then intake: the loop ends after the step it is in."""
        if self._stopper is None:
            self._stopper = asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        try:
            await self._stop_http()
        finally:
            self.stopping = True
            self.intake_stop.set()

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.error("second %s: exiting now (state is crash-safe)", sig.name)
            os._exit(FORCED_EXIT)
        log.info("%s: shutting down (again to force)", sig.name)
        self.request_stop()

    def _on_hup(self) -> None:
        self._hup = True
        self.intake_stop.set()  # wake the loop; it reloads and carries on

    @contextlib.asynccontextmanager
    async def _resources(
        self,
    ) -> AsyncIterator[tuple[Database, ChainClient, IndexerStore, Outbox]]:
        cfg = self.cfg
        db = await open_database(database_target(cfg.database))
        try:
            # One writer per SQLite file: a second daemon on it would send the same closes.
            # On PostgreSQL replicas share the database; the lease decides who writes.
            hold = (
                db.exclusive("warden run")
                if db.dialect == "sqlite"
                else contextlib.nullcontext(Ownership())
            )
            async with hold as ownership:
                self._ownership = ownership
                # Before any store touches it: back up if a migration is due, migrate in
                # one transaction, check the database is this chain's and factory's.
                await upgrade(
                    db, database_target(cfg.database), where(cfg.database),
                    keep=cfg.backups.keep, directory=cfg.backups.directory,
                    chain_id=self.target.chain_id, factory=self.target.factory,
                )  # fmt: skip
                # The notification log is written inside the indexer's transactions (and
                # the outbox's): an event is logged exactly when its cause is committed.
                # The channels owe it later, routed by the delivery task (term_tasks).
                events = EventLog(db)
                await events.setup()
                store = IndexerStore(db, hooks=events)
                await store.setup()
                outbox = Outbox(db)
                await outbox.setup()
                async with ChainClient(
                    list(self.target.rpc),
                    chain_id=self.target.chain_id,
                    retry=cfg.chain.retry_policy(),
                    timeout=cfg.chain.timeout,
                ) as client:
                    yield db, client, store, outbox
                if db.dialect == "sqlite":  # last, once nothing writes: fold in the WAL
                    await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            try:
                await db.close()
                log.info("database closed")
            except STORAGE_ERRORS as exc:  # after a storage failure: report the first one
                log.warning("closing the database: %s", exc)

    async def _serve(
        self,
        db: Database,
        client: ChainClient,
        store: IndexerStore,
        outbox: Outbox,
    ) -> int:
        cfg = self.cfg
        await client.connect()
        lead = cfg.leadership
        leadership = Leadership(db, identity=lead.identity, ttl=lead.ttl, margin=lead.margin)
        await leadership.setup()
        self.live.leadership = leadership
        # The rules are loaded once, at the start (bad files: not starting), and kept across
        # terms: a standby that takes over runs the rules it loaded or last reloaded on
        # SIGHUP, never files someone broke on disk since (that would stop the only replica
        # left at the moment it is needed).
        holder = RulesHolder(RulesHost(), list[str | Path](cfg.rules.files))
        self.live.rules_version = holder.version
        await self._start_http()  # a standby serves the API too
        activity = (
            asyncio.create_task(self.activity.run(self.activity_stop), name="activity")
            if self.activity is not None
            else None
        )
        try:
            while True:
                if not await leadership.acquire(self.intake_stop):
                    if self.stopping:
                        log.info("standby stopped")
                        return 0
                    self.intake_stop.clear()  # a SIGHUP woke the standby: reload its rules
                    if self._hup:
                        self._hup = False
                        self._reload(holder.reload)
                    continue
                try:
                    await self._lead(db, client, store, outbox, leadership, holder)
                    log.info("intake stopped; in-flight work finished")
                    return 0
                except Deposed as exc:
                    leadership.step_down(str(exc))
                    log.warning("standing by: %s", exc)
                    if self.stopping:
                        return 0
                except Exception as exc:
                    # A replica whose lease's trust ran out is deposed in all but name:
                    # another one may lead by now. What its last step raised comes of that:
                    # a connection the server ended (its transaction sat idle past the TTL
                    # while it was frozen) or the network reset, rows the new leader wrote
                    # read halfway through its step (a session "created twice"). It stands
                    # by, as a deposed leader does. So does a leader whose server went away
                    # (a PostgreSQL restart or failover): nothing it did is half committed,
                    # and it tries the lease again once the server answers. With its trust
                    # intact, any other error is its own: a storage error stops the daemon
                    # (exit 3), anything else too.
                    if leadership.solo:
                        raise
                    gone = server_gone(exc)
                    if gone is not None:
                        reason = (
                            f"PostgreSQL is unreachable: {gone} ({type(exc).__name__}: "
                            f"{exc}); leading again once it answers"
                        )
                    elif leadership.may_send():
                        raise
                    else:
                        reason = (
                            f"its last step failed after this replica's lease ran out "
                            f"({type(exc).__name__}: {exc})"
                        )
                    leadership.step_down(reason)
                    log.warning("standing by: %s", reason)
                    if self.stopping:
                        return 0
        except FatalError as exc:
            log.error("stopping: %s", exc)
            return 1
        finally:
            await self._stop_http()
            self.intake_stop.set()
            self.activity_stop.set()
            if activity is not None:
                activity.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await activity
            await leadership.release()

    async def _lead(
        self,
        db: Database,
        client: ChainClient,
        store: IndexerStore,
        outbox: Outbox,
        leadership: Leadership,
        holder: RulesHolder,
    ) -> None:
        """Index, decide and send until a stop (returns) or a step-down (`Deposed`). Every
        object but the rules is made anew for each term: a new leader starts from the
        database exactly as a restarted single node does."""
        cfg, target = self.cfg, self.target
        decimals = TokenDecimals(client, cfg.rules.decimals)
        self.live.token_decimals = decimals.known  # the same dict: /status shows it as it grows
        pipeline = RulesPipeline(
            holder, outbox, store, decimals,
            events=store.hooks if isinstance(store.hooks, EventLog) else None,
        )  # fmt: skip
        await pipeline.start()
        indexer = Indexer(client, store, cfg.chain, factory=target.factory, progress=Progress())
        executor = Executor(
            client, outbox, store, cfg.executor, factory=target.factory,
            chain_id=target.chain_id, dry_run=cfg.dry_run, signer=target.signer,
            relayer=target.relayer, may_send=leadership.may_send,
        )  # fmt: skip
        await executor.start()
        if isinstance(store.hooks, EventLog):
            self.relay = IntentRelay(IntentChanges(db), store.hooks, store)
            self.alerts = AlertEvents(store.hooks, cfg.notify.lag_alert_blocks)
            await self.alerts.restore()  # what a killed predecessor left raised
            if not leadership.solo:  # replicas: this one leads now
                taken = {"leader": leadership.identity, "epoch": leadership.epoch}
                self.alerts.once("alert.leadership_changed", taken)
            self.audit = BalanceAudit(client, store, store.hooks, cfg.audit)
            await self.audit.restore()  # the drifts a killed predecessor left raised
            self.live.audit = self.audit.figures
        self.live.relayer_address = executor.relayer
        self.live.rules_version = pipeline.version
        self.live.rpc = client.stats
        self.live.max_failure_seconds = cfg.chain.max_failure_seconds
        self.live.failures = {
            "indexer": indexer.failures,
            "executor": executor.failures,
            "rules": self.rules_failures,
        }
        log.info(
            "warden running: chain %d, factory %s, relayer %s%s, rules %s (%d rules), %s",
            target.chain_id, target.factory, executor.relayer,
            " (dry-run)" if cfg.dry_run else "", pipeline.version,
            len(holder.current.ruleset.rules),
            "one process on this database" if leadership.solo
            else f"leader at epoch {leadership.epoch}",
        )  # fmt: skip
        heads = cfg.chain.heads_url(list(target.rpc))
        async with (
            delivering(db, cfg, self.delivery_stats) as deliverer,
            pruning(db, cfg),
            self.wakeup.watching(heads, cfg.chain.timeout) as seen,
        ):
            self.deliverer, self.live.new_heads = deliverer, seen
            if deliverer is not None:
                self.live.notify = self.delivery_stats
            try:
                if leadership.solo:
                    await self._loop(indexer, pipeline, executor, store, leadership)
                    return
                await self._lead_replica(indexer, pipeline, executor, store, leadership)
            finally:
                self.deliverer = None  # the term's delivery task ends here

    async def _lead_replica(
        self,
        indexer: Indexer,
        pipeline: RulesPipeline,
        executor: Executor,
        store: IndexerStore,
        leadership: Leadership,
    ) -> None:
        # The loop runs beside the lease's renewal; a refused renewal ends the renewal task
        # and cuts the step the loop is in short, as a crash would (every write is one
        # transaction): a deposed leader would otherwise finish the step reading rows the
        # new leader writes, an inconsistent view it must not act on (its writes would be
        # refused anyway).
        loop = asyncio.create_task(
            self._loop(indexer, pipeline, executor, store, leadership), name="leader-loop"
        )
        keeper = asyncio.create_task(leadership.keep(), name="lease")
        try:
            await asyncio.wait({loop, keeper}, return_when=asyncio.FIRST_COMPLETED)
            if not loop.done():
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loop
                keeper.result()  # a bug in the renewal loop is raised here
                leadership.check()  # stepped down: Deposed
            loop.result()
        finally:
            for task in (loop, keeper):
                task.cancel()
            for task in (loop, keeper):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _start_http(self) -> None:
        api = self.cfg.api
        if not api.enabled:
            return
        token = api.token.get_secret_value() if api.token is not None else None
        check_binding(api.host, token)
        async with self._http_lock:
            if not self.stopping and self._stopper is None:
                # the prepare routes ask the node through a client of their own (short
                # retries: a request has a caller waiting), opened and closed by the app
                prepare = None
                if api.prepare:
                    prepare = Preparation(
                        self.target.rpc, self.target.factory, self.target.chain_id,
                        fees=self.cfg.executor,
                    )  # fmt: skip
                reads = ReadLimits(api.read_connections, api.read_queue, api.read_wait)
                app = create_app(
                    database_target(self.cfg.database), self.live, token=token,
                    prepare=prepare, reads=reads,
                )  # fmt: skip
                runner = web.AppRunner(app, **runner_options())
                self._http = runner
                await runner.setup()
                await web.TCPSite(runner, api.host, api.port).start()
                log.info("API on http://%s:%d", api.host, api.port)

    async def _stop_http(self) -> None:
        async with self._http_lock:
            if self._http is not None:
                runner, self._http = self._http, None
                await runner.cleanup()
                log.info("HTTP stopped")

    # -- the loop ----------------------------------------------------------------------
    async def _loop(
        self,
        indexer: Indexer,
        pipeline: RulesPipeline,
        executor: Executor,
        store: IndexerStore,
        leadership: Leadership,
    ) -> None:
        timing = StepTiming()
        checkpoint = await store.checkpoint()
        executor_due = True  # the first step re-sends what a crash left signed but unsent
        while not self.stopping:
            if self._hup:
                self._hup = False
                self.intake_stop.clear()
                self._reload(pipeline.reload)
            timing.begin()
            self.wakeup.step_begins()
            fired = pipeline.fired
            logged = self._logged(store)
            progressed = await self._index(indexer, pipeline, timing)
            if self._logged(store) != logged:
                self._woken()
            if progressed:
                checkpoint = await store.checkpoint()
            now = checkpoint.timestamp if checkpoint else 0
            await pipeline.tick(now)
            timing.mark("rules")
            report = None
            # With no new block, no new intent and nothing left from the last step, a step
            # would find nothing to do: receipts, confirmations and fee replacements only
            # move with blocks, and refused or failed work keeps `executor_due` set.
            leadership.check()  # stepped down by the renewal loop: Deposed
            if self._ownership.lost:
                raise DatabaseBusy(
                    "the hold on the database is lost (the server ended the connection that "
                    "held it): stopping before anything more is sent; restart when it is back"
                )
            if executor_due or progressed or pipeline.fired != fired:
                try:
                    report = await executor.step(now)
                    executor_due = report.busy
                except RetryableError as exc:
                    log.warning("executor step failed, retrying next round: %s", exc)
                    executor_due = True
            timing.mark("executor")
            if self.deliverer is not None and report is not None:
                # delivery yields to a loop with a backlog (kept between blocks, when the
                # executor does not step; a step with room again lifts it)
                self.deliverer.pressed = report.backlog
            if self.relay is not None and await self.relay.step():
                self._woken()
            if self.alerts is not None:
                self.alerts.executor(executor.alerts.drain())
                self.alerts.lag(indexer.head, checkpoint.number if checkpoint else None)
                if executor_due or progressed:  # only blocks move a job's age
                    self.alerts.unmined(
                        indexer.head, await outbox_jobs(executor), executor.sender.sent_block,
                        self.cfg.notify.unmined_alert_blocks,
                    )  # fmt: skip
                if await self.alerts.flush():
                    self._woken()
            # a page of the balance audit, in a step that found the index caught up
            if self.audit is not None and not progressed and await self.audit.step(checkpoint):
                self._woken()
            self._publish(indexer, executor, pipeline, checkpoint.number if checkpoint else None)
            if report is not None and report.busy:
                log.info("executor: %s (%s)", step_summary(report), timing)
            if not progressed and not self.stopping:
                await self.wakeup.pause(self.cfg.chain.poll_interval)

    def _reload_alert(self, ok: bool, detail: str, version: str | None = None) -> None:
        """alert.rules_reload_failed raised by a refused reload, cleared by the next good
        one (logged with the loop's next step)."""
        if self.alerts is not None:
            self.alerts.condition(
                "alert.rules_reload_failed", not ok, {"detail": detail, "version": version}
            )

    def _woken(self) -> None:
        """Notification events were committed: wake /stream readers and delivery now."""
        self.live.events.notify()
        if self.deliverer is not None:
            self.deliverer.wake()

    @staticmethod
    def _logged(store: IndexerStore) -> int:
        """Notification events this process has logged so far."""
        return store.hooks.appended if isinstance(store.hooks, EventLog) else 0

    async def _index(self, indexer: Indexer, pipeline: RulesPipeline, timing: StepTiming) -> bool:
        """One indexer round, each commit's update handed to the rules before the next
        commit; False when there was nothing new (wait for the next poll). The indexer
        counts its own failures; the rules' calls to the node are counted here."""
        rules = self.rules_failures
        try:
            async with contextlib.aclosing(indexer.advance()) as updates:
                async for update in updates:
                    timing.mark("index")
                    rules.begin()
                    await pipeline.handle(update)
                    rules.succeeded()
                    timing.mark("rules")
        except RetryableError as exc:  # the rules' own calls (token decimals)
            rules.failed(exc)
            log.warning("rules step failed (%d in a row), retrying: %s", rules.consecutive, exc)
            await asyncio.sleep(indexer.client.retry.initial)
            return True
        finally:
            rules.end()
            timing.mark("index")
        return not indexer.idle

    def _reload(self, reload: Callable[[], ReloadResult]) -> None:
        """SIGHUP: `reload` is the pipeline's (a leader) or the rules holder's (a standby).
        The holder turns any failure into problems; the guard below is for a bug in the
        pipeline's own swap, which must not end the daemon either."""
        try:
            result = reload()
        except Exception as exc:
            log.error("SIGHUP: reloading the rules failed (%s: %s); the old rules keep running",
                      type(exc).__name__, exc)  # fmt: skip
            self.live.rules_reload_failures += 1
            self._reload_alert(False, f"{type(exc).__name__}: {exc}")
            return
        if not result.ok:
            self.live.rules_reload_failures = result.failures
            self._reload_alert(False, f"{len(result.problems)} problem(s)", result.version)
            log.error(
                "SIGHUP: rule files have %d problem(s); the old rules (%s) keep running",
                len(result.problems), result.version,
            )  # fmt: skip
            for problem in result.problems:  # one line each: FILE:LINE:COLUMN: what and fix
                log.error("rules: %s", problem)
            return
        self._reload_alert(True, "reloaded", result.version)
        for warning in result.warnings:
            log.warning("rules: %s", warning)
        if result.changed:
            log.info("SIGHUP: rules reloaded, now %s", result.version)
            self.live.rules_version = result.version
        else:
            log.info("SIGHUP: rule files unchanged (%s)", result.version)

    def _publish(
        self, indexer: Indexer, executor: Executor, pipeline: RulesPipeline, indexed: int | None
    ) -> None:
        live = self.live
        live.head = indexer.head
        live.indexed_block = indexed
        confirmations = self.cfg.confirmations
        if indexer.head is not None:
            live.safe_block = max(0, indexer.head - confirmations)
            live.caught_up = indexed is not None and indexed >= indexer.head - confirmations
        live.reorgs = indexer.reorgs
        live.bloom_mismatches = indexer.bloom_mismatches
        live.bloom_false_positives = indexer.bloom_false_positives
        live.relayer_balance = executor.last_balance
        live.protection = None if executor.dry_run else executor.protection()
        live.rules_version = pipeline.version
        for latency in executor.drain_latencies():
            live.trigger_to_tx.observe(latency)


async def outbox_jobs(executor: Executor) -> list[Job]:
    """The executor's live jobs (sent, not mined), for the unmined alert."""
    return list(await executor.outbox.jobs("live"))
