"""`database:` to a connected `Database`: a PostgreSQL URL, or else a SQLite file path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from database.base import Database
from database.errors import UnsupportedDatabase

_PG_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(value: str | Path) -> bool:
    return isinstance(value, str) and value.split("://", 1)[0].lower() in _PG_SCHEMES


def redact_database_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


async def open_database(
    target: str | Path, *, read_only: bool = False, readers: int | None = None,
    wait: float = 5.0,
) -> Database:  # fmt: skip
    """Connect: `postgresql://…` (or `postgres://…`) through asyncpg, anything else as a
    SQLite file path (created 0600 unless `read_only`; a missing file is refused then).

    `readers` (read-only only): as many connections reading at once, each snapshot on one
    of its own (SQLite: `SqliteReaders`, a borrower waiting at most `wait` seconds;
    PostgreSQL: the pool's size)."""
    if readers is not None and not read_only:
        raise ValueError("a pool of readers is read-only: pass read_only=True")
    text = str(target)
    if "://" in text and not is_postgres_url(text):
        scheme = text.split("://", 1)[0]
        raise UnsupportedDatabase(
            f"database {scheme}://… is not supported: use a SQLite file path or a "
            "postgresql://user@host/db URL"
        )
    if is_postgres_url(text):
        from database.postgres import PostgresDatabase  # asyncpg only when asked for

        return await PostgresDatabase.open(
            text, redact_database_url(text), read_only=read_only, max_size=readers or 4
        )
    if readers is not None:
        from database.sqlite_readers import SqliteReaders

        return await SqliteReaders.open(target, size=readers, wait=wait)
    from database.sqlite import SqliteDatabase

    return await SqliteDatabase.open(target, read_only=read_only)
