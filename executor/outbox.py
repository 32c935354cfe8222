"""The intent outbox: the narrow layer every read and write of the executor's tables goes
through (the tables and their states: `executor.schema`).

`Outbox` is the one facade: the intent side (recording the rules' decisions with their
latches, reading intents, settling them) is its own; the job side is `JobLedger`'s
(`executor.jobs`), whose methods it hands out as its own. Every method that writes does
so in one transaction, through the `database` seam (SQLite or PostgreSQL, the same SQL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite

from database import Database, Queries, migrate
from database.sqlite import as_database
from executor.errors import OutboxError
from executor.intents import (
    INTENT_COLUMNS,
    IntentRow,
    IntentT,
    RuleDecision,
    latch_runs,
    store_intents,
)
from executor.jobs import Attempt, Claim, Job, JobLedger, NewJob
from executor.schema import (
    BATCH_MEMBER,
    COMPONENT,
    FINAL_STATES,
    ISOLATED_DETAIL,
    MIGRATIONS,
    NO_EFFECT_DETAIL,
    ORPHANED,
    REVERTED,
    STATES,
    sqlite_connection,
)
from executor.spending import MinedNonce, Parked, SpendLedger

__all__ = [
    "BATCH_MEMBER",
    "FINAL_STATES",
    "ISOLATED_DETAIL",
    "MIGRATIONS",
    "NO_EFFECT_DETAIL",
    "ORPHANED",
    "REVERTED",
    "STATES",
    "Attempt",
    "Claim",
    "IntentRow",
    "Job",
    "MinedNonce",
    "NewJob",
    "Outbox",
    "Parked",
]


class Outbox:
    """All SQL of the executor, behind one object."""

    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        # A bare SQLite connection is the one the daemon shares with the indexer's store.
        self.database = as_database(db)
        ledger = JobLedger(self.database)
        self.create_job = ledger.create_job
        self.signed_before = ledger.signed_before
        self.record_dry_run = ledger.record_dry_run
        self.add_attempt = ledger.add_attempt
        self.mark_sent = ledger.mark_sent
        self.mark_rejected = ledger.mark_rejected
        self.job_mined = ledger.job_mined
        self.job_unmined = ledger.job_unmined
        self.reorged = ledger.reorged
        self.job_dropped = ledger.job_dropped
        self.finish_settled_jobs = ledger.finish_settled_jobs
        spends = SpendLedger(self.database)
        self.jobs_since = spends.jobs_since
        self.gas_in_window = spends.gas_in_window
        self.gas_in_flight = spends.gas_in_flight
        self.last_mined = spends.last_mined
        self.parked = spends.parked
        self.unpark = spends.unpark
        self.isolated = spends.isolated
        self.isolate = spends.isolate

    @property
    def db(self) -> aiosqlite.Connection:
        """The SQLite connection underneath (for what is not on `database` yet)."""
        return sqlite_connection(self.database)

    async def setup(self) -> None:
        await migrate(self.database, COMPONENT, MIGRATIONS)

    # -- rules side: intents and latches, atomically -----------------------------
    async def record(
        self,
        decisions: Iterable[RuleDecision[IntentT]],
        now_ms: int,
        *,
        also: Callable[[Queries], Awaitable[None]] | None = None,
    ) -> list[IntentT]:
        """Store the intents and latch changes of these decisions in one transaction;
        returns the intents that were new (a duplicate key is ignored, never stored twice,
        except that an obsolete intent is pending again when its rule fires again at the
        same position: a reorg orphaned its trigger, or undid the close that made it
        obsolete, and the new branch crosses there again). `also` writes the caller's own
        rows inside the same transaction (the events of notify rules, whose latches these
        decisions carry)."""
        runs, intents = latch_runs(decisions)
        async with self.database.transaction() as tx:
            for sql, params in runs:
                await tx.executemany(sql, params)
            fresh = await store_intents(tx, intents, now_ms)
            if also is not None:  # the caller's rows of the same decisions (notify rules)
                await also(tx)
            return fresh

    async def latch_rows(self) -> list[tuple[str, str]]:
        rows = await self.database.fetch("SELECT wallet, rule FROM rule_latches ORDER BY 1, 2")
        return [(r[0], r[1]) for r in rows]

    # -- reads ---------------------------------------------------------------------
    async def intents(
        self, state: str | None = None, *, limit: int = 1000, wallet: str | None = None
    ) -> list[IntentRow]:
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if wallet is not None:
            where.append("wallet = ?")
            params.append(wallet)
        sql = f"SELECT {INTENT_COLUMNS} FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.database.fetch(sql + " ORDER BY id LIMIT ?", (*params, limit))
        return [IntentRow(*r) for r in rows]

    async def intent(self, key: str) -> IntentRow | None:
        row = await self.database.fetchone(
            f"SELECT {INTENT_COLUMNS} FROM intents WHERE key = ?", (key,)
        )
        return IntentRow(*row) if row else None

    async def intents_of_job(self, job_id: int) -> list[IntentRow]:
        rows = await self.database.fetch(
            f"SELECT {INTENT_COLUMNS} FROM intents WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [IntentRow(*r) for r in rows]

    async def counts(self) -> dict[str, int]:
        """Intents by state (every state present, zeros included)."""
        out = dict.fromkeys(STATES, 0)
        for state, n in await self.database.fetch(
            "SELECT state, COUNT(*) FROM intents GROUP BY state"
        ):
            out[state] = int(n)
        return out

    async def jobs(self, state: str | None = "live") -> list[Job]:
        sql = (
            "SELECT id, nonce, kind, to_address, data, gas, state, mined_hash, mined_block, "
            "created_ms, mined_block_hash FROM jobs"
        )
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        # NULLS FIRST: SQLite's order for the nonce-less dry runs, which PostgreSQL puts last
        rows = await self.database.fetch(sql + " ORDER BY nonce NULLS FIRST, id", params)
        attempts: dict[int, list[Attempt]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            # rowid: the order they were written in (a column on PostgreSQL, see schema)
            for r in await self.database.fetch(
                "SELECT job_id, hash, nonce, max_fee_per_gas, max_priority_fee_per_gas, raw, "
                f"state, created_ms FROM transactions WHERE job_id IN "
                f"({', '.join('?' for _ in chunk)}) ORDER BY created_ms, rowid",
                chunk,
            ):
                attempts.setdefault(r[0], []).append(
                    Attempt(r[1], r[2], int(r[3]), int(r[4]), r[5], r[6], r[7])
                )
        return [
            Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                tuple(attempts.get(r[0], ())), r[10])
            for r in rows
        ]  # fmt: skip

    async def open_claims(self) -> list[Claim]:
        # The hashes once per job (a batch's members share them), not once per intent;
        # gathered here rather than by group_concat/string_agg, which the two dialects
        # spell differently.
        found: dict[int, set[str]] = {}
        for job_id, tx_hash in await self.database.fetch(
            "SELECT t.job_id, t.hash FROM transactions t WHERE t.job_id IN "
            "(SELECT DISTINCT job_id FROM intents WHERE state IN ('submitted', 'mined'))"
        ):
            found.setdefault(job_id, set()).add(tx_hash)
        hashes = {job_id: frozenset(h) for job_id, h in found.items()}
        empty: frozenset[str] = frozenset({""})  # a job without transactions, as before
        rows = await self.database.fetch(
            "SELECT i.key, i.wallet, i.state, i.job_id, j.mined_hash "
            "FROM intents i JOIN jobs j ON j.id = i.job_id "
            "WHERE i.state IN ('submitted', 'mined') ORDER BY i.id"
        )
        return [Claim(r[0], r[1], r[2], r[3], r[4], hashes.get(r[3], empty)) for r in rows]

    async def open_wallets(self) -> set[str]:
        """Wallets with an intent whose transaction is in flight (submitted or mined)."""
        rows = await self.database.fetch(
            "SELECT DISTINCT wallet FROM intents WHERE state IN ('submitted', 'mined')"
        )
        return {r[0] for r in rows}

    async def next_nonce(self, relayer: str) -> int | None:
        row = await self.database.fetchone(
            "SELECT relayer, next_nonce FROM executor_state WHERE id = 1"
        )
        if row is None or row[0] != relayer:
            return None  # a new relayer key starts from the chain's count
        return int(row[1])

    async def refusals(self, key: str) -> list[tuple[str, str]]:
        rows = await self.database.fetch(
            "SELECT guard, reason FROM refusals WHERE intent_key = ? ORDER BY id", (key,)
        )
        return [(r[0], r[1]) for r in rows]

    # -- intent outcomes before a job ------------------------------------------------
    async def refuse(
        self, key: str, guard: str, reason: str, now_ms: int, *, final: bool = False
    ) -> None:
        """Record a guard's refusal (once per distinct reason in a row); a final refusal
        fails the intent, any other leaves it pending to be tried again."""
        async with self.database.transaction() as tx:
            row = await tx.fetchone("SELECT detail, state FROM intents WHERE key = ?", (key,))
            if row is None or row[1] != "pending":
                return
            text = f"{guard}: {reason}"
            if row[0] != text:
                await tx.execute(
                    "INSERT INTO refusals (intent_key, guard, reason, at_ms) VALUES (?, ?, ?, ?)",
                    (key, guard, reason, now_ms),
                )
            await tx.execute(
                "UPDATE intents SET detail = ?, state = ?, updated_ms = ? WHERE key = ?",
                (text, "failed" if final else "pending", now_ms, key),
            )

    async def settle(
        self,
        outcomes: Sequence[tuple[str, str, str]],
        now_ms: int,
        *,
        confirmed_at: int | None = None,
    ) -> None:
        """Move intents (key, state, detail) to a final state; a final state never
        changes again."""
        if not outcomes:
            return
        for _, state, _ in outcomes:
            if state not in FINAL_STATES:
                raise OutboxError(f"settle() moves intents to final states only, not {state!r}")
        async with self.database.transaction() as tx:
            await tx.executemany(
                "UPDATE intents SET state = ?, detail = ?, updated_ms = ?, "
                "confirmed_position = COALESCE(?, confirmed_position) "
                "WHERE key = ? AND state NOT IN ('confirmed', 'failed', 'obsolete', 'dry_run')",
                [(state, detail, now_ms, confirmed_at, key) for key, state, detail in outcomes],
            )

    async def confirm(self, key: str, position: int, detail: str, now_ms: int) -> None:
        await self.confirm_all([(key, position, detail)], now_ms)

    async def confirm_all(self, confirmations: Sequence[tuple[str, int, str]], now_ms: int) -> None:
        """Confirm intents (key, position of the Closed event, detail) in one transaction;
        a final state never changes again."""
        if not confirmations:
            return
        async with self.database.transaction() as tx:
            await tx.executemany(
                "UPDATE intents SET state = 'confirmed', detail = ?, updated_ms = ?, "
                "confirmed_position = ? "
                "WHERE key = ? AND state NOT IN ('confirmed', 'failed', 'obsolete', 'dry_run')",
                [(detail, now_ms, position, key) for key, position, detail in confirmations],
            )

    async def reopen(self, keys: Sequence[str], detail: str, now_ms: int) -> None:
        """Obsolete intents whose reason a reorg undid (the session closed by someone else
        is open again and the rule still holds) go back to pending."""
        async with self.database.transaction() as tx:
            await tx.executemany(
                "UPDATE intents SET state = 'pending', job_id = NULL, confirmed_position = NULL, "
                "detail = ?, updated_ms = ? WHERE key = ? AND state = 'obsolete'",
                [(detail, now_ms, key) for key in keys],
            )
