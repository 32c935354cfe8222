"""`warden` command line."""

from __future__ import annotations

import argparse
import sys

from warden.cli.config import add_config_parser, run_config_command
from warden.cli.index import add_index_parser, run_index_command
from warden.cli.inspect import add_inspect_parsers, run_inspect_command, run_status_command
from warden.cli.rules import add_rules_parser, run_rules_command
from warden.cli.run import add_run_parser, run_run_command


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        description="Session Warden: indexes session wallets, evaluates YAML policies, "
        "and submits relayer transactions exactly once.",
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
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
