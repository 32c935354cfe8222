"""The indexer's writer: every write, and the reads the indexer itself needs.

Tables (SQLite or PostgreSQL through `database`; schema and row codecs in
`indexer/schema.py`): `blocks`
(recent headers for reorg detection), `events` (every decoded event of the factory and
its wallets), `ignored_logs` (look-alike and malformed logs, kept so they are counted
exactly), `sessions` (the projection), `checkpoint`.
Every row that comes from a log carries `position` (see `abi.position`), so a rollback
is one `DELETE … WHERE position >= first position after the ancestor` per table.

A batch of blocks is committed with its events, projection and checkpoint in one
transaction; a process killed at any point leaves the previous batch intact.

`StoreHooks` lets a package above write its own rows inside those same transactions
(the notification log: `notify.EventLog`), so what it derives from a commit or a rollback
is durable exactly when the commit or rollback is, without the indexer importing upward.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiosqlite
import orjson

from chain.abi import position
from database import Database, Queries, migrate
from database.sqlite import SqliteDatabase, as_database
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
    f"INSERT INTO sessions ({', '.join(SESSION_FIELDS)}) "
    f"VALUES ({', '.join('?' for _ in SESSION_FIELDS)}) ON CONFLICT (wallet) DO UPDATE SET "
    + ", ".join(f"{f} = excluded.{f}" for f in SESSION_FIELDS if f != "wallet")
)
_UPSERT_BLOCK = (
    "INSERT INTO blocks (number, hash, parent_hash, timestamp) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (number) DO UPDATE SET hash = excluded.hash, "
    "parent_hash = excluded.parent_hash, timestamp = excluded.timestamp"
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


class StoreHooks(Protocol):
    """Called inside the indexer's write transactions, as their last statements: raise
    and the whole commit or rollback is undone."""

    async def committed(self, tx: Queries, batch: Batch) -> None:
        """`batch` was just written (blocks, events, sessions, checkpoint)."""

    async def rolled_back(self, tx: Queries, cut: int) -> None:
        """Every row at position >= `cut` was just removed (a reorg)."""


class IndexerStore:
    """All SQL of the indexer. Writes happen in one transaction per call."""

    def __init__(
        self, db: Database | aiosqlite.Connection, *, hooks: StoreHooks | None = None
    ) -> None:
        # A bare SQLite connection is the one the daemon shares with the outbox.
        self.database = as_database(db)
        self._ints = int_fields()
        self.hooks = hooks

    @property
    def db(self) -> aiosqlite.Connection:
        """The SQLite connection underneath (for what is not on `database` yet)."""
        if not isinstance(self.database, SqliteDatabase):
            raise TypeError(f"not a SQLite store: {self.database.display}")
        return self.database.conn

    async def setup(self) -> None:
        await migrate(self.database, COMPONENT, MIGRATIONS)

    # -- reads ---------------------------------------------------------------------
    async def checkpoint(self) -> BlockRef | None:
        row = await self.database.fetchone(
            "SELECT number, hash, '', timestamp FROM checkpoint WHERE id = 1"
        )
        return BlockRef(int(row[0]), row[1], row[2], int(row[3])) if row else None

    async def blocks(self, floor: int) -> list[BlockRef]:
        """Stored headers at or above `floor`, newest first."""
        rows = await self.database.fetch(
            "SELECT number, hash, parent_hash, timestamp FROM blocks WHERE number >= ? "
            "ORDER BY number DESC",
            (floor,),
        )
        return [BlockRef(int(r[0]), r[1], r[2], int(r[3])) for r in rows]

    async def event_blocks_below(self, number: int, limit: int) -> list[BlockRef]:
        """Blocks below `number` that hold events, newest first, from the events table:
        used to find a common ancestor deeper than the window of stored headers."""
        rows = await self.database.fetch(
            "SELECT block_number, MAX(block_hash), MAX(timestamp) FROM events "
            "WHERE block_number < ? GROUP BY block_number ORDER BY block_number DESC LIMIT ?",
            (number, limit),
        )
        return [BlockRef(int(r[0]), r[1], "", int(r[2])) for r in rows]

    async def sessions(self, wallets: Iterable[str]) -> dict[str, Session]:
        found: dict[str, Session] = {}
        keys = list(wallets)
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            sql = (
                f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions "
                f"WHERE wallet IN ({', '.join('?' for _ in chunk)})"
            )
            for row in await self.database.fetch(sql, chunk):
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
        rows = await self.database.fetch(sql + " ORDER BY created_position", params)
        return [session_from_row(r) for r in rows]

    async def sessions_pages(self, status: str, page: int = 2_000) -> AsyncIterator[list[Session]]:
        """Every session in `status`, `page` at a time in creation order (keyset paging
        on `sessions_by_status`): a start-up over a million sessions holds one page, not
        the list."""
        sql = (
            f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions WHERE status = ? "
            "AND created_position > ? ORDER BY created_position LIMIT ?"
        )
        after = -1
        while True:
            rows = await self.database.fetch(sql, (status, after, page))
            if not rows:
                return
            sessions = [session_from_row(r) for r in rows]
            after = sessions[-1].created_position
            yield sessions
            if len(rows) < page:
                return

    async def events(
        self, wallet: str | None = None, after: int = -1, *, on: Queries | None = None
    ) -> list[Event]:
        sql = f"SELECT {_EVENT_COLUMNS} FROM events WHERE position > ?"
        params: list[Any] = [after]
        if wallet is not None:
            sql += " AND wallet = ?"
            params.append(wallet)
        rows = await (on or self.database).fetch(sql + " ORDER BY position", params)
        return [self._event(r) for r in rows]

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
            for wallet, pos, tx_hash, args in await self.database.fetch(sql, chunk):
                by = orjson.loads(args).get("by", "")
                found[wallet] = ClosingEvent(wallet, int(pos), tx_hash, by)
        return found

    async def counts(self) -> dict[str, int]:
        """Rows per table, for summaries and metrics."""
        out = {}
        for table in ("sessions", "events", "ignored_logs"):
            out[table] = int(await self.database.fetchval(f"SELECT COUNT(*) FROM {table}") or 0)
        return out

    async def ignored_count(self) -> int:
        return int(await self.database.fetchval("SELECT COUNT(*) FROM ignored_logs") or 0)

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
        async with self.database.transaction() as db:
            await db.executemany(
                _UPSERT_BLOCK,
                [(b.number, b.hash, b.parent_hash, b.timestamp) for b in batch.blocks],
            )
            await db.executemany(
                f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (e.position, e.block_number, e.block_hash, e.tx_hash, e.tx_index,
                     e.log_index, e.timestamp, e.address, e.wallet, e.name, e.seq,
                     e.args_json or encode_args(e.args))
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
            await self._set_checkpoint(db, cp)
            await db.execute("DELETE FROM blocks WHERE number < ?", (cp.number - window,))
            if self.hooks is not None:
                await self.hooks.committed(db, batch)

    async def rollback(self, ancestor: BlockRef) -> Rollback:
        """Undo everything after `ancestor` and replay the sessions that lost events."""
        cut = position(ancestor.number + 1, 0)
        async with self.database.transaction() as db:
            touched = [
                r[0]
                for r in await db.fetch(
                    "SELECT DISTINCT wallet FROM events WHERE position >= ? "
                    "AND wallet IS NOT NULL ORDER BY wallet",
                    (cut,),
                )
            ]
            removed = [
                r[0]
                for r in await db.fetch(
                    "SELECT wallet FROM sessions WHERE created_position >= ? "
                    "ORDER BY created_position",
                    (cut,),
                )
            ]
            events_removed = await db.execute("DELETE FROM events WHERE position >= ?", (cut,))
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
                own = [e for e in await self.events(wallet, on=db) if e.seq is not None]
                session = replay(own)
                if session is not None:
                    replayed.append(session)
            await db.executemany(_UPSERT_SESSION, [session_row(s) for s in replayed])
            if ancestor.hash:  # not the "before the start block" marker of a full rollback
                await db.execute(
                    _UPSERT_BLOCK,
                    (ancestor.number, ancestor.hash, ancestor.parent_hash, ancestor.timestamp),
                )
            await self._set_checkpoint(db, ancestor)
            if self.hooks is not None:
                await self.hooks.rolled_back(db, cut)
        return Rollback(ancestor, replayed, removed, events_removed)

    async def _set_checkpoint(self, db: Queries, cp: BlockRef) -> None:
        await db.execute(
            "INSERT INTO checkpoint (id, number, hash, timestamp) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET number = excluded.number, hash = excluded.hash, "
            "timestamp = excluded.timestamp",
            (cp.number, cp.hash, cp.timestamp),
        )
