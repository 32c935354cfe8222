"""`warden rules check` as a real subprocess, through a tiny argparse harness (the
subcommand is wired into warden/cli.py separately)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.rules._cases import CASES, GOOD

ROOT = Path(__file__).resolve().parents[2]
HARNESS = (
    "import argparse, sys\n"
    "from warden.cli.rules import add_rules_parser, run_rules_command\n"
    "parser = argparse.ArgumentParser(prog='warden')\n"
    "add_rules_parser(parser.add_subparsers(dest='command'))\n"
    "sys.exit(run_rules_command(parser.parse_args(sys.argv[1:])))\n"
)


def warden_rules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HARNESS, "rules", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_shipped_rules_directory_passes() -> None:
    out = warden_rules("check", "config/rules")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: 14 rules (14 enabled) in 8 files, version ")
    assert out.stderr == ""


def test_check_reports_every_problem_in_every_file_and_fails(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(CASES["several-errors-at-once"])
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    out = warden_rules("check", str(good), str(bad), str(empty))
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"{bad}:3:19: rule 'a': in 'when': type mismatch: 'balance' is an amount but 'expiry' "
        "is a time; compare amounts with amounts, times with times, durations with durations",
        f"{bad}:4:13: rule 'a': unknown action 'clos': did you mean 'close'? (close ends the "
        "session with a reason, sweep refunds a revoked or expired one, notify only tells "
        "the channels)",
        f"{bad}:5:15: rule 'a': 'priority' must be a whole number, e.g. priority: 100, found "
        "text 'x'",
        f"{empty}:1:1: file is empty: add a 'rules:' list (see docs/rules.md)",
        "4 problems found",
    ]


def test_check_without_files_is_a_usage_error() -> None:
    out = warden_rules("check")
    assert out.returncode == 2
    assert "the following arguments are required: FILE" in out.stderr
