"""Several read-only connections on one SQLite file: what the HTTP API reads through.

In WAL mode readers do not wait for each other nor for the writer, so a few connections
answer a few requests at once where one connection would serve them one snapshot at a
time. A task's `snapshot()` takes one connection for itself (a read transaction on it:
one consistent view for every statement the task runs inside), the way the PostgreSQL
pool pins one; a statement outside any snapshot borrows one for itself.

    db = await SqliteReaders.open("warden.sqlite", size=4, wait=5.0)
    async with db.snapshot():              # one connection, one read transaction
        rows = await db.fetch("SELECT ...")

A borrower waits at most `wait` seconds for a free connection, then `ReadersBusy`.
`data_version()` asks a connection of its own, on the caller's thread: the number moves
with every commit of another connection, so it must always come from the same one, and
it is asked for on every request (a hop to a worker thread would cost more than the
pragma).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path

import aiosqlite

from database.base import Database, Ownership, Params, Queries, Row
from database.errors import ReadersBusy
from database.sqlite import SqliteDatabase, hold_file


class SqliteReaders(Database):
    dialect = "sqlite"

    def __init__(
        self,
        conns: list[aiosqlite.Connection],
        version: sqlite3.Connection,
        path: str,
        wait: float,
    ) -> None:
        self.display = path
        self.size = len(conns)
        self.wait = wait
        # most recently used first: a warm connection's page cache serves the next one
        # (None, once closed: every borrower waiting then is told so, not left waiting)
        self._idle: asyncio.LifoQueue[aiosqlite.Connection | None] = asyncio.LifoQueue()
        for conn in conns:
            self._idle.put_nowait(conn)
        self._version = version
        self._pinned: contextvars.ContextVar[aiosqlite.Connection | None] = contextvars.ContextVar(
            "warden_sqlite_snapshot", default=None
        )
        self._closed = False

    @classmethod
    async def open(cls, path: str | Path, *, size: int = 4, wait: float = 5.0) -> SqliteReaders:
        """`size` read-only connections on the SQLite file at `path` (which must exist)."""
        if size < 1:
            raise ValueError(f"a pool of {size} read connections: at least 1 is needed")
        name = str(path)
        conns: list[aiosqlite.Connection] = []
        version: sqlite3.Connection | None = None
        try:
            for _ in range(size):
                conns.append((await SqliteDatabase.open(name, read_only=True)).conn)
            uri = Path(name).resolve().as_uri() + "?mode=ro"
            version = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            # never wait on the event loop's thread: a busy file answers "no version" (the
            # request then reads the database) instead of blocking every other request
            version.execute("PRAGMA busy_timeout=0")
            version.execute("PRAGMA query_only=ON")
        except BaseException:
            for conn in conns:
                await conn.close()
            if version is not None:
                version.close()
            raise
        return cls(conns, version, name, wait)

    @contextlib.asynccontextmanager
    async def _borrow(self) -> AsyncIterator[aiosqlite.Connection]:
        pinned = self._pinned.get()
        if pinned is not None:  # inside this task's snapshot: its connection
            yield pinned
            return
        if self._closed:
            raise ReadersBusy(f"the read connections of {self.display} are closed")
        try:
            async with asyncio.timeout(self.wait):
                conn = await self._idle.get()
        except TimeoutError:
            raise ReadersBusy(
                f"all {self.size} read connections of {self.display} stayed busy for "
                f"{self.wait:g} s"
            ) from None
        if conn is None:  # closed while this one waited
            self._idle.put_nowait(None)
            raise ReadersBusy(f"the read connections of {self.display} are closed")
        try:
            yield conn
        finally:
            if self._closed:  # closed while borrowed: the last user closes it
                await conn.close()
            else:
                self._idle.put_nowait(conn)

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self._borrow() as conn, conn.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._borrow() as conn, conn.execute(sql, params) as cur:
            return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._borrow() as conn:
            await conn.executemany(sql, rows)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        raise sqlite3.OperationalError(f"{self.display} is open read-only: nothing is written")
        yield self  # unreachable: makes this a generator

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[Ownership]:
        with hold_file(self.display, name):
            yield Ownership()

    async def has_table(self, name: str) -> bool:
        row = await self.fetchone(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return row is not None

    async def columns(self, table: str) -> list[str]:
        rows = await self.fetch("SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,))
        return [str(r[0]) for r in rows]

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        if self._pinned.get() is not None:  # already inside one
            yield
            return
        async with self._borrow() as conn:
            await conn.execute("BEGIN")
            token = self._pinned.set(conn)
            try:
                yield
            finally:
                self._pinned.reset(token)
                # the read transaction ends whatever happened inside (nothing to undo)
                await conn.execute("COMMIT")

    async def data_version(self) -> int | None:
        """`PRAGMA data_version` of the pool's own version connection (it moves whenever
        the writer commits), or None when it cannot be read at once (the file busy in
        a checkpoint or a recovery): the caller then reads the database itself."""
        if self._closed:
            return None
        try:
            row = self._version.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        return None if row is None else int(row[0])

    async def stream(
        self, sql: str, params: Params = (), size: int = 1000
    ) -> AsyncGenerator[list[Row], None]:
        async with self._borrow() as conn, conn.execute(sql, params) as cur:
            while rows := await cur.fetchmany(size):
                yield [tuple(r) for r in rows]

    async def close(self) -> None:
        """Close every idle connection now and each borrowed one when it is given back
        (its borrower's statements finish first); a borrower still waiting for one gets
        `ReadersBusy` at once. The HTTP API closes it after its handlers have ended."""
        if self._closed:
            return
        self._closed = True
        try:
            while not self._idle.empty():
                conn = self._idle.get_nowait()
                if conn is not None:
                    await conn.close()
        finally:
            self._idle.put_nowait(None)
            self._version.close()
