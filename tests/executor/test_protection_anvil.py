"""Closes mined without effect on a real anvil: a wallet whose code is wiped to a single
STOP (`anvil_setCode`: every call succeeds and emits nothing, as on a node that lost the
wallet's code) is sent at most `max_mined_without_effect` closes, alone or as a member
of a batch, across restarts and kill -9; then its intent fails with an alert, and it is
tried again only once its session has a new event on chain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import rig, table
from tests.executor.test_crash import relayer_targets, run
from warden.devnet import Anvil

STOP = "0x00"


def alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith("ALERT no_effect:")
    ]


async def test_a_wiped_wallet_gets_two_closes_then_fails_across_restarts(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    wallet = make_session().wallet.address
    anvil.rpc("anvil_setCode", wallet, STOP)
    db, factory = tmp_path / "w.db", stack.factory.address
    async with rig(anvil.url, db, factory, start) as r:
        await r.index()
        key = await r.intend(wallet)
        assert (await r.step()).jobs == 1  # mined at once (automine), closed nothing
    async with rig(anvil.url, db, factory, start) as r:  # a restart reads the receipt
        report = await r.step()
        assert (report.mined, report.requeued, report.jobs) == (1, 1, 1)
    async with rig(anvil.url, db, factory, start) as r:
        report = await r.step()
        assert (report.mined, report.failed, report.jobs) == (1, 1, 0)
        for _ in range(5):
            assert (await r.step()).jobs == 0
        state, detail = await r.state(key)
        assert r.executor.protection().alerts[-1].kind == "no_effect"
    assert state == "failed" and detail is not None
    assert detail.startswith("mined without effect: 2 of our transactions")
    assert relayer_targets(fresh_chain, roles.operator, start) == [wallet, wallet]
    assert len(alerts(caplog)) == 1
    receipts = table(db, "SELECT receipt_status FROM jobs ORDER BY id")
    assert receipts == [(1,), (1,)]  # both ran: status 1 says nothing about the close


async def test_a_hostile_batch_member_is_bounded_and_retried_after_a_new_event(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    good, bad = make_session(), make_session()
    code = anvil.rpc("eth_getCode", bad.wallet.address, "latest")
    anvil.rpc("anvil_setCode", bad.wallet.address, STOP)
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address) for s in (good, bad)]
        for _ in range(6):
            await r.step()
        assert [(await r.state(k))[0] for k in keys] == ["confirmed", "failed"]
        kinds = table(r.db_path, "SELECT kind FROM jobs ORDER BY id")
        assert kinds == [("batch",), ("close",)]  # the batch, then the member alone
        # The wallet works again and its owner moves: a new event for the session.
        anvil.rpc("anvil_setCode", bad.wallet.address, code)
        assert (await r.step()).jobs == 0  # code alone is not an event: still parked
        fresh_chain.send(bad.wallet.functions.withdraw(1 * TOKEN), roles.owner)
        await r.run()
        assert (await r.state(keys[1]))[0] == "confirmed"
    touched = relayer_targets(fresh_chain, roles.operator, start)
    assert touched.count(bad.wallet.address) == 3  # 2 without effect, then the close
    assert touched.count(good.wallet.address) == 1
    logs = bad.wallet.events.Closed().get_logs(from_block=start)
    assert [int(e["args"]["reason"]) for e in logs] == [CloseReason.STOP_LOSS]


async def test_kill_9_between_sends_does_not_reset_the_count(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    wallet = make_session().wallet.address
    anvil.rpc("anvil_setCode", wallet, STOP)
    db, factory = tmp_path / "w.db", stack.factory.address
    async with rig(anvil.url, db, factory, start) as r:
        await r.index()
        key = await r.intend(wallet)
    # Killed right after the first miss is stored, then at the second send, then run out.
    assert run(anvil.url, db, factory, start, "mined:1") == -9
    assert run(anvil.url, db, factory, start, "sent:1") == -9
    assert run(anvil.url, db, factory, start, None) == 0
    assert table(db, "SELECT state, mined_without_effect FROM intents WHERE key = ?", key) == [
        ("failed", 2)
    ]
    assert relayer_targets(fresh_chain, roles.operator, start) == [wallet, wallet]
