"""The outbox on a real SQLite file: intents and latches stored together, duplicates
impossible, final states final, a job only for pending intents."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from executor import ORPHANED, Outbox, OutboxError
from executor.outbox import NewJob
from indexer import open_database
from rules import Decision, Intent

W1 = "0x" + "11" * 20
W2 = "0x" + "22" * 20


def intent(wallet: str, rule: str = "stop_loss", position: int = 7) -> Intent:
    return Intent(wallet, rule, "close", "stop_loss", position, 1_000, "v1")


def decision(*intents: Intent, clear: frozenset[str] = frozenset()) -> Decision:
    wallet = intents[0].wallet if intents else W1
    return Decision(wallet, intents, frozenset(i.rule for i in intents), clear)


@contextlib.asynccontextmanager
async def outbox(path: Path) -> AsyncIterator[Outbox]:
    db = await open_database(path)
    try:
        box = Outbox(db)
        await box.setup()
        yield box
    finally:
        await db.close()


async def test_intents_and_latches_are_stored_together_and_survive_a_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    async with outbox(path) as box:
        fresh = await box.record([decision(intent(W1)), decision(intent(W2, "idle"))], 5)
        assert [i.key for i in fresh] == [f"{W1}:stop_loss:7", f"{W2}:idle:7"]
    async with outbox(path) as box:  # a restart
        assert await box.latch_rows() == [(W1, "stop_loss"), (W2, "idle")]
        assert [(r.key, r.state) for r in await box.intents()] == [
            (f"{W1}:stop_loss:7", "pending"),
            (f"{W2}:idle:7", "pending"),
        ]
        # The same crossing recorded again stores nothing new.
        assert await box.record([decision(intent(W1))], 6) == []
        assert len(await box.intents()) == 2
        # A re-arm clears the latch; the intent stays.
        await box.record([Decision(W1, (), frozenset(), frozenset({"stop_loss"}))], 7)
        assert await box.latch_rows() == [(W2, "idle")]
        assert (await box.counts())["pending"] == 2


async def test_a_failed_record_stores_neither_intents_nor_latches(tmp_path: Path) -> None:
    async with outbox(tmp_path / "o.db") as box:
        await box.db.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON intents WHEN NEW.rule = 'idle' "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
        with pytest.raises(Exception, match="disk full"):
            await box.record([decision(intent(W1)), decision(intent(W2, "idle"))], 1)
        assert await box.intents() == []
        assert await box.latch_rows() == []


async def test_a_job_takes_only_pending_intents_and_final_states_stay_final(
    tmp_path: Path,
) -> None:
    async with outbox(tmp_path / "o.db") as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        job = NewJob("close", W1, "0x", 50_000, (i1.key,))
        kw = dict(relayer=W2, max_fee_per_gas=3, max_priority_fee_per_gas=1, now_ms=2)
        job_id = await box.create_job(job, nonce=4, tx_hash="0xaa", raw="0x01", **kw)  # type: ignore[arg-type]
        assert (await box.intent(i1.key)).state == "submitted"  # type: ignore[union-attr]
        assert await box.next_nonce(W2) == 5
        with pytest.raises(OutboxError, match="not pending"):
            await box.create_job(job, nonce=5, tx_hash="0xbb", raw="0x02", **kw)  # type: ignore[arg-type]
        # The refused second job left nothing behind.
        assert [j.id for j in await box.jobs(None)] == [job_id]
        assert await box.next_nonce(W2) == 5
        await box.settle([(i1.key, "obsolete", "closed by the owner")], 3)
        await box.settle([(i1.key, "confirmed", "late")], 4)
        assert (await box.intent(i1.key)).state == "obsolete"  # type: ignore[union-attr]
        with pytest.raises(OutboxError, match="final states only"):
            await box.settle([(i1.key, "pending", "")], 5)


async def test_refusals_are_recorded_once_per_reason(tmp_path: Path) -> None:
    async with outbox(tmp_path / "o.db") as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        for _ in range(3):
            await box.refuse(i1.key, "fee_cap", "too dear", 2)
        await box.refuse(i1.key, "relayer_balance", "empty", 3)
        await box.refuse(i1.key, "ttl", "too old", 4, final=True)
        await box.refuse(i1.key, "fee_cap", "after the end", 5)  # a failed intent stays failed
        assert await box.refusals(i1.key) == [
            ("fee_cap", "too dear"), ("relayer_balance", "empty"), ("ttl", "too old")
        ]  # fmt: skip
        row = await box.intent(i1.key)
        assert row is not None and (row.state, row.detail) == ("failed", "ttl: too old")


async def test_a_reorg_reopens_what_replaced_blocks_settled_and_nothing_older(
    tmp_path: Path,
) -> None:
    async with outbox(tmp_path / "o.db") as box:
        (old,) = await box.record([decision(intent(W1))], 1)
        (new,) = await box.record([decision(intent(W2))], 1)
        kw = dict(relayer=W2, max_fee_per_gas=3, max_priority_fee_per_gas=1, now_ms=2)
        ids = []
        for n, (i, block) in enumerate(((old, 100), (new, 105))):
            job = NewJob("close", i.wallet, "0x", 50_000, (i.key,))
            job_id = await box.create_job(job, nonce=n, tx_hash=f"0x{n}a", raw="0x01", **kw)  # type: ignore[arg-type]
            await box.job_mined(job_id, tx_hash=f"0x{n}a", block=block, status=1, gas_used=1,
                                effective_gas_price=1, outcomes=(), now_ms=3)  # fmt: skip
            await box.confirm(i.key, block << 32, "closed", 4)
            ids.append(job_id)
        await box.finish_settled_jobs(5)
        # Blocks above 102 were replaced: only the job mined in block 105 comes back.
        assert await box.reorged(102, 6) == [ids[1]]
        assert (await box.intent(old.key)).state == "confirmed"  # type: ignore[union-attr]
        reopened = await box.intent(new.key)
        assert reopened is not None and reopened.state == "submitted"
        assert "reorg above block 102" in (reopened.detail or "")
        (live,) = await box.jobs("live")
        assert live.id == ids[1] and live.mined_hash is None
        assert [a.state for a in live.attempts] == ["signed"]  # sent again at the next step
        # Nothing above block 105 is mined any more: a second call changes nothing.
        assert await box.reorged(102, 7) == []


async def test_an_obsolete_intent_fired_again_at_the_same_position_is_pending_again(
    tmp_path: Path,
) -> None:
    """The rules fire only for an open session and an unlatched rule: the same key firing
    again means a reorg undid what made it obsolete (its trigger, or the close by someone
    else; seen in the reorg chaos: the owner's close reorged out with the creation, the
    session created again, and the stop-loss fired at the same position). A failed intent
    stays failed, a confirmed one confirmed."""
    W3, W4 = "0x" + "33" * 20, "0x" + "44" * 20
    async with outbox(tmp_path / "o.db") as box:
        (orphan,) = await box.record([decision(intent(W1))], 1)
        (other,) = await box.record([decision(intent(W2))], 1)
        (failed,) = await box.record([decision(intent(W3))], 1)
        (done,) = await box.record([decision(intent(W4))], 1)
        await box.settle([(orphan.key, "obsolete", f"{ORPHANED}: block 9 was replaced")], 2)
        await box.settle([(other.key, "obsolete", "session closed by the owner")], 2)
        await box.settle([(failed.key, "failed", "mined twice without closing")], 2)
        async with box.db.execute(
            "UPDATE intents SET state = 'confirmed' WHERE key = ?", (done.key,)
        ):
            pass
        again = await box.record([decision(intent(w)) for w in (W1, W2, W3, W4)], 3)
        assert sorted(i.key for i in again) == sorted([orphan.key, other.key])
        got = {k: await box.intent(k) for k in (orphan.key, other.key, failed.key, done.key)}
        assert {k: i.state for k, i in got.items() if i} == {
            orphan.key: "pending", other.key: "pending", failed.key: "failed",
            done.key: "confirmed",
        }  # fmt: skip
        assert "session closed by the owner" in (got[other.key].detail or "")  # type: ignore[union-attr]
        assert len(await box.intents()) == 4
        # recorded once more: nothing new, nothing reopened twice
        assert await box.record([decision(intent(w)) for w in (W1, W2)], 4) == []
        await box.settle([(other.key, "obsolete", "session closed by the owner")], 5)
        await box.reopen([other.key], "reopened: the close was reorged out", 4)
        assert (await box.intent(other.key)).state == "pending"  # type: ignore[union-attr]
