"""`warden rules check FILE...`: validate rule files, print every problem, exit non-zero;
`warden rules replay`: see `warden.replay_command`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rules import check_files, expand_paths
from warden.cli.exit_codes import ExitCode
from warden.cli.replay import add_replay_parser, run_replay_command


def add_rules_parser(subparsers: Any) -> None:
    rules = subparsers.add_parser("rules", help="work with YAML rule files")
    sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="validate rule files (directories: their *.yaml); print every problem with "
        "file:line:column",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="rule file or directory")
    add_replay_parser(sub)


def run_rules_command(args: argparse.Namespace) -> int:
    if args.rules_command == "replay":
        return run_replay_command(args)
    if args.rules_command != "check":  # argparse enforces the choice; keep mypy honest
        return ExitCode.CONFIG
    problems, ruleset = check_files(args.files)
    if ruleset is None:
        for problem in problems:
            print(problem, file=sys.stderr)
        count = len(problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    for warning in ruleset.warnings:  # usable, but probably not what was meant: still exit 0
        print(warning, file=sys.stderr)
    files = expand_paths(args.files)
    enabled = sum(1 for r in ruleset.rules if r.enabled)
    warned = len(ruleset.warnings)
    print(
        f"ok: {len(ruleset.rules)} rules ({enabled} enabled) in {len(files)} "
        f"file{'s' if len(files) != 1 else ''}, version {ruleset.digest[:16]}"
        + (f", {warned} warning{'s' if warned != 1 else ''}" if warned else "")
    )
    return ExitCode.OK
