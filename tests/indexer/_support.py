"""Helpers for indexer tests: index a chain into a file, and read a database back as
plain rows so two databases can be compared."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chain import ChainClient, RetryPolicy
from indexer import Indexer, IndexerConfig, IndexerStore, open_database
from indexer.fetch import RangeSizing

FAST_RETRY = RetryPolicy(initial=0.02, factor=1.5, max_delay=0.2, attempts=40)


def config(factory: str, **overrides: Any) -> IndexerConfig:
    values: dict[str, Any] = {"factory": factory, "reorg_window": 16}
    values.update(overrides)
    return IndexerConfig(**values)


@contextlib.asynccontextmanager
async def opened(db_path: Path) -> AsyncIterator[IndexerStore]:
    """The indexer's store on a SQLite file, migrated, closed afterwards."""
    db = await open_database(db_path)
    try:
        store = IndexerStore(db)
        await store.setup()
        yield store
    finally:
        await db.close()


async def index_to_head(
    url: str | list[str], db_path: Path, cfg: IndexerConfig, **client_kw: Any
) -> Indexer:
    urls = [url] if isinstance(url, str) else url
    async with (
        opened(db_path) as store,
        ChainClient(urls, retry=client_kw.pop("retry", FAST_RETRY), **client_kw) as client,
    ):
        indexer = Indexer(client, store, cfg)
        await indexer.sync_to_head()
        return indexer


def rows(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Everything that must equal a fresh index: events, sessions, ignored logs, and the
    checkpoint's block number."""
    with sqlite3.connect(db_path) as db:
        return {
            "events": db.execute("SELECT * FROM events ORDER BY position").fetchall(),
            "sessions": db.execute("SELECT * FROM sessions ORDER BY wallet").fetchall(),
            "ignored": db.execute("SELECT * FROM ignored_logs ORDER BY position").fetchall(),
            "checkpoint": db.execute("SELECT number, hash FROM checkpoint").fetchall(),
        }


def sizing(initial: int, maximum: int = 50_000) -> RangeSizing:
    return RangeSizing(initial=initial, maximum=maximum)
