"""The notification relay: intent transitions (recorded by the executor's database in
the transaction of each move) become notification events, logged with the relay's
cursor in one transaction — the one place that reads the executor's records and writes
notify's log, so neither package imports the other."""

from __future__ import annotations

import time

from executor import IntentChanges
from indexer import IndexerStore
from notify import EventLog
from notify.intents import intent_event

NAME = "intents"
BATCH = 1000
# Batches per loop step: a storm's hundreds of thousands of transitions are logged a few
# thousand at a time between the loop's other work, never holding up a close.
MAX_BATCHES = 3


class IntentRelay:
    def __init__(self, changes: IntentChanges, log: EventLog, store: IndexerStore) -> None:
        self.changes = changes
        self.log = log
        self.store = store

    async def step(self) -> int:
        """Log the events of the transitions after the cursor (at most `MAX_BATCHES`
        batches: the rest at the next step); how many were logged."""
        logged = 0
        for _ in range(MAX_BATCHES):
            cursor = await self.log.cursor(NAME)
            moves = await self.changes.after(cursor, BATCH)
            if not moves:
                return logged
            sessions = await self.store.sessions({m.wallet for m in moves})
            now = time.time_ns() // 1_000_000
            events = []
            for move in moves:
                s = sessions.get(move.wallet)
                e = intent_event(move, s.owner if s else None, s.policy if s else None, now)
                if e is not None:
                    events.append(e)
            await self.log.append_relayed(events, NAME, moves[-1].id)
            logged += len(events)
            if len(moves) < BATCH:
                break
        return logged
