"""`warden` command line."""

from __future__ import annotations

import argparse
import sys

from warden.index_command import add_index_parser, run_index_command
from warden.rules_command import add_rules_parser, run_rules_command

NOT_YET = (
    "warden run: the daemon is not built yet (it lands with the 'Daemon, HTTP API and CLI' "
    "issue).\nWhat exists today: the contracts and their tests (`make test`), and a devnet "
    "with the contracts deployed (`warden devnet`)."
)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden",
        description="Session Warden: indexes session wallets, evaluates YAML policies, "
        "and submits relayer transactions exactly once.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon (not built yet)")
    run.add_argument("--config", help="daemon config file (YAML)")
    run.add_argument("--devnet", action="store_true", help="start a local anvil devnet")
    sub.add_parser(
        "devnet",
        help="start anvil on a free loopback port, deploy the contracts, print the addresses "
        "and keep running until Ctrl-C",
    )
    add_index_parser(sub)
    add_rules_parser(sub)
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
        print(NOT_YET, file=sys.stderr)
        return 2
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
