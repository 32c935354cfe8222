"""Every intent becomes at most one mined transaction, under guards, seen to confirmation.

Each `step` does three things, each safe to repeat after a crash at any point:

1. **Track** live jobs to their receipts; re-send what was never sent, replace what is
   stuck, cancel what has nothing left to do (`executor.tracking`).
2. **Confirm**: an intent is confirmed when the indexer has the `Closed` event of our
   mined transaction; a session closed by anyone else makes its open intents obsolete
   (`executor.tracking`).
3. **Submit** pending intents: guards, preflight (`eth_call`, decoded revert: obsolete or
   failed), gas estimate, grouping into factory batches, then for each job: allocate the
   nonce, sign, *write the job and its signed transaction to the outbox*, and only then
   send (`executor.submission`, over `executor.sending`).

Because a job's transactions all share its nonce, at most one of them is ever mined, and
because the signed bytes are stored before sending, a restart re-sends exactly what may
already be out there instead of signing something new. `hook(point)` is called at
"signed", "sent" and "mined": tests pass one that kills the process there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chain import ChainClient, RetryableError
from executor.alerts import Alerts
from executor.gate import Protection, SendGate
from executor.guards import batch_problem
from executor.outbox import Outbox
from executor.sending import Hook, Sender
from executor.settings import ExecutorSettings
from executor.signer import Signer
from executor.submission import Submitter
from executor.tracking import Tracker
from indexer import IndexerStore
from indexer.failures import FailureStreak

log = logging.getLogger("warden.executor")


@dataclass
class StepReport:
    submitted: int = 0  # intents given a transaction this step
    jobs: int = 0  # transactions signed and sent (new nonces)
    replaced: int = 0
    cancelled: int = 0
    mined: int = 0
    confirmed: int = 0
    obsolete: int = 0
    failed: int = 0
    refused: int = 0
    dropped: int = 0
    dry_run: int = 0
    reopened: int = 0  # jobs whose receipt vanished (reorg): sent again next step
    waiting: int = 0  # jobs whose nonce is used without our receipt, not yet given up
    requeued: int = 0  # intents back to pending: the mined transaction did not close them
    # intents left pending for want of room in flight (a burst): not work for the next
    # step before a block, but a loop under load (the delivery task yields to it)
    backlog: bool = False

    @property
    def busy(self) -> bool:
        return any(v for k, v in vars(self).items() if k != "backlog")


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _no_hook(point: str) -> None:
    return None


class Executor:
    """The step loop over the outbox. `settings` is the `executor:` section as loaded;
    `factory` and `chain_id` are the deployment's; without a `signer` the executor runs
    in dry-run (`dry_run=True`), preflighting as `relayer`."""

    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        store: IndexerStore,
        settings: ExecutorSettings,
        *,
        factory: str,
        chain_id: int,
        dry_run: bool,
        signer: Signer | None,
        relayer: str | None,
        hook: Hook | None = None,
        clock_ms: Callable[[], int] = _ms,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        if signer is None and not dry_run:
            raise ValueError("an executor without a signer must run in dry-run mode")
        address = signer.address if signer is not None else relayer
        if address is None:
            raise ValueError("dry-run without a signer needs the relayer address")
        # Checked where settings are loaded too; here because a batch the factory refuses
        # would fail every step, after its gas was paid for nothing.
        problem = batch_problem(settings)
        if problem is not None:
            raise ValueError(problem)
        self.settings = settings
        self.dry_run = dry_run
        self.relayer: str = address
        self.outbox = outbox
        self.alerts = Alerts(clock_ms)
        self.sender = Sender(
            client, outbox, signer=signer, relayer=address, chain_id=chain_id,
            hook=hook or _no_hook, clock_ms=clock_ms, alerts=self.alerts, may_send=may_send,
        )  # fmt: skip
        self.gate = SendGate(
            client, outbox, settings, relayer=address, alerts=self.alerts, clock_ms=clock_ms
        )
        self.tracker = Tracker(
            client, outbox, store, settings, factory=factory, sender=self.sender,
            gate=self.gate, alerts=self.alerts,
        )  # fmt: skip
        self.submitter = Submitter(
            client, outbox, store, settings, factory=factory, dry_run=dry_run,
            sender=self.sender, gate=self.gate, alerts=self.alerts,
        )  # fmt: skip
        self.failures = FailureStreak()  # steps failed in a row on the node's account

    @property
    def last_balance(self) -> int | None:
        """The relayer's balance in wei when last read (None before the first send)."""
        return self.sender.last_balance

    async def start(self) -> None:
        """Sync the nonce; say who we are; learn the node's block gas limit (so that the
        first burst is sized by it). Call once before the first step."""
        block = await self.sender.client.get_block("latest")
        with contextlib.suppress(LookupError, TypeError, ValueError):  # asked each send too
            self.submitter.block_gas_limit = int(str((block or {})["gasLimit"]), 16) or None
        if self.dry_run:
            log.warning("executor in dry-run: nothing is signed or sent (relayer %s)", self.relayer)
            return
        await self.sender.sync()

    def protection(self) -> Protection:
        """The circuit breaker, a paused sender and the latest alerts (for /status)."""
        return self.gate.snapshot()

    async def step(self, now: int) -> StepReport:
        """One pass: track, confirm, submit. `now` is chain time (latest indexed block).

        First the gate (`executor.gate`): the gas budget, then the node's consistency with
        what it told us. A node found inconsistent pauses the step's tracking and
        submission (the outbox stays as it is); an open circuit breaker lets tracking
        read receipts but send nothing."""
        report = StepReport()
        self.failures.begin()
        try:
            if not self.dry_run:
                await self.gate.check_budget()
                fault = await self.tracker.track(report)  # the gate's node check included
                if fault is not None:
                    # What such a node says of our nonces is not to be built on: resync
                    # once it is consistent again.
                    self.sender.nonces.invalidate()
                self.gate.node_state(fault)
            await self.tracker.confirm(report)
            if self.gate.node_fault is None:
                await self.submitter.submit(now, report)
        except RetryableError as exc:  # the node: counted for readiness, the caller retries
            self.failures.failed(exc)
            raise
        finally:
            self.failures.end()
        self.failures.succeeded()
        return report

    def drain_latencies(self) -> list[float]:
        """Trigger-to-transaction times since the last call (for the daemon's metrics)."""
        return self.submitter.drain_latencies()
