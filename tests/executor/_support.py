"""An executor wired to a real anvil, a real SQLite file and a real indexer, the way the
daemon wires it, plus helpers to put intents in its outbox."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain import ChainClient
from executor import Executor, ExecutorSettings, Outbox, Signer
from indexer import Indexer, IndexerStore, open_database
from rules import Decision, Intent
from tests.indexer._support import FAST_RETRY, config
from warden.devnet import DEVNET_KEYS

RELAYER_KEY = DEVNET_KEYS[2]  # roles.operator in tests/conftest.py
GWEI = 10**9


@dataclass
class Rig:
    client: ChainClient
    store: IndexerStore
    outbox: Outbox
    indexer: Indexer
    executor: Executor
    db_path: Path

    async def index(self) -> int:
        """Index to the head; the chain time of the indexed head."""
        await self.indexer.sync_to_head()
        checkpoint = await self.store.checkpoint()
        assert checkpoint is not None
        return checkpoint.timestamp

    async def step(self, *, index: bool = True) -> Any:
        now = await self.index() if index else await self._now()
        return await self.executor.step(now)

    async def run(self, timeout: float = 60.0, poll: float = 0.05) -> None:
        """Step until the outbox is quiet: no busy step, no live job, nothing submitted or
        mined. Bounded by a generous deadline, not by a number of steps: on a busy machine
        anvil may count a transaction a moment before it serves the receipt, and the
        executor then waits (by the clock) before it decides anything; a fixed number of
        millisecond steps ran out before that, and the test failed (issue 14, item 9)."""
        deadline = time.monotonic() + timeout
        while True:
            report = await self.step()
            if not report.busy and not await self.outbox.jobs("live"):
                counts = await self.outbox.counts()
                if counts["submitted"] == counts["mined"] == 0:
                    return
            if time.monotonic() > deadline:
                return  # the caller's assertions say what is still open
            await asyncio.sleep(poll)

    async def intend(
        self,
        wallet: str,
        reason: str = "stop_loss",
        *,
        action: str = "close",
        rule: str | None = None,
        position: int = 1,
        now: int | None = None,
    ) -> str:
        """Put one intent in the outbox the way the rules side does (with its latch)."""
        when = now if now is not None else await self._now()
        return await intend(self.outbox, wallet, reason, action=action, rule=rule,
                            position=position, now=when)  # fmt: skip

    async def state(self, key: str) -> tuple[str, str | None]:
        row = await self.outbox.intent(key)
        assert row is not None
        return row.state, row.detail

    async def _now(self) -> int:
        block = await self.client.get_block("latest")
        assert block is not None
        return int(block["timestamp"], 16)


async def intend(
    outbox: Outbox,
    wallet: str,
    reason: str = "stop_loss",
    *,
    action: str = "close",
    rule: str | None = None,
    position: int = 1,
    now: int,
) -> str:
    """Put one intent in the outbox the way the rules side does (with its latch)."""
    intent = Intent(
        wallet=wallet,
        rule=rule or reason,
        action=action,
        reason="swept" if action == "sweep" else reason,
        position=position,
        now=now,
        version="test",
    )
    decision = Decision(wallet, (intent,), frozenset({intent.rule}), frozenset())
    await outbox.record([decision], 0)
    return intent.key


def executor_settings(**overrides: Any) -> ExecutorSettings:
    """The tests' executor section: a small minimum balance, replacement after 2 blocks."""
    values: dict[str, Any] = {"min_relayer_balance": 10**16, "replace_after_blocks": 2}
    values.update(overrides)
    return ExecutorSettings(**values)


@contextlib.asynccontextmanager
async def rig(
    url: str,
    db_path: Path,
    factory: str,
    start_block: int,
    *,
    signer: Signer | None = None,
    relayer: str | None = None,
    hook: Any = None,
    dry_run: bool = False,
    member_allowance: int | None = None,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """`settings` are `ExecutorSettings` keys over `executor_settings()`'s;
    `member_allowance` replaces the gas a batch's limit allows each member."""
    db = await open_database(db_path)
    try:
        async with ChainClient([url], retry=FAST_RETRY, chain_id=31337) as client:
            store = IndexerStore(db)
            await store.setup()
            outbox = Outbox(db)
            await outbox.setup()
            indexer = Indexer(
                client, store, config(factory, start_block=start_block), factory=factory
            )
            if signer is None and not dry_run:
                signer = Signer.from_raw_key(RELAYER_KEY, chain_id=31337)
            ex = Executor(
                client, outbox, store, executor_settings(**settings), factory=factory,
                chain_id=31337, dry_run=dry_run, signer=signer, relayer=relayer, hook=hook,
            )  # fmt: skip
            if member_allowance is not None:
                ex.submitter.batcher.member_allowance = member_allowance
            await ex.start()
            yield Rig(client, store, outbox, indexer, ex, db_path)
    finally:
        await db.close()


def table(db_path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql, params).fetchall()
