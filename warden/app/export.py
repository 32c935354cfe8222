"""`warden db export`: sessions, events or intents (with their jobs and transactions) as
NDJSON or CSV, streamed: one chunk of rows in memory at a time, so a million rows take
the memory of a thousand. Reads run in one snapshot: the export is one moment's state
while the daemon goes on writing.

Amounts (uint256: balances, budgets, fees, gas prices) are exact decimal strings in both
formats, never numbers a JSON reader could round. The columns are documented in
docs/operations.md ("Exports"):

- NDJSON: one object per line. `targets` and an event's `args` are JSON values; an intent
  carries `jobs`, each with its `transactions`.
- CSV: a header line, then one row per session or event (`targets` and `args` as JSON
  text); for intents one row per transaction of each job that carried the intent (an
  intent without a job, or a job without a transaction, still has its row), the job's
  columns prefixed `job_`, the transaction's `tx_`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

import orjson

from contracts import SESSION_STATUSES
from database import Database
from executor import STATES
from executor.export import (
    INTENT_COLUMNS,
    JOB_COLUMNS,
    TRANSACTION_COLUMNS,
    IntentRecord,
    IntentSelection,
    intent_chunks,
)
from indexer.export import JSON_COLUMNS, SessionSelection, event_query, session_query, wallets_of

KINDS = ("sessions", "events", "intents")
FORMATS = ("ndjson", "csv")
CHUNK = 2000  # rows read per cursor step: ~2 MB of sessions, few thread hops
# The intent's own `job_id` (its latest job) is `latest_job_id` in CSV: `job_id` there is
# the id of the job the row describes.
CSV_INTENT_COLUMNS = (
    *("latest_job_id" if c == "job_id" else c for c in INTENT_COLUMNS),
    *(f"job_{c}" for c in JOB_COLUMNS),
    *(f"tx_{c}" for c in TRANSACTION_COLUMNS if c != "job_id"),
)
Progress = Callable[[int], None]  # rows written so far


@dataclass(frozen=True)
class Filters:
    owner: str | None = None  # checksummed
    status: str | None = None  # a session status; an intent state for intents
    from_block: int | None = None
    to_block: int | None = None


def filter_problems(kind: str, f: Filters) -> list[str]:
    """What is wrong with the filters for `kind`, one message each, naming the flag."""
    out: list[str] = []
    if f.status is not None:
        allowed = STATES if kind == "intents" else SESSION_STATUSES
        if f.status not in allowed:
            what = "an intent state" if kind == "intents" else "a session status"
            out.append(f"--status {f.status!r} is not {what}: use one of {', '.join(allowed)}")
    for flag, value in (("--from-block", f.from_block), ("--to-block", f.to_block)):
        if value is not None and not 0 <= value < 2**31:
            out.append(f"{flag} {value} is not a block number (0 to 2^31 - 1)")
    if f.from_block is not None and f.to_block is not None and f.from_block > f.to_block:
        out.append(f"--from-block {f.from_block} is after --to-block {f.to_block}")
    return out


def columns(kind: str, fmt: str) -> Sequence[str]:
    """The CSV header / the NDJSON keys of a row (intents: before `jobs`)."""
    if kind == "sessions":
        return session_query(SessionSelection()).columns
    if kind == "events":
        return event_query(SessionSelection()).columns
    return CSV_INTENT_COLUMNS if fmt == "csv" else INTENT_COLUMNS


async def export(
    db: Database,
    kind: str,
    fmt: str,
    out: IO[bytes],
    filters: Filters,
    *,
    progress: Progress | None = None,
) -> int:
    """Write `kind` to `out` in `fmt`; the number of records (sessions, events, intents)."""
    sel = SessionSelection(filters.owner, filters.status, filters.from_block, filters.to_block)
    written = 0
    async with db.snapshot():
        if kind == "intents":
            wallets = wallets_of(SessionSelection(owner=filters.owner))
            isel = IntentSelection(filters.status, filters.from_block, filters.to_block, wallets)
            chunks: AsyncGenerator[Sequence[Any], None] = intent_chunks(db, isel)
            names: Sequence[str] = INTENT_COLUMNS
        else:
            query = session_query(sel) if kind == "sessions" else event_query(sel)
            chunks = db.stream(query.sql, query.params, CHUNK)
            names = query.columns
        # CSV goes through a text layer over `out`, detached at the end whatever happens:
        # dropped attached, it would close `out` (standard output) with it.
        text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        try:
            writer = csv.writer(text, lineterminator="\n")
            if fmt == "csv":
                writer.writerow(columns(kind, fmt))
            # on any exit: the read ahead settled first, then the cursor closed
            async with (
                contextlib.aclosing(chunks) as rows,
                contextlib.aclosing(_read_ahead(rows)) as ahead,
            ):
                async for chunk in ahead:
                    if fmt == "csv":
                        writer.writerows(_csv_rows(kind, chunk))
                    else:
                        out.write(b"".join(_ndjson_lines(kind, names, chunk)))
                    written += len(chunk)
                    if progress is not None:
                        progress(written)
        finally:
            with contextlib.suppress(ValueError, OSError):
                text.flush()
            text.detach()
    return written


async def _read_ahead(
    chunks: AsyncGenerator[Sequence[Any], None],
) -> AsyncGenerator[Sequence[Any], None]:
    """`chunks`, the next one read (in the driver's thread) while this one is written:
    two chunks in memory at most."""
    pending = asyncio.ensure_future(anext(chunks, None))
    try:
        while (chunk := await pending) is not None:
            pending = asyncio.ensure_future(anext(chunks, None))
            yield chunk
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


def _plain(row: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    item = dict(zip(names, row, strict=True))
    for key in JSON_COLUMNS & item.keys():
        if isinstance(item[key], str):
            item[key] = orjson.Fragment(item[key])  # stored JSON, written as it is
    return item


def _ndjson_lines(kind: str, names: Sequence[str], chunk: Sequence[Any]) -> Iterable[bytes]:
    if kind != "intents":
        for row in chunk:
            yield orjson.dumps(_plain(row, names)) + b"\n"
        return
    for record in chunk:
        assert isinstance(record, IntentRecord)
        item = dict(zip(INTENT_COLUMNS, record.intent, strict=True))
        item["jobs"] = [
            {
                **dict(zip(JOB_COLUMNS, job, strict=True)),
                "transactions": [
                    dict(zip(TRANSACTION_COLUMNS, tx, strict=True))
                    for tx in record.transactions.get(int(job[0]), [])
                ],
            }
            for job in record.jobs
        ]
        yield orjson.dumps(item) + b"\n"


def _csv_rows(kind: str, chunk: Sequence[Any]) -> Iterable[Sequence[Any]]:
    if kind != "intents":
        yield from chunk
        return
    no_job = (None,) * len(JOB_COLUMNS)
    no_tx = (None,) * (len(TRANSACTION_COLUMNS) - 1)
    for record in chunk:
        assert isinstance(record, IntentRecord)
        if not record.jobs:
            yield (*record.intent, *no_job, *no_tx)
        for job in record.jobs:
            signed = record.transactions.get(int(job[0]), [])
            if not signed:
                yield (*record.intent, *job, *no_tx)
            for tx in signed:
                yield (*record.intent, *job, *tx[:1], *tx[2:])


class RateReporter:
    """Progress lines at most every `every` seconds: `rows` so far and the rate."""

    def __init__(self, emit: Callable[[str], None], what: str, every: float = 2.0) -> None:
        self.emit, self.what, self.every = emit, what, every
        self.started = self.last = time.monotonic()

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            rate = rows / max(now - self.started, 1e-9)
            self.emit(f"export: {rows:,} {self.what} ({rate:,.0f}/s)")
