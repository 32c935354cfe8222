"""Every intent becomes at most one mined transaction, under guards, seen to confirmation.

Each `step` does three things, each safe to repeat after a crash at any point:

1. **Track** live jobs: a receipt for any of a job's transactions makes it mined (batch
   members that failed, and reverted closes, settle as obsolete or failed by their decoded
   revert); a receipt that vanished (reorg) makes it live again; a nonce used on chain by
   none of our transactions means another sender of the relayer key took it, and the job's
   intents go back to pending for a new nonce. A transaction signed but never sent (a
   crash between the two) is sent now; one unmined for `replace_after_blocks` is replaced
   with higher fees, or, when nothing is left for it to do, cancelled by a zero-value
   self-transfer so its nonce never strands the ones after it.
2. **Confirm**: an intent is confirmed when the indexer has the `Closed` event of our
   mined transaction; a session closed by anyone else makes its open intents obsolete.
3. **Submit** pending intents: guards, preflight (`eth_call`, decoded revert: obsolete or
   failed), gas estimate, grouping into factory batches, then for each job: allocate the
   nonce, sign, *write the job and its signed transaction to the outbox*, and only then
   send.

Because a job's transactions all share its nonce, at most one of them is ever mined, and
because the signed bytes are stored before sending, a restart re-sends exactly what may
already be out there instead of signing something new. `hook(point)` is called at
"signed", "sent" and "mined": tests pass one that kills the process there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain import CallReverted, ChainClient, TxRejected, calls
from chain.calls import Call
from chain.reverts import batch_failures, closed_wallets, decode_revert
from executor.fees import FeePolicy, Fees, fetch_fees, replacement
from executor.guards import (
    Guards,
    Obsolete,
    Refusal,
    balance_refusal,
    check_intent,
    fee_refusal,
    rate_refusal,
)
from executor.nonces import NonceManager
from executor.outbox import BATCH_MEMBER, ORPHANED, REVERTED, IntentRow, Job, NewJob, Outbox
from executor.signer import Signer
from indexer import IndexerStore, Session

log = logging.getLogger("warden.executor")

Hook = Callable[[str], None]
NONCE_TAKEN_AFTER = 1.0  # seconds a used nonce may go without our receipt before it counts


@dataclass(frozen=True)
class ExecutorConfig:
    factory: str
    chain_id: int
    guards: Guards = field(default_factory=Guards)
    fees: FeePolicy = field(default_factory=FeePolicy)
    replace_after_blocks: int = 3
    gas_margin_percent: int = 25
    # A batch's gas limit: intrinsic gas plus this much per member, accepted only when an
    # eth_call of the batch at that limit closes every member (see `_verify_batches`).
    batch_member_gas: int = 60_000
    # 20 full batches of 256: a burst goes out in steps of about one block's worth, so
    # what a step sends is mined before `replace_after_blocks` would bump it.
    max_intents_per_step: int = 5_120
    dry_run: bool = False


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

    @property
    def busy(self) -> bool:
        return any(vars(self).values())


def _ms() -> int:
    return time.time_ns() // 1_000_000


class Executor:
    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        store: IndexerStore,
        config: ExecutorConfig,
        signer: Signer | None,
        *,
        relayer: str | None = None,
        hook: Hook | None = None,
        clock_ms: Callable[[], int] = _ms,
    ) -> None:
        if signer is None and not config.dry_run:
            raise ValueError("an executor without a signer must run in dry-run mode")
        address = signer.address if signer is not None else relayer
        if address is None:
            raise ValueError("dry-run without a signer needs the relayer address")
        self.client = client
        self.outbox = outbox
        self.store = store
        self.config = config
        self.signer = signer
        self.relayer: str = address
        self.nonces = NonceManager(client, address)
        self._hook = hook or (lambda point: None)
        self._now_ms = clock_ms
        self._sent_block: dict[str, int] = {}  # tx hash -> head when sent (memory only)
        self._force: set[int] = set()  # job ids to replace at once (underpriced, below base)
        self._unexplained: dict[int, float] = {}  # job id -> when its nonce was seen used
        self._starved = False  # below the minimum balance: alert once, not every step
        self._simulate = True  # until the node says it has no eth_simulateV1
        self.last_balance: int | None = None
        self._latencies: list[float] = []  # seconds from intent stored to its first send

    # -- public ------------------------------------------------------------------------
    async def start(self) -> None:
        """Sync the nonce; say who we are. Call once before the first step."""
        if self.config.dry_run:
            log.warning("executor in dry-run: nothing is signed or sent (relayer %s)", self.relayer)
            return
        live = await self.outbox.jobs("live")
        stored = await self.outbox.next_nonce(self.relayer)
        nxt = await self.nonces.sync([j.nonce for j in live if j.nonce is not None], stored)
        log.info("relayer %s, next nonce %d, %d live transactions", self.relayer, nxt, len(live))

    async def step(self, now: int) -> StepReport:
        """One pass: track, confirm, submit. `now` is chain time (latest indexed block)."""
        report = StepReport()
        if not self.config.dry_run:
            await self._track(report)
        await self._confirm(report)
        await self._submit(now, report)
        return report

    # -- 1. track ----------------------------------------------------------------------
    async def _track(self, report: StepReport) -> None:
        jobs = await self.outbox.jobs("live") + await self.outbox.jobs("mined")
        if not jobs:
            return
        mined_count = await self.nonces.mined_count()  # before the receipts: see below
        # Below this count the node holds a transaction of ours for every nonce; a live
        # job at or above it has none there (a reorg took it, or the node dropped it).
        held = await self.nonces.pending_count() if any(j.state == "live" for j in jobs) else 0
        head = int(await self.client.call("eth_blockNumber"), 16)
        hashes = [a.hash for job in jobs for a in job.attempts]
        answers = await self.client.batch_each([("eth_getTransactionReceipt", [h]) for h in hashes])
        receipts = {h: r for h, r in zip(hashes, answers, strict=True) if isinstance(r, dict)}
        receipts = await self._canonical(receipts)
        for job in jobs:
            receipt = next((receipts[a.hash] for a in job.attempts if a.hash in receipts), None)
            if job.state == "mined":
                moved = receipt is not None and receipt["transactionHash"].lower() != job.mined_hash
                if receipt is None or moved:
                    log.warning("job %d: receipt of %s vanished (reorg)", job.id, job.mined_hash)
                    await self.outbox.job_unmined(job.id, self._now_ms())
                    report.reopened += 1
                if moved and receipt is not None:
                    # Another of the job's transactions (same nonce) made it on the new branch.
                    await self._mined(job, receipt, report)
                continue
            if receipt is not None:
                self._unexplained.pop(job.id, None)
                await self._mined(job, receipt, report)
            elif job.nonce is not None and job.nonce < mined_count:
                # Receipts are asked after the count, so had one of ours used this nonce its
                # receipt would be here; but a node may count a transaction a moment before
                # it serves the receipt. Only a receipt still missing at a later step, some
                # time on, means another sender of this key took the nonce.
                first = self._unexplained.setdefault(job.id, time.monotonic())
                if time.monotonic() - first < NONCE_TAKEN_AFTER:
                    report.waiting += 1
                    continue
                self._unexplained.pop(job.id, None)
                detail = (
                    f"nonce {job.nonce} was used by another transaction from {self.relayer}; "
                    "requeued for a new nonce"
                )
                log.warning("job %d: %s", job.id, detail)
                await self.outbox.job_dropped(job.id, detail, self._now_ms())
                self.nonces.invalidate()
                report.dropped += 1
            else:
                lost = job.nonce is not None and job.nonce >= held
                await self._nudge(job, head, report, lost=lost)

    async def _canonical(self, receipts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Only receipts whose block is on the node's chain now: right after a reorg a node
        may still serve a receipt from a replaced block."""
        numbers = sorted({r["blockNumber"] for r in receipts.values()})
        if not numbers:
            return receipts
        answers = await self.client.batch_each(
            [("eth_getBlockByNumber", [n, False]) for n in numbers]
        )
        canonical = {
            n: a["hash"] for n, a in zip(numbers, answers, strict=True) if isinstance(a, dict)
        }
        return {
            h: r for h, r in receipts.items() if canonical.get(r["blockNumber"]) == r["blockHash"]
        }

    async def _mined(self, job: Job, receipt: dict[str, Any], report: StepReport) -> None:
        tx_hash = str(receipt["transactionHash"]).lower()
        status = int(receipt["status"], 16)
        members = await self.outbox.intents_of_job(job.id)
        outcomes: list[tuple[str, str, str]] = []
        if job.kind == "batch" and status == 1:
            failures = batch_failures(receipt["logs"], self.config.factory)
            for intent in members:
                revert = failures.get(intent.wallet)
                if revert is not None:
                    state = "obsolete" if revert.obsolete else "failed"
                    outcomes.append((intent.key, state, f"{BATCH_MEMBER}: {revert}"))
        elif status == 0 and members:
            why = await self._revert_reason(Call(job.kind, job.to_address, job.data))
            state = "obsolete" if why is not None and why[1] else "failed"
            detail = f"{REVERTED}: {why[0] if why else 'no reason given'}"
            outcomes = [(m.key, state, detail) for m in members if m.state == "submitted"]
        if status == 1:
            acted = closed_wallets(receipt["logs"])
            failed = {w.lower() for w in batch_failures(receipt["logs"], self.config.factory)}
            for m in members:
                wallet = m.wallet.lower()
                if m.state == "submitted" and wallet not in acted and wallet not in failed:
                    # Not in what was mined (its cancel, or a batch rewritten without it
                    # before a reorg reopened it): it needs a new job at a new nonce.
                    outcomes.append((m.key, "pending", f"{tx_hash} did not close it; requeued"))
                elif (
                    m.state == "obsolete"
                    and (m.detail or "").startswith(ORPHANED)
                    and wallet in acted
                ):
                    # Mined before a reorg's reconcile could stop it: the close happened,
                    # so its intent is not obsolete after all.
                    log.warning(
                        "job %d: close of %s mined although a reorg orphaned its trigger",
                        job.id, m.wallet,
                    )  # fmt: skip
                    outcomes.append((m.key, "mined", f"{ORPHANED}, but {tx_hash} closed it"))
        await self.outbox.job_mined(
            job.id,
            tx_hash=tx_hash,
            block=int(receipt["blockNumber"], 16),
            status=status,
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
            outcomes=outcomes,
            now_ms=self._now_ms(),
        )
        report.mined += 1
        for _, state, _ in outcomes:
            field_name = "requeued" if state == "pending" else state
            setattr(report, field_name, getattr(report, field_name) + 1)
        self._hook("mined")

    async def _nudge(self, job: Job, head: int, report: StepReport, *, lost: bool) -> None:
        """A live, unmined job: send what was never sent (or what the node lost); replace
        what is stuck."""
        latest = job.latest
        if (lost or latest.state in ("signed", "rejected")) and job.id not in self._force:
            if job.kind == "cancel" or await self._wants_all(job):
                await self._send(job.id, latest.hash, latest.raw, head)
                return
            # A reorg took it off the chain with less left to do: replace it now rather
            # than send again what is no longer wanted.
            self._force.add(job.id)
        sent_at = self._sent_block.setdefault(latest.hash, head)
        if job.id not in self._force and head - sent_at < self.config.replace_after_blocks:
            return
        self._force.discard(job.id)
        if job.nonce is None:
            return
        members = await self.outbox.intents_of_job(job.id)
        wanted = [m for m in members if m.state == "submitted"]
        still_needed = bool(wanted)
        market = await fetch_fees(self.client, self.config.fees)
        previous = Fees(latest.max_fee_per_gas, latest.max_priority_fee_per_gas)
        if still_needed or job.kind == "cancel":
            # A cancel stays uncapped on every bump, or it could strand its nonce.
            fees = replacement(previous, market, self.config.fees, capped=job.kind != "cancel")
            if fees is None:
                # At the cap: keep the transaction in front of the node and wait.
                await self._send(job.id, latest.hash, latest.raw, head, quiet=True)
                self._sent_block[latest.hash] = head
                return
            call = Call(job.kind, job.to_address, job.data)
            if job.kind == "batch" and len(wanted) < len(members):
                # Some members are no longer wanted (a reorg orphaned their trigger): the
                # replacement closes only the others.
                call = calls.batch(
                    self.config.factory, [(m.wallet, m.action, m.reason) for m in wanted]
                )
            gas = job.gas
            report.replaced += 1
        else:
            # Nothing left for it to do, but its nonce must be used: a cancel may exceed
            # the cap, because a stranded nonce blocks every later transaction.
            fees = replacement(previous, market, self.config.fees, capped=False)
            if fees is None:  # pragma: no cover - uncapped replacement always exists
                return
            call = calls.cancel(self.relayer)
            gas = calls.CANCEL_GAS
            report.cancelled += 1
            log.info("job %d: nothing left to do, cancelling nonce %d", job.id, job.nonce)
        signed = self._sign(call, gas, job.nonce, fees)
        rewritten = call.kind != job.kind or call.data != job.data
        await self.outbox.add_attempt(
            job.id,
            job.nonce,
            tx_hash=signed.hash,
            raw=signed.raw,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            now_ms=self._now_ms(),
            rewrite=(call.kind, call.to, call.data, gas) if rewritten else None,
        )
        self._hook("signed")
        await self._send(job.id, signed.hash, signed.raw, head)

    async def _wants_all(self, job: Job) -> bool:
        """Whether every intent the job carries still wants its transaction."""
        members = await self.outbox.intents_of_job(job.id)
        return bool(members) and all(m.state == "submitted" for m in members)

    # -- 2. confirm --------------------------------------------------------------------
    async def _confirm(self, report: StepReport) -> None:
        claims = await self.outbox.open_claims()
        if not claims:
            # A mined cancel carries no open intent: it is done too.
            await self.outbox.finish_settled_jobs(self._now_ms())
            return
        closing = await self.store.closing_events({c.wallet for c in claims})
        settled: list[tuple[str, str, str]] = []
        confirmed: list[tuple[str, int, str]] = []
        now_ms = self._now_ms()
        for claim in claims:
            event = closing.get(claim.wallet)
            if event is None:
                continue
            ours = event.tx_hash.lower()
            if claim.state == "mined" and ours == claim.mined_hash:
                detail = f"closed in {ours} at position {event.position}"
                confirmed.append((claim.key, event.position, detail))
            elif ours in claim.hashes:
                continue  # our transaction, its receipt not tracked yet: next step
            else:
                settled.append(
                    (claim.key, "obsolete", f"session closed by {event.by} in {event.tx_hash}")
                )
        await self.outbox.confirm_all(confirmed, now_ms)
        report.confirmed += len(confirmed)
        await self.outbox.settle(settled, now_ms)
        report.obsolete += len(settled)
        await self.outbox.finish_settled_jobs(now_ms)

    # -- 3. submit ---------------------------------------------------------------------
    async def _submit(self, now: int, report: StepReport) -> None:
        pending = await self.outbox.intents("pending", limit=self.config.max_intents_per_step)
        if not pending:
            return
        # One transaction in flight per session: a second intent for it (another rule that
        # fired at once, lower in priority) waits, and settles once the first is mined.
        busy = await self.outbox.open_wallets()
        first: list[IntentRow] = []
        for intent in pending:  # oldest first: a decision stores its highest priority first
            if intent.wallet not in busy:
                busy.add(intent.wallet)
                first.append(intent)
        pending = first
        if not pending:
            return
        sessions = await self.store.sessions({i.wallet for i in pending})
        guards = self.config.guards
        now_ms = self._now_ms()
        recent = await self.outbox.jobs_since(sessions, now_ms - guards.rate_window_ms)
        ready: list[tuple[IntentRow, Session]] = []
        obsolete: list[tuple[str, str, str]] = []
        for intent in pending:
            session = sessions.get(intent.wallet)
            verdict = check_intent(
                intent, session, relayer=self.relayer, guards=guards, now=now
            ) or rate_refusal(recent.get(intent.wallet, 0), guards)
            if isinstance(verdict, Obsolete):
                obsolete.append((intent.key, "obsolete", verdict.reason))
            elif isinstance(verdict, Refusal):
                await self._refuse([intent], verdict, report)
            elif session is not None:
                ready.append((intent, session))
        await self.outbox.settle(obsolete, now_ms)
        report.obsolete += len(obsolete)
        if not ready:
            return
        market = await fetch_fees(self.client, self.config.fees)
        refusal = fee_refusal(market.max_fee_per_gas, self.config.fees.max_fee_per_gas)
        if refusal is None and not self.config.dry_run:
            balance = int(await self.client.call("eth_getBalance", self.relayer, "latest"), 16)
            self.last_balance = balance
            refusal = balance_refusal(balance, self.relayer, guards)
            self._alert_balance(refusal)
        if refusal is not None:
            await self._refuse([i for i, _ in ready], refusal, report)
            return
        verified, ready = await self._verify_batches(ready)
        ready = await self._preflight(ready, report)
        groups: list[tuple[Call, list[IntentRow], int | None]] = [
            (call, members, None) for call, members in self._group(ready)
        ]
        await self._send_jobs(verified + groups, market, report)

    async def _verify_batches(
        self, ready: list[tuple[IntentRow, Session]]
    ) -> tuple[list[tuple[Call, list[IntentRow], int | None]], list[tuple[IntentRow, Session]]]:
        """Batches proven whole by one simulation each; the intents left for the rest.

        The simulation (`eth_simulateV1`) runs the batch exactly as it would be sent, at
        its gas limit (intrinsic gas plus `batch_member_gas` per member): `closeBatch`
        returns how many members it closed, and a member that reverts or runs out of gas
        is skipped, not counted, so a count equal to the batch's size is every member's
        preflight and proves the gas limit, in one execution (eth_estimateGas of a large
        batch executes it dozens of times on some nodes). A simulation reports running out
        of gas in its answer, where an `eth_call` would raise a node error. A batch that
        falls short, or a node without the method, goes member by member through
        `_preflight` and `eth_estimateGas`, which name and settle what fails."""
        groups = [(call, members) for call, members in self._group(ready) if call.kind == "batch"]
        if not groups or not self._simulate:
            return [], ready
        limits = [calls.batch_gas(call, len(m), self.config.batch_member_gas) for call, m in groups]
        answers = await self.client.batch_each(
            [
                ("eth_simulateV1", [calls.simulation(self.relayer, call, gas), "latest"])
                for (call, _), gas in zip(groups, limits, strict=True)
            ]
        )
        verified: list[tuple[Call, list[IntentRow], int | None]] = []
        done: set[str] = set()
        for (call, members), gas, answer in zip(groups, limits, answers, strict=True):
            if isinstance(answer, Exception):
                # Only a refusal comes back here (transport failures retry the batch):
                # a node without the method, or one that does not take these parameters.
                log.info("the node does not simulate (%s): batches are estimated", answer)
                self._simulate = False
            elif calls.simulated_count(answer) == len(members):
                verified.append((call, members, gas))
                done.update(m.key for m in members)
        return verified, [(i, s) for i, s in ready if i.key not in done]

    async def _preflight(
        self, ready: list[tuple[IntentRow, Session]], report: StepReport
    ) -> list[tuple[IntentRow, Session]]:
        """`eth_call` each close as the relayer would send it; a revert decides."""
        singles = [calls.single(i.wallet, i.action, i.reason) for i, _ in ready]
        answers = await self.client.batch_each(
            [("eth_call", [self._tx_fields(c), "latest"]) for c in singles]
        )
        passed: list[tuple[IntentRow, Session]] = []
        settled: list[tuple[str, str, str]] = []
        for (intent, session), answer in zip(ready, answers, strict=True):
            if isinstance(answer, CallReverted):
                revert = decode_revert(answer.data)
                state = "obsolete" if revert.obsolete else "failed"
                settled.append((intent.key, state, f"preflight: {revert}"))
            elif isinstance(answer, Exception):
                raise answer
            else:
                passed.append((intent, session))
        await self.outbox.settle(settled, self._now_ms())
        for _, state, _ in settled:
            setattr(report, state, getattr(report, state) + 1)
        return passed

    def _group(self, ready: list[tuple[IntentRow, Session]]) -> list[tuple[Call, list[IntentRow]]]:
        guards = self.config.guards
        batchable = [i for i, s in ready if guards.batchable(s)]
        alone = [i for i, s in ready if not guards.batchable(s)]
        groups: list[tuple[Call, list[IntentRow]]] = []
        if len(batchable) >= 2 and guards.max_batch_size > 1:
            size = guards.max_batch_size
            for start in range(0, len(batchable), size):
                chunk = batchable[start : start + size]
                if len(chunk) == 1:
                    alone.extend(chunk)
                    continue
                members = [(i.wallet, i.action, i.reason) for i in chunk]
                groups.append((calls.batch(self.config.factory, members), chunk))
        else:
            alone.extend(batchable)
        groups.extend((calls.single(i.wallet, i.action, i.reason), [i]) for i in alone)
        return groups

    async def _send_jobs(
        self,
        groups: list[tuple[Call, list[IntentRow], int | None]],
        fees: Fees,
        report: StepReport,
    ) -> None:
        """Sign, store and send each group; a group without a gas limit is estimated."""
        if not groups:
            return
        unknown = [call for call, _, gas in groups if gas is None]
        answers = iter(
            await self.client.batch_each(
                [("eth_estimateGas", [self._tx_fields(call)]) for call in unknown]
            )
            if unknown
            else []
        )
        known = {i.wallet for _, members, _ in groups for i in members}
        head = int(await self.client.call("eth_blockNumber"), 16)
        if not self.config.dry_run and not self.nonces.synced:
            await self.start()
        stored: list[tuple[int, str, str, list[IntentRow]]] = []
        for call, members, limit in groups:
            if limit is not None:
                gas = limit
            else:
                estimate = next(answers)
                if isinstance(estimate, CallReverted):
                    # A batch does not revert for a bad member, so this is a single close
                    # that changed between preflight and now: decided on the next step.
                    revert = decode_revert(estimate.data)
                    log.warning("estimateGas of %s reverted: %s", call.kind, revert)
                    continue
                if isinstance(estimate, Exception):
                    raise estimate
                gas = int(estimate, 16) * (100 + self.config.gas_margin_percent) // 100
            problem = calls.check_call(
                call.to, call.data, factory=self.config.factory, relayer=self.relayer,
                known=known.__contains__,
            )  # fmt: skip
            if problem is not None:
                await self._refuse(members, Refusal("call_shape", problem, True), report)
                continue
            job = NewJob(call.kind, call.to, call.data, gas, tuple(m.key for m in members))
            if self.config.dry_run:
                detail = (
                    f"dry-run: would send {call.kind} to {call.to} with data {call.data} gas "
                    f"{gas} max fee {fees.max_fee_per_gas} tip {fees.max_priority_fee_per_gas}"
                )
                await self.outbox.record_dry_run(job, detail, self._now_ms())
                log.info("%s (%d intents)", detail, len(members))
                report.dry_run += len(members)
                continue
            nonce = self.nonces.allocate()
            signed = self._sign(call, gas, nonce, fees)
            job_id = await self.outbox.create_job(
                job,
                relayer=self.relayer,
                nonce=nonce,
                tx_hash=signed.hash,
                raw=signed.raw,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                now_ms=self._now_ms(),
            )
            self._hook("signed")
            report.jobs += 1
            report.submitted += len(members)
            stored.append((job_id, signed.hash, signed.raw, members))
        await self._send_stored(stored, head)

    async def _send_stored(
        self, stored: list[tuple[int, str, str, list[IntentRow]]], head: int
    ) -> None:
        """Send transactions already written to the outbox, in one JSON-RPC batch (in nonce
        order: a node takes a batch's items in order), then record each answer. A crash
        in between leaves them signed: the next step sends them again (already known)."""
        if not stored:
            return
        answers = await self.client.batch_each(
            [("eth_sendRawTransaction", [raw]) for _, _, raw, _ in stored]
        )
        for (job_id, tx_hash, _, members), answer in zip(stored, answers, strict=True):
            await self._sent(job_id, tx_hash, answer, head)
            sent_ms = self._now_ms()
            self._latencies.extend(max(0, sent_ms - m.created_ms) / 1000 for m in members)

    def drain_latencies(self) -> list[float]:
        """Trigger-to-transaction times since the last call (for the daemon's metrics)."""
        out, self._latencies = self._latencies, []
        return out

    # -- sending -----------------------------------------------------------------------
    async def _send(
        self, job_id: int, tx_hash: str, raw: str, head: int, *, quiet: bool = False
    ) -> None:
        (answer,) = await self.client.batch_each([("eth_sendRawTransaction", [raw])])
        await self._sent(job_id, tx_hash, answer, head, quiet=quiet)

    async def _sent(
        self, job_id: int, tx_hash: str, answer: Any, head: int, *, quiet: bool = False
    ) -> None:
        """Record the node's answer to sending `tx_hash`: accepted, or refused and why."""
        if isinstance(answer, Exception) and not isinstance(answer, TxRejected):
            raise answer
        if isinstance(answer, TxRejected):
            exc = answer
            if exc.kind == "already_known":
                pass  # sent before (a restart, a re-broadcast): it is out there
            elif exc.kind == "nonce_too_low":
                # Mined already (a receipt comes next step) or taken by another sender
                # (the tracker requeues): either way this transaction is not live.
                await self.outbox.mark_rejected(tx_hash, str(exc))
                self.nonces.invalidate()
                return
            else:
                if exc.kind in ("underpriced", "fee_below_base"):
                    self._force.add(job_id)
                elif exc.kind == "nonce_too_high":
                    self.nonces.invalidate()
                elif exc.kind == "insufficient_funds":
                    self._alert_balance(Refusal("relayer_balance", str(exc), False))
                if not quiet:
                    log.warning("transaction %s refused: %s", tx_hash, exc)
                await self.outbox.mark_rejected(tx_hash, str(exc))
                return
        self._hook("sent")
        self._sent_block.setdefault(tx_hash, head)
        await self.outbox.mark_sent(tx_hash, self._now_ms())

    # -- helpers -----------------------------------------------------------------------
    def _tx_fields(self, call: Call) -> dict[str, str]:
        return {"from": self.relayer, "to": call.to, "data": call.data}

    def _sign(self, call: Call, gas: int, nonce: int, fees: Fees) -> Any:
        if self.signer is None:
            raise RuntimeError("signing in dry-run")
        return self.signer.sign(
            {
                "type": 2,
                "chainId": self.config.chain_id,
                "nonce": nonce,
                "to": call.to,
                "value": 0,
                "data": call.data,
                "gas": gas,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            }
        )

    async def _revert_reason(self, call: Call) -> tuple[str, bool] | None:
        """Why `call` reverts now (name, obsolete), or None if it would not revert."""
        (answer,) = await self.client.batch_each([("eth_call", [self._tx_fields(call), "latest"])])
        if isinstance(answer, CallReverted):
            revert = decode_revert(answer.data)
            return str(revert), revert.obsolete
        if isinstance(answer, Exception):
            raise answer
        return None

    async def _refuse(
        self, intents: Sequence[IntentRow], refusal: Refusal, report: StepReport
    ) -> None:
        now_ms = self._now_ms()
        for intent in intents:
            await self.outbox.refuse(
                intent.key, refusal.guard, refusal.reason, now_ms, final=refusal.final
            )
        report.refused += len(intents)
        if refusal.final:
            report.failed += len(intents)

    def _alert_balance(self, refusal: Refusal | None) -> None:
        if refusal is not None and not self._starved:
            log.error("ALERT %s", refusal.reason)
        elif refusal is None and self._starved:
            log.warning(
                "relayer %s funded again (%s wei): sending resumes", self.relayer, self.last_balance
            )
        self._starved = refusal is not None
