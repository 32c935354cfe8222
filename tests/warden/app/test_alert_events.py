"""Operator alerts as notification events: the executor's alerts map to catalogue kinds
(raised and cleared), daemon conditions are raised once when they begin and cleared once
when they end, and each batch is logged (and owed to channels) when flushed."""

from __future__ import annotations

from pathlib import Path

from database import open_database
from executor.alerts import GAS_BUDGET, NO_EFFECT, RELAYER_BALANCE, Alerts
from notify import KINDS, EventLog, EventReads, NotifySettings, Route, Router
from notify.outbox import Deliveries
from warden.app.alerts import AlertEvents


async def test_alerts_raise_clear_and_reach_their_channel(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "w.sqlite")
    try:
        cfg = NotifySettings.model_validate({"channels": [
            {"name": "pager", "type": "command", "command": ["/bin/true"],
             "min_severity": "critical"},
        ]})  # fmt: skip
        log = EventLog(db)
        await log.setup()
        router = Router(db, [Route("pager", cfg.channels[0])])
        await router.start()
        alerts = AlertEvents(log, lag_blocks=50)
        source = Alerts(lambda: 1_000)
        source.raise_(RELAYER_BALANCE, "balance 0.001 ETH below 0.05 ETH")
        source.raise_(GAS_BUDGET, "gas budget per hour spent")
        source.raise_("close_failed", "covered by intent.failed: no alert event")
        source.resolved(RELAYER_BALANCE, "balance 1 ETH")
        source.raise_(NO_EFFECT, "intent x mined 2 times without its event")
        alerts.executor(source.drain())
        assert source.drain() == []
        for lag in (10, 60, 70, 80, 20, 30):  # raised once at 60, cleared once at 20
            alerts.lag(head=1_000, indexed=1_000 - lag)
        alerts.condition("alert.rules_reload_failed", True, {"detail": "2 problem(s)"})
        alerts.condition("alert.rules_reload_failed", True, {"detail": "again"})
        assert await alerts.flush()
        assert not await alerts.flush()
        events = (await EventReads(db).after(0, 100))[0]
        await router.drain()
        owed = await Deliveries(db).page(0, 100)
    finally:
        await db.close()
    got = [(e.kind, e.body["data"]["state"]) for e in events]
    assert got == [
        ("alert.relayer_balance_low", "raised"), ("alert.circuit_breaker", "raised"),
        ("alert.relayer_balance_low", "cleared"), ("alert.resend_loop", "raised"),
        ("alert.indexing_lag", "raised"), ("alert.indexing_lag", "cleared"),
        ("alert.rules_reload_failed", "raised"),
    ]  # fmt: skip
    assert events[4].body["data"] == {"state": "raised", "lag_blocks": 60, "threshold": 50}
    assert all(e.body["severity"] == KINDS[e.kind].severity.label for e in events)
    assert len({e.id for e in events}) == len(events)
    critical = [d.kind for d in owed]
    assert critical == ["alert.relayer_balance_low", "alert.circuit_breaker",
                        "alert.relayer_balance_low", "alert.resend_loop"]  # fmt: skip


def test_a_job_unmined_for_n_blocks_raises_and_clears() -> None:
    from executor.jobs import Attempt, Job

    class Log:
        pass

    alerts = AlertEvents(Log(), lag_blocks=50)  # type: ignore[arg-type]

    def job(*hashes: str) -> Job:
        attempts = tuple(Attempt(h, 7, 1, 1, "0x", "sent", 0) for h in hashes)
        return Job(1, 7, "close", "0x", "0x", 90_000, "live", None, None, 0, attempts)

    sent = {"0xa": 100, "0xb": 103}  # the replacement 0xb was sent later
    for head in (110, 119):
        alerts.unmined(head, [job("0xa", "0xb")], sent, threshold=20)
    assert alerts.pending == []
    alerts.unmined(120, [job("0xa", "0xb")], sent, threshold=20)  # 20 blocks since 0xa
    alerts.unmined(125, [job("0xa", "0xb")], sent, threshold=20)  # still: raised once
    alerts.unmined(126, [], sent, threshold=20)  # mined: cleared
    got = [(e.kind, dict(e.data)) for e in alerts.pending]
    assert got == [
        ("alert.tx_unmined", {"state": "raised", "tx_hash": "0xb", "blocks": 20, "stuck": 1,
                              "threshold": 20}),
        ("alert.tx_unmined", {"state": "cleared", "tx_hash": None, "blocks": 0, "stuck": 0,
                              "threshold": 20}),
    ]  # fmt: skip


async def test_a_condition_left_raised_by_a_killed_process_is_cleared_after_restart(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "w.sqlite")
    try:
        log = EventLog(db)
        await log.setup()
        before = AlertEvents(log, lag_blocks=50)
        before.lag(head=1_000, indexed=800)  # raised, then the process is killed
        before.condition("alert.rules_reload_failed", True, {"detail": "x"})
        before.condition("alert.rules_reload_failed", False, {"detail": "ok"})
        await before.flush()
        after = AlertEvents(log, lag_blocks=50)  # the restarted daemon's
        await after.restore()
        after.lag(head=1_000, indexed=1_000)  # caught up: the lag clears
        after.condition("alert.rules_reload_failed", False, {"detail": "ok"})  # stays quiet
        await after.flush()
        events = (await EventReads(db).after(0, 100))[0]
    finally:
        await db.close()
    assert [(e.kind, e.body["data"]["state"]) for e in events] == [
        ("alert.indexing_lag", "raised"), ("alert.rules_reload_failed", "raised"),
        ("alert.rules_reload_failed", "cleared"), ("alert.indexing_lag", "cleared"),
    ]  # fmt: skip
