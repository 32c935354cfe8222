"""When the database cannot be written: disk full, a read-only file or file system, an I/O
error. Nothing the daemon does can fix these, and every write is one transaction, so the
answer is an orderly stop with a line at ERROR that says what and where, and the exit
status `STORAGE_EXIT`; once the operator has made room (or made the file writable), a
restart resumes from the last commit: what was not committed is fetched from the chain
again.

`storage_problem(exc, path)` tells these apart from bugs (a failed query, a constraint):
it looks through the exception's chain too, because the failed write is often hidden
behind the ROLLBACK that failed after it ("no transaction is active": SQLite already
rolled back when the disk filled up).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import asyncpg

STORAGE_EXIT = 3  # warden.cli.exit_codes.ExitCode.STORAGE
# What a store raises when the storage itself may have failed (storage_problem decides).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # its protocol state after a connection died mid-query
)

# SQLite primary result codes (the low byte of an extended code) that mean the storage,
# not the statement, failed.
_SQLITE = {
    13: "disk full",  # SQLITE_FULL
    8: "read-only database",  # SQLITE_READONLY (file, directory or file system)
    10: "disk I/O error",  # SQLITE_IOERR
    14: "cannot open the database file",  # SQLITE_CANTOPEN
    11: "database file is corrupt",  # SQLITE_CORRUPT
    26: "not a database file",  # SQLITE_NOTADB
}
_OS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EIO: "I/O error",
    errno.EACCES: "permission denied",
}
_HINTS = {
    "disk full": "free space on its file system",
    "disk quota exceeded": "raise the quota or free space",
    "read-only database": "make the file, its directory and its file system writable",
    "read-only file system": "remount the file system read-write",
    "permission denied": "make the file and its directory writable by this user",
}


# PostgreSQL SQLSTATEs (asyncpg's `sqlstate`) and classes that mean the server, not the
# statement, failed. A lost or refused connection stops the daemon too (exit 3, restarted
# by its supervisor): everything it did is committed or not, as with SQLite.
_PG_STATES = {
    "53100": "disk full",  # disk_full
    "25006": "read-only database",  # read_only_sql_transaction (a standby, a read-only server)
    "57P01": "the server is shutting down",  # admin_shutdown
    "57P02": "the server is shutting down",  # crash_shutdown
    "57P03": "the server is not accepting connections yet",  # cannot_connect_now
}
_PG_CLASSES = {
    "08": "the connection to the server failed",
    "53": "the server ran out of resources",
    "58": "a system error on the server",
}


def _cause(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and len(state) == 5:
        return _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])
    if (
        type(exc).__module__.startswith("asyncpg")
        and "ConnectionDoesNotExist" in type(exc).__name__
    ):
        return "the connection to the server failed"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int):
            return _SQLITE.get(code & 0xFF)
        text = str(exc).lower()  # an error raised without a code (aiosqlite's own)
        for needle, cause in (("disk is full", "disk full"), ("readonly", "read-only database"),
                              ("disk i/o", "disk I/O error")):  # fmt: skip
            if needle in text:
                return cause
        return None
    if isinstance(exc, OSError) and exc.filename:  # a file's; not a socket's (a port's EACCES)
        return _OS.get(exc.errno or 0)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _file_system(path: Path) -> str | None:
    """What the file system itself says, when SQLite's code is vague ("cannot open" on
    a read-only mount, "I/O error" on a full one)."""
    try:
        fs = os.statvfs(path.parent)
    except OSError:
        return None
    if fs.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if fs.f_bavail == 0:
        return "disk full"
    return None


_LOST = ("connection is closed", "connection was closed")  # asyncpg's InterfaceError


def _server_cause(exc: BaseException) -> str | None:
    """On PostgreSQL: a connection the server or the network ended (asyncpg's "connection
    is closed", a socket reset, refused or timed out) is the server failing too."""
    if isinstance(exc, asyncpg.InterfaceError) and any(t in str(exc) for t in _LOST):
        return "the connection to the server failed"
    if isinstance(exc, asyncpg.InternalClientError):  # "cannot switch to state 12; another
        return "the connection to the server failed"  # operation is in progress", on a restart
    if isinstance(exc, ConnectionError | TimeoutError):
        return "the connection to the server failed"
    return None


def file_problem(exc: BaseException, path: Path) -> str | None:
    """For a file Warden writes that is not the database (a backup, an export): "CAUSE —
    FIX" when `exc` is the disk failing under `path` (full, read-only, I/O), else None."""
    for link in _chain(exc):
        cause = _cause(link)
        if cause is not None:
            if cause in ("cannot open the database file", "disk I/O error", "read-only database",
                         "permission denied"):  # fmt: skip
                cause = _file_system(path) or cause
            return f"{cause} — {_HINTS.get(cause, 'check the disk and the path')}"
    return None


# Causes that end when the server is back: a replica rides them out as a standby.
_PASSING = frozenset({
    "the connection to the server failed",
    "the server is shutting down",
    "the server is not accepting connections yet",
})  # fmt: skip


def server_gone(exc: BaseException) -> str | None:
    """PostgreSQL only: the cause when `exc` comes of the server going away or not being
    back yet (a restart, a failover, the network), which the server's return ends; None
    for anything else (a full disk, a read-only server, a bug)."""
    for link in _chain(exc):
        cause = _cause(link) or _server_cause(link)
        if cause is not None:
            return cause if cause in _PASSING else None
    return None


def storage_problem(exc: BaseException, path: str | Path) -> str | None:
    """One line naming the cause and the database (a file path, or a PostgreSQL URL shown
    without its password), or None when `exc` is not a storage failure (a bug keeps its
    traceback)."""
    local = isinstance(path, Path)  # a SQLite file, not a server
    for link in _chain(exc):
        cause = _cause(link) or (None if local else _server_cause(link))
        if cause is not None:
            if local and cause in (
                "cannot open the database file",
                "disk I/O error",
                "read-only database",
            ):
                cause = _file_system(Path(path)) or cause
            fallback = "check the disk and the file" if local else "check the server"
            hint = _HINTS.get(cause, fallback)
            return (
                f"the database {path} cannot be written: {cause} ({type(link).__name__}: "
                f"{link}); {hint}, then restart: every committed batch is kept and the rest "
                "is fetched from the chain again"
            )
    return None
