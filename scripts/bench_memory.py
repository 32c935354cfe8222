"""Daemon memory: resident set of `warden run` with 100,000 and 1,000,000 tracked sessions.

    .venv/bin/python scripts/bench_memory.py [--runs 3] [--sizes 100000,1000000]

Each run starts a fresh anvil on the storm benchmark's cached chain (scripts/bench_storm.py:
100,000 real sessions, operator = the relayer, all open, expiring hours after the head) and
`python -m warden.cli run --config F` on a copy of an indexed database, waits until the
daemon logs that it evaluated every open session at the head (every session is in its
rules schedule and latches), lets it follow the idle chain for IDLE seconds, and reads
/proc/<pid>/status: VmRSS (median of one sample a second while idle) and VmHWM (the peak
since the process started, which includes loading every session at start).

- 100,000: the database the daemon itself wrote when it backfilled the cached chain (see
  bench_storm.py; built once and cached in .cache/bench/).
- 1,000,000: SYNTHETIC. 1M real sessions on anvil are impractical (the 100k chain alone
  takes ~10 minutes and ~1 GB to build), so the 100k database is copied and 900,000 more
  session rows are written through the indexer's own schema and row encoding
  (`indexer.schema.session_row`), each a copy of a real session with a new wallet address,
  salt and position. The checkpoint stays at the devnet's head, so the daemon starts at
  the head, indexes nothing, and loads all 1,000,000 open sessions into the rules exactly
  as it would indexed ones. Only the `sessions` table grows: the 900,000 have no events
  rows (the rules and the executor read sessions, not events). Cached in .cache/bench/.

Prints header(), then per size: VmRSS and VmHWM as median and spread over runs, and the
per-session figure (VmRSS at 1M minus VmRSS at 100k, over the 900,000 sessions between).
A default run takes about 4 to 5 minutes once the caches exist (the storm chain first:
see bench_storm.py; the 1M database adds about a minute the first time).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, spread  # noqa: E402
from bench_storm import (  # noqa: E402
    CACHE_DIR,
    ChainMeta,
    Daemon,
    ensure_chain,
    ensure_database,
    loaded_anvil,
    say,
    set_clock,
)

from indexer import IndexerStore, open_database  # noqa: E402
from indexer.schema import SESSION_FIELDS, session_row  # noqa: E402

IDLE = 5  # seconds of idle following sampled after the daemon is ready
REAL = 100_000


def status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def synthetic_database(meta: ChainMeta, real: Path, total: int) -> Path:
    """The real database plus synthetic sessions up to `total` (cached)."""
    key = hashlib.sha256(f"{real.name}:{total}:1".encode()).hexdigest()[:16]
    path = CACHE_DIR / f"memory-{key}.sqlite"
    if path.is_file():
        return path
    say(f"writing the synthetic {total:,}-session database (cached for later runs)")
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    shutil.copyfile(real, building)
    asyncio.run(_add_sessions(building, total))
    building.replace(path)
    return path


async def _add_sessions(path: Path, total: int) -> None:
    db = await open_database(path)
    try:
        store = IndexerStore(db)
        await store.setup()
        templates = await store.all_sessions("active")
        async with db.execute("SELECT MAX(created_position), COUNT(*) FROM sessions") as cur:
            row = await cur.fetchone()
        assert row is not None
        position, count = int(row[0]), int(row[1])
        sql = (
            f"INSERT INTO sessions ({', '.join(SESSION_FIELDS)}) "
            f"VALUES ({', '.join('?' for _ in SESSION_FIELDS)})"
        )
        rows = []
        for i in range(total - count):
            template = templates[i % len(templates)]
            position += 1
            seed = hashlib.sha256(f"synthetic wallet {i}".encode()).hexdigest()
            session = replace(
                template,
                wallet="0x" + seed[:40],
                salt="0x" + seed,
                created_position=position,
                last_position=position,
            )
            rows.append(session_row(session))
            if len(rows) == 50_000:
                await db.executemany(sql, rows)
                rows = []
        if rows:
            await db.executemany(sql, rows)
        await db.commit()
        await db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await db.close()


def one_run(meta: ChainMeta, database: Path, sessions: int) -> tuple[float, float, float]:
    """(VmRSS MB idle, VmHWM MB, seconds from start to every session evaluated)."""
    with loaded_anvil(meta) as node, tempfile.TemporaryDirectory() as tmp:
        set_clock(node.url, meta)
        work = Path(tmp)
        copy = work / "warden.sqlite"
        shutil.copyfile(database, copy)
        daemon = Daemon(meta, node.url, work, copy, 256)
        try:
            line = daemon.wait_for(f"evaluated all {sessions} open sessions", 900)
            ready = float(line["ts"]) - daemon.started
            samples = []
            for _ in range(IDLE):
                time.sleep(1.0)
                samples.append(status_kb(daemon.pid))
        finally:
            if daemon.stop() != 0:
                raise SystemExit("the daemon did not stop cleanly")
    rss = statistics.median(s["VmRSS"] for s in samples) / 1024
    return rss, max(s["VmHWM"] for s in samples) / 1024, ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="daemon starts per size")
    parser.add_argument("--sizes", default=f"{REAL},1000000", help="tracked sessions, comma list")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    meta = ensure_chain(REAL)
    real = ensure_database(meta)
    databases = {n: real if n == REAL else synthetic_database(meta, real, n) for n in sizes}
    results: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
    for run in range(args.runs):
        for n in sizes:  # interleaved: load drifts affect every size alike
            results[n].append(one_run(meta, databases[n], n))
            rss, hwm, ready = results[n][-1]
            say(f"run {run + 1}, {n:,} sessions: VmRSS {rss:.0f} MB, VmHWM {hwm:.0f} MB, "
                f"ready in {ready:.1f} s")  # fmt: skip
    print(header())
    print(
        f"daemon memory (warden run, idle-following after evaluating every session; {IDLE} "
        "samples 1 s apart per run, VmRSS their median):"
    )
    for n in sizes:
        kind = "real, indexed from the chain" if n == REAL else "900,000 synthetic rows"
        print(f"  {n:,} sessions ({kind}):")
        print("    VmRSS idle: " + spread([r[0] for r in results[n]], ",.0f", " MB"))
        print("    VmHWM peak: " + spread([r[1] for r in results[n]], ",.0f", " MB"))
        print(
            "    start → every session evaluated: "
            + spread([r[2] for r in results[n]], ".1f", " s")
        )
        print(
            "    VmRSS per session (whole process / sessions): "
            + spread([r[0] * 1024 * 1024 / n for r in results[n]], ",.0f", " bytes")
        )
    if len(sizes) >= 2:
        low, high = min(sizes), max(sizes)
        per = [
            (h[0] - lo[0]) * 1024 * 1024 / (high - low)
            for lo, h in zip(results[low], results[high], strict=True)
        ]
        peak = [
            (h[1] - lo[1]) * 1024 * 1024 / (high - low)
            for lo, h in zip(results[low], results[high], strict=True)
        ]
        print(
            f"  marginal VmRSS per tracked session ({low:,} → {high:,}): "
            + spread(per, ",.0f", " bytes")
        )
        print("  marginal VmHWM per tracked session: " + spread(peak, ",.0f", " bytes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
