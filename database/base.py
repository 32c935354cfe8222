"""The interface every store is written against."""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from database.errors import Deposed

Row = tuple[Any, ...]
Params = Sequence[Any]


class Ownership:
    """What `Database.exclusive` holds; `lost` turns true when the hold is gone (the
    server closed the connection that held it), after which nothing may be sent."""

    def __init__(self) -> None:
        self.lost = False


class Queries(abc.ABC):
    """Statements on a database, or inside one of its transactions. Parameters are `?`;
    rows come back as tuples; `execute` returns how many rows the statement changed."""

    @abc.abstractmethod
    async def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    @abc.abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...


class Fence(Protocol):
    """The lease a leader writes under (`database.lease.Lease`): holder and epoch."""

    @property
    def holder(self) -> str: ...

    @property
    def epoch(self) -> int: ...


async def check_fence(tx: Queries, fence: Fence, lock: str = "") -> None:
    """Inside a write transaction: the lease row still names this holder and epoch, or
    `Deposed` (the transaction then rolls back). `lock`: PostgreSQL's FOR SHARE, taken
    as the transaction's last statement, so a takeover's update of the row waits for its
    commit: no write of an epoch commits after the next epoch began."""
    row = await tx.fetchone(f"SELECT holder, epoch FROM leader WHERE id = 1{lock}")
    if row is None or (row[0], int(row[1])) != (fence.holder, fence.epoch):
        now = "nobody" if row is None else f"{row[0]} at epoch {row[1]}"
        raise Deposed(
            f"no longer the leader (this replica held epoch {fence.epoch}; the lease names "
            f"{now}): nothing more is written or sent here"
        )


class Database(Queries):
    """A connected store. Statements outside `transaction()` commit on their own."""

    dialect: str  # "sqlite" | "postgresql"
    display: str  # where it is, safe to log (no password)
    # Set by a leader (`database.lease`): every write transaction first checks, inside
    # itself, that the lease row still names this holder and epoch, or raises `Deposed`.
    fence: Fence | None = None
    # PostgreSQL, set with the fence: a fenced write transaction left idle this long (its
    # process frozen or cut off between two statements) is ended by the server: the rows
    # it locked would hold up the next leader for as long as the freeze lasts.
    idle_limit_ms: int | None = None

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Queries]:
        """One write transaction: committed when the block ends, rolled back on any
        exception. SQLite takes its write lock at the start (BEGIN IMMEDIATE)."""

    @abc.abstractmethod
    def exclusive(self, name: str) -> AbstractAsyncContextManager[Ownership]:
        """Hold `name` for this process while the block runs, or raise `DatabaseBusy`
        at once when another process holds it (two daemons writing one database would
        both send). SQLite: a lock on a file beside the database; PostgreSQL: a session
        advisory lock on a connection of its own, released by the server if the process
        or its connection dies (`Ownership.lost` then says so)."""

    @abc.abstractmethod
    async def has_table(self, name: str) -> bool:
        """Whether the table exists (a database some other program wrote, or a new one)."""

    @abc.abstractmethod
    async def columns(self, table: str) -> list[str]:
        """The table's columns in their declared order ([] when there is no such table)."""

    @abc.abstractmethod
    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """One consistent read view for the statements this task runs inside: a commit by
        a writer in between cannot tear them (a page and its look-ahead row, a session and
        its intents, one /metrics scrape)."""

    async def data_version(self) -> int | None:
        """A number that changes whenever another connection committed since it was last
        read (so a reader may keep answers until it moves), or None where there is no cheap
        one: every read then goes to the database."""
        return None

    @abc.abstractmethod
    def stream(
        self, sql: str, params: Params = (), size: int = 1000
    ) -> AsyncGenerator[list[Row], None]:
        """The rows of one query in chunks of up to `size`, read through a cursor: memory
        stays at one chunk whatever the table's size (exports). Run it inside `snapshot()`
        when other statements must see the same state; on PostgreSQL it opens a read-only
        transaction of its own otherwise."""

    @abc.abstractmethod
    async def close(self) -> None: ...
