"""Whether the relayer may send at all: the gas budget's circuit breaker and the node's
consistency. Reads, tracking and indexing go on either way; only sending stops.

**Gas budget.** `max_gas_per_hour` bounds the gas of the relayer's transactions over the
last hour (wall clock): the gas used by those mined in the window (the receipt's
`gasUsed`, counted from when the receipt was first seen, so a restart does not forget it:
it is in SQLite), plus the gas limit of every job still in flight. Once that reaches the
budget the breaker is open: no new transaction, no replacement, no re-send, and one ALERT.
A new job is admitted while the total is below the budget, so the budget can be passed by
at most one transaction's gas limit. The breaker closes by itself once the window's total
falls below the budget again (old spends leave the window, jobs in flight are mined with
less gas than their limit), or when the budget is raised and Warden restarted; a restart
alone does not close it.

**A node that forgets.** A node that gave us a receipt must keep it while its block is
on its chain, and must count the sender's nonces past every nonce it mined. Two checks,
each against the block's hash recorded with the receipt, so a reorg (which replaces the
block) is never taken for forgetting:

- the sender's mined-transaction count (`latest`) is at or below the highest nonce we hold
  a receipt for, while the block of that receipt is still on the node's chain with the
  same hash (`check_node`);
- a receipt we recorded is gone while its block is still there with the same hash
  (`Tracker.track`, through `forgot`).

Either pauses sending (ALERT), and the outbox is left as it is: nothing is requeued or
re-sent from what such a node says. Sending resumes at the first step where the node is
consistent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chain import ChainClient
from executor.alerts import GAS_BUDGET, NODE_INCONSISTENT, Alert, Alerts
from executor.guards import Refusal
from executor.outbox import Outbox
from executor.settings import ExecutorSettings
from executor.spending import MinedNonce

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Protection:
    """What the daemon publishes of the relayer's protection."""

    breaker_open: bool
    gas_budget: int  # per hour
    gas_in_window: int  # used in the last hour plus in flight
    gas_spent_total: int  # gas used by receipts seen since start (a counter)
    node_fault: str | None  # why sending is paused, if it is
    alerts: tuple[Alert, ...]  # newest last


class SendGate:
    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        settings: ExecutorSettings,
        *,
        relayer: str,
        alerts: Alerts,
        clock_ms: Callable[[], int],
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.budget = settings.max_gas_per_hour
        self.relayer = relayer
        self.alerts = alerts
        self.clock_ms = clock_ms
        self.breaker_open = False
        self.committed = 0  # gas in the window, as of the last check and admissions since
        self.spent_total = 0
        self.node_fault: str | None = None

    @property
    def may_send(self) -> bool:
        return not self.breaker_open and self.node_fault is None

    def snapshot(self) -> Protection:
        return Protection(
            self.breaker_open, self.budget, self.committed, self.spent_total, self.node_fault,
            self.alerts.recent,
        )  # fmt: skip

    # -- the gas budget ----------------------------------------------------------------
    async def check_budget(self) -> None:
        spent, flight = await self.outbox.gas_in_window(self.clock_ms() - HOUR_MS)
        self.committed = spent + flight
        self._breaker(self.committed >= self.budget)

    def admit(self, gas: int) -> bool:
        """Whether a new job with this gas limit may be sent; counts it if so."""
        if self.breaker_open:
            return False
        self.committed += gas
        self._breaker(self.committed >= self.budget)
        return True

    def spent(self, gas_used: int) -> None:
        self.spent_total += gas_used

    def refusal(self) -> Refusal:
        return Refusal(
            GAS_BUDGET,
            f"circuit breaker open: {self.committed} gas in the last hour (used and in "
            f"flight) against max_gas_per_hour {self.budget}; sending resumes by itself "
            "when the window falls under the budget",
            False,
        )

    def _breaker(self, tripped: bool) -> None:
        if tripped and not self.breaker_open:
            self.alerts.raise_(
                GAS_BUDGET,
                f"circuit breaker open: relayer {self.relayer} used or committed "
                f"{self.committed} gas in the last hour, max_gas_per_hour is {self.budget}; "
                "no transaction is sent until the window falls under the budget",
            )
        elif not tripped and self.breaker_open:
            self.alerts.resolved(
                GAS_BUDGET,
                f"circuit breaker closed: {self.committed} gas in the last hour, under "
                f"max_gas_per_hour {self.budget}; sending resumes",
            )
        self.breaker_open = tripped

    # -- the node ----------------------------------------------------------------------
    async def check_node(self) -> str | None:
        """Why the node is inconsistent with a receipt it gave us, if it is (the count
        check; see the module). The tracker asks the same questions in its own first
        batch (`node_questions`, `judge`); this is the check on its own."""
        last = await self.outbox.last_mined(self.relayer)
        if last is None:
            return None
        return self.judge(last, await self.client.batch_each(self.node_questions(last)))

    def node_questions(self, last: MinedNonce) -> list[tuple[str, list[Any]]]:
        """The count check's questions, count first: a reorg between the two answers makes
        the block's hash differ, never a false alarm. `judge` reads their answers; the
        tracker asks them first in its batch and reuses the count (the relayer's mined
        transactions at `latest`, slow on a loaded anvil: asked once a step)."""
        return [
            ("eth_getTransactionCount", [self.relayer, "latest"]),
            ("eth_getBlockByNumber", [hex(last.block), False]),
        ]

    def judge(self, last: MinedNonce, answers: Sequence[Any]) -> str | None:
        """Why the node is inconsistent, from the answers to `node_questions(last)`."""
        count, block = answers
        for answer in (count, block):
            if isinstance(answer, Exception):
                raise answer
        mined = int(count, 16)
        if mined <= last.nonce and isinstance(block, dict) and block["hash"] == last.block_hash:
            return (
                f"the node counts {mined} mined transactions from {self.relayer}, but it "
                f"gave us a receipt for nonce {last.nonce} in block {last.block} "
                f"({last.block_hash}), which is still on its chain"
            )
        return None

    def node_state(self, fault: str | None) -> None:
        """This step's verdict on the node: alert when it turns inconsistent, log when it
        is consistent again."""
        if fault is not None and self.node_fault is None:
            self.alerts.raise_(
                NODE_INCONSISTENT,
                f"{fault}: sending paused, the outbox is kept as it is; it resumes once the "
                "node is consistent again (check the node, or point Warden at another)",
            )
        elif fault is None and self.node_fault is not None:
            self.alerts.resolved(NODE_INCONSISTENT, "the node is consistent again: sending resumes")
        self.node_fault = fault
