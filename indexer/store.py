"""The indexer's writer: every write, and the reads the indexer itself needs.

Tables (SQLite, WAL; their schema and row codecs in `indexer/schema.py`): `blocks`
(recent headers for reorg detection), `events` (every decoded event of the factory and
its wallets), `ignored_logs` (look-alike and malformed logs, kept so they are counted
exactly), `sessions` (the projection), `checkpoint`.
Every row that comes from a log carries `position` (see `abi.position`), so a rollback
is one `DELETE … WHERE position >= first position after the ancestor` per table.

A batch of blocks is committed with its events, projection and checkpoint in one
transaction; a process killed at any point leaves the previous batch intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
import orjson

from chain.abi import position
from indexer.migrations import migrate
from indexer.projection import Event, Session, replay
from indexer.schema import (
    COMPONENT,
    MIGRATIONS,
    SESSION_FIELDS,
    encode_args,
    int_fields,
    session_from_row,
    session_row,
)

_UPSERT_SESSION = (
    f"INSERT OR REPLACE INTO sessions ({', '.join(SESSION_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in SESSION_FIELDS)})"
)
_EVENT_COLUMNS = (
    "position, block_number, block_hash, tx_hash, tx_index, log_index, timestamp, "
    "address, wallet, name, seq, args"
)


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    # the header's 2048-bit logsBloom while the block is checked (`indexer.verify`); not
    # stored, and not part of a block's identity (a stored block has none)
    logs_bloom: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class IgnoredLog:
    position: int
    block_number: int
    tx_hash: str
    address: str
    event: str
    reason: str  # "not from the factory or one of its wallets" | "malformed: ..."


@dataclass(frozen=True)
class Batch:
    """Everything one commit writes: blocks checkpoint-inclusive, in order."""

    blocks: Sequence[BlockRef]
    events: Sequence[Event]
    ignored: Sequence[IgnoredLog]
    sessions: Sequence[Session]
    checkpoint: BlockRef


@dataclass(frozen=True)
class Rollback:
    ancestor: BlockRef
    sessions: list[Session]  # replayed states of sessions that lost events
    removed: list[str]  # sessions whose creation was orphaned
    events_removed: int


@dataclass(frozen=True, slots=True)
class ClosingEvent:
    wallet: str
    position: int
    tx_hash: str
    by: str


class IndexerStore:
    """All SQL of the indexer. Writes happen in one transaction per call."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._ints = int_fields()

    async def setup(self) -> None:
        await migrate(self.db, COMPONENT, MIGRATIONS)

    # -- reads ---------------------------------------------------------------------
    async def checkpoint(self) -> BlockRef | None:
        async with self.db.execute(
            "SELECT number, hash, '', timestamp FROM checkpoint WHERE id = 1"
        ) as cur:
            row = await cur.fetchone()
        return BlockRef(int(row[0]), row[1], row[2], int(row[3])) if row else None

    async def blocks(self, floor: int) -> list[BlockRef]:
        """Stored headers at or above `floor`, newest first."""
        async with self.db.execute(
            "SELECT number, hash, parent_hash, timestamp FROM blocks WHERE number >= ? "
            "ORDER BY number DESC",
            (floor,),
        ) as cur:
            return [BlockRef(int(r[0]), r[1], r[2], int(r[3])) async for r in cur]

    async def event_blocks_below(self, number: int, limit: int) -> list[BlockRef]:
        """Blocks below `number` that hold events, newest first, from the events table:
        used to find a common ancestor deeper than the window of stored headers."""
        async with self.db.execute(
            "SELECT block_number, block_hash, MAX(timestamp) FROM events WHERE block_number < ? "
            "GROUP BY block_number ORDER BY block_number DESC LIMIT ?",
            (number, limit),
        ) as cur:
            return [BlockRef(int(r[0]), r[1], "", int(r[2])) async for r in cur]

    async def sessions(self, wallets: Iterable[str]) -> dict[str, Session]:
        found: dict[str, Session] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            sql = (
                f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions "
                f"WHERE wallet IN ({', '.join('?' for _ in chunk)})"
            )
            async with self.db.execute(sql, chunk) as cur:
                async for row in cur:
                    s = session_from_row(row)
                    found[s.wallet] = s
        return found

    async def session(self, wallet: str) -> Session | None:
        return (await self.sessions([wallet])).get(wallet)

    async def all_sessions(self, status: str | None = None) -> list[Session]:
        sql = f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions"
        params: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        async with self.db.execute(sql + " ORDER BY created_position", params) as cur:
            return [session_from_row(r) async for r in cur]

    async def events(self, wallet: str | None = None, after: int = -1) -> list[Event]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ?"
        params: list[Any] = [after]
        if wallet is not None:
            sql += " AND wallet = ?"
            params.append(wallet)
        async with self.db.execute(sql + " ORDER BY position", params) as cur:
            return [self._event(r) async for r in cur]

    async def closing_events(self, wallets: Iterable[str]) -> dict[str, ClosingEvent]:
        """The indexed `Closed` event of each of these wallets that has one: how the
        executor learns that a close it sent (or someone else's) is on the indexed chain."""
        found: dict[str, ClosingEvent] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            sql = (
                "SELECT wallet, position, tx_hash, args FROM events WHERE name = 'Closed' "
                f"AND wallet IN ({', '.join('?' for _ in chunk)})"
            )
            async with self.db.execute(sql, chunk) as cur:
                async for wallet, pos, tx_hash, args in cur:
                    by = orjson.loads(args).get("by", "")
                    found[wallet] = ClosingEvent(wallet, int(pos), tx_hash, by)
        return found

    async def counts(self) -> dict[str, int]:
        """Rows per table, for summaries and metrics."""
        out = {}
        for table in ("sessions", "events", "ignored_logs"):
            async with self.db.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                row = await cur.fetchone()
            out[table] = int(row[0]) if row else 0
        return out

    async def ignored_count(self) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM ignored_logs") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def _event(self, r: Sequence[Any]) -> Event:
        name = r[9]
        ints = self._ints.get(name, frozenset())
        args = {k: int(v) if k in ints else v for k, v in orjson.loads(r[11]).items()}
        return Event(
            position=r[0], block_number=r[1], block_hash=r[2], tx_hash=r[3], tx_index=r[4],
            log_index=r[5], timestamp=r[6], address=r[7], wallet=r[8], name=name, seq=r[10],
            args=args,
        )  # fmt: skip

    # -- writes --------------------------------------------------------------------
    async def commit(self, batch: Batch, window: int) -> None:
        """Write one batch and move the checkpoint, atomically; prune old headers."""
        db = self.db
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.executemany(
                "INSERT OR REPLACE INTO blocks (number, hash, parent_hash, timestamp) "
                "VALUES (?, ?, ?, ?)",
                [(b.number, b.hash, b.parent_hash, b.timestamp) for b in batch.blocks],
            )
            await db.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (e.position, e.block_number, e.block_hash, e.tx_hash, e.tx_index,
                     e.log_index, e.timestamp, e.address, e.wallet, e.name, e.seq,
                     encode_args(e.args))
                    for e in batch.events
                ],
            )  # fmt: skip
            await db.executemany(
                "INSERT INTO ignored_logs (position, block_number, tx_hash, address, event, "
                "reason) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (i.position, i.block_number, i.tx_hash, i.address, i.event, i.reason)
                    for i in batch.ignored
                ],
            )
            await db.executemany(_UPSERT_SESSION, [session_row(s) for s in batch.sessions])
            cp = batch.checkpoint
            await self._set_checkpoint(cp)
            await db.execute("DELETE FROM blocks WHERE number < ?", (cp.number - window,))
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def rollback(self, ancestor: BlockRef) -> Rollback:
        """Undo everything after `ancestor` and replay the sessions that lost events."""
        db = self.db
        cut = position(ancestor.number + 1, 0)
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute(
                "SELECT DISTINCT wallet FROM events WHERE position >= ? AND wallet IS NOT NULL",
                (cut,),
            ) as cur:
                touched = [r[0] async for r in cur]
            async with db.execute(
                "SELECT wallet FROM sessions WHERE created_position >= ?", (cut,)
            ) as cur:
                removed = [r[0] async for r in cur]
            cursor = await db.execute("DELETE FROM events WHERE position >= ?", (cut,))
            events_removed = cursor.rowcount
            await db.execute("DELETE FROM ignored_logs WHERE position >= ?", (cut,))
            await db.execute("DELETE FROM blocks WHERE number > ?", (ancestor.number,))
            await db.execute("DELETE FROM sessions WHERE created_position >= ?", (cut,))
            gone = set(removed)
            replayed: list[Session] = []
            for wallet in touched:
                if wallet in gone:
                    continue
                # Only the session's own events: a factory's BatchCloseFailed names a wallet
                # too, even one that is no session (its creation was itself reorged out).
                own = [e for e in await self.events(wallet) if e.seq is not None]
                session = replay(own)
                if session is not None:
                    replayed.append(session)
            await db.executemany(_UPSERT_SESSION, [session_row(s) for s in replayed])
            if ancestor.hash:  # not the "before the start block" marker of a full rollback
                await db.execute(
                    "INSERT OR REPLACE INTO blocks (number, hash, parent_hash, timestamp) "
                    "VALUES (?, ?, ?, ?)",
                    (ancestor.number, ancestor.hash, ancestor.parent_hash, ancestor.timestamp),
                )
            await self._set_checkpoint(ancestor)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return Rollback(ancestor, replayed, removed, events_removed)

    async def _set_checkpoint(self, cp: BlockRef) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO checkpoint (id, number, hash, timestamp) VALUES (1, ?, ?, ?)",
            (cp.number, cp.hash, cp.timestamp),
        )
