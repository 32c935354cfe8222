"""Jobs: one nonce's worth of work each, their signed transactions, and every move of a
job's rows (see `executor.schema` for the states).

`JobLedger` writes each move in one transaction (`Database.transaction()`); the outbox
hands its methods out as its own, so callers see one facade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from database import Database, Queries
from database.sqlite import as_database
from executor.errors import OutboxError
from executor.schema import BATCH_MEMBER, REVERTED
from executor.spending import isolate_in

# The relayer's next nonce: never lowered for the same relayer (a job written for an
# older nonce, a replacement), started afresh for a new key. The existing row is named
# by its table (PostgreSQL finds a bare column in ON CONFLICT … DO UPDATE ambiguous), and
# the larger of two values is a CASE (SQLite's two-argument MAX is PostgreSQL's GREATEST).
_NEXT_NONCE = (
    "INSERT INTO executor_state (id, relayer, next_nonce) VALUES (1, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET relayer = excluded.relayer, next_nonce = CASE "
    "WHEN executor_state.relayer = excluded.relayer "
    "AND executor_state.next_nonce > excluded.next_nonce THEN executor_state.next_nonce "
    "ELSE excluded.next_nonce END"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    hash: str
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    raw: str
    state: str  # signed | sent | rejected | mined | replaced
    created_ms: int


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    nonce: int | None
    kind: str  # close | sweep | batch | cancel
    to_address: str
    data: str
    gas: int
    state: str  # live | mined | done (settled) | dropped | dry_run
    mined_hash: str | None
    mined_block: int | None
    created_ms: int
    attempts: tuple[Attempt, ...]  # oldest first
    mined_block_hash: str | None = None

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]


@dataclass(frozen=True, slots=True)
class Claim:
    """An intent a job carries that is not settled yet, with what confirms it."""

    key: str
    wallet: str
    state: str  # submitted | mined
    job_id: int
    mined_hash: str | None
    hashes: frozenset[str]  # every transaction of its job


@dataclass(frozen=True, slots=True)
class NewJob:
    """What `Outbox.create_job` writes ahead of sending."""

    kind: str
    to_address: str
    data: str
    gas: int
    intent_keys: tuple[str, ...]


class JobLedger:
    """The job side of the outbox: creating jobs, their attempts, and their moves."""

    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        self.database = as_database(db)

    async def create_job(
        self,
        job: NewJob,
        *,
        relayer: str,
        nonce: int,
        tx_hash: str,
        raw: str,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        now_ms: int,
    ) -> int:
        """Write a job, its first signed transaction, its intents' move to submitted and
        the next nonce, in one transaction, before anything is sent."""
        async with self.database.transaction() as tx:
            job_id = await _insert_job(tx, job, nonce, "live", now_ms, sender=relayer)
            await _insert_attempt(
                tx, job_id, nonce, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas,
                now_ms,
            )  # fmt: skip
            await _claim(tx, job, job_id, "submitted", None, now_ms)
            await tx.execute(_NEXT_NONCE, (relayer, nonce + 1))
        return job_id

    async def signed_before(self, tx_hash: str) -> bool:
        """Whether a transaction with this hash is in the outbox already: signing the same
        call at the same nonce with the same fees gives the same bytes (a nonce the node
        gave back after a reorg, taken again by the same close)."""
        found = await self.database.fetchval(
            "SELECT 1 FROM transactions WHERE hash = ?", (tx_hash.lower(),)
        )
        return found is not None

    async def record_dry_run(self, job: NewJob, detail: str, now_ms: int) -> int:
        """What would have been sent; the intents end in `dry_run`."""
        async with self.database.transaction() as tx:
            job_id = await _insert_job(tx, job, None, "dry_run", now_ms)
            await _claim(tx, job, job_id, "dry_run", detail, now_ms)
        return job_id

    async def add_attempt(
        self,
        job_id: int,
        nonce: int,
        *,
        tx_hash: str,
        raw: str,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
        now_ms: int,
        rewrite: tuple[str, str, str, int] | None = None,
    ) -> None:
        """A replacement (same nonce, higher fees), written before it is sent. With
        `rewrite` = (kind, to, data, gas) the job now does that instead: the self-transfer
        that cancels it, or a batch without the members that are no longer wanted."""
        async with self.database.transaction() as tx:
            await _insert_attempt(
                tx, job_id, nonce, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas,
                now_ms,
            )  # fmt: skip
            if rewrite is not None:
                await tx.execute(
                    "UPDATE jobs SET kind = ?, to_address = ?, data = ?, gas = ?, "
                    "updated_ms = ? WHERE id = ?",
                    (*rewrite, now_ms, job_id),
                )

    async def mark_sent(self, tx_hash: str, now_ms: int) -> None:
        async with self.database.transaction() as tx:
            await tx.execute(
                "UPDATE transactions SET state = 'sent', sent_ms = COALESCE(sent_ms, ?), "
                "error = NULL WHERE hash = ? AND state IN ('signed', 'rejected')",
                (now_ms, tx_hash),
            )

    async def mark_rejected(self, tx_hash: str, error: str) -> None:
        async with self.database.transaction() as tx:
            await tx.execute(
                "UPDATE transactions SET state = 'rejected', error = ? WHERE hash = ? "
                "AND state = 'signed'",
                (error, tx_hash),
            )

    async def job_mined(
        self,
        job_id: int,
        *,
        tx_hash: str,
        block: int,
        status: int,
        gas_used: int,
        effective_gas_price: int,
        outcomes: Sequence[tuple[str, str, str]],
        now_ms: int,
        block_hash: str | None = None,
        misses: Sequence[tuple[str, int | None]] = (),
        isolations: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """The job's transaction `tx_hash` has a receipt: its intents become mined, or
        settle as `outcomes` says (a failed batch member, a reverted close, one requeued).
        `misses` are (key, park position) of the intents it was mined for without effect:
        their count goes up, and a position parks a failed one until its session moves
        past it (`SpendLedger.unpark`). `isolations` (wallet, key, why) take sessions out
        of batching in the same transaction that requeues their intents, so a crash
        cannot send them in a batch again."""
        async with self.database.transaction() as tx:
            await isolate_in(tx, isolations, now_ms)
            await tx.execute(
                "UPDATE jobs SET state = 'mined', mined_hash = ?, mined_block = ?, "
                "mined_block_hash = ?, receipt_status = ?, gas_used = ?, "
                "effective_gas_price = ?, mined_ms = COALESCE(mined_ms, ?), updated_ms = ? "
                "WHERE id = ?",
                (tx_hash, block, block_hash, status, gas_used, str(effective_gas_price),
                 now_ms, now_ms, job_id),
            )  # fmt: skip
            await tx.executemany(
                "UPDATE intents SET mined_without_effect = mined_without_effect + 1, "
                "retry_after_position = ? WHERE key = ?",
                [(position, key) for key, position in misses],
            )
            await tx.execute(
                "UPDATE transactions SET state = CASE WHEN hash = ? THEN 'mined' ELSE 'replaced' "
                "END WHERE job_id = ?",
                (tx_hash, job_id),
            )
            await tx.execute(
                "UPDATE intents SET state = 'mined', updated_ms = ? "
                "WHERE job_id = ? AND state = 'submitted'",
                (now_ms, job_id),
            )
            await tx.executemany(
                "UPDATE intents SET state = ?, detail = ?, updated_ms = ? WHERE key = ?",
                [(state, detail, now_ms, key) for key, state, detail in outcomes],
            )

    async def job_unmined(self, job_id: int, now_ms: int) -> None:
        """The receipt vanished (a reorg): the job is live again, and what its receipt
        settled is open again; its signed transactions are still the only ones allowed."""
        async with self.database.transaction() as tx:
            await _reopen_job(tx, job_id, "its transaction vanished (reorg)", now_ms)

    async def reorged(self, ancestor_block: int, now_ms: int) -> list[int]:
        """A reorg replaced every block above `ancestor_block`: jobs mined there are live
        again, and what their receipts settled (mined, confirmed, a batch member's revert)
        is open again as submitted, to be tracked on the new branch. Returns the job ids."""
        detail = f"reorg above block {ancestor_block} undid its transaction"
        async with self.database.transaction() as tx:
            rows = await tx.fetch(
                "SELECT id FROM jobs WHERE state IN ('mined', 'done') AND mined_block > ? "
                "ORDER BY id",
                (ancestor_block,),
            )
            ids = [int(r[0]) for r in rows]
            for job_id in ids:
                await _reopen_job(tx, job_id, detail, now_ms)
            # A live job may have been mined in a replaced block before its receipt was
            # seen: its transaction is gone too, so it is sent again (a node that still
            # holds it answers "already known").
            await tx.execute(
                "UPDATE transactions SET state = 'signed' WHERE state = 'sent' AND job_id IN "
                "(SELECT id FROM jobs WHERE state = 'live')"
            )
        return ids

    async def job_dropped(self, job_id: int, detail: str, now_ms: int) -> None:
        """Someone else's transaction took the job's nonce and none of ours was mined: the
        job is dead, and its intents that are still open go back to pending for a new job
        at a new nonce."""
        async with self.database.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET state = 'dropped', updated_ms = ? WHERE id = ?", (now_ms, job_id)
            )
            await tx.execute(
                "UPDATE transactions SET state = 'replaced', error = ? WHERE job_id = ?",
                (detail, job_id),
            )
            await tx.execute(
                "UPDATE intents SET state = 'pending', job_id = NULL, detail = ?, updated_ms = ? "
                "WHERE job_id = ? AND state = 'submitted'",
                (detail, now_ms, job_id),
            )

    async def finish_settled_jobs(self, now_ms: int) -> int:
        """Mined jobs whose intents are all settled need no more tracking."""
        async with self.database.transaction() as tx:
            return await tx.execute(
                "UPDATE jobs SET state = 'done', updated_ms = ? WHERE state = 'mined' AND "
                "NOT EXISTS (SELECT 1 FROM intents i WHERE i.job_id = jobs.id "
                "AND i.state IN ('submitted', 'mined'))",
                (now_ms,),
            )


async def _reopen_job(db: Queries, job_id: int, detail: str, now_ms: int) -> None:
    await db.execute(
        "UPDATE jobs SET state = 'live', mined_hash = NULL, mined_block = NULL, "
        "mined_block_hash = NULL, receipt_status = NULL, updated_ms = ? WHERE id = ?",
        (now_ms, job_id),
    )
    # Gone with their block (the node forgets them): signed, so the next step sends
    # again, or replaces, at once instead of waiting for blocks that may not come.
    await db.execute("UPDATE transactions SET state = 'signed' WHERE job_id = ?", (job_id,))
    # Only what the receipt settled: an intent obsolete before its job became a cancel
    # stays obsolete.
    await db.execute(
        "UPDATE intents SET state = 'submitted', confirmed_position = NULL, detail = ?, "
        "updated_ms = ? WHERE job_id = ? AND (state IN ('mined', 'confirmed') OR "
        "(state IN ('obsolete', 'failed') AND (detail LIKE ? OR detail LIKE ?)))",
        (detail, now_ms, job_id, f"{BATCH_MEMBER}%", f"{REVERTED}%"),
    )


async def _insert_job(
    db: Queries,
    job: NewJob,
    nonce: int | None,
    state: str,
    now_ms: int,
    *,
    sender: str | None = None,
) -> int:
    job_id = await db.fetchval(
        "INSERT INTO jobs (nonce, kind, to_address, data, gas, state, sender, created_ms, "
        "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (nonce, job.kind, job.to_address, job.data, job.gas, state, sender, now_ms, now_ms),
    )
    if job_id is None:
        raise OutboxError("jobs insert returned no row id")
    return int(job_id)


async def _insert_attempt(
    db: Queries,
    job_id: int,
    nonce: int,
    tx_hash: str,
    raw: str,
    max_fee: int,
    tip: int,
    now_ms: int,
) -> None:
    await db.execute(
        "INSERT INTO transactions (hash, job_id, nonce, max_fee_per_gas, "
        "max_priority_fee_per_gas, raw, state, created_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, 'signed', ?)",
        (tx_hash, job_id, nonce, str(max_fee), str(tip), raw, now_ms),
    )


async def _claim(
    db: Queries,
    job: NewJob,
    job_id: int,
    state: str,
    detail: str | None,
    now_ms: int,
) -> None:
    if not job.intent_keys:
        return  # nothing to claim (and `IN ()` is no SQL to PostgreSQL)
    marks = ", ".join("?" for _ in job.intent_keys)
    # One statement for all of them: its count of rows changed says whether each was
    # pending (a key listed twice is claimed once and so fails the count, as before).
    claimed_now = await db.execute(
        "UPDATE intents SET state = ?, job_id = ?, detail = COALESCE(?, detail), "
        f"updated_ms = ? WHERE key IN ({marks}) AND state = 'pending'",
        (state, job_id, detail, now_ms, *job.intent_keys),
    )
    if claimed_now != len(job.intent_keys):
        # Never two live transactions for one intent: a job only takes pending ones
        # (the transaction rolls back, so none of them is claimed).
        found = await db.fetch(
            f"SELECT key FROM intents WHERE job_id = ? AND key IN ({marks})",
            (job_id, *job.intent_keys),
        )
        claimed = {r[0] for r in found}
        key = next((k for k in job.intent_keys if k not in claimed), job.intent_keys[0])
        raise OutboxError(f"intent {key} is not pending; refusing to give it a job")
    # Every job an intent ever had, requeues included: what the rate guard counts.
    await db.execute(
        "INSERT INTO job_intents (job_id, intent_id, wallet) SELECT ?, id, wallet "
        f"FROM intents WHERE job_id = ? AND key IN ({marks}) "
        "ON CONFLICT (job_id, intent_id) DO NOTHING",
        (job_id, job_id, *job.intent_keys),
    )
