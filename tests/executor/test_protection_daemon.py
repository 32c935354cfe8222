"""The circuit breaker through the running daemon, over real HTTP: once the relayer's gas
for the hour reaches `max_gas_per_hour`, a due close waits (refused `gas_budget`), the
indexer goes on indexing, and /status and /metrics show the open breaker."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from executor import ExecutorSettings
from tests._chain import Chain
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import table
from tests.warden.app.test_daemon import get, plan, running, until
from warden.devnet import Anvil, free_port


async def metrics(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("warden_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_the_breaker_stops_sending_indexing_goes_on_and_status_shows_it(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    db, port = tmp_path / "warden.db", free_port()
    first, second = make_session(), make_session()
    cfg, target = plan(anvil, stack, db, start, port)
    # The smallest budget there is: the first close is admitted and trips the breaker.
    cfg = cfg.model_copy(
        update={
            "executor": ExecutorSettings(
                min_relayer_balance=10**16, replace_after_blocks=2, dry_run=False,
                max_gas_per_hour=21_000,
            )
        }
    )  # fmt: skip
    caplog.set_level(logging.INFO)
    async with running((cfg, target)):

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                return (await get(port, "/ready"))[0] == 200
            return False

        await until(ready)
        fresh_chain.send(first.wallet.functions.withdraw(850 * TOKEN), roles.owner)

        async def first_confirmed() -> bool:
            rows = table(db, "SELECT state FROM intents WHERE wallet = ?", first.wallet.address)
            return rows == [("confirmed",)]

        await until(first_confirmed)
        fresh_chain.send(second.wallet.functions.withdraw(850 * TOKEN), roles.owner)
        withdrawn_at = fresh_chain.w3.eth.block_number

        async def refused() -> bool:
            rows = table(db, "SELECT state, detail FROM intents WHERE wallet = ?",
                         second.wallet.address)  # fmt: skip
            return len(rows) == 1 and (rows[0][1] or "").startswith("gas_budget: circuit breaker")

        await until(refused)
        # Indexing goes on: the second withdrawal is indexed, and later blocks too.
        fresh_chain.mine()
        status, st = await get(port, "/status")
        assert status == 200
        _, session = await get(port, f"/sessions/{second.wallet.address}")
        assert session["session"]["balance"] == str(150 * TOKEN)

        async def past_withdrawal() -> bool:
            return ((await get(port, "/status"))[1]["indexed_block"] or 0) > withdrawn_at

        await until(past_withdrawal)
        st = (await get(port, "/status"))[1]
        protection = st["protection"]
        assert protection["circuit_breaker_open"] is True
        assert protection["gas_budget_per_hour"] == 21_000
        assert protection["gas_spent_total"] > 21_000
        assert protection["sending_paused"] is None
        assert [a["kind"] for a in protection["alerts"]] == ["gas_budget"]
        m = await metrics(port)
        assert m["warden_circuit_breaker_open"] == 1
        assert m["warden_relayer_gas_spent_total"] == protection["gas_spent_total"]
        assert m["warden_sending_paused"] == 0
    # Nothing was sent for the second session: one relayer transaction in all.
    assert table(db, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert table(db, "SELECT state FROM intents WHERE wallet = ?", second.wallet.address) == [
        ("pending",)
    ]
    assert any(
        r.levelno == logging.ERROR and r.getMessage().startswith("ALERT gas_budget:")
        for r in caplog.records
    )
