"""How long the rule loader and the YAML reader take on large and hostile input: the
figures behind "a bad rule file never freezes the daemon" (tests assert no timings).

    .venv/bin/python scripts/bench_loaders.py [--rules N] [--repeat R]

Measures (median and spread of R runs, wall clock): `check_files` on an N-rule file (default
10,000), split into the YAML read (yamlsource) and our checks, both timed in each run;
the same with a tab in a comment, which yamlsource reads by ruamel alone (no libyaml);
compiling that set as a reload does (RulesHolder, the part the daemon's loop waits for
too); the worst yamlsource inputs (alias bomb, 50,000-deep nesting, a million characters,
a NUL at the end of it); the worst conditions (`1e999999999`, a 2,000-character
condition, nesting at the limit, a comparison past the magnitude bound). Prints markdown
for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from _report import cpu_model  # noqa: E402

import rules.rule_file  # noqa: E402
from rules import RulesError, RulesHolder, RulesHost, check_files  # noqa: E402
from rules.tokens import MAX_CONDITION_CHARS, MAX_NESTING  # noqa: E402
from yamlsource import libyaml_load  # noqa: E402


def many_rules(count: int) -> str:
    """`count` rules in groups of 50 per policy (one engine ruleset takes at most 64),
    one flow mapping a line so that 10,000 fit the reader's million characters."""
    lines = ["rules:"]
    for i in range(count):
        lines.append(
            f"- {{name: r{i}, when: balance<={i % 97 + 1}% of deposit, action: close, "
            f"reason: idle, scope: {{policy: p{i // 50}}}}}"
        )
    return "\n".join(lines) + "\n"


def rule(when: str) -> str:
    return f'rules:\n  - name: a\n    when: "{when}"\n    action: close\n    reason: idle\n'


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def shown(times: list[float]) -> str:
    """The median, and the spread when there was more than one run."""
    if len(times) == 1:
        return f"{times[0]:.3f}"
    return f"{statistics.median(times):.3f} ({min(times):.3f} to {max(times):.3f})"


def split_runs(path: Path, repeat: int) -> tuple[list[float], list[float]]:
    """`check_files` on `path`, and of each run the time spent in yamlsource.read_yaml:
    measured in the same run, so that the rule checks are the difference."""
    real = rules.rule_file.read_yaml
    yaml_times: list[float] = []

    def timed_read(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            yaml_times.append(time.perf_counter() - start)

    rules.rule_file.read_yaml = timed_read
    try:
        total = timed(checked(path), repeat)
    finally:
        rules.rule_file.read_yaml = real
    return total, yaml_times


def versions() -> str:
    names = ("ruamel.yaml", "PyYAML")
    found = ", ".join(f"{name} {metadata.version(name)}" for name in names)
    if not libyaml_load.AVAILABLE:
        return found + ", no libyaml (yamlsource reads by ruamel alone)"
    from yaml import _yaml

    return f"{found}, libyaml {_yaml.get_version_string()}"


def checked(path: Path) -> Callable[[], object]:
    return lambda: check_files([path])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, str, list[float]]] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        big = tmp / "many.yaml"
        text = many_rules(args.rules)
        big.write_text(text)
        size = f"{len(text):,} chars"
        problems, ruleset = check_files([big])
        assert not problems and ruleset is not None, problems[:3]
        total, yaml_part = split_runs(big, args.repeat)
        rows.append((f"check_files, {args.rules:,} rules", size, total))
        rows.append(("  of which yamlsource.read_yaml", size, yaml_part))
        checks = [t - y for t, y in zip(total, yaml_part, strict=True)]
        rows.append(("  of which the rule checks", size, checks))
        tabbed = tmp / "tabbed.yaml"
        tabbed.write_text(text + "# a tab:\t\n")
        size = f"{len(text) + 10:,} chars"
        total, yaml_part = split_runs(tabbed, args.repeat)
        rows.append((f"same, a tab in a comment: {args.rules:,} rules", size, total))
        rows.append(("  of which yamlsource.read_yaml (ruamel alone)", size, yaml_part))

        def reload() -> object:
            try:
                return RulesHolder(RulesHost(), [big])
            except RulesError as exc:
                return exc

        groups = f"{args.rules // 50} groups"
        rows.append((f"load + compile {args.rules:,} rules (reload)", groups, timed(reload, 1)))

        hostile_yaml = {
            "alias bomb (9 levels x 10)": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "50,000-deep flow nesting": "rules: " + "[" * 50_000 + "]" * 50_000 + "\n",
            "1,000-deep block nesting": "".join(" " * i + f"k{i}:\n" for i in range(1_000)),
            "1,000,000 chars, NUL at the end": "# " + "x" * 999_990 + "\n\0",
            "1,000,001 chars": "#" * 1_000_001,
        }
        for label, body in hostile_yaml.items():
            path = tmp / "hostile.yaml"
            path.write_text(body)
            rows.append((f"yaml: {label}", f"{len(body):,} chars", timed(checked(path), 3)))

        tiny = "0." + "0" * 76 + "1"
        hostile_when = {
            "1e999999999": "balance <= 1e999999999",
            f"{MAX_CONDITION_CHARS:,}-char condition": (
                "balance <= 1" + " " * (MAX_CONDITION_CHARS - 12)
            ),
            "200 tokens": " + ".join(["balance"] * 99) + " > 0",
            f"{MAX_NESTING}-deep parentheses": "(" * MAX_NESTING
            + "balance <= 1"
            + ")" * MAX_NESTING,
            "900-deep parentheses": "(" * 900 + "balance<=1" + ")" * 900,
            "magnitude past 10^160": f"balance <= {tiny}% of {tiny}% of {tiny}% of deposit",
            "5,000-digit literal": "balance <= " + "9" * 5_000,
        }
        for label, when in hostile_when.items():
            path = tmp / "when.yaml"
            path.write_text(rule(when))
            rows.append((f"when: {label}", f"{len(when):,} chars", timed(checked(path), 3)))

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"## Loaders ({datetime.date.today()}, {cpu_model()}, {os.cpu_count()} cores, load "
        f"average {load}, Python {platform.python_version()}, {versions()})\n"
    )
    print(f"| input | size | seconds, median of {args.repeat} (min to max) |")
    print("|---|---|---|")
    for label, what, seconds in rows:
        print(f"| {label} | {what} | {shown(seconds)} |")


if __name__ == "__main__":
    main()
