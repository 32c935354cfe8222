"""`warden db info`: what a database holds, read-only and in one snapshot: its schema
versions (and what this Warden would migrate), row counts, size on disk, the indexed
checkpoint and the chain it belongs to."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from database import Database, SchemaTooNew, pending, versions
from indexer import IndexerStore
from warden.app.schema import Identity, known_versions, plan, read_identity

# The tables counted, each once its package's migrations created it.
COUNTED = ("sessions", "events", "ignored_logs", "intents", "jobs", "transactions",
           "refusals", "rule_latches")  # fmt: skip


@dataclass
class DatabaseInfo:
    where: str
    dialect: str
    versions: dict[str, int]
    known: dict[str, int]  # what this Warden migrates to
    to_migrate: str  # "" when up to date; "newer than this Warden" when ahead
    counts: dict[str, int] = field(default_factory=dict)
    size: int | None = None  # bytes on disk (SQLite: the file and its -wal)
    checkpoint: dict[str, Any] | None = None
    identity: Identity | None = None

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["identity"] = (
            None if self.identity is None else {"chain_id": self.identity.chain_id,
                                                "factory": self.identity.factory}
        )  # fmt: skip
        return out

    def lines(self) -> list[str]:
        known = ", ".join(f"{c} {v}" for c, v in self.versions.items()) or "none (empty)"
        out = [
            f"database      {self.where} ({self.dialect})",
            f"schema        {known}"
            + (f" — {self.to_migrate}" if self.to_migrate else " — up to date"),
            f"chain         {self.identity or 'not recorded yet (no daemon has started on it)'}",
        ]
        if self.checkpoint is not None:
            cp = self.checkpoint
            when = datetime.datetime.fromtimestamp(cp["timestamp"], datetime.UTC)
            out.append(f"checkpoint    block {cp['number']} {cp['hash']} "
                       f"({when:%Y-%m-%d %H:%M:%S} UTC)")  # fmt: skip
        else:
            out.append("checkpoint    none (nothing indexed yet)")
        if self.size is not None:
            out.append(f"size          {self.size:,} bytes")
        for table, n in self.counts.items():
            out.append(f"{table:<14}{n:,} rows")
        return out


async def describe(db: Database, where: str | Path) -> DatabaseInfo:
    async with db.snapshot():
        have = await versions(db)
        known = known_versions(db.dialect)
        try:
            moves = pending(have, plan(db.dialect))
            todo = ", ".join(f"{c} {a} → {b}" for c, (a, b) in moves.items())
            to_migrate = f"the next start migrates {todo}" if todo else ""
        except SchemaTooNew:
            to_migrate = "written by a newer Warden: this one will not start on it"
        info = DatabaseInfo(str(where), db.dialect, have, known, to_migrate)
        for table in COUNTED:
            if await db.has_table(table):
                info.counts[table] = int(await db.fetchval(f"SELECT COUNT(*) FROM {table}") or 0)
        if await db.has_table("checkpoint"):
            cp = await IndexerStore(db).checkpoint()
            if cp is not None:
                info.checkpoint = {"number": cp.number, "hash": cp.hash, "timestamp": cp.timestamp}
        info.identity = await read_identity(db)
        if db.dialect == "postgresql":
            info.size = int(await db.fetchval("SELECT pg_database_size(current_database())"))
    if isinstance(where, Path):
        info.size = sum(p.stat().st_size for p in (where, Path(f"{where}-wal")) if p.exists())
    return info
