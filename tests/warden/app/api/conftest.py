"""An indexed database of real chain activity, an outbox written through the executor's
own layer, and the API served over real HTTP on 127.0.0.1 against it."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from database.sqlite import as_database
from executor.outbox import NewJob, Outbox
from indexer import IndexerStore, Session, open_database
from notify import Deliveries, EventLog, NotifySettings, Route, Router, session_events
from rules import Decision, Intent
from tests._chain import Chain
from tests._workload import WEIGHTS, Workload
from tests.conftest import Roles, Stack
from tests.indexer._support import config, index_to_head
from warden.app.api import LiveState, create_app
from warden.app.api.server import DEFAULT_LIMITS, HttpLimits, runner_options

RULES_VERSION = "rules-v7"
NOW_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Indexed:
    """The database built once per module, and what went into it."""

    path: Path
    wallets: list[str]  # every indexed session, in creation order
    intent_keys: dict[str, str]  # story name → intent key (see _write_outbox)
    tx_hashes: dict[str, str] = field(default_factory=dict)


def _hash(n: int) -> str:
    return "0x" + f"{n:064x}"


async def _write_outbox(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Intents in every state, through the executor's Outbox: a close confirmed after a
    fee bump, a pending one with guard refusals, a dropped and then obsolete sweep, and
    a stream of pending idle closes for pagination."""
    db = await open_database(path)
    try:
        store = IndexerStore(db)
        outbox = Outbox(db)
        await outbox.setup()
        sessions = await store.all_sessions()
        closed = [s for s in sessions if s.status == "closed"]
        active = [s for s in sessions if s.status != "closed"]
        assert closed and len(active) >= 2, "the workload should leave both kinds"

        def intent(s: Session, rule: str, action: str, reason: str) -> Intent:
            return Intent(s.wallet, rule, action, reason, s.last_position, s.last_activity,
                          RULES_VERSION)  # fmt: skip

        done = intent(closed[0], "stop-loss", "close", "stop_loss")
        waiting = intent(active[0], "expiry", "close", "expired")
        dropped = intent(active[1], "sweep-revoked", "sweep", "swept")
        idle = [intent(s, "idle", "close", "idle") for s in sessions[:30]]
        decisions = [
            Decision(i.wallet, (i,), frozenset({i.rule}), frozenset())
            for i in (done, waiting, dropped, *idle)
        ]
        await outbox.record(decisions, NOW_MS)

        job = NewJob("close", closed[0].wallet, "0xdeadbeef", 90_000, (done.key,))
        job_id = await outbox.create_job(
            job, relayer=closed[0].operator, nonce=0, tx_hash=_hash(1), raw="0x01",
            max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9, now_ms=NOW_MS + 1,
        )  # fmt: skip
        await outbox.mark_sent(_hash(1), NOW_MS + 2)
        await outbox.add_attempt(
            job_id, 0, tx_hash=_hash(2), raw="0x02", max_fee_per_gas=3 * 10**9,
            max_priority_fee_per_gas=2 * 10**9, now_ms=NOW_MS + 3,
        )  # fmt: skip
        await outbox.mark_sent(_hash(2), NOW_MS + 4)
        await outbox.job_mined(
            job_id, tx_hash=_hash(2), block=closed[0].created_block + 1, status=1,
            gas_used=61_234, effective_gas_price=2_500_000_007, outcomes=[], now_ms=NOW_MS + 5,
        )  # fmt: skip
        await outbox.confirm(done.key, closed[0].last_position, "SessionClosed indexed", NOW_MS + 6)

        await outbox.refuse(waiting.key, "rate", "3 jobs in the last hour", NOW_MS + 7)
        await outbox.refuse(waiting.key, "balance", "relayer balance below 0.01 ETH", NOW_MS + 8)

        job2 = NewJob("sweep", active[1].wallet, "0xfeed", 80_000, (dropped.key,))
        job2_id = await outbox.create_job(
            job2, relayer=closed[0].operator, nonce=1, tx_hash=_hash(3), raw="0x03",
            max_fee_per_gas=2 * 10**9, max_priority_fee_per_gas=10**9, now_ms=NOW_MS + 9,
        )  # fmt: skip
        await outbox.job_dropped(job2_id, "nonce 1 taken by another transaction", NOW_MS + 10)
        await outbox.settle([(dropped.key, "obsolete", "session closed meanwhile")], NOW_MS + 11)
        await _write_notifications(db, store, sessions)
        keys = {"done": done.key, "waiting": waiting.key, "dropped": dropped.key}
        return keys, {"first": _hash(1), "mined": _hash(2)}
    finally:
        await db.close()


async def _write_notifications(conn: Any, store: IndexerStore, sessions: list[Session]) -> None:
    """The event log of the indexed chain, owed to two channels, some delivered, some
    dead (/notifications, /stream and their metrics)."""
    db = as_database(conn)
    cfg = NotifySettings.model_validate({"channels": [
        {"name": "backend", "type": "command", "command": ["/bin/true"]},
        {"name": "ops", "type": "command", "command": ["/bin/true"], "kinds": ["session.closed"]},
    ]})  # fmt: skip
    log = EventLog(db, clock_ms=lambda: NOW_MS)
    await log.setup()
    router = Router(db, [Route(c.name, c) for c in cfg.channels], clock_ms=lambda: NOW_MS)
    await router.start()
    async with db.transaction() as tx:
        await log.append(tx, session_events(await store.events(), {s.wallet: s for s in sessions},
                                            NOW_MS))  # fmt: skip
    await router.drain()
    deliveries = Deliveries(db)
    rows = await deliveries.page(0, 10)
    await deliveries.delivered(rows[0].id, 1, NOW_MS + 20)
    await deliveries.failed(rows[1].id, 10, "HTTP 500: down", NOW_MS + 21, None)
    await deliveries.failed(rows[2].id, 2, "timed out after 10 s", NOW_MS + 22, NOW_MS + 99)


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory, chain: Chain, stack: Stack, roles: Roles
) -> Iterator[Indexed]:
    """A real chain's worth of sessions (big amounts, spoofs, every close reason) indexed
    into SQLite; the chain is put back afterwards."""
    snap = chain.snapshot()
    try:
        weights = {**WEIGHTS, "create": 30}  # enough sessions for several pages
        work = Workload(chain, stack, roles, random.Random(23), big_amounts=True, weights=weights)
        work.run(160)
        assert not work.reverts, work.reverts
        path = tmp_path_factory.mktemp("api") / "warden.sqlite"
        asyncio.run(index_to_head(chain.anvil.url, path, config(stack.factory.address)))
        keys, hashes = asyncio.run(_write_outbox(path))
        with sqlite3.connect(path) as db:
            wallets = [
                r[0] for r in db.execute("SELECT wallet FROM sessions ORDER BY created_position")
            ]
        yield Indexed(path, wallets, keys, hashes)
    finally:
        chain.revert_to(snap)


class Api:
    """GETs against the running app; JSON bodies decoded (text for /metrics)."""

    def __init__(self, server: TestServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http

    async def get(
        self, path: str, *, token: str | None = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.get(self.server.make_url(path), headers=headers,
                                 params=params) as r:  # fmt: skip
            if r.content_type == "application/json":
                return r.status, await r.json()
            if r.content_type == "text/event-stream":  # /stream: its first line, then go
                return r.status, (await r.content.readline()).decode()
            return r.status, await r.text()

    async def ok(self, path: str, **kw: Any) -> Any:
        status, body = await self.get(path, **kw)
        assert status == 200, (path, status, body)
        return body


@pytest.fixture
def live() -> LiveState:
    return LiveState()


@pytest.fixture
async def api(indexed: Indexed, live: LiveState) -> AsyncIterator[Api]:
    async with serve_api(indexed.path, live) as client:
        yield client


def serve_api(
    db: Any, live: LiveState, token: str | None = None, limits: HttpLimits = DEFAULT_LIMITS
) -> _Served:
    """The app as the daemon serves it: the same connection limits and server logger."""
    return _Served(db, live, token, limits)


class _Served:
    def __init__(self, db: Any, live: LiveState, token: str | None, limits: HttpLimits) -> None:
        self.app = create_app(db, live, token=token)
        self.server = TestServer(self.app, host="127.0.0.1")
        self.options = runner_options(limits)  # TestServer takes them at start only
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        await self.server.start_server(**self.options)
        self.http = aiohttp.ClientSession()
        return Api(self.server, self.http)

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()
        await self.server.close()
