"""Submitting pending intents: guards, preflight, grouping, then write-ahead and send.

Pending intents pass the guards (`executor.guards`), then a preflight (`eth_call` with the
decoded revert deciding obsolete or failed) and a gas estimate, or, for a factory batch,
one `eth_simulateV1` that proves every member at once. What may share a batch, and a
batch's gas, is `executor.batching`'s; how much a step may put in flight, and the block
gas limit no transaction exceeds, `executor.capacity`'s. Each resulting job gets its
nonce, is signed, and *the job with its signed transaction is written to the outbox*
before anything is sent; the sends of a step go out in one JSON-RPC batch in nonce order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chain import CallReverted, ChainClient, calls
from chain.reverts import decode_revert
from executor.alerts import CLOSE_FAILED, Alerts
from executor.batching import Batcher, Group
from executor.capacity import Market, intake, read_market, room
from executor.fees import Fees
from executor.gate import SendGate
from executor.guards import (
    Obsolete,
    Refusal,
    balance_refusal,
    check_intent,
    explained_by_index,
    fee_refusal,
    rate_refusal,
)
from executor.outbox import ISOLATED_DETAIL, IntentRow, NewJob, Outbox
from executor.sending import Sender
from executor.settings import ExecutorSettings
from indexer import IndexerStore, Session

if TYPE_CHECKING:
    from executor.executor import StepReport

log = logging.getLogger("warden.executor")


class Submitter:
    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        store: IndexerStore,
        settings: ExecutorSettings,
        *,
        factory: str,
        dry_run: bool,
        sender: Sender,
        gate: SendGate,
        alerts: Alerts,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.store = store
        self.settings = settings
        self.factory = factory
        self.dry_run = dry_run
        self.sender = sender
        self.gate = gate
        self.alerts = alerts
        self.batcher = Batcher(
            client, outbox, settings, factory=factory, relayer=sender.relayer,
            dry_run=dry_run, alerts=alerts, clock_ms=sender.now_ms,
        )  # fmt: skip
        self._latencies: list[float] = []  # seconds from intent stored to its first send
        self.block_gas_limit: int | None = None  # the node's, as last read
        # (to, data) -> eth_estimateGas answer, asked with this step's preflight
        self._estimates: dict[tuple[str, str], str] = {}

    async def submit(self, now: int, report: StepReport) -> None:
        await self._unpark(report)
        # As much as the room in flight holds (as of the last block gas limit read): a
        # burst goes out as a pipeline of consecutive nonces over the next steps.
        in_flight = 0 if self.dry_run else await self.outbox.gas_in_flight()
        limit = intake(self.block_gas_limit, in_flight)
        if limit == 0:
            report.backlog = True  # the room in flight is full
            return
        pending = await self.outbox.intents("pending", limit=limit)
        if not pending:
            return
        report.backlog = len(pending) >= limit  # more may wait behind these
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
        settings = self.settings
        now_ms = self.sender.now_ms()
        recent = await self.outbox.jobs_since(sessions, now_ms - settings.rate_window * 1000)
        ready: list[tuple[IntentRow, Session]] = []
        obsolete: list[tuple[str, str, str]] = []
        for intent in pending:
            session = sessions.get(intent.wallet)
            verdict = check_intent(
                intent, session, relayer=self.sender.relayer, settings=settings, now=now
            ) or rate_refusal(recent.get(intent.wallet, 0), settings)
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
        if not self.dry_run and self.gate.breaker_open:
            await self._refuse([i for i, _ in ready], self.gate.refusal(), report)
            return
        market = await read_market(
            self.client, settings, self.sender.relayer, balance=not self.dry_run
        )
        self.block_gas_limit = self.batcher.block_gas_limit = market.block_gas_limit
        refusal = fee_refusal(market.fees.max_fee_per_gas, self.settings.max_fee_per_gas)
        if refusal is None and market.balance is not None:
            self.sender.last_balance = market.balance
            refusal = balance_refusal(market.balance, self.sender.relayer, settings)
            self.sender.alert_balance(refusal)
        if refusal is not None:
            await self._refuse([i for i, _ in ready], refusal, report)
            return
        batcher = self.batcher
        await batcher.prepare(ready)
        verified, ready = await batcher.verify(ready)
        ready = await self._preflight(ready, now, report)
        await self._send_jobs(verified + batcher.group(ready), market, in_flight, report)

    async def _preflight(
        self, ready: list[tuple[IntentRow, Session]], now: int, report: StepReport
    ) -> list[tuple[IntentRow, Session]]:
        """`eth_call` each close as the relayer would send it; a revert decides, except
        a revert that would make the intent obsolete while the indexed session does not
        explain it: the node is ahead of the index (an owner's close, a revoke or an
        extension in a block not indexed yet, which a reorg may still remove), so the
        intent waits for the index instead of being settled on the node's word alone."""
        singles = [calls.single(i.wallet, i.action, i.reason) for i, _ in ready]
        # A close that will go alone (nothing to batch it with) is estimated in the same
        # round trip: one node call less between its block and its transaction.
        batchable = self.batcher.batchable
        alone = [
            (i.key, c)
            for (i, s), c in zip(ready, singles, strict=True)
            if len(ready) == 1 or not batchable(i, s)
        ]
        requests = [("eth_call", [self.sender.tx_fields(c), "latest"]) for c in singles]
        requests += [("eth_estimateGas", [self.sender.tx_fields(c)]) for _, c in alone]
        replies = await self.client.batch_each(requests)
        answers = replies[: len(singles)]
        self._estimates = {
            (c.to, c.data): estimate
            for (_, c), estimate in zip(alone, replies[len(singles) :], strict=True)
            if isinstance(estimate, str)
        }
        passed: list[tuple[IntentRow, Session]] = []
        settled: list[tuple[str, str, str]] = []
        for (intent, session), answer in zip(ready, answers, strict=True):
            if isinstance(answer, CallReverted):
                revert = decode_revert(answer.data)
                if revert.obsolete and not explained_by_index(revert.name, session, now):
                    wait = Refusal(
                        "index_behind",
                        f"preflight: {revert}, which the indexed session does not show yet: "
                        "waiting for the indexer",
                        False,
                    )
                    await self._refuse([intent], wait, report)
                    continue
                state = "obsolete" if revert.obsolete else "failed"
                detail = f"preflight: {revert}"
                why = self.batcher.batchable.isolated.get(intent.wallet)
                if state == "failed" and why is not None:
                    detail += f" ({ISOLATED_DETAIL}: {why})"
                    self.alerts.raise_(
                        CLOSE_FAILED,
                        f"intent {intent.key} failed: its close alone reverts in preflight "
                        f"({revert}), after it was taken out of batching ({why})",
                    )
                settled.append((intent.key, state, detail))
            elif isinstance(answer, Exception):
                raise answer
            else:
                passed.append((intent, session))
        await self.outbox.settle(settled, self.sender.now_ms())
        for _, state, _ in settled:
            setattr(report, state, getattr(report, state) + 1)
        return passed

    async def _send_jobs(
        self, groups: list[Group], market: Market, in_flight: int, report: StepReport
    ) -> None:
        """Sign, store and send each group while the room in flight lasts (the rest stays
        pending); a single close is estimated, and sent only within `single_close_gas_cap`
        and the block gas limit."""
        # estimated with this step's preflight (an estimate that failed is asked again)
        early, self._estimates = self._estimates, {}
        if not groups:
            return
        fees = market.fees
        left = room(market.block_gas_limit, in_flight)
        unknown = [
            g.call for g in groups if g.gas is None and (g.call.to, g.call.data) not in early
        ]
        answers = iter(
            await self.client.batch_each(
                [("eth_estimateGas", [self.sender.tx_fields(call)]) for call in unknown]
            )
            if unknown
            else []
        )
        known = {i.wallet.lower() for g in groups for i in g.members}  # as check_call asks
        head = market.head
        if not self.dry_run and not self.sender.nonces.synced:
            await self.sender.sync()
        stored: list[tuple[int, str, str, list[IntentRow]]] = []
        for g in groups:
            call, members = g.call, g.members
            gas: int | None = g.gas
            if gas is None:
                estimate = early.get((call.to, call.data)) or next(answers)
                if isinstance(estimate, CallReverted):
                    # A single close that changed between preflight and now: decided on
                    # the next step.
                    revert = decode_revert(estimate.data)
                    log.warning("estimateGas of %s reverted: %s", call.kind, revert)
                    continue
                if isinstance(estimate, Exception):
                    raise estimate
                gas = await self._capped(
                    int(estimate, 16), call.kind, members, market.block_gas_limit, report
                )
            if gas is None:
                continue
            if gas > left and (stored or in_flight > 0):
                # The pipeline is full: these wait, pending, for a step with room.
                report.backlog = True
                continue
            problem = calls.check_call(
                call.to, call.data, factory=self.factory, relayer=self.sender.relayer,
                known=known.__contains__,
            )  # fmt: skip
            if problem is not None:
                await self._refuse(members, Refusal("call_shape", problem, True), report)
                continue
            job = NewJob(call.kind, call.to, call.data, gas, tuple(m.key for m in members))
            if not self.dry_run and not self.gate.admit(gas):
                await self._refuse(members, self.gate.refusal(), report)
                continue
            if self.dry_run:
                detail = (
                    f"dry-run: would send {call.kind} to {call.to} with data {call.data} gas "
                    f"{gas} max fee {fees.max_fee_per_gas} tip {fees.max_priority_fee_per_gas}"
                )
                await self.outbox.record_dry_run(job, detail, self.sender.now_ms())
                log.info("%s (%d intents)", detail, len(members))
                report.dry_run += len(members)
                continue
            nonce = self.sender.nonces.allocate()
            signed = self.sender.sign(call, gas, nonce, fees)
            for _ in range(3):
                if not await self.outbox.signed_before(signed.hash):
                    break
                # The very bytes of an earlier job (its nonce came back after a reorg and
                # the same close takes it with the same fees): one wei more on both fees
                # makes it a transaction of its own, so the outbox keeps one row per hash.
                fees = Fees(fees.max_fee_per_gas + 1, fees.max_priority_fee_per_gas + 1)
                signed = self.sender.sign(call, gas, nonce, fees)
            job_id = await self.outbox.create_job(
                job,
                relayer=self.sender.relayer,
                nonce=nonce,
                tx_hash=signed.hash,
                raw=signed.raw,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                now_ms=self.sender.now_ms(),
            )
            self.sender.hook("signed")
            report.jobs += 1
            report.submitted += len(members)
            stored.append((job_id, signed.hash, signed.raw, members))
            left -= gas
        await self._send_stored(stored, head)

    async def _capped(
        self,
        estimate: int,
        kind: str,
        members: list[IntentRow],
        block_gas_limit: int,
        report: StepReport,
    ) -> int | None:
        """The gas limit of a single close: the estimate and its margin, never above
        `single_close_gas_cap` nor the block gas limit; None when the estimate alone is
        above either (the intent has failed: a close that needs that much is not one
        Warden sends, or not one the chain's blocks can hold)."""
        cap = min(self.settings.single_close_gas_cap, block_gas_limit)
        if estimate <= cap:
            return min(estimate * (100 + self.settings.gas_margin_percent) // 100, cap)
        limit = (
            f"single_close_gas_cap {cap}"
            if cap == self.settings.single_close_gas_cap
            else f"the node's block gas limit {cap}"
        )
        reason = f"eth_estimateGas says its {kind} needs {estimate} gas, above {limit}: not sent"
        await self._refuse(members, Refusal("gas_cap", reason, True), report)
        for m in members:
            self.alerts.raise_(CLOSE_FAILED, f"intent {m.key} ({m.wallet}) failed: {reason}")
        return None

    async def _send_stored(
        self, stored: list[tuple[int, str, str, list[IntentRow]]], head: int
    ) -> None:
        """Send transactions already written to the outbox, in one JSON-RPC batch (in nonce
        order: a node takes a batch's items in order), then record each answer. A crash
        in between leaves them signed: the next step sends them again (already known)."""
        if not stored or not self.sender.allowed(len(stored)):
            return
        answers = await self.client.batch_each(
            [("eth_sendRawTransaction", [raw]) for _, _, raw, _ in stored]
        )
        for (job_id, tx_hash, _, members), answer in zip(stored, answers, strict=True):
            await self.sender.sent(job_id, tx_hash, answer, head)
            sent_ms = self.sender.now_ms()
            self._latencies.extend(max(0, sent_ms - m.created_ms) / 1000 for m in members)

    async def _unpark(self, report: StepReport) -> None:
        """Intents failed because their closes were mined without effect are tried again
        once their session has a newer event on chain than when they failed."""
        parked = await self.outbox.parked()
        if not parked:
            return
        sessions = await self.store.sessions({p.wallet for p in parked})
        moved = [
            (p, s)
            for p in parked
            if (s := sessions.get(p.wallet)) is not None
            and s.status != "closed"
            and s.last_position > p.position
        ]
        for p, s in moved:
            detail = (
                f"its session moved on chain (position {s.last_position}, after "
                f"{p.position}) since its closes were mined without effect: tried again"
            )
            log.warning("intent %s: %s", p.key, detail)
            await self.outbox.unpark([p.key], detail, self.sender.now_ms())
        report.requeued += len(moved)

    def drain_latencies(self) -> list[float]:
        """Trigger-to-transaction times since the last call (for the daemon's metrics)."""
        out, self._latencies = self._latencies, []
        return out

    async def _refuse(
        self, intents: Sequence[IntentRow], refusal: Refusal, report: StepReport
    ) -> None:
        now_ms = self.sender.now_ms()
        for intent in intents:
            await self.outbox.refuse(
                intent.key, refusal.guard, refusal.reason, now_ms, final=refusal.final
            )
        report.refused += len(intents)
        if refusal.final:
            report.failed += len(intents)
