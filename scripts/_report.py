"""What every benchmark prints around its figures: the machine and versions it ran on,
and a figure as its median with the spread of the runs (the machine is shared and noisy).

    from _report import header, spread
    print(header())                      # date, CPU, cores, load, kernel, Python, anvil, SQLite
    print(spread([12.1, 9.8, 14.0], ".1f", " ms"))   # "12.1 ms (9.8 to 14.0 ms, 3 runs)"
"""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

PACKAGES = ("web3", "aiohttp", "aiosqlite", "durable-rules", "orjson", "coincurve")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def anvil_version() -> str:
    from warden.devnet import find_anvil

    try:
        out = subprocess.run(
            [str(find_anvil()), "--version"], capture_output=True, text=True, timeout=30
        )
        return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"
    except Exception as exc:  # the header must never stop a benchmark
        return f"unknown ({exc})"


def versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def header() -> str:
    """Lines naming when, where and with what a benchmark ran."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: {cpu_model()}, {os.cpu_count()} cores, load average {load}, "
            f"{platform.system()} {platform.release()}",
            f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"{anvil_version()}",
            versions(),
        ]
    )


def spread(values: Sequence[float], fmt: str = ",.0f", unit: str = "") -> str:
    """`median unit (min to max unit, N runs)`."""
    if not values:
        return "no runs"
    med = statistics.median(values)
    return (
        f"{med:{fmt}}{unit} ({min(values):{fmt}} to {max(values):{fmt}}{unit}, "
        f"{len(values)} run{'s' if len(values) != 1 else ''})"
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0 to 100) of at least one value."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats' rounding surprises
    return ordered[int(rank) - 1]
