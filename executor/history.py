"""Read-only queries over the executor's tables for everyone but the executor: the HTTP
API and `warden inspect`. The executor's own reads and every write stay in `Outbox`.

    reads = OutboxReads(db)               # the daemon's database: SQLite or PostgreSQL
    page = await reads.intents(IntentFilter(state="pending"), after=None, limit=100)
    story = await reads.history(wallet)   # each intent with its job, transactions, refusals

The executor creates its tables on its first start, so a database written only by the
indexer has none: every read then answers "no intents" rather than failing. Rows come
back typed; fees are exact ints (stored as decimal TEXT). Reads that must agree with each
other are the caller's to wrap in one read snapshot (`Database.snapshot()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from chain import block_of
from database import Database
from database.sqlite import as_database
from indexer.reads import Page, page_of

_TABLES = ("intents", "jobs", "transactions", "refusals")
_INTENT_COLUMNS = (
    "id, key, wallet, rule, action, reason, position, triggered_at, rules_version, state, "
    "detail, job_id, confirmed_position, created_ms, updated_ms"
)
_JOB_COLUMNS = (
    "id, nonce, kind, to_address, gas, state, mined_hash, mined_block, receipt_status, "
    "gas_used, effective_gas_price, created_ms, updated_ms"
)
_TX_COLUMNS = (
    "hash, job_id, nonce, max_fee_per_gas, max_priority_fee_per_gas, state, error, "
    "created_ms, sent_ms"
)


@dataclass(frozen=True, slots=True)
class IntentFilter:
    wallet: str | None = None
    state: str | None = None
    rule: str | None = None
    action: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """One rule firing as stored, every column."""

    id: int
    key: str
    wallet: str
    rule: str
    action: str
    reason: str
    position: int  # of the event that triggered it
    triggered_at: int  # chain time, unix seconds
    rules_version: str
    state: str
    detail: str | None
    job_id: int | None
    confirmed_position: int | None
    created_ms: int
    updated_ms: int

    @property
    def block(self) -> int:
        return block_of(self.position)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    nonce: int | None
    kind: str
    to_address: str
    gas: int
    state: str
    mined_hash: str | None
    mined_block: int | None
    receipt_status: int | None
    gas_used: int | None
    effective_gas_price: int | None  # wei
    created_ms: int
    updated_ms: int

    @property
    def fee_paid(self) -> int | None:
        """Wei paid for the mined transaction, None until mined."""
        if self.effective_gas_price is None or self.gas_used is None:
            return None
        return self.effective_gas_price * self.gas_used


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One signed attempt of a job (replacements too), written before it was sent."""

    hash: str
    job_id: int
    nonce: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    state: str
    error: str | None
    created_ms: int
    sent_ms: int | None


@dataclass(frozen=True, slots=True)
class RefusalRecord:
    guard: str
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Reaction:
    """How long an intent waited from being stored to its first transaction sent."""

    intent_id: int
    wallet: str
    rule: str
    created_ms: int
    sent_ms: int

    @property
    def latency_ms(self) -> int:
        return max(0, self.sent_ms - self.created_ms)


@dataclass(frozen=True, slots=True)
class IntentHistory:
    """An intent with what became of it."""

    intent: IntentRecord
    job: JobRecord | None
    transactions: tuple[TransactionRecord, ...]
    refusals: tuple[RefusalRecord, ...]


class OutboxReads:
    """Every read of intents, jobs, transactions and refusals outside the executor."""

    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        self.database = as_database(db)
        self._present = False

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self.database.fetch(sql, params)

    async def available(self) -> bool:
        """Whether the executor's tables exist in this database."""
        # Once created they stay; until then look each time (the executor may start later).
        if not self._present:
            self._present = all([await self.database.has_table(t) for t in _TABLES])
        return self._present

    async def intents(self, f: IntentFilter, after: int | None, limit: int) -> Page[IntentRecord]:
        """Intents in creation (id) order, filtered, after id `after`."""
        if not await self.available():
            return Page([], None)
        where = ["id > ?"]
        params: list[Any] = [-1 if after is None else after]
        for column in ("wallet", "state", "rule", "action", "reason"):
            value = getattr(f, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._rows(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT ?",
            [*params, limit + 1],
        )
        return page_of([IntentRecord(*r) for r in rows], limit, _id)

    async def history(self, wallet: str) -> list[IntentHistory]:
        """Every intent of one session in id order, with its job, every signed attempt
        and the guards' refusals: four statements whatever the number of intents (the
        jobs, transactions and refusals of all of them at once)."""
        if not await self.available():
            return []
        rows = await self._rows(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE wallet = ? ORDER BY id", [wallet]
        )
        intents = [IntentRecord(*r) for r in rows]
        if not intents:
            return []
        jobs: dict[int, JobRecord] = {}
        sent: dict[int, list[TransactionRecord]] = {}
        if any(i.job_id is not None for i in intents):
            mine = "SELECT job_id FROM intents WHERE wallet = ? AND job_id IS NOT NULL"
            for r in await self._rows(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id IN ({mine})", [wallet]
            ):
                job = _job(r)
                jobs[job.id] = job
            for r in await self._rows(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE job_id IN ({mine}) "
                "ORDER BY job_id, created_ms, hash",
                [wallet],
            ):
                tx = _transaction(r)
                sent.setdefault(tx.job_id, []).append(tx)
        refused: dict[str, list[RefusalRecord]] = {}
        for key, *refusal in await self._rows(
            "SELECT intent_key, guard, reason, at_ms FROM refusals WHERE intent_key IN "
            "(SELECT key FROM intents WHERE wallet = ?) ORDER BY intent_key, id",
            [wallet],
        ):
            refused.setdefault(key, []).append(RefusalRecord(*refusal))
        return [
            IntentHistory(
                intent,
                None if intent.job_id is None else jobs.get(intent.job_id),
                () if intent.job_id is None else tuple(sent.get(intent.job_id, ())),
                tuple(refused.get(intent.key, ())),
            )
            for intent in intents
        ]

    async def recent_reactions(self, limit: int) -> list[Reaction]:
        """The latest `limit` intents that got a transaction sent, oldest first, each
        with its first send (the same figure as `warden_trigger_to_tx_seconds`)."""
        if not await self.available():
            return []
        rows = await self._rows(
            "SELECT i.id, i.wallet, i.rule, i.created_ms, MIN(t.sent_ms) FROM intents i "
            "JOIN transactions t ON t.job_id = i.job_id WHERE t.sent_ms IS NOT NULL "
            "GROUP BY i.id, i.wallet, i.rule, i.created_ms ORDER BY i.id DESC LIMIT ?",
            [limit],
        )
        return [Reaction(int(a), b, c, int(d), int(e)) for a, b, c, d, e in reversed(rows)]

    async def state_counts(self) -> dict[str, int]:
        """Intents by state; a state no intent is in is absent."""
        if not await self.available():
            return {}
        rows = await self._rows("SELECT state, COUNT(*) FROM intents GROUP BY state")
        return {state: int(n) for state, n in rows}


def _id(intent: IntentRecord) -> int:
    return intent.id


def _job(r: Sequence[Any]) -> JobRecord:
    values = list(r)
    values[10] = None if r[10] is None else int(r[10])  # effective_gas_price, TEXT
    return JobRecord(*values)


def _transaction(r: Sequence[Any]) -> TransactionRecord:
    return TransactionRecord(r[0], r[1], r[2], int(r[3]), int(r[4]), r[5], r[6], r[7], r[8])
