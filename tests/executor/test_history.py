"""OutboxReads: the executor's tables read by others (the API, `warden inspect`): pages of
intents with filters, each intent's job, attempts and refusals, counts; an indexer-only
database has no intents rather than an error."""

from __future__ import annotations

from pathlib import Path

from executor import Outbox, OutboxReads
from executor.history import IntentFilter
from executor.outbox import NewJob
from indexer import IndexerStore, open_database
from indexer.reads import open_read_only
from rules import Decision, Intent

W1 = "0x" + "11" * 20
W2 = "0x" + "22" * 20
RELAYER = "0x" + "33" * 20
NOW = 1_700_000_000_000


def _hash(n: int) -> str:
    return "0x" + f"{n:064x}"


def _intent(wallet: str, rule: str, action: str = "close", reason: str = "idle") -> Intent:
    return Intent(wallet, rule, action, reason, (7 << 32) | 3, 1_000, "v1")


async def _write(path: Path) -> dict[str, str]:
    db = await open_database(path)
    try:
        outbox = Outbox(db)
        await outbox.setup()
        done, waiting, swept = (
            _intent(W1, "stop-loss", reason="stop_loss"),
            _intent(W2, "idle"),
            _intent(W2, "sweep", action="sweep", reason="swept"),
        )
        extra = [_intent(W1, f"r{n}") for n in range(5)]
        decisions = [
            Decision(i.wallet, (i,), frozenset({i.rule}), frozenset())
            for i in (done, waiting, swept, *extra)
        ]
        await outbox.record(decisions, NOW)
        job = NewJob("close", W1, "0xdeadbeef", 90_000, (done.key,))
        job_id = await outbox.create_job(
            job, relayer=RELAYER, nonce=0, tx_hash=_hash(1), raw="0x01",
            max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9, now_ms=NOW + 1,
        )  # fmt: skip
        await outbox.add_attempt(
            job_id, 0, tx_hash=_hash(2), raw="0x02", max_fee_per_gas=2**200,
            max_priority_fee_per_gas=2 * 10**9, now_ms=NOW + 3,
        )  # fmt: skip
        await outbox.job_mined(
            job_id, tx_hash=_hash(2), block=8, status=1, gas_used=61_234,
            effective_gas_price=2**100 + 1, outcomes=[], now_ms=NOW + 5,
        )  # fmt: skip
        await outbox.refuse(waiting.key, "rate", "3 jobs in the last hour", NOW + 7)
        await outbox.refuse(waiting.key, "balance", "too low", NOW + 8)
        return {"done": done.key, "waiting": waiting.key, "swept": swept.key}
    finally:
        await db.close()


async def test_pages_of_intents_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "warden.sqlite"
    keys = await _write(path)
    db = await open_read_only(path)
    try:
        reads = OutboxReads(db)
        assert await reads.available()
        ids: list[int] = []
        after = None
        while True:
            page = await reads.intents(IntentFilter(), after, 3)
            ids += [i.id for i in page.items]
            if page.next_key is None:
                break
            assert page.next_key == page.items[-1].id
            after = page.next_key
        assert ids == sorted(ids) and len(ids) == 8
        swept = await reads.intents(IntentFilter(action="sweep"), None, 10)
        assert [i.key for i in swept.items] == [keys["swept"]] and swept.next_key is None
        (row,) = swept.items
        assert row.block == 7 and row.rules_version == "v1" and row.reason == "swept"
        mine = await reads.intents(IntentFilter(wallet=W2, state="pending", rule="idle"), None, 9)
        assert [i.key for i in mine.items] == [keys["waiting"]]
        assert await reads.state_counts() == {"pending": 7, "mined": 1}
    finally:
        await db.close()


async def test_history_of_a_session(tmp_path: Path) -> None:
    path = tmp_path / "warden.sqlite"
    keys = await _write(path)
    db = await open_read_only(path)
    try:
        history = {h.intent.key: h for h in await OutboxReads(db).history(W1)}
        assert len(history) == 6 and keys["done"] in history
        done = history[keys["done"]]
        assert done.job is not None and done.job.state == "mined"
        assert done.job.effective_gas_price == 2**100 + 1  # exact, from TEXT
        assert done.job.fee_paid == (2**100 + 1) * 61_234
        assert [(t.hash, t.max_fee_per_gas) for t in done.transactions] == [
            (_hash(1), 2 * 10**9),
            (_hash(2), 2**200),
        ]
        assert done.refusals == ()
        (waiting,) = [
            h for h in await OutboxReads(db).history(W2) if h.intent.key == keys["waiting"]
        ]
        assert waiting.job is None and waiting.transactions == ()
        assert [(r.guard, r.reason) for r in waiting.refusals] == [
            ("rate", "3 jobs in the last hour"),
            ("balance", "too low"),
        ]
        assert await OutboxReads(db).history("0x" + "44" * 20) == []
    finally:
        await db.close()


async def test_an_indexer_only_database_has_no_intents(tmp_path: Path) -> None:
    path = tmp_path / "indexer-only.sqlite"
    writer = await open_database(path)
    try:
        await IndexerStore(writer).setup()
        db = await open_read_only(path)
        try:
            reads = OutboxReads(db)
            assert not await reads.available()
            page = await reads.intents(IntentFilter(), None, 10)
            assert (page.items, page.next_key) == ([], None)
            assert await reads.history(W1) == []
            assert await reads.state_counts() == {}
            await Outbox(writer).setup()  # the executor starts later: seen from then on
            assert await reads.available()
            assert (await reads.intents(IntentFilter(), None, 10)).items == []
        finally:
            await db.close()
    finally:
        await writer.close()
