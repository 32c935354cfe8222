"""SQLite through aiosqlite: one connection in WAL mode, explicit write transactions."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import cast

import aiosqlite

from database.base import Database, Ownership, Params, Queries, Row, check_fence
from database.errors import DatabaseBusy


class _SqliteQueries(Queries):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.conn.execute(sql, params) as cur:
            return [tuple(r) for r in await cur.fetchall()]

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.conn.execute(sql, params) as cur:
            return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self.conn.executemany(sql, rows)


class SqliteDatabase(_SqliteQueries, Database):
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        super().__init__(conn)
        self.display = path
        self._snapshots = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, read_only: bool = False) -> SqliteDatabase:
        """Open (creating unless `read_only`) a SQLite file in WAL mode. Every write goes
        inside an explicit BEGIN IMMEDIATE … COMMIT. A new file is created with mode 0600
        (it holds every session and the relayer's intents)."""
        name = str(path)
        if read_only:
            if not Path(name).is_file():
                # Refused before aiosqlite starts its thread: a failed connect leaves that
                # thread to report to an event loop that may be closed by then.
                raise sqlite3.OperationalError(f"unable to open database file {name}")
            uri = Path(name).resolve().as_uri() + "?mode=ro"
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        else:
            _create_private(name)
            conn = await aiosqlite.connect(name, isolation_level=None)
        try:
            if not read_only:
                await conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable across a process kill (the WAL is in the OS cache); only
                # a power loss can drop the last commits, which the next start re-indexes.
                await conn.execute("PRAGMA synchronous=NORMAL")
                await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=10000")
            if read_only:
                await conn.execute("PRAGMA query_only=ON")
        except BaseException:
            # e.g. a read-only file system: close, or aiosqlite's (non-daemon) thread keeps
            # the process alive after the caller has reported the error
            await conn.close()
            raise
        return cls(conn, name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Queries]:
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            if self.fence is not None:
                await check_fence(self, self.fence)
            yield self
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[Ownership]:
        if self.display in ("", ":memory:"):
            yield Ownership()  # nobody else can open it
            return
        with hold_file(self.display, name):
            yield Ownership()  # a file lock dies only with the process

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
        # One connection: a read transaction on it is everyone's, so one at a time. An
        # in-memory database handed over by a writer cannot have one: reads run as they come.
        async with self._snapshots:
            if self.display in ("", ":memory:"):
                yield
                return
            await self.conn.execute("BEGIN")
            try:
                yield
            finally:
                await self.conn.execute("COMMIT")

    async def data_version(self) -> int | None:
        """SQLite's `PRAGMA data_version`: it moves when another connection commits (the
        daemon's writer, for the API's reader). Read outside any snapshot, under the same
        lock, so it is the file's latest, not the one a snapshot in progress sees. None for
        a connection shared with the writer, whose own commits do not move it."""
        if self.display in ("", ":memory:"):
            return None
        async with self._snapshots, self.conn.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        return None if row is None else int(row[0])

    async def stream(
        self, sql: str, params: Params = (), size: int = 1000
    ) -> AsyncGenerator[list[Row], None]:
        async with self.conn.execute(sql, params) as cur:
            while rows := await cur.fetchmany(size):
                if self.conn.row_factory is None:  # plain tuples already: no copy
                    yield cast("list[Row]", rows)
                else:
                    yield [tuple(r) for r in rows]

    async def close(self) -> None:
        await self.conn.close()


@contextlib.contextmanager
def hold_file(path: str | Path, name: str) -> Iterator[None]:
    """Hold the lock beside the SQLite file `path` (`PATH.lock`, what `exclusive` and so a
    running daemon hold) while the block runs, or raise `DatabaseBusy` at once naming
    the holder. The kernel releases it when the process dies, kill -9 included."""
    lock = Path(f"{path}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise DatabaseBusy(
                f"{path} is in use by another process ({holder}): stop it, "
                "or point this one at another database"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{name}, pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def as_database(db: Database | aiosqlite.Connection) -> Database:
    """A store's database: a bare SQLite connection (the one the daemon's stores share,
    or a test's) wrapped as one, anything else as it is."""
    return SqliteDatabase(db, "") if isinstance(db, aiosqlite.Connection) else db


def _create_private(name: str) -> None:
    """Create the database file 0600 before SQLite does (SQLite would honour the umask,
    typically 0644). SQLite gives its -wal and -shm files the database file's mode, so
    they follow. An existing file keeps the mode its owner chose."""
    if name == ":memory:" or name.startswith("file:") or not name:
        return
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing directory and the like: SQLite reports it as it opens
    os.close(fd)
    os.chmod(name, 0o600)  # in case the umask took bits away from 0600 itself
