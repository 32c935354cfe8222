"""The relayer's side of the wire: signing, sending, and what the node's answer means.

`Sender` is shared by tracking (re-sends, replacements) and submission (new jobs): it
holds the relayer's nonce sequence and what the node told us that outlives one call (the
head each transaction was first sent at, the jobs the node found underpriced, whether the
relayer is short of funds).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from chain import ChainClient, TxRejected
from chain.calls import Call
from executor.alerts import RELAYER_BALANCE, Alerts
from executor.fees import Fees
from executor.guards import Refusal
from executor.nonces import NonceManager
from executor.outbox import Outbox
from executor.signer import SignedTx, Signer

log = logging.getLogger("warden.executor")

Hook = Callable[[str], None]


class Sender:
    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        *,
        signer: Signer | None,
        relayer: str,
        chain_id: int,
        hook: Hook,
        clock_ms: Callable[[], int],
        alerts: Alerts,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.signer = signer
        self.relayer = relayer
        self.chain_id = chain_id
        self.nonces = NonceManager(client, relayer)
        self.hook = hook
        self.now_ms = clock_ms
        self.sent_block: dict[str, int] = {}  # tx hash -> head when sent (memory only)
        self.force: set[int] = set()  # job ids to replace at once (underpriced, below base)
        self.starved = False  # below the minimum balance: alert once, not every step
        self.last_balance: int | None = None
        self.alerts = alerts
        # Asked before every broadcast: a replica that may no longer lead (its lease's
        # trust ran out) keeps what it signed in the outbox for the next leader to send.
        self.may_send = may_send
        self.held_back = 0  # broadcasts skipped for that reason

    async def sync(self) -> None:
        """Sync the nonce with the node and the outbox (at start, and after the node
        disagreed with us)."""
        live = await self.outbox.jobs("live")
        stored = await self.outbox.next_nonce(self.relayer)
        nxt = await self.nonces.sync([j.nonce for j in live if j.nonce is not None], stored)
        log.info("relayer %s, next nonce %d, %d live transactions", self.relayer, nxt, len(live))

    async def send(
        self, job_id: int, tx_hash: str, raw: str, head: int, *, quiet: bool = False
    ) -> None:
        if not self.allowed(1):
            return
        (answer,) = await self.client.batch_each([("eth_sendRawTransaction", [raw])])
        await self.sent(job_id, tx_hash, answer, head, quiet=quiet)

    def allowed(self, count: int) -> bool:
        """Whether `count` written transactions may be broadcast now."""
        if self.may_send():
            return True
        self.held_back += count
        log.warning("not sending %d written transaction(s): this replica's lease may have "
                    "expired; they stay in the outbox", count)  # fmt: skip
        return False

    async def sent(
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
                    self.force.add(job_id)
                elif exc.kind == "nonce_too_high":
                    self.nonces.invalidate()
                elif exc.kind == "insufficient_funds":
                    self.alert_balance(Refusal("relayer_balance", str(exc), False))
                if not quiet:
                    log.warning("transaction %s refused: %s", tx_hash, exc)
                await self.outbox.mark_rejected(tx_hash, str(exc))
                return
        self.hook("sent")
        self.sent_block.setdefault(tx_hash, head)
        await self.outbox.mark_sent(tx_hash, self.now_ms())

    def tx_fields(self, call: Call) -> dict[str, str]:
        return {"from": self.relayer, "to": call.to, "data": call.data}

    def sign(self, call: Call, gas: int, nonce: int, fees: Fees) -> SignedTx:
        if self.signer is None:
            raise RuntimeError("signing in dry-run")
        return self.signer.sign(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": call.to,
                "value": 0,
                "data": call.data,
                "gas": gas,
                "maxFeePerGas": fees.max_fee_per_gas,
                "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            }
        )

    def alert_balance(self, refusal: Refusal | None) -> None:
        if refusal is not None and not self.starved:
            self.alerts.raise_(RELAYER_BALANCE, refusal.reason)
        elif refusal is None and self.starved:
            self.alerts.resolved(
                RELAYER_BALANCE,
                f"relayer {self.relayer} funded again ({self.last_balance} wei): sending resumes",
            )
        self.starved = refusal is not None
