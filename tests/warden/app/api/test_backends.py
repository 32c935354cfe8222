"""Every API route answers the same on SQLite and on PostgreSQL: the module's indexed
database (real chain activity, big amounts, an outbox in every state) is copied into
PostgreSQL with `database.copy_tables`, and each request, pages and filters included, goes
to an app on each store. Bodies must be equal byte for byte after JSON decoding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from database import open_database
from database.copy import copy_tables
from executor.outbox import Outbox
from indexer import IndexerStore
from notify import EventLog
from tests._postgres import Postgres, unique_database_name
from tests.warden.app.api.conftest import Api, Indexed, serve_api
from warden.app.api import LiveState

TABLES = (
    "blocks", "events", "ignored_logs", "sessions", "checkpoint", "intents", "jobs",
    "job_intents", "transactions", "refusals", "rule_latches", "executor_state",
    "notify_events", "notify_deliveries",
)  # fmt: skip


async def _copy(source: str, target: str) -> dict[str, int]:
    src, dst = await open_database(source, read_only=True), await open_database(target)
    try:
        await IndexerStore(dst).setup()
        await Outbox(dst).setup()
        await EventLog(dst).setup()
        tables = [t for t in TABLES if await src.has_table(t)]
        return await copy_tables(src, dst, tables)
    finally:
        await src.close()
        await dst.close()


@pytest.fixture(scope="module")
def pg_indexed(indexed: Indexed, postgres: Postgres) -> Iterator[str]:
    name = unique_database_name("api_backends")
    dsn = postgres.create_database(name)
    try:
        copied = asyncio.run(_copy(str(indexed.path), dsn))
        assert copied["sessions"] == len(indexed.wallets) and copied["intents"] > 30
        yield dsn
    finally:
        postgres.drop_database(name)


@pytest.fixture
async def both(indexed: Indexed, pg_indexed: str) -> AsyncIterator[tuple[Api, Api]]:
    live = LiveState()  # one live state: only the stores differ
    async with serve_api(str(indexed.path), live) as lite, serve_api(pg_indexed, live) as pg:
        yield lite, pg


def requests(indexed: Indexed) -> list[tuple[str, dict[str, str]]]:
    w, owner_wallet = indexed.wallets[0], indexed.wallets[-1]
    return [
        ("/status", {}),
        ("/stats", {}),
        ("/sessions", {}),
        ("/sessions", {"limit": "3"}),
        ("/sessions", {"status": "closed", "limit": "2"}),
        ("/sessions", {"status": "active", "policy": "berzerker"}),
        (f"/sessions/{w}", {}),
        (f"/sessions/{owner_wallet}", {}),
        (f"/sessions/{w}/events", {}),
        (f"/sessions/{w}/events", {"limit": "2"}),
        (f"/sessions/{w}/events", {"name": "Deposited"}),
        ("/intents", {}),
        ("/intents", {"limit": "5"}),
        ("/intents", {"state": "pending", "limit": "4"}),
        ("/intents", {"rule": "idle", "action": "close"}),
        ("/activity", {}),
        ("/activity", {"limit": "2"}),
        ("/sessions/0x0000000000000000000000000000000000000001", {}),
        ("/sessions", {"cursor": "not-a-cursor"}),
    ]


async def _walk(api: Api, path: str, params: dict[str, str]) -> list[Any]:
    """The answer, and every next page after it (a cursor taken from each)."""
    answers: list[Any] = []
    for _ in range(200):
        status, body = await api.get(path, params=params)
        answers.append((status, body))
        cursor = body.get("next_cursor") if isinstance(body, dict) else None
        if status != 200 or not cursor:
            return answers
        params = {**params, "cursor": cursor}
    raise AssertionError(f"{path}: more than 200 pages")


async def test_every_route_answers_the_same_on_both_stores(
    both: tuple[Api, Api], indexed: Indexed
) -> None:
    lite, pg = both
    for path, params in requests(indexed):
        on_sqlite = await _walk(lite, path, dict(params))
        on_pg = await _walk(pg, path, dict(params))
        assert on_pg == on_sqlite, (path, params)
    owner = (await lite.ok(f"/sessions/{indexed.wallets[0]}"))["session"]["owner"]
    assert await _walk(pg, f"/owners/{owner}/sessions", {"limit": "2"}) == await _walk(
        lite, f"/owners/{owner}/sessions", {"limit": "2"}
    )


async def test_metrics_figures_agree(both: tuple[Api, Api]) -> None:
    lite, pg = both

    def warden_lines(text: str) -> list[str]:
        # the delivery lag is an age: it grows between the two scrapes
        return sorted(
            line for line in text.splitlines()
            if line.startswith("warden_") and "delivery_lag_seconds{" not in line
        )  # fmt: skip

    assert warden_lines(await pg.ok("/metrics")) == warden_lines(await lite.ok("/metrics"))
