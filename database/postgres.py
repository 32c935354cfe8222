"""PostgreSQL through an asyncpg pool. Statements are prepared once per connection (asyncpg's
statement cache) after their `?` placeholders are numbered."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import asyncpg

from database.base import Database, Ownership, Params, Queries, Row, check_fence
from database.errors import DatabaseBusy
from database.sql import numbered

FENCED = "warden epoch "  # application_name of a fenced transaction: this, then the epoch


def fenced_name(epoch: int) -> str:
    return f"{FENCED}{epoch}"


def _count(status: str) -> int:
    """Rows changed, from a command tag: "UPDATE 3", "DELETE 0", "INSERT 0 1"."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgQueries(Queries):
    def __init__(self, target: Any) -> None:
        self._target = target  # a pool, or one connection inside a transaction
        # The connection a task's snapshot holds, per database: that task's statements on
        # this database (never on another one) run there.
        self._pinned: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "warden_pg_snapshot", default=None
        )

    @property
    def target(self) -> Any:
        return self._pinned.get() or self._target

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        return [tuple(r) for r in await self.target.fetch(numbered(sql), *params)]

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _count(await self.target.execute(numbered(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            await self.target.executemany(numbered(sql), batch)


class PostgresDatabase(_PgQueries, Database):
    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, display: str) -> None:
        super().__init__(pool)
        self.pool = pool
        self.display = display

    @classmethod
    async def open(
        cls, url: str, display: str, *, read_only: bool = False, max_size: int = 4
    ) -> PostgresDatabase:
        """A pool of up to `max_size` connections; `read_only`: every transaction on them
        is read-only (what the API and `warden inspect` open)."""
        settings = {"default_transaction_read_only": "on"} if read_only else {}
        pool = await asyncpg.create_pool(
            url, min_size=1, max_size=max_size, timeout=10, server_settings=settings
        )
        return cls(pool, display)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        """A fenced transaction (a leader's) is named after its epoch (`fenced_name`: a
        new leader ends those of older epochs, `lease.end_older`), is ended by the server
        once idle for `idle_limit_ms`, and checks the fence at its END, just before the
        commit: the lease row's share lock is held for the commit alone, so a leader
        frozen or cut off in the middle of a transaction never holds up a takeover."""
        async with self.pool.acquire() as conn, conn.transaction():
            tx = _PgQueries(conn)
            if self.fence is not None:
                idle = str(int(self.idle_limit_ms or 0))
                await tx.fetch(
                    "SELECT set_config('application_name', ?, true), "
                    "set_config('idle_in_transaction_session_timeout', ?, true)",
                    (fenced_name(self.fence.epoch), idle),
                )
            yield tx
            if self.fence is not None:
                await check_fence(tx, self.fence, " FOR SHARE")

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[Ownership]:
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn = await self.pool.acquire()
        ownership = Ownership()

        def lost(_: object) -> None:
            ownership.lost = True

        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                raise DatabaseBusy(
                    f"{self.display} is in use by another process (it holds {name!r}): stop "
                    "it, or point this one at another database"
                )
            conn.add_termination_listener(lost)
            yield ownership
        finally:
            if not ownership.lost and not conn.is_closed():
                conn.remove_termination_listener(lost)
                with contextlib.suppress(Exception):  # the server may be gone: it unlocked
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)
            with contextlib.suppress(Exception):  # a connection the server ended
                await self.pool.release(conn)

    async def has_table(self, name: str) -> bool:
        return bool(await self.fetchval("SELECT to_regclass(?) IS NOT NULL", (name,)))

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        if self._pinned.get() is not None:  # already inside one
            yield
            return
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            token = self._pinned.set(conn)
            try:
                yield
            finally:
                self._pinned.reset(token)

    async def stream(
        self, sql: str, params: Params = (), size: int = 1000
    ) -> AsyncGenerator[list[Row], None]:
        pinned = self._pinned.get()
        if pinned is not None:  # inside a snapshot: its transaction holds the cursor
            cur = await pinned.cursor(numbered(sql), *params)
            while rows := await cur.fetch(size):
                yield [tuple(r) for r in rows]
            return
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            cur = await conn.cursor(numbered(sql), *params)
            while rows := await cur.fetch(size):
                yield [tuple(r) for r in rows]

    async def close(self) -> None:
        await self.pool.close()
