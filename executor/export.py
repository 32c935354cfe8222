"""The outbox read whole for `warden db export`: each intent with every job that carried
it (`job_intents`: a requeued intent has had several) and each job's signed transactions,
one chunk of intents in memory at a time.

    async for chunk in intent_chunks(db, IntentSelection(state="confirmed")): ...

Fees and prices are the exact decimal text they are stored as; a transaction's signed
bytes (`raw`) are left out (the hash names it on chain).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from database import Database

INTENT_COLUMNS = (
    "id", "key", "wallet", "rule", "action", "reason", "position", "triggered_at",
    "rules_version", "state", "detail", "job_id", "confirmed_position",
    "mined_without_effect", "created_ms", "updated_ms",
)  # fmt: skip
JOB_COLUMNS = (
    "id", "nonce", "kind", "to_address", "data", "gas", "state", "sender", "mined_hash",
    "mined_block", "mined_block_hash", "receipt_status", "gas_used", "effective_gas_price",
    "created_ms", "updated_ms",
)  # fmt: skip
TRANSACTION_COLUMNS = (
    "hash", "job_id", "nonce", "max_fee_per_gas", "max_priority_fee_per_gas", "state",
    "error", "created_ms", "sent_ms",
)  # fmt: skip


@dataclass(frozen=True)
class IntentSelection:
    state: str | None = None
    from_block: int | None = None  # inclusive, by the triggering event's block
    to_block: int | None = None
    # A subquery selecting wallets, and its parameters (the indexer's `wallets_of`).
    wallets: tuple[str, tuple[Any, ...]] | None = None


@dataclass
class IntentRecord:
    intent: tuple[Any, ...]  # INTENT_COLUMNS
    jobs: list[tuple[Any, ...]] = field(default_factory=list)  # JOB_COLUMNS, oldest first
    # job id → its transactions (TRANSACTION_COLUMNS), in the order they were signed
    transactions: dict[int, list[tuple[Any, ...]]] = field(default_factory=dict)


def intent_query(sel: IntentSelection) -> tuple[str, tuple[Any, ...]]:
    where: list[str] = []
    params: list[Any] = []
    if sel.state is not None:
        where.append("state = ?")
        params.append(sel.state)
    if sel.from_block is not None:
        where.append("position >= ?")
        params.append(sel.from_block << 32)
    if sel.to_block is not None:
        where.append("position < ?")
        params.append((sel.to_block + 1) << 32)
    if sel.wallets is not None:
        where.append(f"wallet IN ({sel.wallets[0]})")
        params.extend(sel.wallets[1])
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {', '.join(INTENT_COLUMNS)} FROM intents{clause} ORDER BY id", tuple(params)


async def intent_chunks(
    db: Database, sel: IntentSelection, size: int = 500
) -> AsyncGenerator[list[IntentRecord], None]:
    """Intents with their jobs and transactions, `size` intents at a time. Run inside
    `db.snapshot()` so the three tables are read as of one moment."""
    sql, params = intent_query(sel)
    jobs_sql = ", ".join(f"j.{c}" for c in JOB_COLUMNS)
    tx_sql = ", ".join(TRANSACTION_COLUMNS)
    async with contextlib.aclosing(db.stream(sql, params, size)) as chunks:
        async for rows in chunks:
            records = {int(r[0]): IntentRecord(r) for r in rows}
            marks = ", ".join("?" for _ in records)
            carried = await db.fetch(
                f"SELECT ji.intent_id, {jobs_sql} FROM job_intents ji JOIN jobs j ON j.id = "
                f"ji.job_id WHERE ji.intent_id IN ({marks}) ORDER BY ji.intent_id, j.id",
                tuple(records),
            )
            job_ids: set[int] = set()
            for row in carried:
                records[int(row[0])].jobs.append(row[1:])
                job_ids.add(int(row[1]))
            signed: dict[int, list[tuple[Any, ...]]] = {}
            if job_ids:
                ids = sorted(job_ids)
                found = await db.fetch(
                    f"SELECT {tx_sql} FROM transactions WHERE job_id IN "
                    f"({', '.join('?' for _ in ids)}) ORDER BY job_id, created_ms, rowid",
                    tuple(ids),
                )
                for tx in found:
                    signed.setdefault(int(tx[1]), []).append(tx)
            for record in records.values():
                record.transactions = {int(j[0]): signed.get(int(j[0]), []) for j in record.jobs}
            yield list(records.values())
