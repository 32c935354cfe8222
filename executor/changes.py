"""Intent transitions as the database recorded them (`intent_changes`, filled by
triggers in the same transaction as each move: executor/schema.py, migration 4), read
in order after a cursor, with what a notification needs of the intent: how the
notification relay (warden.app) turns them into events."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from database import Database
from database.sqlite import as_database


@dataclass(frozen=True)
class IntentChange:
    id: int  # the cursor: increasing in commit order (one writer)
    key: str
    old_state: str | None  # None: the intent was just recorded
    new_state: str
    at_ms: int
    wallet: str
    rule: str
    action: str
    reason: str
    position: int  # the trigger's chain position
    detail: str | None  # the intent's detail now (a later move may have changed it)
    confirmed_position: int | None
    tx_hash: str | None  # the newest transaction of its job, if any


class IntentChanges:
    def __init__(self, db: Database | aiosqlite.Connection) -> None:
        self.database = as_database(db)

    async def after(self, cursor: int, limit: int) -> list[IntentChange]:
        if not await self.database.has_table("intent_changes"):
            return []
        rows = await self.database.fetch(
            "SELECT c.id, c.key, c.old_state, c.new_state, c.at_ms, i.wallet, i.rule, "
            "i.action, i.reason, i.position, i.detail, i.confirmed_position, "
            "(SELECT t.hash FROM transactions t WHERE t.job_id = i.job_id "
            " ORDER BY t.created_ms DESC LIMIT 1) "
            "FROM intent_changes c JOIN intents i ON i.key = c.key "
            "WHERE c.id > ? ORDER BY c.id LIMIT ?",
            (cursor, limit),
        )
        return [
            IntentChange(
                int(r[0]), r[1], r[2], r[3], int(r[4]), r[5], r[6], r[7], r[8], int(r[9]),
                r[10], None if r[11] is None else int(r[11]), r[12],
            )
            for r in rows
        ]  # fmt: skip

    async def last(self) -> int:
        if not await self.database.has_table("intent_changes"):
            return 0
        value = await self.database.fetchval("SELECT MAX(id) FROM intent_changes")
        return int(value) if value is not None else 0
