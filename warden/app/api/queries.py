"""The API's narrow read layer: every SQL statement the API runs, on a read-only
connection of its own, returning JSON-ready values (amounts as decimal strings).

Reads that must agree with each other (a session and its intents, a page and its
look-ahead row) run inside one read transaction, so a commit by the writer in between
cannot tear them. The executor's tables may not exist yet (an indexer-only database):
then there are no intents, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite
import orjson

from chain import block_of
from contracts import POLICY_REASONS, SESSION_STATUSES, SWEEP_REASON
from executor.outbox import STATES
from indexer.store import SESSION_FIELDS
from rules.model import ACTIONS

INTENT_STATES: tuple[str, ...] = STATES
INTENT_ACTIONS: tuple[str, ...] = ACTIONS
INTENT_REASONS = (*POLICY_REASONS, SWEEP_REASON)  # rules never close as owner
# Session columns holding uint256 values as decimal TEXT: returned as strings, unchanged.
_DECIMAL_TEXT = frozenset({
    "fee", "initial_deposit", "deposit", "withdrawn", "balance", "spent", "budget",
    "stop_loss", "take_profit", "expiry", "refund",
})  # fmt: skip
_SESSION_SELECT = f"SELECT {', '.join(SESSION_FIELDS)} FROM sessions"
_EVENT_SELECT = (
    "SELECT position, block_number, block_hash, tx_hash, tx_index, log_index, timestamp, "
    "address, wallet, name, seq, args FROM events"
)
_INTENT_COLUMNS = (
    "id", "key", "wallet", "rule", "action", "reason", "position", "triggered_at",
    "rules_version", "state", "detail", "job_id", "confirmed_position", "created_ms",
    "updated_ms",
)  # fmt: skip
_JOB_COLUMNS = (
    "id", "nonce", "kind", "to_address", "gas", "state", "mined_hash", "mined_block",
    "receipt_status", "gas_used", "effective_gas_price", "created_ms", "updated_ms",
)  # fmt: skip
_TX_COLUMNS = (
    "hash", "job_id", "nonce", "max_fee_per_gas", "max_priority_fee_per_gas", "state",
    "error", "created_ms", "sent_ms",
)  # fmt: skip


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_key: int | None  # sort key of the last item when more follow, else None


@dataclass(frozen=True)
class SessionFilter:
    owner: str | None = None
    status: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class IntentFilter:
    wallet: str | None = None
    state: str | None = None
    rule: str | None = None
    action: str | None = None
    reason: str | None = None


def session_json(row: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in zip(SESSION_FIELDS, row, strict=True):
        if name in _DECIMAL_TEXT:
            value = str(int(value))  # normalised, and a corrupt value fails loudly
        elif name == "targets":
            value = orjson.loads(value)
        out[name] = value
    out["remaining_budget"] = str(max(0, int(out["budget"]) - int(out["spent"])))
    return out


def event_json(row: Sequence[Any]) -> dict[str, Any]:
    # args were stored with every integer as a decimal string (IndexerStore.encode_args)
    keys = ("position", "block_number", "block_hash", "tx_hash", "tx_index", "log_index",
            "timestamp", "address", "wallet", "name", "seq")  # fmt: skip
    out = dict(zip(keys, row[:11], strict=True))
    out["args"] = orjson.loads(row[11])
    return out


class ApiReader:
    """All SQL of the API over one connection opened read-only."""

    def __init__(self, db: aiosqlite.Connection, *, transactions: bool = True) -> None:
        self.db = db
        self._transactions = transactions
        self._lock = asyncio.Lock()
        self._outbox = False

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """One consistent read view for the statements inside."""
        async with self._lock:
            if not self._transactions:
                yield
                return
            await self.db.execute("BEGIN")
            try:
                yield
            finally:
                await self.db.execute("COMMIT")

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self.db.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._rows(sql, params)
        return rows[0][0] if rows else None

    async def has_outbox(self) -> bool:
        # Once the executor has created its tables they stay; until then look each time.
        if not self._outbox:
            self._outbox = bool(
                await self._scalar(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                    "name IN ('intents', 'jobs', 'transactions', 'refusals')"
                )
                == 4
            )
        return self._outbox

    # -- sessions ------------------------------------------------------------------
    async def sessions(self, f: SessionFilter, after: int | None, limit: int) -> Page:
        where = ["created_position > ?"]
        params: list[Any] = [-1 if after is None else after]
        for column, value in (("owner", f.owner), ("status", f.status), ("policy", f.policy)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._rows(
            f"{_SESSION_SELECT} WHERE {' AND '.join(where)} ORDER BY created_position LIMIT ?",
            [*params, limit + 1],
        )
        items = [session_json(r) for r in rows]
        return _page(items, limit, "created_position")

    async def session(self, wallet: str) -> dict[str, Any] | None:
        rows = await self._rows(f"{_SESSION_SELECT} WHERE wallet = ?", [wallet])
        return session_json(rows[0]) if rows else None

    async def events(self, wallet: str, name: str | None, after: int | None, limit: int) -> Page:
        sql = f"{_EVENT_SELECT} WHERE wallet = ? AND position > ?"
        params: list[Any] = [wallet, -1 if after is None else after]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        rows = await self._rows(sql + " ORDER BY position LIMIT ?", [*params, limit + 1])
        return _page([event_json(r) for r in rows], limit, "position")

    # -- intents -------------------------------------------------------------------
    async def intents(self, f: IntentFilter, after: int | None, limit: int) -> Page:
        if not await self.has_outbox():
            return Page([], None)
        where = ["id > ?"]
        params: list[Any] = [-1 if after is None else after]
        for column in ("wallet", "state", "rule", "action", "reason"):
            value = getattr(f, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = await self._rows(
            f"SELECT {', '.join(_INTENT_COLUMNS)} FROM intents WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT ?",
            [*params, limit + 1],
        )
        return _page([_intent_json(r) for r in rows], limit, "id")

    async def intents_of(self, wallet: str) -> list[dict[str, Any]]:
        """Every intent (rule firing) of one session, with its job, every signed attempt
        and the guards' refusals."""
        if not await self.has_outbox():
            return []
        intents = [
            _intent_json(r)
            for r in await self._rows(
                f"SELECT {', '.join(_INTENT_COLUMNS)} FROM intents WHERE wallet = ? ORDER BY id",
                [wallet],
            )
        ]
        for intent in intents:
            intent["job"] = None
            intent["transactions"] = []
            if intent["job_id"] is not None:
                jobs = await self._rows(
                    f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?", [intent["job_id"]]
                )
                intent["job"] = _job_json(jobs[0]) if jobs else None
                intent["transactions"] = [
                    dict(zip(_TX_COLUMNS, r, strict=True))
                    for r in await self._rows(
                        f"SELECT {', '.join(_TX_COLUMNS)} FROM transactions WHERE job_id = ? "
                        "ORDER BY created_ms, hash",
                        [intent["job_id"]],
                    )
                ]
            intent["refusals"] = [
                {"guard": g, "reason": r, "at_ms": at}
                for g, r, at in await self._rows(
                    "SELECT guard, reason, at_ms FROM refusals WHERE intent_key = ? ORDER BY id",
                    [intent["key"]],
                )
            ]
        return intents

    async def intent_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(INTENT_STATES, 0)
        if await self.has_outbox():
            for state, n in await self._rows("SELECT state, COUNT(*) FROM intents GROUP BY state"):
                counts[state] = int(n)
        return counts

    # -- totals ----------------------------------------------------------------------
    async def checkpoint(self) -> int | None:
        value = await self._scalar("SELECT number FROM checkpoint WHERE id = 1")
        return None if value is None else int(value)

    async def session_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for status, n in await self._rows("SELECT status, COUNT(*) FROM sessions GROUP BY status"):
            counts[status] = int(n)
        return counts

    async def table_counts(self) -> dict[str, int]:
        """Indexed events, and ignored logs split into spoofed (look-alikes from other
        addresses) and malformed."""
        events = await self._scalar("SELECT COUNT(*) FROM events")
        malformed = await self._scalar(
            "SELECT COUNT(*) FROM ignored_logs WHERE reason LIKE 'malformed%'"
        )
        ignored = await self._scalar("SELECT COUNT(*) FROM ignored_logs")
        return {
            "events": int(events),
            "spoofed_logs": int(ignored) - int(malformed),
            "malformed_logs": int(malformed),
        }

    async def stats(self) -> dict[str, Any]:
        """Totals over every indexed session, summed exactly in Python (SQLite's SUM
        would go through floats or overflow on uint256 text)."""
        by_status = dict.fromkeys(SESSION_STATUSES, 0)
        by_reason: dict[str, int] = {}
        deposited = fees = withdrawn = refunded = 0
        sl_hits = sl_eligible = tp_hits = tp_eligible = 0
        durations = closed = 0
        async with self.db.execute(
            "SELECT status, close_reason, deposit, fee, withdrawn, refund, stop_loss, "
            "take_profit, created_at, closed_at FROM sessions"
        ) as cur:
            async for status, reason, dep, fee, wd, refund, sl, tp, created, ended in cur:
                by_status[status] = by_status.get(status, 0) + 1
                deposited += int(dep)
                fees += int(fee)
                withdrawn += int(wd)
                refunded += int(refund)
                if status != "closed":
                    continue
                closed += 1
                by_reason[reason] = by_reason.get(reason, 0) + 1
                if ended is not None:
                    durations += int(ended) - int(created)
                if int(sl) != 0:
                    sl_eligible += 1
                    sl_hits += reason == "stop_loss"
                if int(tp) != 0:
                    tp_eligible += 1
                    tp_hits += reason == "take_profit"
        return {
            "sessions": {"total": sum(by_status.values()), **by_status},
            "active_sessions": by_status["active"],
            "volume_deposited": str(deposited),
            "fees_collected": str(fees),
            "volume_withdrawn": str(withdrawn),
            "volume_refunded": str(refunded),
            "closed_by_reason": by_reason,
            "stop_loss": _rate(sl_hits, sl_eligible),
            "take_profit": _rate(tp_hits, tp_eligible),
            "average_duration_seconds": durations // closed if closed else None,
        }


def _rate(hits: int, eligible: int) -> dict[str, Any]:
    # A ratio of counts, not an amount: a rounded number is what a dashboard wants.
    return {
        "hits": hits,
        "closed_with_threshold": eligible,
        "rate": round(hits / eligible, 4) if eligible else None,
    }


def _page(items: list[dict[str, Any]], limit: int, key: str) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return Page(items, int(items[-1][key]))
    return Page(items, None)


def _intent_json(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_INTENT_COLUMNS, row, strict=True))
    out["block"] = block_of(int(out["position"]))
    return out


def _job_json(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_JOB_COLUMNS, row, strict=True))
    price, used = out["effective_gas_price"], out["gas_used"]
    out["fee_paid"] = None if price is None or used is None else str(int(price) * int(used))
    return out
