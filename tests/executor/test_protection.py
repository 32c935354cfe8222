"""Relayer protection against the in-process node of `_fake_node.py` and a real SQLite
file: every loop that spends money is bounded.

- the rate guard counts every job of a session, requeues included (the outbox, and an
  existing database migrated to the new schema);
- a close mined without effect is sent at most `max_mined_without_effect` times, then
  fails with an alert, the count surviving a restart, and is tried again only once its
  session moves on chain;
- the gas budget trips a circuit breaker: nothing is sent, receipts and confirmations go
  on, and it closes when the hour's window falls under the budget;
- a node that forgets a receipt it served, or counts fewer nonces than it mined, pauses
  sending with an alert and the outbox as it was; a reorg is not that.

The same cases on anvil are `test_protection_anvil.py`; /status and /metrics through the
daemon are `test_protection_daemon.py`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from eth_utils.address import to_checksum_address

from chain import calls
from executor import Executor, Fees, Outbox, Signer, StepReport
from executor.outbox import NewJob
from executor.schema import COMPONENT, MIGRATIONS
from indexer import migrate, open_database
from tests.executor._fake_node import CHAIN_ID, GWEI, FakeNode, FakeStore
from tests.executor._support import RELAYER_KEY, executor_settings, intend, table
from tests.executor.test_outbox import decision, intent

FACTORY = "0x" + "fa" * 20
WALLETS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in range(0x31, 0x39)]
HOUR_MS = 3_600_000


class Rig:
    """An executor on a fake node, a fake indexer and a real SQLite file, with a wall
    clock the test moves. `restart()` opens a new executor on the same file and node."""

    def __init__(self, node: FakeNode, store: FakeStore, db_path: Path, **settings: Any):
        self.node, self.store, self.db_path, self.settings = node, store, db_path, settings
        self.now_ms = 1_000_000

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Executor]:
        db = await open_database(self.db_path)
        try:
            async with self.node.client() as client:
                self.outbox = Outbox(db)
                await self.outbox.setup()
                self.executor = Executor(
                    client, self.outbox, self.store,  # type: ignore[arg-type]
                    executor_settings(max_batch_size=1, **self.settings), factory=FACTORY,
                    chain_id=CHAIN_ID, dry_run=False,
                    signer=Signer.from_raw_key(RELAYER_KEY, chain_id=CHAIN_ID), relayer=None,
                    clock_ms=lambda: self.now_ms,
                )  # fmt: skip
                self.executor.tracker.monotonic = lambda: self.now_ms / 1000
                await self.executor.start()
                yield self.executor
        finally:
            await db.close()

    async def intend(self, wallet: str, *, position: int = 1) -> str:
        if wallet not in self.store.sessions_by_wallet:
            self.store.add_session(wallet, operator=self.executor.relayer)
        return await intend(self.outbox, wallet, position=position, now=self.node.head.timestamp)

    async def step(self, *, index: bool = True) -> StepReport:
        if index:
            self.store.sync()
        self.now_ms += 1000
        return await self.executor.step(self.node.head.timestamp)

    async def state(self, key: str) -> tuple[str, str | None]:
        """Read from the file, so that it works after the executor stopped."""
        ((state, detail),) = table(
            self.db_path, "SELECT state, detail FROM intents WHERE key = ?", key
        )
        return state, detail

    def sent_to(self, wallet: str) -> int:
        """Transactions of the relayer to `wallet` the node ever took."""
        return sum(tx.to == wallet.lower() for tx in self.node.accepted)

    def alerts(self, kind: str) -> list[str]:
        return [a.message for a in self.executor.protection().alerts if a.kind == kind]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    node = FakeNode()
    return Rig(node, FakeStore(node), tmp_path / "w.db")


def alert_lines(caplog: pytest.LogCaptureFixture, kind: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith(f"ALERT {kind}:")
    ]


# -- the rate guard counts requeues ------------------------------------------------------


async def _requeue_cycle(box: Outbox, key: str, wallet: str, n: int, now_ms: int) -> int:
    """One job for the intent, mined without closing it, the intent back to pending."""
    job_id = await box.create_job(
        NewJob("close", wallet, "0x", 50_000, (key,)), relayer=WALLETS[7], nonce=n,
        tx_hash=f"0x{n:064x}", raw="0x01", max_fee_per_gas=3, max_priority_fee_per_gas=1,
        now_ms=now_ms,
    )  # fmt: skip
    await box.job_mined(
        job_id, tx_hash=f"0x{n:064x}", block=10 + n, status=1, gas_used=40_000,
        effective_gas_price=1, outcomes=[(key, "pending", "requeued")], now_ms=now_ms,
    )  # fmt: skip
    return job_id


async def test_the_rate_guard_counts_every_job_of_a_requeued_intent(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "o.db")
    try:
        box = Outbox(db)
        await box.setup()
        (i1,) = await box.record([decision(intent(WALLETS[0]))], 1)
        (i2,) = await box.record([decision(intent(WALLETS[1]))], 1)
        for n in range(4):
            await _requeue_cycle(box, i1.key, WALLETS[0], n, now_ms=10_000 + n)
        await _requeue_cycle(box, i2.key, WALLETS[1], 4, now_ms=10_000)
        # `intents.job_id` names only the latest of the four: the guard counts all four.
        row = await box.intent(i1.key)
        assert row is not None and row.state == "pending"
        counts = await box.jobs_since([WALLETS[0], WALLETS[1], WALLETS[2]], 0)
        assert counts == {WALLETS[0]: 4, WALLETS[1]: 1}
        # The window: jobs created (or mined) before it are not counted.
        assert await box.jobs_since([WALLETS[0]], 10_002) == {WALLETS[0]: 2}
    finally:
        await db.close()


async def test_an_existing_database_migrates_and_its_jobs_count(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as db:  # a database written by the last release
        await migrate(db, COMPONENT, MIGRATIONS[:1])
        await db.execute(
            "INSERT INTO jobs (id, nonce, kind, to_address, data, gas, state, created_ms, "
            "updated_ms) VALUES (7, 0, 'close', ?, '0x', 1, 'done', 5, 5)",
            (WALLETS[0],),
        )
        await db.execute(
            "INSERT INTO intents (key, wallet, rule, action, reason, position, triggered_at, "
            "rules_version, state, job_id, created_ms, updated_ms) VALUES "
            "('k', ?, 'r', 'close', 'stop_loss', 1, 1, 'v', 'confirmed', 7, 5, 5)",
            (WALLETS[0],),
        )
        await db.commit()
    db2 = await open_database(path)
    try:
        box = Outbox(db2)
        await box.setup()
        assert await box.jobs_since([WALLETS[0]], 0) == {WALLETS[0]: 1}
        row = await box.intent("k")
        assert row is not None and (row.state, row.misses) == ("confirmed", 0)
    finally:
        await db2.close()
    assert table(path, "SELECT version FROM schema_versions WHERE component = ?", COMPONENT) == [
        (len(MIGRATIONS),)
    ]


async def test_requeued_closes_are_refused_by_the_rate_guard(rig: Rig) -> None:
    # The no-effect limit out of the way: the rate guard alone must stop the loop.
    rig.settings.update(max_mined_without_effect=100, max_jobs_per_session=3)
    rig.node.inert.add(WALLETS[0].lower())
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        for _ in range(10):
            await rig.step()
            rig.node.mine()
        assert rig.sent_to(WALLETS[0]) == 3
        state, detail = await rig.state(key)
        assert state == "pending" and detail is not None and detail.startswith("rate_limit: 3")


# -- closes mined without effect ---------------------------------------------------------


async def test_a_close_mined_without_effect_fails_after_the_limit_with_an_alert(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.node.inert.add(WALLETS[0].lower())
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        await rig.step()
        rig.node.mine()
        report = await rig.step()  # mined, closed nothing: requeued and sent again
        assert (report.mined, report.requeued, report.jobs) == (1, 1, 1)
        assert (await rig.outbox.intent(key)).misses == 1  # type: ignore[union-attr]
        rig.node.mine()
        report = await rig.step()
        assert report.failed == 1
        for _ in range(5):
            rig.node.mine()
            assert (await rig.step()).jobs == 0
    assert rig.sent_to(WALLETS[0]) == 2
    state, detail = await rig.state(key)
    assert state == "failed" and detail is not None
    assert detail.startswith("mined without effect: 2 of our transactions")
    (line,) = alert_lines(caplog, "no_effect")
    assert key in line
    (message,) = rig.alerts("no_effect")
    assert key in message


@pytest.mark.parametrize("limit", [1, 3])
async def test_the_limit_is_the_setting(rig: Rig, limit: int) -> None:
    rig.settings.update(max_mined_without_effect=limit)
    rig.node.inert.add(WALLETS[0].lower())
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        for _ in range(8):
            await rig.step()
            rig.node.mine()
    assert rig.sent_to(WALLETS[0]) == limit
    assert (await rig.state(key))[0] == "failed"


async def test_the_count_holds_across_restarts(rig: Rig) -> None:
    rig.node.inert.add(WALLETS[0].lower())
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        await rig.step()
        rig.node.mine()
    async with rig.running():  # the receipt is read by a new process: miss 1, sent again
        report = await rig.step()
        assert (report.requeued, report.jobs) == (1, 1)
        rig.node.mine()
    async with rig.running():
        report = await rig.step()
        assert report.failed == 1
        rig.node.mine()
        assert (await rig.step()).jobs == 0
    assert rig.sent_to(WALLETS[0]) == 2
    rows = table(rig.db_path, "SELECT key, state, mined_without_effect FROM intents")
    assert rows == [(key, "failed", 2)]


async def test_a_failed_intent_is_tried_again_once_its_session_moves_on_chain(rig: Rig) -> None:
    rig.node.inert.add(WALLETS[0].lower())
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        for _ in range(4):
            await rig.step()
            rig.node.mine()
        assert (await rig.state(key))[0] == "failed"
        assert (await rig.step()).jobs == 0  # nothing changed on chain: parked
        # The wallet works again and its session has a new event.
        rig.node.inert.clear()
        session = rig.store.sessions_by_wallet[WALLETS[0]]
        rig.store.sessions_by_wallet[WALLETS[0]] = replace(
            session, last_position=session.last_position + 5_000
        )
        report = await rig.step()
        assert (report.requeued, report.jobs) == (1, 1)
        rig.node.mine()
        await rig.step()
    assert (await rig.state(key))[0] == "confirmed"
    assert rig.sent_to(WALLETS[0]) == 3


async def test_an_intent_not_called_by_the_mined_transaction_is_only_requeued(
    rig: Rig,
) -> None:
    # The job's transaction that was mined is a cancel (a self-transfer): it called no
    # wallet, so it is not a close without effect.
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        rig.node.refusals.append("insufficient funds for gas * price + value")
        await rig.step()  # refused: the job stays live at its nonce, unsent
        (job,) = await rig.outbox.jobs("live")
        signed = rig.executor.sender.sign(
            calls.cancel(rig.executor.relayer), 21_000, job.nonce or 0, Fees(10 * GWEI, GWEI)
        )
        await rig.outbox.add_attempt(
            job.id, job.nonce or 0, tx_hash=signed.hash, raw=signed.raw,
            max_fee_per_gas=10 * GWEI, max_priority_fee_per_gas=GWEI, now_ms=rig.now_ms,
        )  # fmt: skip
        rig.node.accept(signed.raw)
        rig.node.mine()
        report = await rig.step()
        assert report.requeued == 1
        row = await rig.outbox.intent(key)
        assert row is not None and row.misses == 0 and "did not call it" in (row.detail or "")


# -- the gas budget ------------------------------------------------------------------------


async def test_the_gas_budget_opens_the_breaker_and_it_closes_when_the_hour_passes(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    # Each close: estimate 80,000 + 25 % = a gas limit of 100,000; used 80,000 when mined.
    rig.settings.update(max_gas_per_hour=150_000)
    async with rig.running() as ex:
        keys = [await rig.intend(w) for w in WALLETS[:4]]
        report = await rig.step()
        # The first is admitted (100,000), the second too (200,000: over, the breaker
        # opens), the other two are refused: passed by at most one transaction's limit.
        assert report.jobs == 2 and ex.protection().breaker_open
        assert len(alert_lines(caplog, "gas_budget")) == 1
        assert [(await rig.state(k))[0] for k in keys[2:]] == ["pending", "pending"]
        assert (await rig.state(keys[3]))[1].startswith("gas_budget: circuit breaker open")  # type: ignore[union-attr]
        rig.node.mine()
        report = await rig.step()  # receipts are read and confirmations go on
        assert (report.mined, report.confirmed, report.jobs) == (2, 2, 0)
        # 160,000 used in the window: still open, nothing sent for ten more blocks.
        for _ in range(10):
            rig.node.mine()
            assert (await rig.step()).jobs == 0
        assert ex.protection().breaker_open and ex.protection().gas_spent_total == 160_000
        assert len(alert_lines(caplog, "gas_budget")) == 1  # once, not every step
        rig.now_ms += HOUR_MS  # the spends leave the window: closed, the other two go
        report = await rig.step()
        assert report.jobs == 2 and ex.protection().breaker_open  # and it is open again
        rig.node.mine()
        await rig.step()
    assert [(await rig.state(k))[0] for k in keys] == ["confirmed"] * 4


async def test_an_open_breaker_sends_no_replacement(rig: Rig) -> None:
    rig.settings.update(max_gas_per_hour=100_000)  # one close's gas limit trips it
    async with rig.running() as ex:
        key = await rig.intend(WALLETS[0])
        assert (await rig.step()).jobs == 1 and ex.protection().breaker_open
        (sent,) = rig.node.pool.values()
        rig.node.base_fee = 200 * GWEI  # stuck: a replacement would be due after 2 blocks
        for _ in range(6):
            rig.node.mine()
            report = await rig.step()
            assert report.replaced == report.cancelled == report.jobs == 0
        assert list(rig.node.pool.values()) == [sent]
        assert len(rig.node.accepted) == 1
        assert (await rig.state(key))[0] == "submitted"


def test_the_budget_setting_is_checked_with_its_line(tmp_path: Path) -> None:
    from warden.app.settings import ConfigError, load_config

    path = tmp_path / "warden.yaml"
    path.write_text(
        "executor:\n  max_gas_per_hour: 1000\n  max_mined_without_effect: 0\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    text = "\n".join(err.value.problems)
    assert f"{path}:2: executor.max_gas_per_hour: 1000 is outside 21000 to" in text
    assert f"{path}:3: executor.max_mined_without_effect: 0 is outside 1 to 100" in text


# -- a node that forgets -----------------------------------------------------------------


async def test_a_node_that_drops_a_receipt_it_served_changes_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A mined job's receipt is not asked again while its block stands (its hash commits
    to the receipt), so a node that drops it afterwards is never believed: the job stays
    mined, nothing is requeued or sent again, and the other intents go on."""
    async with rig.running() as ex:
        first = await rig.intend(WALLETS[0])
        await rig.step()
        (tx,) = rig.node.pool.values()
        rig.node.mine()
        await rig.step(index=False)  # mined; the indexer has not seen it yet
        assert (await rig.state(first))[0] == "mined"
        rig.node.forgotten.add(tx.hash)  # the block stays, the receipt is gone
        asked = rig.node.asked("eth_getTransactionReceipt", tx.hash)
        second = await rig.intend(WALLETS[1])
        report = await rig.step(index=False)
        assert report.jobs == 1 and report.reopened == 0
        for _ in range(2):
            rig.node.mine()
            await rig.step(index=False)
        assert rig.node.asked("eth_getTransactionReceipt", tx.hash) == asked
        assert ex.protection().node_fault is None
        assert alert_lines(caplog, "node_inconsistent") == []
        assert (await rig.state(first))[0] == "mined"
        await rig.step()
    assert [(await rig.state(k))[0] for k in (first, second)] == ["confirmed", "confirmed"]
    assert [t.to for t in rig.node.mined(rig.executor.relayer)] == [
        WALLETS[0].lower(),
        WALLETS[1].lower(),
    ]


async def test_a_receipt_gone_with_a_block_that_answers_again_pauses_sending(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The node does not answer a mined job's block (so its receipt is asked again), the
    receipt is gone, and then the block is there with the same hash: a node that forgot."""
    async with rig.running() as ex:
        first = await rig.intend(WALLETS[0])
        await rig.step()
        (tx,) = rig.node.pool.values()
        mined_in = rig.node.mine()
        await rig.step(index=False)
        assert (await rig.state(first))[0] == "mined"
        rig.node.forgotten.add(tx.hash)
        rig.node.unanswered_blocks = 2  # the gate's and the tracker's questions get null
        before = table(rig.db_path, "SELECT id, state, mined_hash FROM jobs")
        report = await rig.step(index=False)
        assert report == StepReport()
        fault = ex.protection().node_fault
        assert fault is not None and f"its block {mined_in.number}" in fault
        assert len(alert_lines(caplog, "node_inconsistent")) == 1
        assert table(rig.db_path, "SELECT id, state, mined_hash FROM jobs") == before
        rig.node.forgotten.clear()
        await rig.step()
        assert ex.protection().node_fault is None
    assert (await rig.state(first))[0] == "confirmed"


async def test_a_node_whose_nonce_falls_below_what_it_mined_pauses_sending(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    async with rig.running() as ex:
        first = await rig.intend(WALLETS[0])
        await rig.step()
        rig.node.mine()
        await rig.step()
        assert (await rig.state(first))[0] == "confirmed"
        rig.node.nonce_lag = 1  # it counts 0 mined transactions; it mined our nonce 0
        second = await rig.intend(WALLETS[1])
        for _ in range(3):
            rig.node.mine()
            assert (await rig.step()).jobs == 0
        fault = ex.protection().node_fault
        assert fault is not None and "counts 0 mined transactions" in fault
        assert len(alert_lines(caplog, "node_inconsistent")) == 1
        assert (await rig.state(second))[0] == "pending" and not rig.node.pool
        rig.node.nonce_lag = 0
        report = await rig.step()
        assert ex.protection().node_fault is None and report.jobs == 1
        assert (await rig.outbox.jobs("live"))[0].nonce == 1  # the next nonce, no gap
        rig.node.mine()
        await rig.step()
    assert (await rig.state(second))[0] == "confirmed"


@pytest.mark.parametrize("depth", [1, 2])
async def test_a_reorg_that_takes_our_block_is_not_forgetting(
    rig: Rig, caplog: pytest.LogCaptureFixture, depth: int
) -> None:
    async with rig.running() as ex:
        key = await rig.intend(WALLETS[0])
        await rig.step()
        rig.node.mine()
        await rig.step(index=False)
        rig.node.mine(depth - 1)
        rig.node.reorg(depth)  # the nonce count falls and the receipt goes: with the block
        rig.node.mine()
        report = await rig.step(index=False)
        assert report.reopened == 1 and ex.protection().node_fault is None
        for _ in range(2):
            rig.node.mine()
            await rig.step()
    assert (await rig.state(key))[0] == "confirmed"
    assert alert_lines(caplog, "node_inconsistent") == []
