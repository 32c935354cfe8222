"""The intent outbox: the executor's tables and the narrow layer every read and write goes
through.

An intent moves pending → submitted → mined → confirmed, or ends failed or obsolete with
its reason (or dry_run, when nothing is sent). A *job* is one nonce's worth of work (a
single close, a sweep, a batch of closes, or a cancel) and carries one or more intents;
every signed transaction of a job (replacements included) is a row in `transactions`,
written *before* it is sent. Every transaction of a job shares the job's nonce, so at most
one of them can ever be mined: that, and writing ahead, is what makes a crash at any point
safe (see `executor.py`).

Rule latches live here too, because they must be stored in the same transaction as the
intents they produce (`record`): a restart then never fires twice and never forgets.
Fees are decimal TEXT; wall-clock times are unix milliseconds, chain times unix seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from executor.errors import OutboxError
from indexer import migrate
from rules import Decision, Intent

COMPONENT = "executor"

STATES = ("pending", "submitted", "mined", "confirmed", "failed", "obsolete", "dry_run")
FINAL_STATES = frozenset({"confirmed", "failed", "obsolete", "dry_run"})
ORPHANED = "trigger orphaned by a reorg"  # the detail of intents a reorg made obsolete
# How the details of intents settled by their job's receipt begin (a reorg reopens them).
BATCH_MEMBER = "batch member reverted"
REVERTED = "reverted on chain"

MIGRATIONS = [
    """
    CREATE TABLE intents (
        id                 INTEGER PRIMARY KEY,
        key                TEXT NOT NULL UNIQUE,
        wallet             TEXT NOT NULL,
        rule               TEXT NOT NULL,
        action             TEXT NOT NULL,
        reason             TEXT NOT NULL,
        position           INTEGER NOT NULL,
        triggered_at       INTEGER NOT NULL,
        rules_version      TEXT NOT NULL,
        state              TEXT NOT NULL,
        detail             TEXT,
        job_id             INTEGER,
        confirmed_position INTEGER,
        created_ms         INTEGER NOT NULL,
        updated_ms         INTEGER NOT NULL
    );
    CREATE INDEX intents_by_state ON intents (state, id);
    CREATE INDEX intents_by_wallet ON intents (wallet, id);
    CREATE INDEX intents_by_job ON intents (job_id);
    CREATE TABLE jobs (
        id                  INTEGER PRIMARY KEY,
        nonce               INTEGER,
        kind                TEXT NOT NULL,
        to_address          TEXT NOT NULL,
        data                TEXT NOT NULL,
        gas                 INTEGER NOT NULL,
        state               TEXT NOT NULL,
        mined_hash          TEXT,
        mined_block         INTEGER,
        receipt_status      INTEGER,
        gas_used            INTEGER,
        effective_gas_price TEXT,
        created_ms          INTEGER NOT NULL,
        updated_ms          INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state, nonce);
    CREATE TABLE transactions (
        hash                     TEXT PRIMARY KEY,
        job_id                   INTEGER NOT NULL REFERENCES jobs (id),
        nonce                    INTEGER NOT NULL,
        max_fee_per_gas          TEXT NOT NULL,
        max_priority_fee_per_gas TEXT NOT NULL,
        raw                      TEXT NOT NULL,
        state                    TEXT NOT NULL,
        error                    TEXT,
        created_ms               INTEGER NOT NULL,
        sent_ms                  INTEGER
    );
    CREATE INDEX transactions_by_job ON transactions (job_id, created_ms);
    CREATE TABLE refusals (
        id         INTEGER PRIMARY KEY,
        intent_key TEXT NOT NULL,
        guard      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        at_ms      INTEGER NOT NULL
    );
    CREATE INDEX refusals_by_intent ON refusals (intent_key, id);
    CREATE TABLE rule_latches (
        wallet TEXT NOT NULL,
        rule   TEXT NOT NULL,
        PRIMARY KEY (wallet, rule)
    );
    CREATE TABLE executor_state (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        relayer    TEXT NOT NULL,
        next_nonce INTEGER NOT NULL
    )
    """,
]


@dataclass(frozen=True, slots=True)
class IntentRow:
    id: int
    key: str
    wallet: str
    rule: str
    action: str
    reason: str
    position: int
    triggered_at: int
    state: str
    detail: str | None
    job_id: int | None
    created_ms: int


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


_CLEAR = "DELETE FROM rule_latches WHERE wallet = ? AND rule = ?"
_SET = "INSERT OR IGNORE INTO rule_latches (wallet, rule) VALUES (?, ?)"
_INTENT_COLUMNS = (
    "id, key, wallet, rule, action, reason, position, triggered_at, state, detail, job_id, "
    "created_ms"
)


class Outbox:
    """All SQL of the executor. Every method that writes does so in one transaction."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def setup(self) -> None:
        await migrate(self.db, COMPONENT, MIGRATIONS)

    # -- rules side: intents and latches, atomically -----------------------------
    async def record(self, decisions: Iterable[Decision], now_ms: int) -> list[Intent]:
        """Store the intents and latch changes of these decisions in one transaction;
        returns the intents that were new (a duplicate key is ignored, never stored twice,
        except that an intent obsolete because a reorg orphaned its trigger is pending
        again when the new branch crosses at the same position)."""
        # Latch changes keep their order (one call may hold a wallet's change and its
        # clock check), grouped into runs of one statement; intents go in at the end.
        runs: list[tuple[str, list[tuple[str, str]]]] = []
        intents: list[Intent] = []
        for decision in decisions:
            for sql, names in ((_CLEAR, decision.latch_clear), (_SET, decision.latch_set)):
                if not names:
                    continue
                if not runs or runs[-1][0] != sql:
                    runs.append((sql, []))
                runs[-1][1].extend((decision.wallet, name) for name in names)
            intents.extend(decision.intents)
        fresh: list[Intent] = []
        async with self._tx() as db:
            for sql, params in runs:
                await db.executemany(sql, params)
            known: set[str] = set()
            orphaned: set[str] = set()
            again: list[Intent] = []
            keys = [i.key for i in intents]
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                async with db.execute(
                    "SELECT key, state, detail FROM intents "
                    f"WHERE key IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                ) as cur:
                    async for key, state, detail in cur:
                        known.add(key)
                        if state == "obsolete" and (detail or "").startswith(ORPHANED):
                            orphaned.add(key)
            for intent in intents:
                if intent.key not in known:
                    known.add(intent.key)
                    fresh.append(intent)
                elif intent.key in orphaned:
                    # Reorged out, then the new branch crossed again at the same position:
                    # the same crossing, so the same intent, open again.
                    orphaned.discard(intent.key)
                    again.append(intent)
                    await db.execute(
                        "UPDATE intents SET state = 'pending', job_id = NULL, detail = ?, "
                        "updated_ms = ? WHERE key = ?",
                        ("fired again on the new branch of a reorg", now_ms, intent.key),
                    )
            await db.executemany(
                "INSERT INTO intents (key, wallet, rule, action, reason, position, "
                "triggered_at, rules_version, state, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                [
                    (i.key, i.wallet, i.rule, i.action, i.reason, i.position, i.now, i.version,
                     now_ms, now_ms)
                    for i in fresh
                ],
            )  # fmt: skip
        return fresh + again

    async def latch_rows(self) -> list[tuple[str, str]]:
        async with self.db.execute("SELECT wallet, rule FROM rule_latches ORDER BY 1, 2") as cur:
            return [(r[0], r[1]) async for r in cur]

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
        sql = f"SELECT {_INTENT_COLUMNS} FROM intents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self.db.execute(sql + " ORDER BY id LIMIT ?", (*params, limit)) as cur:
            return [IntentRow(*r) async for r in cur]

    async def intent(self, key: str) -> IntentRow | None:
        async with self.db.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE key = ?", (key,)
        ) as cur:
            row = await cur.fetchone()
        return IntentRow(*row) if row else None

    async def intents_of_job(self, job_id: int) -> list[IntentRow]:
        async with self.db.execute(
            f"SELECT {_INTENT_COLUMNS} FROM intents WHERE job_id = ? ORDER BY id", (job_id,)
        ) as cur:
            return [IntentRow(*r) async for r in cur]

    async def counts(self) -> dict[str, int]:
        """Intents by state (every state present, zeros included)."""
        out = dict.fromkeys(STATES, 0)
        async with self.db.execute("SELECT state, COUNT(*) FROM intents GROUP BY state") as cur:
            async for state, n in cur:
                out[state] = int(n)
        return out

    async def jobs(self, state: str | None = "live") -> list[Job]:
        sql = (
            "SELECT id, nonce, kind, to_address, data, gas, state, mined_hash, mined_block, "
            "created_ms FROM jobs"
        )
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (state,)
        async with self.db.execute(sql + " ORDER BY nonce, id", params) as cur:
            rows = await cur.fetchall()
        attempts: dict[int, list[Attempt]] = {}
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            async with self.db.execute(
                "SELECT job_id, hash, nonce, max_fee_per_gas, max_priority_fee_per_gas, raw, "
                f"state, created_ms FROM transactions WHERE job_id IN "
                f"({', '.join('?' for _ in chunk)}) ORDER BY created_ms, rowid",
                chunk,
            ) as cur:
                async for r in cur:
                    attempts.setdefault(r[0], []).append(
                        Attempt(r[1], r[2], int(r[3]), int(r[4]), r[5], r[6], r[7])
                    )
        return [
            Job(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                tuple(attempts.get(r[0], ())))
            for r in rows
        ]  # fmt: skip

    async def jobs_since(self, wallets: Iterable[str], since_ms: int) -> dict[str, int]:
        """How many jobs carried an intent of each wallet since `since_ms` (absent: 0)."""
        found: dict[str, int] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            async with self.db.execute(
                "SELECT i.wallet, COUNT(DISTINCT j.id) FROM jobs j JOIN intents i "
                f"ON i.job_id = j.id WHERE i.wallet IN ({', '.join('?' for _ in chunk)}) "
                "AND j.created_ms >= ? AND j.kind != 'cancel' GROUP BY i.wallet",
                (*chunk, since_ms),
            ) as cur:
                found.update({r[0]: int(r[1]) async for r in cur})
        return found

    async def open_claims(self) -> list[Claim]:
        # The hashes once per job (a batch's members share them), not once per intent.
        async with self.db.execute(
            "SELECT t.job_id, group_concat(t.hash) FROM transactions t WHERE t.job_id IN "
            "(SELECT DISTINCT job_id FROM intents WHERE state IN ('submitted', 'mined')) "
            "GROUP BY t.job_id"
        ) as cur:
            hashes = {r[0]: frozenset((r[1] or "").split(",")) async for r in cur}
        empty: frozenset[str] = frozenset({""})
        async with self.db.execute(
            "SELECT i.key, i.wallet, i.state, i.job_id, j.mined_hash "
            "FROM intents i JOIN jobs j ON j.id = i.job_id "
            "WHERE i.state IN ('submitted', 'mined') ORDER BY i.id"
        ) as cur:
            return [Claim(r[0], r[1], r[2], r[3], r[4], hashes.get(r[3], empty)) async for r in cur]

    async def open_wallets(self) -> set[str]:
        """Wallets with an intent whose transaction is in flight (submitted or mined)."""
        async with self.db.execute(
            "SELECT DISTINCT wallet FROM intents WHERE state IN ('submitted', 'mined')"
        ) as cur:
            return {r[0] async for r in cur}

    async def next_nonce(self, relayer: str) -> int | None:
        async with self.db.execute(
            "SELECT relayer, next_nonce FROM executor_state WHERE id = 1"
        ) as cur:
            row = await cur.fetchone()
        if row is None or row[0] != relayer:
            return None  # a new relayer key starts from the chain's count
        return int(row[1])

    async def refusals(self, key: str) -> list[tuple[str, str]]:
        async with self.db.execute(
            "SELECT guard, reason FROM refusals WHERE intent_key = ? ORDER BY id", (key,)
        ) as cur:
            return [(r[0], r[1]) async for r in cur]

    # -- intent outcomes before a job ------------------------------------------------
    async def refuse(
        self, key: str, guard: str, reason: str, now_ms: int, *, final: bool = False
    ) -> None:
        """Record a guard's refusal (once per distinct reason in a row); a final refusal
        fails the intent, any other leaves it pending to be tried again."""
        async with self._tx() as db:
            async with db.execute("SELECT detail, state FROM intents WHERE key = ?", (key,)) as c:
                row = await c.fetchone()
            if row is None or row[1] != "pending":
                return
            text = f"{guard}: {reason}"
            if row[0] != text:
                await db.execute(
                    "INSERT INTO refusals (intent_key, guard, reason, at_ms) VALUES (?, ?, ?, ?)",
                    (key, guard, reason, now_ms),
                )
            await db.execute(
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
        async with self._tx() as db:
            await db.executemany(
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
        async with self._tx() as db:
            await db.executemany(
                "UPDATE intents SET state = 'confirmed', detail = ?, updated_ms = ?, "
                "confirmed_position = ? "
                "WHERE key = ? AND state NOT IN ('confirmed', 'failed', 'obsolete', 'dry_run')",
                [(detail, now_ms, position, key) for key, position, detail in confirmations],
            )

    # -- jobs --------------------------------------------------------------------------
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
        async with self._tx() as db:
            job_id = await self._insert_job(db, job, nonce, "live", now_ms)
            await self._insert_attempt(
                db, job_id, nonce, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas,
                now_ms,
            )  # fmt: skip
            await self._claim(db, job, job_id, "submitted", None, now_ms)
            await db.execute(
                "INSERT INTO executor_state (id, relayer, next_nonce) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET relayer = excluded.relayer, "
                "next_nonce = MAX(excluded.next_nonce, "
                "CASE WHEN relayer = excluded.relayer THEN next_nonce ELSE 0 END)",
                (relayer, nonce + 1),
            )
        return job_id

    async def record_dry_run(self, job: NewJob, detail: str, now_ms: int) -> int:
        """What would have been sent; the intents end in `dry_run`."""
        async with self._tx() as db:
            job_id = await self._insert_job(db, job, None, "dry_run", now_ms)
            await self._claim(db, job, job_id, "dry_run", detail, now_ms)
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
        async with self._tx() as db:
            await self._insert_attempt(
                db, job_id, nonce, tx_hash, raw, max_fee_per_gas, max_priority_fee_per_gas,
                now_ms,
            )  # fmt: skip
            if rewrite is not None:
                await db.execute(
                    "UPDATE jobs SET kind = ?, to_address = ?, data = ?, gas = ?, "
                    "updated_ms = ? WHERE id = ?",
                    (*rewrite, now_ms, job_id),
                )

    async def mark_sent(self, tx_hash: str, now_ms: int) -> None:
        async with self._tx() as db:
            await db.execute(
                "UPDATE transactions SET state = 'sent', sent_ms = COALESCE(sent_ms, ?), "
                "error = NULL WHERE hash = ? AND state IN ('signed', 'rejected')",
                (now_ms, tx_hash),
            )

    async def mark_rejected(self, tx_hash: str, error: str) -> None:
        async with self._tx() as db:
            await db.execute(
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
    ) -> None:
        """The job's transaction `tx_hash` has a receipt: its intents become mined, or
        settle as `outcomes` says (a failed batch member, a reverted close)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE jobs SET state = 'mined', mined_hash = ?, mined_block = ?, "
                "receipt_status = ?, gas_used = ?, effective_gas_price = ?, updated_ms = ? "
                "WHERE id = ?",
                (tx_hash, block, status, gas_used, str(effective_gas_price), now_ms, job_id),
            )
            await db.execute(
                "UPDATE transactions SET state = CASE WHEN hash = ? THEN 'mined' ELSE 'replaced' "
                "END WHERE job_id = ?",
                (tx_hash, job_id),
            )
            await db.execute(
                "UPDATE intents SET state = 'mined', updated_ms = ? "
                "WHERE job_id = ? AND state = 'submitted'",
                (now_ms, job_id),
            )
            await db.executemany(
                "UPDATE intents SET state = ?, detail = ?, updated_ms = ? WHERE key = ?",
                [(state, detail, now_ms, key) for key, state, detail in outcomes],
            )

    async def job_unmined(self, job_id: int, now_ms: int) -> None:
        """The receipt vanished (a reorg): the job is live again, and what its receipt
        settled is open again; its signed transactions are still the only ones allowed."""
        async with self._tx() as db:
            await self._reopen_job(db, job_id, "its transaction vanished (reorg)", now_ms)

    async def reorged(self, ancestor_block: int, now_ms: int) -> list[int]:
        """A reorg replaced every block above `ancestor_block`: jobs mined there are live
        again, and what their receipts settled (mined, confirmed, a batch member's revert)
        is open again as submitted, to be tracked on the new branch. Returns the job ids."""
        detail = f"reorg above block {ancestor_block} undid its transaction"
        async with self._tx() as db:
            async with db.execute(
                "SELECT id FROM jobs WHERE state IN ('mined', 'done') AND mined_block > ?",
                (ancestor_block,),
            ) as cur:
                ids = [int(r[0]) async for r in cur]
            for job_id in ids:
                await self._reopen_job(db, job_id, detail, now_ms)
            # A live job may have been mined in a replaced block before its receipt was
            # seen: its transaction is gone too, so it is sent again (a node that still
            # holds it answers "already known").
            await db.execute(
                "UPDATE transactions SET state = 'signed' WHERE state = 'sent' AND job_id IN "
                "(SELECT id FROM jobs WHERE state = 'live')"
            )
        return ids

    async def reopen(self, keys: Sequence[str], detail: str, now_ms: int) -> None:
        """Obsolete intents whose reason a reorg undid (the session closed by someone else
        is open again and the rule still holds) go back to pending."""
        async with self._tx() as db:
            await db.executemany(
                "UPDATE intents SET state = 'pending', job_id = NULL, confirmed_position = NULL, "
                "detail = ?, updated_ms = ? WHERE key = ? AND state = 'obsolete'",
                [(detail, now_ms, key) for key in keys],
            )

    async def job_dropped(self, job_id: int, detail: str, now_ms: int) -> None:
        """Someone else's transaction took the job's nonce and none of ours was mined: the
        job is dead, and its intents that are still open go back to pending for a new job
        at a new nonce."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE jobs SET state = 'dropped', updated_ms = ? WHERE id = ?", (now_ms, job_id)
            )
            await db.execute(
                "UPDATE transactions SET state = 'replaced', error = ? WHERE job_id = ?",
                (detail, job_id),
            )
            await db.execute(
                "UPDATE intents SET state = 'pending', job_id = NULL, detail = ?, updated_ms = ? "
                "WHERE job_id = ? AND state = 'submitted'",
                (detail, now_ms, job_id),
            )

    async def finish_settled_jobs(self, now_ms: int) -> int:
        """Mined jobs whose intents are all settled need no more tracking."""
        async with self._tx() as db:
            cur = await db.execute(
                "UPDATE jobs SET state = 'done', updated_ms = ? WHERE state = 'mined' AND "
                "NOT EXISTS (SELECT 1 FROM intents i WHERE i.job_id = jobs.id "
                "AND i.state IN ('submitted', 'mined'))",
                (now_ms,),
            )
            return cur.rowcount

    # -- helpers ---------------------------------------------------------------------
    @staticmethod
    async def _reopen_job(db: aiosqlite.Connection, job_id: int, detail: str, now_ms: int) -> None:
        await db.execute(
            "UPDATE jobs SET state = 'live', mined_hash = NULL, mined_block = NULL, "
            "receipt_status = NULL, updated_ms = ? WHERE id = ?",
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

    def _tx(self) -> _Transaction:
        return _Transaction(self.db)

    @staticmethod
    async def _insert_job(
        db: aiosqlite.Connection, job: NewJob, nonce: int | None, state: str, now_ms: int
    ) -> int:
        cur = await db.execute(
            "INSERT INTO jobs (nonce, kind, to_address, data, gas, state, created_ms, "
            "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (nonce, job.kind, job.to_address, job.data, job.gas, state, now_ms, now_ms),
        )
        if cur.lastrowid is None:
            raise OutboxError("jobs insert returned no row id")
        return int(cur.lastrowid)

    @staticmethod
    async def _insert_attempt(
        db: aiosqlite.Connection,
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

    @staticmethod
    async def _claim(
        db: aiosqlite.Connection,
        job: NewJob,
        job_id: int,
        state: str,
        detail: str | None,
        now_ms: int,
    ) -> None:
        cur = await db.executemany(
            "UPDATE intents SET state = ?, job_id = ?, detail = COALESCE(?, detail), "
            "updated_ms = ? WHERE key = ? AND state = 'pending'",
            [(state, job_id, detail, now_ms, key) for key in job.intent_keys],
        )
        if cur.rowcount != len(job.intent_keys):
            # Never two live transactions for one intent: a job only takes pending ones
            # (the transaction rolls back, so none of them is claimed).
            async with db.execute(
                f"SELECT key FROM intents WHERE job_id = ? AND key IN "
                f"({', '.join('?' for _ in job.intent_keys)})",
                (job_id, *job.intent_keys),
            ) as found:
                claimed = {r[0] async for r in found}
            key = next((k for k in job.intent_keys if k not in claimed), job.intent_keys[0])
            raise OutboxError(f"intent {key} is not pending; refusing to give it a job")


class _Transaction:
    """`async with` one BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def __aenter__(self) -> aiosqlite.Connection:
        await self.db.execute("BEGIN IMMEDIATE")
        return self.db

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            await self.db.execute("COMMIT")
        else:
            await self.db.execute("ROLLBACK")
