"""A Warden database filled with made-up rows straight through SQL (no chain): sessions
with extreme amounts, their events, and intents with jobs and transactions. For the
tests of `warden db` and for scripts/bench_export.py (a million sessions in seconds)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from eth_utils.address import to_checksum_address

from database import open_database
from indexer.schema import SESSION_FIELDS
from warden.app.schema import upgrade

FACTORY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN_ID = 31337
U256_MAX = 2**256 - 1
OWNERS = [to_checksum_address(f"0x{i:040x}") for i in (0xA1, 0xB2, 0xC3)]
STATUSES = ("active", "revoked", "closed")
TARGETS = orjson.dumps([OWNERS[2]]).decode()


async def create(path: Path, *, chain_id: int = CHAIN_ID, factory: str = FACTORY) -> None:
    """A new database with the whole schema and its chain identity, as a first start."""
    db = await open_database(path)
    try:
        await upgrade(db, path, path, keep=3, directory=None, chain_id=chain_id, factory=factory)
    finally:
        await db.close()


def wallet(i: int) -> str:
    return f"0x{0x5E55_0000_0000 + i:040x}"


def session_row(i: int) -> tuple[Any, ...]:
    big = U256_MAX - i  # amounts beyond 2^53 and 2^64: exact or visibly wrong
    values: dict[str, Any] = {
        "wallet": wallet(i), "owner": OWNERS[i % len(OWNERS)], "operator": OWNERS[0],
        "token": OWNERS[1], "policy": f"policy-{i % 5}", "targets": TARGETS,
        "salt": f"0x{i:064x}", "fee": str(i), "initial_deposit": str(big), "deposit": str(big),
        "withdrawn": "0", "balance": str(big), "spent": str(2**64 + i), "budget": str(U256_MAX),
        "stop_loss": "0", "take_profit": str(2**53 + 1), "expiry": str(2**40), "status":
        STATUSES[i % 3], "close_reason": "stop_loss" if i % 3 == 2 else None, "closed_by":
        OWNERS[0] if i % 3 == 2 else None, "refund": "0", "execution_count": i % 7,
        "created_block": 100 + i // 10, "created_at": 1_700_000_000 + i,
        "created_position": ((100 + i // 10) << 32) | (i % 10), "last_seq": 1,
        "last_position": ((100 + i // 10) << 32) | (i % 10), "last_activity": 1_700_000_000 + i,
        "revoked_at": None, "closed_at": None, "seq_gaps": 0, "gap_note": None,
    }  # fmt: skip
    return tuple(values[name] for name in SESSION_FIELDS)


def event_row(i: int) -> tuple[Any, ...]:
    block = 100 + i // 10
    args = {"wallet": wallet(i), "owner": OWNERS[i % len(OWNERS)], "deposit": str(U256_MAX - i)}
    return ((block << 32) | (i % 10), block, f"0x{block:064x}", f"0x{i:064x}", 0, i % 10,
            1_700_000_000 + i, FACTORY, wallet(i), "SessionCreated", 0,
            orjson.dumps(args).decode())  # fmt: skip


def fill(path: Path, sessions: int, *, events: bool = True, intents: int = 0) -> None:
    """Add `sessions` sessions (and one creation event each), and `intents` intents on the
    first sessions, each with a job of two transactions (a replacement), to `path`."""
    marks = ", ".join("?" for _ in SESSION_FIELDS)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO sessions VALUES ({marks})", _rows(session_row, sessions))
        if events:
            conn.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _rows(event_row, sessions),
            )
        for i in range(intents):
            position = ((100 + i // 10) << 32) | (i % 10)
            conn.execute(
                "INSERT INTO intents (id, key, wallet, rule, action, reason, position, "
                "triggered_at, rules_version, state, detail, job_id, created_ms, updated_ms) "
                "VALUES (?, ?, ?, 'stop', 'close', 'stop_loss', ?, 1, 'v1', ?, NULL, ?, 1, 2)",
                (i + 1, f"{wallet(i)}:stop:{position}", wallet(i), position,
                 "confirmed" if i % 2 else "pending", i + 1 if i % 2 else None),
            )  # fmt: skip
            if i % 2:
                conn.execute(
                    "INSERT INTO jobs (id, nonce, kind, to_address, data, gas, state, "
                    "effective_gas_price, created_ms, updated_ms) VALUES (?, ?, 'close', ?, "
                    "'0x', 60000, 'confirmed', ?, 1, 2)",
                    (i + 1, i, wallet(i), str(2**70 + i)),
                )
                conn.execute("INSERT INTO job_intents VALUES (?, ?, ?)", (i + 1, i + 1, wallet(i)))
                for n in range(2):
                    conn.execute(
                        "INSERT INTO transactions (hash, job_id, nonce, max_fee_per_gas, "
                        "max_priority_fee_per_gas, raw, state, created_ms) VALUES "
                        "(?, ?, ?, ?, '1', '0xsigned', ?, ?)",
                        (f"0x{i:062x}{n:02x}", i + 1, i, str(U256_MAX - n),
                         "mined" if n else "replaced", 10 + n),
                    )  # fmt: skip
        conn.execute(
            "INSERT INTO checkpoint (id, number, hash, timestamp) VALUES (1, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET number = excluded.number",
            (100 + sessions // 10, f"0x{sessions:064x}", 1_700_000_000 + sessions),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def _rows(make: Any, n: int) -> Iterator[tuple[Any, ...]]:
    return (make(i) for i in range(n))


def build(path: Path, sessions: int, **kw: Any) -> Path:
    asyncio.run(create(path))
    fill(path, sessions, **kw)
    return path
