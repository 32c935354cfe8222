"""Intent outcomes become notification events on both stores: the database records
every transition in the transaction that makes it (triggers on `intents`), and the relay
logs fired, submitted, confirmed, failed and obsolete events from those records, each
once (a relay re-run from an old cursor logs nothing twice), routed to channels."""

from __future__ import annotations

from database import open_database
from executor import IntentChanges, Outbox
from executor.outbox import NewJob
from indexer import IndexerStore
from notify import EventLog, EventReads, NotifySettings, Route, Router
from notify.outbox import Deliveries
from rules import Decision, Intent
from warden.app.relay import NAME, IntentRelay

W1, W2, W3 = ("0x" + c * 20 for c in ("11", "22", "33"))
RELAYER = "0x" + "aa" * 20


def intent(wallet: str, rule: str = "stop-loss", position: int = 7 << 32) -> Intent:
    return Intent(wallet, rule, "close", "stop_loss", position, 1_000, "v1")


def decision(i: Intent) -> Decision:
    return Decision(i.wallet, (i,), frozenset({i.rule}), frozenset())


async def test_every_outcome_is_an_event_once(backend: str) -> None:
    db = await open_database(backend)
    try:
        cfg = NotifySettings.model_validate({"channels": [
            {"name": "failures", "type": "command", "command": ["/bin/true"],
             "kinds": ["intent.failed"]},
        ]})  # fmt: skip
        log = EventLog(db)
        await log.setup()
        router = Router(db, [Route("failures", cfg.channels[0])])
        await router.start()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        box = Outbox(db)
        await box.setup()
        relay = IntentRelay(IntentChanges(db), log, store)
        a, b, c = intent(W1), intent(W2, "idle"), intent(W3, "expiry")
        await box.record([decision(a), decision(b), decision(c)], 5)
        job = NewJob("close", W1, "0xdead", 90_000, (a.key,))
        await box.create_job(
            job, relayer=RELAYER, nonce=0, tx_hash="0x" + "ab" * 32, raw="0x01",
            max_fee_per_gas=3, max_priority_fee_per_gas=1, now_ms=6,
        )  # fmt: skip
        await box.confirm(a.key, (9 << 32) | 2, "Closed indexed", 7)
        await box.settle([(b.key, "failed", "reverted: SessionClosed()")], 8)
        await box.settle([(c.key, "obsolete", "closed by owner")], 9)
        await box.reopen([c.key], "the close was reorged out", 10)  # fired again
        assert await relay.step() == 8
        assert await relay.step() == 0
        await log.append_relayed([], NAME, 0)  # as if a crash lost the cursor's move
        assert await relay.step() == 8  # derived again, logged once (same ids)
        events = (await EventReads(db).after(0, 100))[0]
        await router.drain()
        owed = await Deliveries(db).page(0, 100)
    finally:
        await db.close()
    assert [(e.kind, e.wallet) for e in events] == [
        ("intent.fired", W1), ("intent.fired", W2), ("intent.fired", W3),
        ("intent.submitted", W1), ("intent.confirmed", W1), ("intent.failed", W2),
        ("intent.obsolete", W3), ("intent.fired", W3),
    ]  # fmt: skip
    submitted, confirmed, failed = events[3], events[4], events[5]
    assert submitted.body["data"]["tx_hash"] == "0x" + "ab" * 32
    assert confirmed.body["data"]["tx_hash"] == "0x" + "ab" * 32
    assert failed.body["data"] == {
        "intent": b.key, "rule": "idle", "reason": "reverted: SessionClosed()",
    }  # fmt: skip
    assert events[0].body["data"] == {
        "intent": a.key, "rule": "stop-loss", "action": "close", "reason": "stop_loss",
    }  # fmt: skip
    assert [(d.channel, d.kind) for d in owed] == [("failures", "intent.failed")]
    assert len({e.id for e in events}) == len(events)
