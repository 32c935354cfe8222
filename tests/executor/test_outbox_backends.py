"""The outbox on both stores, SQLite and PostgreSQL, through the `database` seam: the same
calls, the same rows. Intents and latches in one transaction, duplicate keys never stored
twice, final states final, a job written ahead with its signed transaction and the next
nonce, its receipt and a reorg's undoing of it, the reads others make, and exact uint256
fees (the gas columns are 64-bit integers: their edge is 2**63 - 1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from database import open_database
from executor import ORPHANED, IntentRow, Outbox, OutboxError, OutboxReads
from executor.history import IntentFilter
from executor.outbox import NewJob
from rules import Decision, Intent

W1, W2, W3 = ("0x" + c * 20 for c in ("11", "22", "33"))
RELAYER, OTHER_RELAYER = "0x" + "aa" * 20, "0x" + "bb" * 20
BIG = (2**255 - 1, 2**255, 2**255 + 1)
GAS_MAX = 2**63 - 1  # the largest a BIGINT (SQLite's INTEGER) holds


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `database:` would hold: a SQLite path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "w.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


@contextlib.asynccontextmanager
async def opened(target: str, *, setup: bool = True) -> AsyncIterator[Outbox]:
    db = await open_database(target)
    try:
        box = Outbox(db)
        if setup:
            await box.setup()
        yield box
    finally:
        await db.close()


def intent(wallet: str, rule: str = "stop_loss", position: int = 7 << 32) -> Intent:
    return Intent(wallet, rule, "close", "stop_loss", position, 1_000, "v1")


def decision(*intents: Intent, clear: frozenset[str] = frozenset()) -> Decision:
    return Decision(intents[0].wallet, intents, frozenset(i.rule for i in intents), clear)


async def send(box: Outbox, i: Intent | IntentRow, nonce: int, tx: str, *, now_ms: int = 10) -> int:
    job = NewJob("close", i.wallet, "0xdead", 90_000, (i.key,))
    return await box.create_job(
        job, relayer=RELAYER, nonce=nonce, tx_hash=tx, raw="0x01", max_fee_per_gas=3,
        max_priority_fee_per_gas=1, now_ms=now_ms,
    )  # fmt: skip


async def test_intents_and_latches_together_duplicates_ignored_across_a_restart(
    backend: str,
) -> None:
    async with opened(backend) as box:
        fresh = await box.record([decision(intent(W1)), decision(intent(W2, "idle"))], 5)
        assert [i.key for i in fresh] == [intent(W1).key, intent(W2, "idle").key]
    async with opened(backend) as box:  # a restart: migrations find their version
        assert await box.latch_rows() == [(W1, "stop_loss"), (W2, "idle")]
        assert await box.record([decision(intent(W1)), decision(intent(W1))], 6) == []
        assert [(r.key, r.state, r.position) for r in await box.intents()] == [
            (intent(W1).key, "pending", 7 << 32),
            (intent(W2, "idle").key, "pending", 7 << 32),
        ]
        await box.record([Decision(W1, (), frozenset(), frozenset({"stop_loss"}))], 7)
        assert await box.latch_rows() == [(W2, "idle")]
        counts = await box.counts()
        assert counts["pending"] == 2 and sum(counts.values()) == 2


async def test_a_failed_record_stores_neither_intents_nor_latches(backend: str) -> None:
    async with opened(backend) as box:
        if box.database.dialect == "sqlite":
            await box.database.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON intents WHEN NEW.rule = 'idle' "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        else:
            await box.database.execute(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.rule = 'idle' THEN RAISE EXCEPTION 'disk full'; END IF; "
                "RETURN NEW; END $$"
            )
            await box.database.execute(
                "CREATE TRIGGER boom BEFORE INSERT ON intents FOR EACH ROW EXECUTE FUNCTION boom()"
            )
        with pytest.raises(Exception, match="disk full"):
            await box.record([decision(intent(W1)), decision(intent(W2, "idle"))], 1)
        assert await box.intents() == [] and await box.latch_rows() == []


async def test_final_states_stay_final_and_obsolete_intents_reopen(backend: str) -> None:
    async with opened(backend) as box:
        (orphan,) = await box.record([decision(intent(W1))], 1)
        (other,) = await box.record([decision(intent(W2))], 1)
        (failed,) = await box.record([decision(intent(W3))], 1)
        await box.settle([(orphan.key, "obsolete", f"{ORPHANED}: block 7 was replaced")], 2)
        await box.settle([(other.key, "obsolete", "closed by the owner")], 2)
        await box.settle([(failed.key, "failed", "mined twice without closing")], 2)
        await box.settle([(failed.key, "confirmed", "late")], 3, confirmed_at=9)
        with pytest.raises(OutboxError, match="final states only"):
            await box.settle([(failed.key, "pending", "")], 3)
        again = await box.record([decision(intent(w)) for w in (W1, W2, W3)], 4)
        assert sorted(i.key for i in again) == sorted([orphan.key, other.key])
        states = {r.key: (r.state, r.detail) for r in await box.intents()}
        assert states[orphan.key] == ("pending", "fired again on the new branch of a reorg")
        assert states[failed.key] == ("failed", "mined twice without closing")
        assert "closed by the owner" in (states[other.key][1] or "")
        await box.settle([(other.key, "obsolete", "closed by the owner")], 5)
        await box.reopen([other.key, failed.key], "the close was reorged out", 6)
        assert (await box.intent(other.key)).state == "pending"  # type: ignore[union-attr]
        assert (await box.intent(failed.key)).state == "failed"  # type: ignore[union-attr]


async def test_a_job_is_written_ahead_with_its_transactions_and_the_next_nonce(
    backend: str,
) -> None:
    async with opened(backend) as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        job_id = await send(box, i1, 4, "0xa1")
        (job,) = await box.jobs("live")
        assert (job.id, job.nonce, job.kind, job.gas) == (job_id, 4, "close", 90_000)
        assert [(a.hash, a.state) for a in job.attempts] == [("0xa1", "signed")]
        row = await box.intent(i1.key)
        assert row is not None and (row.state, row.job_id) == ("submitted", job_id)
        assert await box.next_nonce(RELAYER) == 5 and await box.next_nonce(OTHER_RELAYER) is None
        assert await box.open_wallets() == {W1}
        # Replacements in the same millisecond: listed in the order written, latest last.
        for n, tx in enumerate(("0xa2", "0xa0", "0xa3")):
            await box.add_attempt(
                job_id, 4, tx_hash=tx, raw="0x02", max_fee_per_gas=4 + n,
                max_priority_fee_per_gas=2, now_ms=11,
            )  # fmt: skip
        await box.mark_sent("0xa3", 12)
        await box.mark_rejected("0xa0", "underpriced")
        (job,) = await box.jobs("live")
        assert [(a.hash, a.state) for a in job.attempts] == [
            ("0xa1", "signed"), ("0xa2", "signed"), ("0xa0", "rejected"), ("0xa3", "sent"),
        ]  # fmt: skip
        (claim,) = await box.open_claims()
        assert claim.hashes == {"0xa1", "0xa2", "0xa0", "0xa3"} and claim.job_id == job_id
        # A second job for the same intent is refused whole: no job, no attempt, no nonce.
        with pytest.raises(OutboxError, match="not pending"):
            await send(box, i1, 5, "0xb1")
        assert [j.id for j in await box.jobs(None)] == [job_id]
        assert await box.next_nonce(RELAYER) == 5
        # The next nonce never goes back for the same relayer; a new key starts afresh.
        (i2,) = await box.record([decision(intent(W2))], 1)
        await send(box, i2, 2, "0xc1")
        assert await box.next_nonce(RELAYER) == 5
        (i3,) = await box.record([decision(intent(W3))], 1)
        await box.create_job(
            NewJob("close", W3, "0x", 1, (i3.key,)), relayer=OTHER_RELAYER, nonce=0,
            tx_hash="0xd1", raw="0x", max_fee_per_gas=3, max_priority_fee_per_gas=1, now_ms=13,
        )  # fmt: skip
        assert (await box.next_nonce(OTHER_RELAYER), await box.next_nonce(RELAYER)) == (1, None)
        # A dry run keeps what would have been sent, with no nonce.
        (i4,) = await box.record([decision(intent(W1, "idle"))], 1)
        dry = await box.record_dry_run(NewJob("close", W1, "0x", 1, (i4.key,)), "dry run", 14)
        (kept,) = await box.jobs("dry_run")
        assert (kept.id, kept.nonce, kept.attempts) == (dry, None, ())
        assert [j.nonce for j in await box.jobs(None)] == [None, 0, 2, 4]  # the same on both
        assert (await box.intent(i4.key)).state == "dry_run"  # type: ignore[union-attr]


async def test_a_receipt_settles_and_a_reorg_reopens_what_it_settled(backend: str) -> None:
    async with opened(backend) as box:
        (old,) = await box.record([decision(intent(W1))], 1)
        (new,) = await box.record([decision(intent(W2))], 1)
        ids = []
        for n, (i, block) in enumerate(((old, 100), (new, 105))):
            job_id = await send(box, i, n, f"0x{n}a")
            await box.add_attempt(
                job_id, n, tx_hash=f"0x{n}b", raw="0x", max_fee_per_gas=9,
                max_priority_fee_per_gas=2, now_ms=11,
            )  # fmt: skip
            await box.job_mined(
                job_id, tx_hash=f"0x{n}b", block=block, status=1, gas_used=50_000,
                effective_gas_price=7, outcomes=(), now_ms=12, block_hash=f"0x{block}",
            )  # fmt: skip
            ids.append(job_id)
        (mined, _) = await box.jobs("mined")
        assert [(a.hash, a.state) for a in mined.attempts] == [
            ("0x0a", "replaced"), ("0x0b", "mined"),
        ]  # fmt: skip
        assert (mined.mined_hash, mined.mined_block) == ("0x0b", 100)
        assert mined.mined_block_hash == "0x100"
        assert (await box.counts())["mined"] == 2
        await box.confirm_all([(old.key, 100 << 32, "closed"), (new.key, 105 << 32, "closed")], 13)
        assert await box.finish_settled_jobs(14) == 2
        assert await box.finish_settled_jobs(15) == 0
        assert await box.reorged(102, 16) == [ids[1]]  # only the job mined above 102
        assert (await box.intent(old.key)).state == "confirmed"  # type: ignore[union-attr]
        reopened = await box.intent(new.key)
        assert reopened is not None and reopened.state == "submitted"
        assert "reorg above block 102" in (reopened.detail or "")
        (live,) = await box.jobs("live")
        assert live.id == ids[1] and live.mined_hash is None
        assert [a.state for a in live.attempts] == ["signed", "signed"]  # sent again
        assert await box.reorged(102, 17) == []
        await box.job_dropped(live.id, "nonce taken by another transaction", 18)
        row = await box.intent(new.key)
        assert row is not None and (row.state, row.job_id) == ("pending", None)
        assert await box.jobs("live") == []


async def test_exact_uint256_fees_and_64_bit_gas(backend: str) -> None:
    low, mid, high = BIG
    async with opened(backend) as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        job = NewJob("close", W1, "0x", GAS_MAX, (i1.key,))
        job_id = await box.create_job(
            job, relayer=RELAYER, nonce=0, tx_hash="0x01", raw="0x", max_fee_per_gas=high,
            max_priority_fee_per_gas=low, now_ms=1,
        )  # fmt: skip
        assert await box.gas_in_window(0) == (0, GAS_MAX)  # in flight, exact
        await box.add_attempt(
            job_id, 0, tx_hash="0x02", raw="0x", max_fee_per_gas=mid,
            max_priority_fee_per_gas=high, now_ms=2,
        )  # fmt: skip
        (live,) = await box.jobs("live")
        assert [(a.max_fee_per_gas, a.max_priority_fee_per_gas) for a in live.attempts] == [
            (high, low), (mid, high),
        ]  # fmt: skip
        assert live.gas == GAS_MAX
        await box.job_mined(
            job_id, tx_hash="0x02", block=8, status=1, gas_used=GAS_MAX,
            effective_gas_price=low, outcomes=(), now_ms=3,
        )  # fmt: skip
        assert await box.gas_in_window(0) == (GAS_MAX, 0)
        (story,) = await OutboxReads(box.database).history(W1)
        assert story.job is not None and story.job.effective_gas_price == low
        assert story.job.gas_used == GAS_MAX and story.job.fee_paid == low * GAS_MAX
        assert [(t.max_fee_per_gas, t.max_priority_fee_per_gas) for t in story.transactions] == [
            (high, low), (mid, high),
        ]  # fmt: skip


async def test_reads_for_others_pages_history_and_counts(backend: str) -> None:
    async with opened(backend, setup=False) as box:
        reads = OutboxReads(box.database)
        assert not await reads.available()  # no executor tables yet: no intents, no error
        assert (await reads.intents(IntentFilter(), None, 10)).items == []
        assert await reads.history(W1) == [] and await reads.state_counts() == {}
        await box.setup()
        assert await reads.available()
        rules = ["stop_loss", "idle", *(f"r{n}" for n in range(6))]
        await box.record([decision(intent(W1 if n < 6 else W2, r)) for n, r in enumerate(rules)], 1)
        (first,) = await box.intents(wallet=W1, limit=1)
        await send(box, first, 0, "0x" + "01" * 32)
        await box.refuse(intent(W2, "r4").key, "rate", "3 jobs in the last hour", 20)
        await box.refuse(intent(W2, "r4").key, "balance", "too low", 21)
        ids, after = [], None
        while True:
            page = await reads.intents(IntentFilter(), after, 3)
            ids += [i.id for i in page.items]
            if page.next_key is None:
                break
            assert page.next_key == page.items[-1].id
            after = page.next_key
        assert ids == sorted(ids) and len(ids) == 8
        mine = await reads.intents(IntentFilter(wallet=W2, state="pending", rule="r4"), None, 5)
        assert [(i.key, i.block) for i in mine.items] == [(intent(W2, "r4").key, 7)]
        assert await reads.state_counts() == {"pending": 7, "submitted": 1}
        story = {h.intent.key: h for h in await reads.history(W1)}
        assert len(story) == 6
        sent = story[first.key]
        assert sent.job is not None and sent.job.state == "live" and sent.job.nonce == 0
        assert [t.hash for t in sent.transactions] == ["0x" + "01" * 32]
        (refused,) = [h for h in await reads.history(W2) if h.intent.rule == "r4"]
        assert refused.job is None and refused.transactions == ()
        assert [(r.guard, r.at_ms) for r in refused.refusals] == [("rate", 20), ("balance", 21)]


async def test_what_the_relayer_spent_parks_and_isolates(backend: str) -> None:
    async with opened(backend) as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        job_id = await send(box, i1, 3, "0x31", now_ms=1_000)
        assert await box.jobs_since([W1, W2], 0) == {W1: 1}
        assert await box.jobs_since([W1], 1_001) == {}
        await box.job_mined(
            job_id, tx_hash="0x31", block=9, status=1, gas_used=21_000, effective_gas_price=1,
            outcomes=[(i1.key, "failed", "mined without effect")], now_ms=2_000,
            block_hash="0x09", misses=[(i1.key, 12 << 32)],
            isolations=[(W1, i1.key, "ran out of gas"), (W1, i1.key, "second reason")],
        )  # fmt: skip
        assert await box.jobs_since([W1], 1_500) == {W1: 1}  # mined inside the window
        last = await box.last_mined(RELAYER)
        assert last is not None and (last.nonce, last.block, last.block_hash) == (3, 9, "0x09")
        assert [(p.key, p.position) for p in await box.parked()] == [(i1.key, 12 << 32)]
        assert (await box.intent(i1.key)).misses == 1  # type: ignore[union-attr]
        await box.isolate([(W1, "other", "third reason")], 3_000)
        assert await box.isolated([W1, W2]) == {W1: "ran out of gas"}  # the first stays
        await box.unpark([i1.key], "its session moved on", 4_000)
        row = await box.intent(i1.key)
        assert row is not None and (row.state, row.misses) == ("pending", 0)
        assert await box.parked() == []


async def test_two_writers_never_claim_one_intent_twice(pg_dsn: str) -> None:
    """PostgreSQL has more than one connection: two jobs written at once for the same
    intent, and only one of them is kept (the claim takes pending intents only)."""
    async with opened(pg_dsn) as box:
        (i1,) = await box.record([decision(intent(W1))], 1)
        results = await asyncio.gather(
            send(box, i1, 0, "0xe1"), send(box, i1, 1, "0xe2"), return_exceptions=True
        )
        kept = [r for r in results if isinstance(r, int)]
        assert len(kept) == 1
        assert [type(r) for r in results if not isinstance(r, int)] == [OutboxError]
        (job,) = await box.jobs(None)
        assert job.id == kept[0] and len(job.attempts) == 1
