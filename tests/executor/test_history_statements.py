"""`OutboxReads.history` reads a session's intents, jobs, transactions and refusals in four
statements however many intents it has (the API's session page), and answers exactly
what one query per intent answered: the reference below is the former implementation,
run on the same data, on SQLite and PostgreSQL. The data has what the grouping could get
wrong: a batch job shared by intents of two sessions, attempts written in the same
millisecond (ordered by hash), refusals of several intents interleaved, intents without
a job, a session without intents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from database import Database, open_database
from executor import Outbox, OutboxReads
from executor.history import (
    _INTENT_COLUMNS,
    _JOB_COLUMNS,
    _TX_COLUMNS,
    IntentHistory,
    IntentRecord,
    JobRecord,
    RefusalRecord,
    TransactionRecord,
    _job,
    _transaction,
)
from executor.outbox import NewJob
from rules import Decision, Intent

W1, W2, W3, NOBODY = ("0x" + c * 20 for c in ("11", "22", "33", "44"))
RELAYER = "0x" + "99" * 20
NOW = 1_700_000_000_000


def _hash(n: int) -> str:
    return "0x" + f"{n:064x}"


def _intent(wallet: str, rule: str, position: int) -> Intent:
    return Intent(wallet, rule, "close", "idle", (position << 32) | 3, 1_000, "v1")


async def _write(db: Database) -> None:
    outbox = Outbox(db)
    await outbox.setup()
    w1 = [_intent(W1, f"r{n}", 7 + n) for n in range(6)]
    w2 = [_intent(W2, f"r{n}", 9 + n) for n in range(3)]
    w3 = [_intent(W3, "idle", 5)]
    await outbox.record(
        [Decision(i.wallet, (i,), frozenset({i.rule}), frozenset()) for i in (*w1, *w2, *w3)],
        NOW,
    )
    # a batch: one job for an intent of W1 and one of W2, replaced twice, two attempts
    # written in the same millisecond (the hash orders them)
    batch = NewJob("closeBatch", RELAYER, "0xbatch", 300_000, (w1[0].key, w2[0].key))
    batch_id = await outbox.create_job(
        batch, relayer=RELAYER, nonce=0, tx_hash=_hash(9), raw="0x09",
        max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9, now_ms=NOW + 1,
    )  # fmt: skip
    for n, fee in ((3, 2**200), (5, 2**201)):
        await outbox.add_attempt(
            batch_id, 0, tx_hash=_hash(n), raw="0x0a", max_fee_per_gas=fee,
            max_priority_fee_per_gas=2 * 10**9, now_ms=NOW + 2,
        )  # fmt: skip
    await outbox.mark_sent(_hash(3), NOW + 3)
    await outbox.job_mined(
        batch_id, tx_hash=_hash(3), block=8, status=1, gas_used=61_234,
        effective_gas_price=2**100 + 1, outcomes=[], now_ms=NOW + 5,
    )  # fmt: skip
    # a job of W1's alone
    single = NewJob("close", W1, "0xdeadbeef", 90_000, (w1[3].key,))
    await outbox.create_job(
        single, relayer=RELAYER, nonce=1, tx_hash=_hash(20), raw="0x14",
        max_fee_per_gas=3 * 10**9, max_priority_fee_per_gas=10**9, now_ms=NOW + 6,
    )  # fmt: skip
    # refusals of several intents, interleaved (their ids alternate)
    for n in range(3):
        for intent in (w1[1], w1[4], w2[1], w1[5]):
            await outbox.refuse(intent.key, f"guard{n}", f"reason {n} of {intent.rule}", NOW + n)


async def _reference(db: Database, wallet: str) -> list[IntentHistory]:
    """The former `history`: a query per intent for its job, its transactions and its
    refusals."""

    async def rows(sql: str, params: Sequence[Any]) -> list[Any]:
        return await db.fetch(sql, params)

    out: list[IntentHistory] = []
    found = await rows(f"SELECT {_INTENT_COLUMNS} FROM intents WHERE wallet = ? ORDER BY id",
                       [wallet])  # fmt: skip
    for intent in (IntentRecord(*r) for r in found):
        job: JobRecord | None = None
        transactions: tuple[TransactionRecord, ...] = ()
        if intent.job_id is not None:
            jobs = await rows(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", [intent.job_id])
            job = _job(jobs[0]) if jobs else None
            transactions = tuple(
                _transaction(r)
                for r in await rows(
                    f"SELECT {_TX_COLUMNS} FROM transactions WHERE job_id = ? "
                    "ORDER BY created_ms, hash",
                    [intent.job_id],
                )
            )
        refusals = tuple(
            RefusalRecord(*r)
            for r in await rows(
                "SELECT guard, reason, at_ms FROM refusals WHERE intent_key = ? ORDER BY id",
                [intent.key],
            )
        )
        out.append(IntentHistory(intent, job, transactions, refusals))
    return out


class _Counted(Database):
    """The database, counting the statements run through it."""

    def __init__(self, inner: Database) -> None:
        self.inner, self.dialect, self.display = inner, inner.dialect, inner.display
        self.statements = 0

    async def fetch(self, sql: str, params: Any = ()) -> list[Any]:
        self.statements += 1
        return await self.inner.fetch(sql, params)

    async def execute(self, sql: str, params: Any = ()) -> int:
        raise AssertionError("a read executed a statement")

    async def executemany(self, sql: str, rows: Any) -> None:
        raise AssertionError("a read executed a statement")

    def transaction(self) -> Any:
        raise AssertionError("a read opened a write transaction")

    def exclusive(self, name: str) -> Any:
        raise AssertionError("not for reads")

    async def has_table(self, name: str) -> bool:
        return await self.inner.has_table(name)

    async def columns(self, table: str) -> list[str]:
        return await self.inner.columns(table)

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def stream(self, sql: str, params: Any = (), size: int = 1000) -> Any:
        return self.inner.stream(sql, params, size)

    async def close(self) -> None:
        await self.inner.close()


async def test_history_is_four_statements_and_answers_as_one_query_per_intent(
    backend: str,
) -> None:
    writer = await open_database(backend)
    try:
        await _write(writer)
    finally:
        await writer.close()
    db = await open_database(backend, read_only=True)
    try:
        counted = _Counted(db)
        reads = OutboxReads(counted)
        assert await reads.available()
        sizes = {}
        for wallet in (W1, W2, W3, NOBODY):
            before = counted.statements
            async with db.snapshot():
                got = await reads.history(wallet)
            sizes[wallet] = counted.statements - before
            async with db.snapshot():
                assert got == await _reference(db, wallet), wallet
        w1 = {h.intent.rule: h for h in await reads.history(W1)}
        w2 = {h.intent.rule: h for h in await reads.history(W2)}
        # what the comparison covers is there: the shared batch, its attempts by hash
        # within one millisecond, interleaved refusals, exact uint256 fees
        assert w1["r0"].job is not None and w1["r0"].job == w2["r0"].job
        assert [t.hash for t in w1["r0"].transactions] == [_hash(9), _hash(3), _hash(5)]
        assert w1["r0"].transactions[2].max_fee_per_gas == 2**201
        assert w1["r0"].job.effective_gas_price == 2**100 + 1
        assert [r.guard for r in w1["r4"].refusals] == ["guard0", "guard1", "guard2"]
        assert w1["r2"].job is None and w1["r2"].refusals == ()
        assert sizes == {W1: 4, W2: 4, W3: 2, NOBODY: 1}
    finally:
        await db.close()
