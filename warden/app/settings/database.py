"""The `database:` key: a SQLite file path (relative to the config file), or a PostgreSQL
URL. A URL may carry a password, so it is held like a secret: shown without it in logs,
errors and `config check`, revealed only to the driver (`target()`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import PlainSerializer, PlainValidator, ValidationInfo

from database import is_postgres_url, redact_database_url

EXAMPLE = "postgresql://warden@db.internal:5432/warden"


class DatabaseUrl:
    """A postgresql:// URL. `str()` and `repr()` leave the password out."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def reveal(self) -> str:
        return self._url

    def __str__(self) -> str:
        return redact_database_url(self._url)

    def __repr__(self) -> str:
        return f"DatabaseUrl({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def _validate(value: object, info: ValidationInfo) -> Path | DatabaseUrl:
    if isinstance(value, DatabaseUrl):
        return value
    if isinstance(value, Path):  # the default, or a value set in code
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a SQLite file path or a PostgreSQL URL ({EXAMPLE})")
    if is_postgres_url(value):
        try:
            parts = urlsplit(value)
            port = parts.port  # raises on a port that is not a number
        except ValueError:
            port, parts = -1, None
        # Never quote the value: it may hold a password.
        if parts is None or port == -1 or not parts.hostname or parts.path in ("", "/"):
            raise ValueError(
                f"a PostgreSQL URL needs a host and a database name, e.g. {EXAMPLE} "
                "(the password can go in ~/.pgpass or PGPASSWORD instead of the URL)"
            )
        return DatabaseUrl(value)
    if "://" in value:
        scheme = value.split("://", 1)[0][:20]
        raise ValueError(
            f"{scheme}://… is not a database Warden can use: a SQLite file path or {EXAMPLE}"
        )
    path = Path(value)
    base = (info.context or {}).get("base")
    return path if base is None or path.is_absolute() else Path(base) / path


DatabaseTarget = Annotated[
    Path | DatabaseUrl, PlainValidator(_validate), PlainSerializer(str, return_type=str)
]


def target(value: Path | DatabaseUrl) -> str | Path:
    """What `database.open_database` takes: the path, or the URL with its password."""
    return value.reveal() if isinstance(value, DatabaseUrl) else value


def where(value: Path | DatabaseUrl) -> str | Path:
    """Where the database is, for logs and errors: the path (a Path: a local file), or
    the URL without its password (a str)."""
    return value if isinstance(value, Path) else str(value)
