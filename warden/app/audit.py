"""The balance audit as alerts: `alert.balance_drift` for each open session whose indexed
balance is not what its token's `balanceOf` says, cleared when a later pass finds the
wallet in line (a `sync()` or its next event caught the index up) or closed.

The leader's loop runs it a page at a time (`audit.page` sessions: one batched `eth_call`
per step, only in steps where the indexer is caught up), so 100,000 sessions never make
one burst and never delay indexing or sending; a full pass starts every `audit.interval`
seconds. Each page is read from the index and checked against the token at the indexed
block, by its hash (EIP-1898): an event in a block not yet indexed makes no drift, and a
block a reorg removed is refused by the node instead of answered for another block.

What the token or the node may do, and what comes of it:

- `balanceOf` answers another amount (a plain transfer in, a lying token): drift;
- it reverts, its execution fails (an invalid opcode, out of gas), or it answers
  anything but one 32-byte word (no code, short or long data):
  the balance cannot be read — raised as drift too, with `on_chain: null` and the
  `problem` (a close of that session may fail the same way);
- the node fails one call (not a revert): that wallet is left as it was this pass;
- the node fails them all, or the whole request, or answers garbage for every session
  of a page that spans several tokens (several tokens do not all break at once; a lying
  node answering `0x` to everything would otherwise raise an alert per session): the
  pass is given up, logged, and the next starts after `audit.interval`. Nothing the
  audit meets ends the step or the loop.

Ids are stable: `alert.balance_drift:<wallet>:<block first found>:<its hash's first 8
hex digits>` and the clearing `<that id>/cleared`. A restarted leader reads which
wallets the log shows raised (`restore`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from eth_utils.crypto import keccak

from chain import BadResponse, CallReverted, ChainClient, ChainError
from database import Deposed
from indexer import BlockRef, IndexerStore, Session
from notify import KINDS, EventLog, NotifyEvent
from warden.app.api.live import AuditFigures
from warden.app.settings.models import AuditConfig

log = logging.getLogger("warden.audit")

KIND = "alert.balance_drift"
OPEN = ("active", "revoked")  # every status but closed
_BALANCE_OF = "0x" + keccak(text="balanceOf(address)")[:4].hex()
_WORD = 66  # "0x" and 64 hex digits: one uint256
CALL_GAS = 100_000  # a balanceOf takes a few thousand; a token burning gas stops here


@dataclass(frozen=True)
class Reading:
    """What the token said of one wallet: an amount, or why there is none."""

    amount: int | None
    problem: str | None = None


# what nodes say when the call's own execution failed (geth: "invalid opcode: INVALID",
# "out of gas"; anvil: "EVM error InvalidFEOpcode"): the token's doing, not the node's
_EXECUTION_FAILED = ("invalid opcode", "opcode", "out of gas", "outofgas", "evm error",
                     "stack underflow", "stack overflow", "invalid jump")  # fmt: skip


def read_balance(answer: object) -> Reading:
    """A `balanceOf` answer as an amount; anything but one 32-byte word is refused."""
    if isinstance(answer, CallReverted):
        return Reading(None, "balanceOf reverted")
    if _execution_failed(answer):
        return Reading(None, f"balanceOf failed: {str(answer)[:200]}")
    if not isinstance(answer, str) or not answer.startswith("0x"):
        return Reading(None, "balanceOf answered no data")
    if len(answer) != _WORD:
        size = (len(answer) - 2) // 2
        return Reading(None, f"balanceOf answered {size} bytes, not one 32-byte word")
    try:
        return Reading(int(answer, 16))
    except ValueError:
        return Reading(None, "balanceOf answered no number")


@dataclass
class Pass:
    """One full pass over the open sessions, a page per step."""

    pages: AsyncGenerator[list[Session], None]
    started: float
    seen: set[str] = field(default_factory=set)  # raised wallets this pass found open
    sessions: int = 0
    drifting: int = 0
    unreadable: int = 0
    unanswered: int = 0


class BalanceAudit:
    def __init__(
        self,
        client: ChainClient,
        store: IndexerStore,
        log_: EventLog,
        settings: AuditConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.store = store
        self.log = log_
        self.settings = settings
        self.clock = clock
        # wallet → (the block its drift was raised at, the raise's event id)
        self.active: dict[str, tuple[int, str]] = {}
        self.current: Pass | None = None
        self.next_start = clock()  # the first pass starts at once
        self.figures = AuditFigures()  # for /metrics (LiveState.audit)

    @property
    def passes(self) -> int:
        return self.figures.passes

    @property
    def failures(self) -> int:
        return self.figures.given_up

    async def restore(self) -> None:
        """The wallets the log shows raised and not cleared (a killed or deposed leader
        could not clear them): active, so a pass that finds them in line clears them."""
        rows = await self.log.db.fetch(
            "SELECT wallet, body FROM notify_events WHERE kind = ? ORDER BY id", (KIND,)
        )
        for wallet, body in rows:
            doc = orjson.loads(body)
            data = doc.get("data", {})
            if data.get("state") == "raised":
                self.active[wallet] = (int(data.get("block", 0)), str(doc.get("id")))
            else:
                self.active.pop(wallet, None)
        self.figures.drifting = len(self.active)

    async def step(self, checkpoint: BlockRef | None) -> bool:
        """One page of the current pass (starting one when due); True when alert events
        were logged. Errors of the node or the token never leave this method."""
        if self.settings.interval <= 0 or checkpoint is None:
            return False
        if self.current is None:
            if self.clock() < self.next_start:
                return False
            self.current = Pass(self._pages(), self.clock())
        current = self.current
        try:
            page = await anext(current.pages, None)
            if page is None:
                return await self._finish(current, checkpoint)
            return await self._audit(current, page, checkpoint)
        except Deposed:
            raise
        except Exception as exc:  # the node or the database: give this pass up
            await self._give_up(current, f"{type(exc).__name__}: {exc}")
            return False

    async def _pages(self) -> AsyncGenerator[list[Session], None]:
        for status in OPEN:
            async for page in self.store.sessions_pages(status, self.settings.page):
                yield page

    async def _audit(self, current: Pass, page: list[Session], at: BlockRef) -> bool:
        calls = [
            ("eth_call", [{"to": s.token, "data": _call_data(s.wallet), "gas": hex(CALL_GAS)},
                          {"blockHash": at.hash}])
            for s in page
        ]  # fmt: skip
        # one call's own failure must not retry the page: it comes back in its place
        answers = await self.client.batch_each(calls, transient_in_place=True)
        failed = [a for a in answers if _unanswered(a)]
        if page and len(failed) == len(page):  # the node, not the tokens
            raise failed[0]
        if _node_garbled(page, answers):
            raise BadResponse(
                f"eth_call answered no uint256 for any of {len(page)} sessions over "
                f"{len({s.token for s in page})} tokens (e.g. {str(answers[0])[:80]!r})"
            )
        events: list[NotifyEvent] = []
        for s, answer in zip(page, answers, strict=True):
            if s.wallet in self.active:  # only these matter at the end (not 100,000 others)
                current.seen.add(s.wallet)
            if _unanswered(answer):
                current.unanswered += 1  # judged again next pass
                continue
            current.sessions += 1
            reading = read_balance(answer)
            if reading.amount == s.balance:
                if s.wallet in self.active:
                    events.append(self._cleared(s, reading, at, "in line"))
                continue
            current.drifting += reading.amount is not None
            current.unreadable += reading.amount is None
            if s.wallet not in self.active:
                events.append(self._raised(s, reading, at))
                current.seen.add(s.wallet)
        if failed:
            log.warning("balance audit: the node failed %d of %d calls at block %d (%s); "
                        "those wallets are checked next pass", len(failed), len(page),
                        at.number, failed[0])  # fmt: skip
        return await self._log(events)

    async def _finish(self, current: Pass, at: BlockRef) -> bool:
        """The pass is over: clear the drifts of wallets it did not see because they
        closed (or are gone: a reorg removed their creation)."""
        self.current = None
        self.next_start = current.started + self.settings.interval
        self.figures.passes += 1
        self.figures.last_block = at.number
        missing = [w for w in self.active if w not in current.seen]
        found = await self.store.sessions(missing) if missing else {}
        events = []
        for wallet in missing:
            s = found.get(wallet)
            if s is None or s.status == "closed":
                events.append(self._gone(wallet, s, at))
        took = self.clock() - current.started
        log.info(
            "balance audit: %d open session(s) checked at block %d in %.1f s: %d drifting, "
            "%d unreadable, %d unanswered; next pass in %.0f s",
            current.sessions, at.number, took, current.drifting, current.unreadable,
            current.unanswered, max(0.0, self.next_start - self.clock()),
        )  # fmt: skip
        return await self._log(events)

    async def _give_up(self, current: Pass, why: str) -> None:
        self.current = None
        self.figures.given_up += 1
        self.next_start = self.clock() + self.settings.interval
        with contextlib.suppress(Exception):  # the pass is abandoned either way
            await current.pages.aclose()
        log.warning("balance audit: pass given up (%s); the next starts in %.0f s",
                    why, self.settings.interval)  # fmt: skip

    async def _log(self, events: list[NotifyEvent]) -> bool:
        if not events:
            return False
        await self.log.append_now(events)
        for e in events:
            if e.data["state"] == "raised":
                self.active[str(e.wallet)] = (int(e.data["block"]), e.id)
            else:
                self.active.pop(str(e.wallet), None)
        self.figures.drifting = len(self.active)
        return True

    # -- the events ---------------------------------------------------------------------
    def _raised(self, s: Session, reading: Reading, at: BlockRef) -> NotifyEvent:
        # the block's hash too: after a reorg the same height is another block
        return _event(f"{KIND}:{s.wallet}:{at.number}:{at.hash[:10]}", s.wallet, s, {
            "state": "raised", "wallet": s.wallet, "token": s.token, "block": at.number,
            "indexed": str(s.balance), "on_chain": _amount(reading.amount),
            "difference": None if reading.amount is None else str(reading.amount - s.balance),
            "problem": reading.problem,
        })  # fmt: skip

    def _cleared(self, s: Session, reading: Reading, at: BlockRef, why: str) -> NotifyEvent:
        raised, raise_id = self.active[s.wallet]
        return _event(f"{raise_id}/cleared", s.wallet, s, {
            "state": "cleared", "wallet": s.wallet, "token": s.token, "block": at.number,
            "indexed": str(s.balance), "on_chain": _amount(reading.amount),
            "difference": "0", "problem": None, "reason": why, "raised_at_block": raised,
        })  # fmt: skip

    def _gone(self, wallet: str, s: Session | None, at: BlockRef) -> NotifyEvent:
        raised, raise_id = self.active[wallet]
        return _event(f"{raise_id}/cleared", wallet, s, {
            "state": "cleared", "wallet": wallet, "token": None if s is None else s.token,
            "block": at.number, "indexed": None if s is None else str(s.balance),
            "on_chain": None, "difference": None, "problem": None,
            "reason": "closed" if s is not None else "no longer indexed",
            "raised_at_block": raised,
        })  # fmt: skip


def _node_garbled(page: list[Session], answers: list[object]) -> bool:
    """Every answer of a page spanning several tokens is data no token would send (not a
    revert, not one word): several tokens do not all break at once — the node does (a
    lying or broken node answering `0x` to everything). One token cannot be told from its
    node; several can."""
    if len({s.token for s in page}) < 2:
        return False
    return all(isinstance(a, str) and read_balance(a).amount is None for a in answers)


def _call_data(wallet: str) -> str:
    return _BALANCE_OF + wallet[2:].lower().rjust(64, "0")


def _execution_failed(answer: object) -> bool:
    text = str(answer).lower()
    return isinstance(answer, ChainError) and any(m in text for m in _EXECUTION_FAILED)


def _unanswered(answer: object) -> bool:
    """The node failed this call (a revert or a failed execution is the token's answer,
    not the node's failure)."""
    return (
        isinstance(answer, ChainError)
        and not isinstance(answer, CallReverted)
        and not _execution_failed(answer)
    )


def _amount(value: int | None) -> str | None:
    return None if value is None else str(value)


def _event(id_: str, wallet: str, s: Session | None, data: dict[str, Any]) -> NotifyEvent:
    now = time.time_ns() // 1_000_000
    return NotifyEvent(
        id=id_, kind=KIND, severity=KINDS[KIND].severity, at_ms=now, data=data, wallet=wallet,
        owner=None if s is None else s.owner, policy=None if s is None else s.policy,
    )  # fmt: skip
