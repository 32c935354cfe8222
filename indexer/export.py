"""The indexer's tables read whole for `warden db export`, through a cursor: one chunk
of rows in memory at a time, whatever the table's size.

    query = session_query(SessionSelection(owner="0x…", status="closed"))
    async for rows in db.stream(query.sql, query.params): ...   # tuples, `query.columns`

Rows come back as stored: uint256 values as their exact decimal text, `targets` and an
event's `args` as JSON text (integers in it as decimal strings). The order is stable:
sessions by creation position, events by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from indexer.schema import SESSION_FIELDS

EVENT_COLUMNS = (
    "position", "block_number", "block_hash", "tx_hash", "tx_index", "log_index",
    "timestamp", "address", "wallet", "name", "seq", "args",
)  # fmt: skip
SESSION_COLUMNS = tuple(SESSION_FIELDS)
JSON_COLUMNS = frozenset({"targets", "args"})  # JSON text in the table


@dataclass(frozen=True)
class SessionSelection:
    """Which sessions (and so which of their events): all when every field is None. A
    block range is inclusive; sessions count by their creation block, events by theirs."""

    owner: str | None = None  # checksummed, as stored
    status: str | None = None
    from_block: int | None = None
    to_block: int | None = None


@dataclass(frozen=True)
class Query:
    sql: str
    params: tuple[Any, ...]
    columns: tuple[str, ...]


def _sessions_where(sel: SessionSelection) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if sel.owner is not None:
        where.append("owner = ?")
        params.append(sel.owner)
    if sel.status is not None:
        where.append("status = ?")
        params.append(sel.status)
    return where, params


def _clause(where: list[str]) -> str:
    return f" WHERE {' AND '.join(where)}" if where else ""


def session_query(sel: SessionSelection) -> Query:
    where, params = _sessions_where(sel)
    if sel.from_block is not None:
        where.append("created_block >= ?")
        params.append(sel.from_block)
    if sel.to_block is not None:
        where.append("created_block <= ?")
        params.append(sel.to_block)
    names = ", ".join(SESSION_COLUMNS)
    sql = f"SELECT {names} FROM sessions{_clause(where)} ORDER BY created_position"
    return Query(sql, tuple(params), SESSION_COLUMNS)


def wallets_of(sel: SessionSelection) -> tuple[str, tuple[Any, ...]] | None:
    """A subquery naming the wallets of the sessions `sel`'s owner and status select (None:
    every wallet), for the tables of others keyed by wallet (the executor's intents)."""
    where, params = _sessions_where(sel)
    if not where:
        return None
    return f"SELECT wallet FROM sessions{_clause(where)}", tuple(params)


def event_query(sel: SessionSelection) -> Query:
    where: list[str] = []
    params: list[Any] = []
    sub = wallets_of(sel)
    if sub is not None:
        where.append(f"wallet IN ({sub[0]})")
        params.extend(sub[1])
    if sel.from_block is not None:
        where.append("block_number >= ?")
        params.append(sel.from_block)
    if sel.to_block is not None:
        where.append("block_number <= ?")
        params.append(sel.to_block)
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events{_clause(where)} ORDER BY position"
    return Query(sql, tuple(params), EVENT_COLUMNS)
