"""PostgreSQL through an asyncpg pool. Statements are prepared once per connection (asyncpg's
statement cache) after their `?` placeholders are numbered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg

from database.base import Database, Params, Queries, Row
from database.sql import numbered


def _count(status: str) -> int:
    """Rows changed, from a command tag: "UPDATE 3", "DELETE 0", "INSERT 0 1"."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgQueries(Queries):
    def __init__(self, target: Any) -> None:
        self.target = target  # a pool, or one connection inside a transaction

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
    async def open(cls, url: str, display: str, *, max_size: int = 4) -> PostgresDatabase:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, timeout=10)
        return cls(pool, display)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield _PgQueries(conn)

    async def close(self) -> None:
        await self.pool.close()
