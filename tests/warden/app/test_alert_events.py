"""Operator alerts as notification events: the executor's alerts map to catalogue kinds
(raised and cleared), daemon conditions are raised once when they begin and cleared once
when they end, and each batch is logged (and owed to channels) when flushed."""

from __future__ import annotations

from pathlib import Path

from database import open_database
from executor.alerts import GAS_BUDGET, NO_EFFECT, RELAYER_BALANCE, Alerts
from notify import KINDS, EventLog, EventReads, NotifySettings, Route
from notify.outbox import Deliveries
from warden.app.alerts import AlertEvents


async def test_alerts_raise_clear_and_reach_their_channel(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "w.sqlite")
    try:
        cfg = NotifySettings.model_validate({"channels": [
            {"name": "pager", "type": "command", "command": ["/bin/true"],
             "min_severity": "critical"},
        ]})  # fmt: skip
        log = EventLog(db, routes=[Route("pager", cfg.channels[0])])
        await log.setup()
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
