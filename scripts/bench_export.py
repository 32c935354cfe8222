"""`warden db export` on a million sessions: peak memory (constant, whatever the size)
and rows per second; and `warden db backup` of the same file.

    .venv/bin/python scripts/bench_export.py [--runs 3] [--sizes 100000,1000000]

The databases are SYNTHETIC, written straight through SQL with the real schema (the
daemon's migrations) by tests/_sessions.py: sessions with uint256 amounts at their
extremes, no events (a million real sessions on anvil are impractical; the export reads
the table as it is, whatever wrote it). Built once and cached in .cache/bench/.

Each run is the real command as a process, `python -m warden db export sessions --db F
--format FMT --out FILE --quiet`; its peak resident set is the process's own ru_maxrss
(os.wait4), its time the wall clock from start to exit (Python's start-up included, about
a second). Rows per second = rows / that time. The same for NDJSON and CSV, at each size:
equal peaks at 100,000 and 1,000,000 rows are what "constant memory" means. Prints
header(), then each figure as the median and spread of the runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import header, spread  # noqa: E402

from tests._sessions import build  # noqa: E402

CACHE_DIR = ROOT / ".cache" / "bench"


def say(text: str) -> None:
    print(text, flush=True)


def ensure(size: int) -> Path:
    path = CACHE_DIR / f"export-{size}.sqlite"
    if path.exists():
        return path
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".building")
    partial.unlink(missing_ok=True)
    began = time.monotonic()
    build(partial, size, events=False)
    partial.rename(path)
    say(
        f"built {path} ({size:,} sessions, {path.stat().st_size / 2**20:,.0f} MiB) in "
        f"{time.monotonic() - began:.0f} s"
    )
    return path


def measure(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `python -m warden ARGS` run to completion."""
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "warden", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.monotonic() - began
    if status != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"warden {' '.join(args)} failed ({status}): {err}")
    return took, usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100000,1000000")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    say(header())
    files = {size: ensure(size) for size in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for fmt in ("ndjson", "csv"):
                times, peaks = [], []
                out = Path(tmp) / f"sessions.{fmt}"
                for _ in range(opts.runs):
                    out.unlink(missing_ok=True)
                    took, peak = measure(
                        [
                            "db",
                            "export",
                            "sessions",
                            "--db",
                            str(files[size]),
                            "--format",
                            fmt,
                            "--out",
                            str(out),
                            "--quiet",
                        ]
                    )
                    times.append(size / took)
                    peaks.append(peak)
                mib = out.stat().st_size / 2**20
                say(
                    f"export {size:,} sessions as {fmt} ({mib:,.0f} MiB): "
                    f"{spread(times, ',.0f', ' rows/s')}; peak RSS {spread(peaks, '.0f', ' MiB')}"
                )
            times, peaks = [], []
            for i in range(opts.runs):
                to = Path(tmp) / f"backup-{i}.sqlite"
                took, peak = measure(
                    ["db", "backup", "--db", str(files[size]), "--to", str(to), "--quiet"]
                )
                times.append(took)
                peaks.append(peak)
                to.unlink()
            mib = files[size].stat().st_size / 2**20
            say(
                f"backup of the {size:,}-session database ({mib:,.0f} MiB, checked): "
                f"{spread(times, '.1f', ' s')}; peak RSS {spread(peaks, '.0f', ' MiB')}"
            )


if __name__ == "__main__":
    main()
