"""What the relayer has spent and what it must not spend again: the reads behind the
guards of relayer protection (`executor.gate`), the parking of intents whose closes
were mined without effect, and the sessions taken out of batching. `Outbox` hands these
methods out as its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from database import Database, Queries
from database.sqlite import as_database


@dataclass(frozen=True, slots=True)
class MinedNonce:
    """The highest nonce the node once gave us a receipt for, and where."""

    nonce: int
    block: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class Parked:
    key: str
    wallet: str
    position: int  # tried again once the session's last event is past this


class SpendLedger:
    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        self.database = as_database(db)

    async def jobs_since(self, wallets: Iterable[str], since_ms: int) -> dict[str, int]:
        """How many transactions (jobs: nonces) were made for each wallet since `since_ms`,
        created or mined in the window, requeues and cancels included (absent: 0)."""
        found: dict[str, int] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = await self.database.fetch(
                "SELECT m.wallet, COUNT(DISTINCT j.id) FROM job_intents m "
                "JOIN jobs j ON j.id = m.job_id "
                f"WHERE m.wallet IN ({', '.join('?' for _ in chunk)}) AND j.nonce IS NOT NULL "
                "AND (j.created_ms >= ? OR j.mined_ms >= ?) GROUP BY m.wallet",
                (*chunk, since_ms, since_ms),
            )
            found.update({r[0]: int(r[1]) for r in rows})
        return found

    async def gas_in_window(self, since_ms: int) -> tuple[int, int]:
        """(gas used by our transactions mined since `since_ms`, gas limits of the jobs
        in flight). A job a reorg took off the chain counts in flight until mined again."""
        # int(): PostgreSQL sums BIGINT as NUMERIC (a Decimal here), exact either way
        spent = await self.database.fetchval(
            "SELECT COALESCE(SUM(gas_used), 0) FROM jobs WHERE mined_ms >= ? "
            "AND mined_hash IS NOT NULL",
            (since_ms,),
        )
        return int(spent or 0), await self.gas_in_flight()

    async def gas_in_flight(self) -> int:
        """The gas limits of the jobs in flight (live, with a nonce)."""
        flight = await self.database.fetchval(
            "SELECT COALESCE(SUM(gas), 0) FROM jobs WHERE state = 'live' AND nonce IS NOT NULL"
        )
        return int(flight or 0)

    async def last_mined(self, sender: str) -> MinedNonce | None:
        row = await self.database.fetchone(
            "SELECT nonce, mined_block, mined_block_hash FROM jobs WHERE sender = ? "
            "AND state IN ('mined', 'done') AND mined_block_hash IS NOT NULL "
            "ORDER BY nonce DESC LIMIT 1",
            (sender,),
        )
        return MinedNonce(int(row[0]), int(row[1]), str(row[2])) if row else None

    async def parked(self) -> list[Parked]:
        rows = await self.database.fetch(
            "SELECT key, wallet, retry_after_position FROM intents "
            "WHERE retry_after_position IS NOT NULL AND state = 'failed' ORDER BY id"
        )
        return [Parked(r[0], r[1], int(r[2])) for r in rows]

    async def unpark(self, keys: Sequence[str], detail: str, now_ms: int) -> None:
        """Failed intents parked until their session moved on chain: pending again, with
        a fresh count of closes without effect."""
        async with self.database.transaction() as tx:
            await tx.executemany(
                "UPDATE intents SET state = 'pending', job_id = NULL, detail = ?, "
                "mined_without_effect = 0, retry_after_position = NULL, updated_ms = ? "
                "WHERE key = ? AND state = 'failed' AND retry_after_position IS NOT NULL",
                [(detail, now_ms, key) for key in keys],
            )

    async def isolated(self, wallets: Iterable[str]) -> dict[str, str]:
        """The wallets among these taken out of batching, with why (absent: batchable)."""
        found: dict[str, str] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = await self.database.fetch(
                "SELECT wallet, reason FROM isolated_wallets "
                f"WHERE wallet IN ({', '.join('?' for _ in chunk)})",
                chunk,
            )
            found.update({r[0]: r[1] for r in rows})
        return found

    async def isolate(self, isolations: Sequence[tuple[str, str, str]], now_ms: int) -> None:
        """Take (wallet, intent key, why) out of batching for good; the first reason
        stays."""
        if not isolations:
            return
        async with self.database.transaction() as tx:
            await isolate_in(tx, isolations, now_ms)


async def isolate_in(tx: Queries, isolations: Sequence[tuple[str, str, str]], now_ms: int) -> None:
    """`SpendLedger.isolate` inside the caller's transaction (a receipt's outcomes)."""
    await tx.executemany(
        "INSERT INTO isolated_wallets (wallet, reason, intent_key, at_ms) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (wallet) DO NOTHING",
        [(wallet, reason, key, now_ms) for wallet, key, reason in isolations],
    )
