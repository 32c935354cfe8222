"""The daemon runs the balance audit and retention by itself: a plain transfer into a
session wallet raises `alert.balance_drift` in the event log, the `sync()` that catches
the index up clears it, and old events are pruned while it runs (the newest alert of
the wallet stays)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

from notify import NotifySettings
from tests._chain import Chain
from tests.conftest import Roles, Session, Stack
from tests.executor._support import table
from tests.warden.app.test_daemon import plan, running, until
from warden.app.settings.models import AuditConfig
from warden.devnet import Anvil, free_port


async def get_text(port: int, path: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        assert r.status == 200
        return await r.text()


async def test_the_daemon_raises_and_clears_a_drift_and_prunes_old_events(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    wallet = session.wallet.address
    fresh_chain.send(stack.token.functions.transfer(wallet, 42), roles.owner)
    port = free_port()
    cfg, target = plan(anvil, stack, tmp_path / "w.sqlite", start, port)
    retention = {"events_days": 0.00002, "delivered_days": 0.00002, "interval": 1}  # ~2 s
    cfg = cfg.model_copy(update={
        "audit": AuditConfig(interval=1, page=50),
        "notify": NotifySettings.model_validate({"retention": retention}),
    })  # fmt: skip
    db = tmp_path / "w.sqlite"

    def rows(sql: str) -> list[tuple[object, ...]]:
        try:
            return table(db, sql)
        except sqlite3.OperationalError:  # not migrated yet: the daemon is starting
            return []

    def drifts() -> list[dict[str, object]]:
        found = rows("SELECT body FROM notify_events WHERE kind = 'alert.balance_drift' "
                     "ORDER BY id")  # fmt: skip
        return [orjson.loads(str(r[0]))["data"] for r in found]

    async with running((cfg, target)) as (_daemon, task):

        async def raised() -> bool:
            return any(d["state"] == "raised" and d["wallet"] == wallet for d in drifts())

        await until(raised, 60)

        async def counted() -> bool:
            return "warden_balance_drifting_sessions 1.0" in await get_text(port, "/metrics")

        await until(counted, 30)
        got = next(d for d in drifts() if d["state"] == "raised")
        assert got["difference"] == "42" and isinstance(got["on_chain"], str)
        fresh_chain.send(session.wallet.functions.sync(), roles.stranger)

        async def cleared() -> bool:
            return any(d["state"] == "cleared" and d["reason"] == "in line" for d in drifts())

        await until(cleared, 60)

        async def pruned() -> bool:
            horizon = rows("SELECT position FROM notify_cursors WHERE name = 'pruned'")
            created = rows("SELECT 1 FROM notify_events WHERE kind = 'session.created'")
            return bool(horizon) and not created

        await until(pruned, 60)
        metrics = await get_text(port, "/metrics")  # cleared before pruning was seen
        assert "warden_balance_audit_passes_total" in metrics
        assert "warden_balance_drifting_sessions 0.0" in metrics
        assert drifts()[-1]["state"] == "cleared"  # the newest alert of the wallet stays
        assert not task.done()
    assert task.result() == 0
