"""Tracking live jobs to their receipts, and intents to their confirmation.

`track` asks for a receipt of every transaction of every live or mined job. A receipt
makes its job mined (batch members that failed, and reverted closes, settle as obsolete
or failed by their decoded revert); a receipt that vanished (reorg), or one from a block
no longer canonical, makes it live again; a nonce used on chain by none of our
transactions means another sender of the relayer key took it, and the job's intents go
back to pending for a new nonce. A transaction signed but never sent (a crash between the
two) is sent now; one unmined for `replace_after_blocks` is replaced with higher fees, or,
when nothing is left for it to do, cancelled by a zero-value self-transfer so its nonce
never strands the ones after it.

`confirm` settles an intent once the indexer has the `Closed` event of our mined
transaction; a session closed by anyone else makes its open intents obsolete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chain import CallReverted, ChainClient, calls
from chain.calls import Call
from chain.reverts import closed_wallets, decode_revert
from executor.alerts import CLOSE_FAILED, ISOLATED, NO_EFFECT, Alerts
from executor.batching import BatchRun, isolated_message, misbehaved
from executor.effects import called_wallets, no_effect_detail
from executor.fees import Fees, fetch_fees, outbid, replacement
from executor.gate import SendGate
from executor.outbox import (
    BATCH_MEMBER,
    ISOLATED_DETAIL,
    NO_EFFECT_DETAIL,
    ORPHANED,
    REVERTED,
    IntentRow,
    Job,
    Outbox,
)
from executor.receipts import canonical, forgotten, quantity, still_there
from executor.sending import Sender
from executor.settings import ExecutorSettings
from indexer import IndexerStore

if TYPE_CHECKING:
    from executor.executor import StepReport

log = logging.getLogger("warden.executor")

NONCE_TAKEN_AFTER = 1.0  # seconds a used nonce may go without our receipt before it counts


class Tracker:
    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        store: IndexerStore,
        settings: ExecutorSettings,
        *,
        factory: str,
        sender: Sender,
        gate: SendGate,
        alerts: Alerts,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.store = store
        self.settings = settings
        self.factory = factory
        self.sender = sender
        self.gate = gate
        self.alerts = alerts
        self._unexplained: dict[int, float] = {}  # job id -> when its nonce was seen used
        # (nonce, head): the relayer's next nonce to be mined, and the head when it became so
        self._front: tuple[int, int] | None = None
        self._fees: Fees | None = None
        self.monotonic: Callable[[], float] = time.monotonic  # tests step time themselves

    async def track(self, report: StepReport) -> str | None:
        """Follow every live or mined job; returns why the node is inconsistent, if it is
        (then nothing is changed): the gate's count check (`SendGate.judge`), or a receipt
        it served that is gone while its block is not.

        The step's independent questions go in one JSON-RPC batch: the gate's, the mined
        count (before the receipts: see below), the pending count, the head, the receipts of
        the live jobs' transactions, and the block of every mined job. A mined job's
        receipt is not asked again while the block it was mined in is still on the node's
        chain with the same hash: what a receipt says cannot change while its block does
        not (a block's hash commits to its transactions and their receipts). Only the
        jobs whose block changed or went (a reorg) have their receipts asked again."""
        last = await self.outbox.last_mined(self.sender.relayer)
        jobs = await self.outbox.jobs("live") + await self.outbox.jobs("mined")
        if last is None and not jobs:
            return None
        live = [j for j in jobs if j.state == "live"]
        mined = [j for j in jobs if j.state == "mined"]
        relayer = self.sender.relayer
        requests: list[tuple[str, list[Any]]] = []
        if last is not None:
            requests += self.gate.node_questions(last)
        if not jobs:
            return self.gate.judge(last, await self.client.batch_each(requests)) if last else None
        if last is None:  # else the gate's first question is this count: asked once
            requests.append(("eth_getTransactionCount", [relayer, "latest"]))
        if live:
            requests.append(("eth_getTransactionCount", [relayer, "pending"]))
        requests.append(("eth_blockNumber", []))
        hashes = [a.hash for job in live for a in job.attempts]
        requests += [("eth_getTransactionReceipt", [h]) for h in hashes]
        numbers = sorted({j.mined_block for j in mined if j.mined_block is not None})
        requests += [("eth_getBlockByNumber", [hex(n), False]) for n in numbers]
        answers = iter(await self.client.batch_each(requests))
        if last is not None:
            count, block = next(answers), next(answers)
            fault = self.gate.judge(last, [count, block])
            if fault is not None:
                return fault
        else:
            count = next(answers)
        # Below the mined count the node holds a transaction of ours for every nonce; a
        # live job at or above the pending count has none there (a reorg took it, or the
        # node dropped it).
        mined_count = quantity(count)
        held = quantity(next(answers)) if live else 0
        head = quantity(next(answers))
        self._fees = None  # the market, asked at most once a step, when a replacement needs it
        if self._front is None:  # first look: how long it has been the front is unknown,
            self._front = (mined_count, 0)  # so its send time alone decides (as before)
        elif self._front[0] != mined_count:
            self._front = (mined_count, head)
        front_since = self._front[1]
        found = [next(answers) for _ in hashes]
        blocks = dict(zip(numbers, [next(answers) for _ in numbers], strict=True))
        receipts = {h: r for h, r in zip(hashes, found, strict=True) if isinstance(r, dict)}
        unsure = [j for j in mined if not still_there(j, blocks.get(j.mined_block or -1))]
        if unsure:
            again = [a.hash for job in unsure for a in job.attempts]
            answered = await self.client.batch_each(
                [("eth_getTransactionReceipt", [h]) for h in again]
            )
            receipts.update(
                {h: r for h, r in zip(again, answered, strict=True) if isinstance(r, dict)}
            )
        receipts = await canonical(self.client, receipts)
        vanished = [j for j in unsure if all(a.hash not in receipts for a in j.attempts)]
        forgot = await forgotten(self.client, vanished)
        if forgot is not None:
            return forgot
        again_ids = {j.id for j in unsure}
        for job in (j for j in jobs if j.state == "live" or j.id in again_ids):
            receipt = next((receipts[a.hash] for a in job.attempts if a.hash in receipts), None)
            if job.state == "mined":
                moved = receipt is not None and receipt["transactionHash"].lower() != job.mined_hash
                if receipt is None or moved:
                    log.warning("job %d: receipt of %s vanished (reorg)", job.id, job.mined_hash)
                    await self.outbox.job_unmined(job.id, self.sender.now_ms())
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
                first = self._unexplained.setdefault(job.id, self.monotonic())
                if self.monotonic() - first < NONCE_TAKEN_AFTER:
                    report.waiting += 1
                    continue
                self._unexplained.pop(job.id, None)
                detail = (
                    f"nonce {job.nonce} was used by another transaction from "
                    f"{self.sender.relayer}; requeued for a new nonce"
                )
                log.warning("job %d: %s", job.id, detail)
                await self.outbox.job_dropped(job.id, detail, self.sender.now_ms())
                self.sender.nonces.invalidate()
                report.dropped += 1
            elif self.gate.may_send:
                lost = job.nonce is not None and job.nonce >= held
                waited = head - front_since if job.nonce == mined_count else None
                await self._nudge(job, head, report, lost=lost, front_waited=waited)
        return None

    async def _mined(self, job: Job, receipt: dict[str, Any], report: StepReport) -> None:
        tx_hash = str(receipt["transactionHash"]).lower()
        status = int(receipt["status"], 16)
        members = await self.outbox.intents_of_job(job.id)
        outcomes: list[tuple[str, str, str]] = []
        isolations: list[tuple[str, str, str]] = []
        run = BatchRun.of(receipt["logs"], self.factory) if status == 1 else BatchRun.none()
        if job.kind == "batch" and status == 1:
            stipend = calls.member_gas(Call(job.kind, job.to_address, job.data))
            for intent in members:
                revert = run.failures.get(intent.wallet)
                why = misbehaved(revert, stipend) if revert is not None else None
                if revert is not None and why is None:
                    outcomes.append((intent.key, "obsolete", f"{BATCH_MEMBER}: {revert}"))
                elif why is not None:
                    # Not failed on a batch's word: alone, with its own gas, it may close;
                    # if it does not, the single close's own limits end it.
                    why = f"in closeBatch {tx_hash} its close {why}"
                    isolations.append((intent.wallet, intent.key, why))
                    if intent.state == "submitted":
                        detail = f"{ISOLATED_DETAIL}: {why}; sent alone next"
                        outcomes.append((intent.key, "pending", detail))
        elif status == 0 and members:
            reverted = await self._revert_reason(Call(job.kind, job.to_address, job.data))
            state = "obsolete" if reverted is not None and reverted[1] else "failed"
            detail = f"{REVERTED}: {reverted[0] if reverted else 'no reason given'}"
            outcomes = [(m.key, state, detail) for m in members if m.state == "submitted"]
        misses: list[tuple[str, int | None]] = []
        if status == 1:
            acted = closed_wallets(receipt["logs"])
            failed = {w.lower() for w in run.failures}
            unreached = {w.lower() for w in run.unreached}
            raw = next((a.raw for a in job.attempts if a.hash == tx_hash), None)
            called = called_wallets(raw) if raw is not None else frozenset()
            for m in members:
                wallet = m.wallet.lower()
                if m.state == "submitted" and wallet in unreached and wallet not in acted:
                    # The batch stopped to keep its reserve before trying it: not a close
                    # without effect, just not sent yet.
                    detail = f"{tx_hash} stopped before it (BatchIncomplete); requeued"
                    outcomes.append((m.key, "pending", detail))
                elif m.state == "submitted" and wallet not in acted and wallet not in failed:
                    if wallet in called:
                        await self._no_effect(m, tx_hash, outcomes, misses)
                    else:
                        # Not in what was mined (its cancel, or a batch rewritten without
                        # it before a reorg reopened it): a new job at a new nonce.
                        outcomes.append((m.key, "pending", f"{tx_hash} did not call it; requeued"))
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
        gas_used = int(receipt["gasUsed"], 16)
        await self.outbox.job_mined(
            job.id,
            tx_hash=tx_hash,
            block=int(receipt["blockNumber"], 16),
            block_hash=str(receipt["blockHash"]),
            status=status,
            gas_used=gas_used,
            effective_gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
            outcomes=outcomes,
            now_ms=self.sender.now_ms(),
            misses=misses,
            isolations=isolations,
        )
        self.gate.spent(gas_used)
        for wallet, key, why in isolations:
            self.alerts.raise_(ISOLATED, isolated_message(wallet, key, why, self.settings))
        for key, state, detail in outcomes:
            if state == "failed" and detail.startswith(NO_EFFECT_DETAIL):
                self.alerts.raise_(NO_EFFECT, f"intent {key} failed: {detail}")
            elif state == "failed" and detail.startswith(REVERTED):
                self.alerts.raise_(CLOSE_FAILED, f"intent {key} failed: {tx_hash} {detail}")
        report.mined += 1
        for _, state, _ in outcomes:
            field_name = "requeued" if state == "pending" else state
            setattr(report, field_name, getattr(report, field_name) + 1)
        self.sender.hook("mined")

    async def _no_effect(
        self,
        intent: IntentRow,
        tx_hash: str,
        outcomes: list[tuple[str, str, str]],
        misses: list[tuple[str, int | None]],
    ) -> None:
        """Our transaction called this wallet, ran, and closed nothing: requeued while
        under `max_mined_without_effect`, then failed and parked until its session has a
        new event on chain (`Submitter` unparks it)."""
        count = intent.misses + 1
        limit = self.settings.max_mined_without_effect
        if count < limit:
            detail = f"{tx_hash} ran but did not close it ({count} of {limit}); requeued"
            log.warning("intent %s: %s", intent.key, detail)
            outcomes.append((intent.key, "pending", detail))
            misses.append((intent.key, None))
            return
        sessions = await self.store.sessions({intent.wallet})
        session = sessions.get(intent.wallet)
        at = max(intent.position, session.last_position if session is not None else 0)
        outcomes.append((intent.key, "failed", no_effect_detail(tx_hash, count, limit)))
        misses.append((intent.key, at))

    async def _nudge(
        self, job: Job, head: int, report: StepReport, *, lost: bool, front_waited: int | None
    ) -> None:
        """A live, unmined job: send what was never sent (or what the node lost); replace
        what is stuck. Stuck means unmined `replace_after_blocks` after it was sent AND
        after its nonce became the next one the chain takes (`front_waited`, None for a job
        behind that nonce), or, behind the front, only once the market has outbid its
        fees: a job behind the front that still pays enough waits for the nonces before
        it, not for a better fee, and replacing it would only load a node that is already
        slow (a storm's pipeline of 57 batches on a busy anvil once replaced 100+ a step
        until the node ran out of memory). Outbid jobs are all replaced in the same step,
        so a fee spike does not make a queue wait for its front one bump at a time."""
        latest = job.latest
        if (lost or latest.state in ("signed", "rejected")) and job.id not in self.sender.force:
            if job.kind == "cancel" or await self._wants_all(job):
                await self.sender.send(job.id, latest.hash, latest.raw, head)
                return
            # A reorg took it off the chain with less left to do: replace it now rather
            # than send again what is no longer wanted.
            self.sender.force.add(job.id)
        sent_at = self.sender.sent_block.setdefault(latest.hash, head)
        after = self.settings.replace_after_blocks
        previous = Fees(latest.max_fee_per_gas, latest.max_priority_fee_per_gas)
        if job.id not in self.sender.force:
            if head - sent_at < after:
                return
            at_front = front_waited is not None and front_waited >= after
            if not at_front and not outbid(previous, await self._market(), self.settings):
                return
        self.sender.force.discard(job.id)
        if job.nonce is None:
            return
        members = await self.outbox.intents_of_job(job.id)
        wanted = [m for m in members if m.state == "submitted"]
        still_needed = bool(wanted)
        market = await self._market()
        if still_needed or job.kind == "cancel":
            # A cancel stays uncapped on every bump, or it could strand its nonce.
            fees = replacement(previous, market, self.settings, capped=job.kind != "cancel")
            if fees is None:
                # At the cap: keep the transaction in front of the node and wait.
                await self.sender.send(job.id, latest.hash, latest.raw, head, quiet=True)
                self.sender.sent_block[latest.hash] = head
                return
            call = Call(job.kind, job.to_address, job.data)
            if job.kind == "batch" and len(wanted) < len(members):
                # Some members are no longer wanted (a reorg orphaned their trigger): the
                # replacement closes only the others.
                call = calls.batch(
                    self.factory,
                    [(m.wallet, m.action, m.reason) for m in wanted],
                    member_gas=calls.member_gas(call),
                )
            gas = job.gas
            report.replaced += 1
        else:
            # Nothing left for it to do, but its nonce must be used: a cancel may exceed
            # the cap, because a stranded nonce blocks every later transaction.
            fees = replacement(previous, market, self.settings, capped=False)
            if fees is None:  # pragma: no cover - uncapped replacement always exists
                return
            call = calls.cancel(self.sender.relayer)
            gas = calls.CANCEL_GAS
            report.cancelled += 1
            log.info("job %d: nothing left to do, cancelling nonce %d", job.id, job.nonce)
        signed = self.sender.sign(call, gas, job.nonce, fees)
        rewritten = call.kind != job.kind or call.data != job.data
        await self.outbox.add_attempt(
            job.id,
            job.nonce,
            tx_hash=signed.hash,
            raw=signed.raw,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            now_ms=self.sender.now_ms(),
            rewrite=(call.kind, call.to, call.data, gas) if rewritten else None,
        )
        self.sender.hook("signed")
        await self.sender.send(job.id, signed.hash, signed.raw, head)

    async def _market(self) -> Fees:
        if self._fees is None:
            self._fees = await fetch_fees(self.client, self.settings)
        return self._fees

    async def _wants_all(self, job: Job) -> bool:
        """Whether every intent the job carries still wants its transaction."""
        members = await self.outbox.intents_of_job(job.id)
        return bool(members) and all(m.state == "submitted" for m in members)

    async def confirm(self, report: StepReport) -> None:
        claims = await self.outbox.open_claims()
        if not claims:
            # A mined cancel carries no open intent: it is done too.
            await self.outbox.finish_settled_jobs(self.sender.now_ms())
            return
        closing = await self.store.closing_events({c.wallet for c in claims})
        settled: list[tuple[str, str, str]] = []
        confirmed: list[tuple[str, int, str]] = []
        now_ms = self.sender.now_ms()
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

    async def _revert_reason(self, call: Call) -> tuple[str, bool] | None:
        """Why `call` reverts now (name, obsolete), or None if it would not revert."""
        (answer,) = await self.client.batch_each(
            [("eth_call", [self.sender.tx_fields(call), "latest"])]
        )
        if isinstance(answer, CallReverted):
            revert = decode_revert(answer.data)
            return str(revert), revert.obsolete
        if isinstance(answer, Exception):
            raise answer
        return None
