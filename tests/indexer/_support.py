"""Helpers for indexer tests: index a chain into a file, and read a database back as
plain rows so two databases can be compared."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chain import ChainClient, RetryPolicy
from indexer import ChainSettings, Indexer, IndexerStore, Update, open_database

FAST_RETRY = RetryPolicy(initial=0.02, factor=1.5, max_delay=0.2, attempts=40)


def config(factory: str, **overrides: Any) -> ChainSettings:
    """The `chain:` settings of a test: this factory, to the head, a 16-block window."""
    values: dict[str, Any] = {"factory": factory, "confirmations": 0, "reorg_window": 16}
    values.update(overrides)
    return ChainSettings(**values)


def indexer(client: ChainClient, store: IndexerStore, factory: str, **overrides: Any) -> Indexer:
    settings = config(factory, **overrides)
    return Indexer(client, store, settings, factory=factory)


async def settle(follower: Indexer, rounds: int = 1_000) -> list[Update]:
    """`step()` until a round finds nothing to do (errors propagate): all it yielded."""
    seen: list[Update] = []
    for _ in range(rounds):
        async with contextlib.aclosing(follower.step()) as updates:
            seen.extend([update async for update in updates])
        if follower.idle:
            return seen
    raise AssertionError(f"indexer did not settle in {rounds} rounds")


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
    url: str | list[str], db_path: Path, cfg: ChainSettings, **client_kw: Any
) -> Indexer:
    urls = [url] if isinstance(url, str) else url
    async with (
        opened(db_path) as store,
        ChainClient(urls, retry=client_kw.pop("retry", FAST_RETRY), **client_kw) as client,
    ):
        assert cfg.factory is not None
        indexed = Indexer(client, store, cfg, factory=cfg.factory)
        await indexed.sync_to_head()
        return indexed


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


def sizing(initial: int, maximum: int = 50_000) -> dict[str, int]:
    """`eth_getLogs` ranges from `initial` blocks, adapting up to `maximum`."""
    return {"log_range": initial, "max_log_range": maximum}
