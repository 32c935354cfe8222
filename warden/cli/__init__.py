"""`warden` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from warden.cli.config import add_config_parser, run_config_command
from warden.cli.exit_codes import ExitCode
from warden.cli.index import add_index_parser, run_index_command
from warden.cli.inspect import add_inspect_parsers, run_inspect_command, run_status_command
from warden.cli.rules import add_rules_parser, run_rules_command
from warden.cli.run import add_run_parser, run_run_command

REPO = Path(__file__).resolve().parents[2]  # a checkout; site-packages in an installed wheel


def version_text() -> str:
    """The package version and the devnet toolchain it was built and tested with; a
    version whose file an installed wheel lacks is "unknown"."""
    return f"warden {_package_version()} (anvil {_anvil_version()}, solc {_solc_version()})"


def _package_version() -> str:
    try:
        return metadata.version("session-warden")
    except metadata.PackageNotFoundError:
        return "unknown"


def _anvil_version() -> str:
    """anvil as package-lock.json pins it, else as package.json asks for it."""
    for file, key in (("package-lock.json", "packages"), ("package.json", "dependencies")):
        try:
            entries = json.loads((REPO / file).read_text())[key]
        except (OSError, ValueError, LookupError, TypeError):
            continue
        for name, entry in entries.items():
            if name.removeprefix("node_modules/").startswith("@foundry-rs/anvil"):
                return str(entry.get("version", "unknown") if isinstance(entry, dict) else entry)
    return "unknown"


def _solc_version() -> str:
    from contracts import solc_version

    try:
        return solc_version()
    except OSError:
        return "unknown"


class _VersionAction(argparse.Action):
    """`--version`, its files read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version_text())
        parser.exit(ExitCode.OK)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        description="Session Warden: indexes session wallets, evaluates YAML policies, "
        "and submits relayer transactions exactly once.",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="print the version and the pinned anvil and solc versions, then exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_run_parser(sub)
    sub.add_parser(
        "devnet",
        help="start anvil on a free loopback port, deploy the contracts, print the addresses "
        "and keep running until Ctrl-C",
    )
    add_index_parser(sub)
    add_rules_parser(sub)
    add_config_parser(sub)
    add_inspect_parsers(sub)
    return parser


def _devnet() -> int:
    import signal
    import threading

    from web3 import Web3

    from warden.devnet import Anvil, DevnetError, deploy_stack

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with Anvil(block_time=1) as anvil:
            w3 = Web3(Web3.HTTPProvider(anvil.url))
            accounts: list[str] = list(w3.eth.accounts)
            dep = deploy_stack(w3, deployer=accounts[0], operator=accounts[1], treasury=accounts[2])
            print(f"devnet: {anvil.url} (chain id {dep.chain_id})")
            for field in ("factory", "token", "game", "operator", "treasury"):
                print(f"  {field:<9} {getattr(dep, field)}")
            print("Ctrl-C stops it.", flush=True)
            while not stop.wait(0.5):
                pass
    except DevnetError as exc:
        print(f"warden devnet: {exc}", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    return ExitCode.OK


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
        return _devnet()
    if args.command == "index":
        return run_index_command(args)
    if args.command == "rules":
        return run_rules_command(args)
    parser.print_help()
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
