"""`action: notify` rules in the daemon's pipeline, on both stores: a firing is a
`rule.notify` event with its message filled exactly from the snapshot that fired it,
logged in the transaction that latches the rule (so it fires once per crossing, across
a restart too), never an intent; a close rule on the same condition still fires beside
it; a failing log write stores neither latch nor intent."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from database import Queries, open_database
from executor import Outbox
from indexer import Batch, Event, IndexerStore
from indexer.projection import apply_all
from indexer.store import BlockRef
from notify import EventLog, EventReads, NotifyEvent, NotifySettings, Route, Router
from notify.outbox import Deliveries
from rules import RulesHolder, RulesHost
from warden.app.pipeline import RulesPipeline

W = "0x" + "ab" * 20
OWNER = "0x" + "11" * 20
BIG = 2**200 + 7
RULES = """\
rules:
  - name: whale
    when: balance > 1000
    action: notify
    message: "whale {wallet} holds {balance} of {token}; rule {rule} at {now} {{literal}}"
  - name: whale-close
    when: balance > 1000
    action: close
    reason: take_profit
"""


def created() -> Event:
    return Event(
        position=(1 << 32), block_number=1, block_hash="0x" + "01" * 32, tx_hash="0x" + "02" * 32,
        tx_index=0, log_index=0, timestamp=1_000, address=OWNER, wallet=W,
        name="SessionCreated", seq=None,
        args=dict(wallet=W, owner=OWNER, operator=OWNER, token=OWNER, deposit=BIG, fee=0,
                  expiry=2**40, budget=BIG, stopLoss=0, takeProfit=0, policy="merchant",
                  targets=[OWNER], salt="0x" + "00" * 32, balanceAfter=BIG),
    )  # fmt: skip


async def decimals(tokens: Sequence[str]) -> dict[str, int]:
    return dict.fromkeys(tokens, 18)


class Boom(RuntimeError):
    pass


class FailingLog(EventLog):
    async def append(self, tx: Queries, events: Sequence[NotifyEvent]) -> None:
        if any(e.kind == "rule.notify" for e in events):
            raise Boom("disk full while logging the notification")
        await super().append(tx, events)


@dataclass
class Outcome:
    bodies: list[dict[str, Any]]  # the event log
    intents: list[tuple[str, str]]  # (rule, action)
    owed: list[str]  # deliveries' kinds, then "latch:wallet:rule" for each latch

    @property
    def kinds(self) -> list[str]:
        return [str(b["kind"]) for b in self.bodies]


async def run(backend: str, tmp: Path, log_type: type[EventLog] = EventLog) -> Outcome:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "r.yaml").write_text(RULES)
    db = await open_database(backend)
    try:
        cfg = NotifySettings.model_validate({"channels": [
            {"name": "desk", "type": "command", "command": ["/bin/true"], "kinds": ["rule"]},
        ]})  # fmt: skip
        log = log_type(db)
        await log.setup()
        router = Router(db, [Route("desk", cfg.channels[0])])
        await router.start()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        outbox = Outbox(db)
        await outbox.setup()
        e = created()
        session = apply_all(None, [e])
        block = BlockRef(1, e.block_hash, "0x" + "00" * 32, 1_000)
        await store.commit(Batch([block], [e], [], [session], block), 64)
        holder = RulesHolder(RulesHost(), [tmp / "rules"])
        for _ in range(2):  # a restart: the latch holds, nothing fires twice
            pipeline = RulesPipeline(holder, outbox, store, decimals, events=log)
            await pipeline.start()
            for now in (2_000, 3_000):  # evaluated again: latched
                with contextlib.suppress(Boom):  # the failing case: rolled back, retried
                    await pipeline.evaluate_all(now)
        events = [ev.body for ev in (await EventReads(db).after(0, 100))[0]]
        intents = [(i.rule, i.action) for i in await outbox.intents()]
        await router.drain()
        owed = [d.kind for d in await Deliveries(db).page(0, 100)]
        owed += [f"latch:{w}:{r}" for w, r in await outbox.latch_rows()]
        return Outcome(events, intents, owed)
    finally:
        await db.close()


async def test_a_notify_rule_fires_once_as_an_event_beside_the_close(
    backend: str, tmp_path: Path
) -> None:
    out = await run(backend, tmp_path)
    assert out.kinds == ["session.created", "rule.notify"]
    note = out.bodies[1]
    assert note["data"] == {
        "rule": "whale",
        "message": f"whale {W} holds {BIG} of {OWNER}; rule whale at 2000 {{literal}}",
    }
    assert note["id"] == f"rule.notify:{W}:whale:{1 << 32}"
    assert note["session"] == {"wallet": W, "owner": OWNER, "policy": "merchant"}
    assert out.intents == [("whale-close", "close")]
    assert out.owed == ["rule.notify", f"latch:{W}:whale", f"latch:{W}:whale-close"]


async def test_a_failing_log_write_stores_no_latch_and_no_intent(
    backend: str, tmp_path: Path
) -> None:
    out = await run(backend, tmp_path, FailingLog)
    assert out.kinds == ["session.created"]
    assert out.intents == [] and out.owed == []  # the whole decision rolled back, to be retried
