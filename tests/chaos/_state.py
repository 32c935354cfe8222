"""The chaos oracle: what a daemon's database must equal, and what the chain must show.

- `fresh_index` indexes the chain from scratch with the real `indexer.Indexer` into a new
  SQLite file: the replay every run is compared with.
- `compare` lists, one readable line each, every difference between two databases'
  indexed state (sessions, events, ignored logs, checkpoint). Empty: equal.
- `relayer_txs` scans the chain for the relayer's transactions; `double_mined`,
  `unfinished_intents` and `missed_actions` check the executor's promises against it:
  no intent with two mined transactions, every intent settled, every due action done.

The daemon's database is only ever read (opened read-only): after a kill it may be a copy
or still open by a restarted daemon.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3 import Web3

from chain import ChainClient, RetryPolicy
from contracts import load_artifact
from executor.outbox import FINAL_STATES
from indexer import BlockRef, ChainSettings, Indexer, IndexerStore, open_database
from rules import RulesHolder, RulesHost
from warden.app.snapshots import snapshot_of

RETRY = RetryPolicy(initial=0.02, factor=1.5, max_delay=0.5, attempts=40)
MAX_LINES = 40  # per table: a broken run should be readable, not a wall of text

# Tables of the indexed state and the key each row is matched by. Every column of these
# is a function of the chain alone (chain timestamps, never wall-clock times).
TABLES = {
    "sessions": "wallet",
    "events": "position",
    "ignored_logs": "position",
}


class _CappedClient(ChainClient):
    """A client whose view of the head stops at `cap`: indexes exactly up to a block even
    while the chain keeps growing."""

    def __init__(self, urls: Sequence[str], cap: int, **kw: Any) -> None:
        super().__init__(urls, **kw)
        self.cap = cap

    async def batch(
        self, calls: Sequence[tuple[str, list[Any]]], validate: Any = None
    ) -> list[Any]:
        results = await super().batch(calls, validate)
        return [
            hex(min(int(r, 16), self.cap)) if method == "eth_blockNumber" else r
            for (method, _), r in zip(calls, results, strict=True)
        ]


async def fresh_index(
    url: str, factory: str, start_block: int, db: Path, *, upto: int | None = None
) -> BlockRef:
    """Index from `start_block` into the new file `db` (confirmations 0) up to block `upto`
    (default: the head when called); the checkpoint reached."""
    if db.exists():
        raise FileExistsError(f"{db} exists: a fresh index needs a new file")
    conn = await open_database(db)
    try:
        store = IndexerStore(conn)
        await store.setup()
        async with ChainClient([url], retry=RETRY) as probe:
            head = await probe.block_number()
        cap = head if upto is None else upto
        async with _CappedClient([url], cap, retry=RETRY) as client:
            settings = ChainSettings(start_block=start_block, confirmations=0)
            indexer = Indexer(client, store, settings, factory=Web3.to_checksum_address(factory))
            return await indexer.sync_to_head()
    finally:
        await conn.close()


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def _table(
    db: sqlite3.Connection, table: str, key: str
) -> tuple[list[str], dict[Any, tuple[Any, ...]]]:
    cur = db.execute(f"SELECT * FROM {table}")
    columns = [d[0] for d in cur.description]
    at = columns.index(key)
    return columns, {row[at]: row for row in cur.fetchall()}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _compare_sync(daemon_db: Path, fresh_db: Path) -> list[str]:
    out: list[str] = []
    with read_only(daemon_db) as mine, read_only(fresh_db) as fresh:
        for table, key in TABLES.items():
            columns, got = _table(mine, table, key)
            fresh_columns, want = _table(fresh, table, key)
            if columns != fresh_columns:
                out.append(f"{table}: columns differ: {columns} vs fresh {fresh_columns}")
                continue
            lines: list[str] = []
            for k in sorted(want.keys() - got.keys()):
                lines.append(f"{table} {key}={k}: missing (fresh has {_short(want[k])})")
            for k in sorted(got.keys() - want.keys()):
                lines.append(f"{table} {key}={k}: extra (fresh has none): {_short(got[k])}")
            for k in sorted(got.keys() & want.keys()):
                for name, a, b in zip(columns, got[k], want[k], strict=True):
                    if a != b:
                        lines.append(f"{table} {key}={k}: {name} is {_short(a)}, fresh {_short(b)}")
            if len(lines) > MAX_LINES:
                lines = [*lines[:MAX_LINES], f"{table}: ... and {len(lines) - MAX_LINES} more"]
            out.extend(lines)
        q = "SELECT number, hash FROM checkpoint WHERE id = 1"
        cp, fresh_cp = mine.execute(q).fetchone(), fresh.execute(q).fetchone()
        if cp != fresh_cp:
            out.append(f"checkpoint is {cp}, fresh {fresh_cp}")
    return out


async def compare(daemon_db: Path, fresh_db: Path) -> list[str]:
    """Every difference between the indexed state of `daemon_db` and `fresh_db`, one line
    each (capped per table); empty when equal. Both are opened read-only."""
    return await asyncio.to_thread(_compare_sync, daemon_db, fresh_db)


def checkpoint(db: Path) -> BlockRef | None:
    """The indexed checkpoint of a database (read-only), or None before the first commit."""
    with read_only(db) as conn:
        try:
            row = conn.execute("SELECT number, hash, timestamp FROM checkpoint").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
    return BlockRef(int(row[0]), row[1], "", int(row[2])) if row else None


# -- the chain's side ----------------------------------------------------------------


@dataclass(frozen=True)
class ChainTx:
    hash: str  # lowercase 0x hex
    block: int
    nonce: int
    to: str | None  # checksummed
    input: str
    status: int  # 1 success, 0 reverted


async def relayer_txs(
    url: str, relayer: str, from_block: int, to_block: int | None = None
) -> list[ChainTx]:
    """Every transaction sent by `relayer` in blocks `from_block`..`to_block` (default the
    head), with its receipt status, in chain order."""
    who = relayer.lower()
    async with ChainClient([url], retry=RETRY) as client:
        last = await client.block_number() if to_block is None else to_block
        found: list[dict[str, Any]] = []
        for start in range(from_block, last + 1, 100):
            numbers = range(start, min(last, start + 99) + 1)
            blocks = await client.batch([("eth_getBlockByNumber", [hex(n), True]) for n in numbers])
            found.extend(
                tx for b in blocks for tx in b["transactions"] if tx["from"].lower() == who
            )
        receipts = []
        for start in range(0, len(found), 200):
            chunk = found[start : start + 200]
            receipts += await client.batch(
                [("eth_getTransactionReceipt", [tx["hash"]]) for tx in chunk]
            )
    return [
        ChainTx(
            hash=tx["hash"].lower(),
            block=int(tx["blockNumber"], 16),
            nonce=int(tx["nonce"], 16),
            to=Web3.to_checksum_address(tx["to"]) if tx.get("to") else None,
            input=tx["input"],
            status=int(r["status"], 16),
        )
        for tx, r in zip(found, receipts, strict=True)
    ]


def close_targets(tx: ChainTx, factory: str) -> list[str]:
    """The session wallets a relayer transaction closes or sweeps (none for a cancel or a
    call that is neither): `close`/`sweep` on a wallet, or the members of a factory batch."""
    if tx.to is None or len(tx.input) < 10:
        return []
    if tx.to == Web3.to_checksum_address(factory):
        contract = Web3().eth.contract(abi=load_artifact("SessionWalletFactory").abi)
    else:
        contract = Web3().eth.contract(abi=load_artifact("SessionWallet").abi)
    try:
        fn, args = contract.decode_function_input(tx.input)
    except ValueError:
        return []
    if fn.fn_name in ("close", "sweep"):
        return [tx.to]
    wallets: list[str] = []
    for value in args.values():  # a batch: the wallets in its argument lists
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            for part in item if isinstance(item, list | tuple) else [item]:
                if isinstance(part, str) and Web3.is_address(part):
                    wallets.append(Web3.to_checksum_address(part))
    return wallets


def double_mined(
    daemon_db: Path, txs: Iterable[ChainTx], *, factory: str, foreign: set[str]
) -> list[str]:
    """Breaches of "each intent yields at most one mined transaction", from the relayer's
    transactions on chain and the daemon's outbox. `foreign`: hashes of transactions the
    test itself sent with the relayer's key (they are not the daemon's).

    Checked: every daemon transaction on chain was written to the outbox before it was
    sent; at most one transaction per job is on chain; no transaction of a job given up as
    dropped was mined (its intents went to another job: that would be two); and per
    intent, the jobs that carried it have at most one transaction on chain that calls its
    wallet (a job rewritten into a cancel, or a batch rewritten without it, carried it
    once but never called it)."""
    out: list[str] = []
    with read_only(daemon_db) as db:
        job_of = dict(db.execute("SELECT hash, job_id FROM transactions").fetchall())
        job_state = dict(db.execute("SELECT id, state FROM jobs").fetchall())
        members: dict[int, list[str]] = {}
        # every job an intent ever had (a requeued intent's `intents.job_id` holds only the
        # latest, so a close by an earlier job would look like nobody's)
        carried = "SELECT i.key, j.job_id FROM job_intents j JOIN intents i ON i.id = j.intent_id"
        for key, job_id in db.execute(carried):
            members.setdefault(job_id, []).append(key)
    mined_per_job: dict[int, list[str]] = {}
    called: dict[str, set[str]] = {}  # tx hash -> the wallets it closes or sweeps
    for tx in txs:
        if tx.hash in foreign:
            continue
        job_id = job_of.get(tx.hash)
        if job_id is None:
            out.append(f"tx {tx.hash} (nonce {tx.nonce}, block {tx.block}) is not in the outbox")
            continue
        mined_per_job.setdefault(job_id, []).append(tx.hash)
        called[tx.hash] = set(close_targets(tx, factory))
    for job_id, hashes in sorted(mined_per_job.items()):
        if len(hashes) > 1:
            out.append(f"job {job_id}: {len(hashes)} transactions mined: {hashes}")
        if job_state.get(job_id) == "dropped":
            out.append(f"job {job_id} was dropped (intents requeued) but {hashes[0]} was mined")
    per_intent: dict[str, int] = {}
    for job_id, hashes in mined_per_job.items():
        for key in members.get(job_id, []):
            wallet = key.split(":", 1)[0]
            calls = sum(wallet in called[h] for h in hashes)
            per_intent[key] = per_intent.get(key, 0) + calls
    out.extend(
        f"intent {k}: {n} mined transactions" for k, n in sorted(per_intent.items()) if n > 1
    )
    return out


def unfinished_intents(daemon_db: Path) -> list[str]:
    """Intents not in a final state (confirmed, failed, obsolete, dry_run), one line each."""
    with read_only(daemon_db) as db:
        rows = db.execute("SELECT key, state, detail FROM intents ORDER BY id").fetchall()
    return [f"intent {k} is {s} ({d})" for k, s, d in rows if s not in FINAL_STATES]


def intent_counts(daemon_db: Path) -> dict[str, int]:
    with read_only(daemon_db) as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM intents GROUP BY state").fetchall())


async def missed_actions(
    fresh_db: Path, rules: Sequence[str | Path], now: int, *, decimals: int = 18
) -> list[str]:
    """Sessions still open (active or revoked) in `fresh_db` for which a rule holds at
    chain time `now`: a due close or sweep Warden did not do. One line each."""
    conn = await open_database(fresh_db)
    try:
        store = IndexerStore(conn)
        sessions = [*await store.all_sessions("active"), *await store.all_sessions("revoked")]
    finally:
        await conn.close()
    evaluator = RulesHolder(RulesHost(), list(rules)).current
    out = []
    for s in sessions:
        matched = evaluator.evaluate(snapshot_of(s, decimals), now).matched
        if matched:
            names = ", ".join(r.name for r in matched)
            out.append(
                f"session {s.wallet} ({s.status}, policy {s.policy!r}) still open: {names} holds"
            )
    return out


def relayer_closes(daemon_db: Path, fresh_db: Path, relayer: str) -> dict[str, str]:
    """Sessions closed by the relayer on the indexed chain (fresh index) → the state of the
    daemon's intent whose transaction closed it ('' when no intent claims it)."""
    with read_only(fresh_db) as fresh:
        closed = fresh.execute(
            "SELECT wallet, tx_hash FROM events WHERE name = 'Closed' AND wallet IS NOT NULL"
        ).fetchall()
        by = dict(fresh.execute("SELECT wallet, closed_by FROM sessions").fetchall())
    with read_only(daemon_db) as db:
        claimed = {
            (wallet, tx): state
            for wallet, tx, state in db.execute(
                "SELECT i.wallet, t.hash, i.state FROM intents i JOIN transactions t "
                "ON t.job_id = i.job_id"
            )
        }
    return {
        wallet: claimed.get((wallet, tx.lower()), "")
        for wallet, tx in closed
        if str(by.get(wallet, "")).lower() == relayer.lower()
    }
