"""`warden` command line: one module per command, each with `add_*_parser` and
`run_*_command`; every command returns an `ExitCode`."""

from __future__ import annotations

import argparse
import sys

from warden.cli.config import add_config_parser, run_config_command
from warden.cli.db import add_db_parser, run_db_command
from warden.cli.devnet import add_devnet_parser, run_devnet_command
from warden.cli.exit_codes import ExitCode
from warden.cli.index import add_index_parser, run_index_command
from warden.cli.inspect import add_inspect_parsers, run_inspect_command, run_status_command
from warden.cli.notify import add_notify_parser, run_notify_command
from warden.cli.rules import add_rules_parser, run_rules_command
from warden.cli.run import add_run_parser, run_run_command
from warden.cli.version import VersionAction


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        description="Session Warden: indexes session wallets, evaluates YAML policies, "
        "and submits relayer transactions exactly once.",
    )
    parser.add_argument(
        "--version",
        action=VersionAction,
        help="print the version and the pinned anvil and solc versions, then exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_parser(sub)
    add_devnet_parser(sub)
    add_index_parser(sub)
    add_rules_parser(sub)
    add_config_parser(sub)
    add_inspect_parsers(sub)
    add_db_parser(sub)
    add_notify_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status is an `ExitCode` (argparse exits 2 on bad usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_run_command(args)
    if args.command == "config":
        return run_config_command(args)
    if args.command == "inspect":
        return run_inspect_command(args)
    if args.command == "status":
        return run_status_command(args)
    if args.command == "devnet":
        return run_devnet_command(args)
    if args.command == "index":
        return run_index_command(args)
    if args.command == "db":
        return run_db_command(args)
    if args.command == "rules":
        return run_rules_command(args)
    if args.command == "notify":
        return run_notify_command(args)
    parser.print_help()
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
