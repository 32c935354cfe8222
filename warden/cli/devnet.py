"""`warden devnet`: anvil on a free loopback port with the contracts deployed, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from warden.cli.exit_codes import ExitCode


def add_devnet_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "devnet",
        help="start anvil on a free loopback port, deploy the contracts, print the addresses "
        "and keep running until Ctrl-C",
    )


def run_devnet_command(args: argparse.Namespace) -> int:
    # web3 and the devnet load only for this command: the daemon's own path needs neither
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
