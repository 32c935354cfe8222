"""Measure contract gas on a fresh anvil and print a Markdown report.

    python scripts/gas_report.py                 # print
    python scripts/gas_report.py --write docs/gas.md

Figures: creating a session as a clone (clone + initialize + deposit + fee, one transaction)
versus deploying the wallet's full code; closing sessions one by one versus in one
factory batch. Gas is deterministic for a given compiler and chain, so one run suffices.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts import load_artifact, solc_version  # noqa: E402
from warden.devnet import Anvil, deploy_stack  # noqa: E402

TOKEN = 10**18
STOP_LOSS = 1


def _gas(w3: Web3, tx: bytes) -> int:
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1, "transaction reverted"
    return int(receipt["gasUsed"])


def measure(batch_sizes: list[int], singles: int) -> dict[str, Any]:
    with Anvil(extra_args=["--gas-limit", "100000000"]) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        deployer, operator, treasury, owner = w3.eth.accounts[:4]
        dep = deploy_stack(w3, deployer=deployer, operator=operator, treasury=treasury)
        token = w3.eth.contract(address=dep.token, abi=load_artifact("MockToken").abi)
        factory = w3.eth.contract(
            address=dep.factory, abi=load_artifact("SessionWalletFactory").abi
        )
        wallet_abi = load_artifact("SessionWallet").abi
        _gas(w3, token.functions.mint(owner, 10**12 * TOKEN).transact({"from": deployer}))
        _gas(w3, token.functions.approve(dep.factory, 2**255).transact({"from": owner}))
        expiry = w3.eth.get_block("latest")["timestamp"] + 10**7
        salt = iter(range(1, 10**9))

        def create() -> tuple[str, int]:
            params = (operator, dep.token, 100 * TOKEN, expiry, 50 * TOKEN, 20 * TOKEN,
                      300 * TOKEN, "berzerker", [dep.game])  # fmt: skip
            tx = factory.functions.createSession(params, next(salt).to_bytes(32, "big"))
            receipt = w3.eth.wait_for_transaction_receipt(tx.transact({"from": owner}))
            assert receipt["status"] == 1
            (log,) = factory.events.SessionCreated().process_receipt(receipt, errors=DISCARD)
            return log["args"]["wallet"], int(receipt["gasUsed"])

        create_gas = [create()[1] for _ in range(5)]
        deploy_tx = (
            w3.eth.contract(abi=wallet_abi, bytecode=load_artifact("SessionWallet").bytecode)
            .constructor(dep.factory)
            .transact({"from": deployer})
        )
        full_deploy = _gas(w3, deploy_tx)

        single = []
        for _ in range(singles):
            wallet, _ = create()
            w = w3.eth.contract(address=wallet, abi=wallet_abi)
            single.append(_gas(w3, w.functions.close(STOP_LOSS).transact({"from": operator})))

        batched: dict[int, float] = {}
        for size in batch_sizes:
            wallets = [create()[0] for _ in range(size)]
            tx = factory.functions.closeBatch(wallets, [STOP_LOSS] * size).transact(
                {"from": operator, "gas": 90_000_000}
            )
            batched[size] = _gas(w3, tx) / size
    return {
        "create": statistics.median(create_gas),
        "full_deploy": full_deploy,
        "single_close": statistics.median(single),
        "batched": batched,
    }


def report(m: dict[str, Any]) -> str:
    single = m["single_close"]
    lines = [
        "# Gas figures",
        "",
        f"Measured by `make gas` (scripts/gas_report.py) on anvil, solc {solc_version()} "
        f"(via-IR, 200 runs, EVM cancun), {datetime.date.today().isoformat()}. "
        "Gas is deterministic for a given build; rerun after changing a contract.",
        "",
        "## Creating a session",
        "",
        "| what | gas |",
        "|---|---:|",
        f"| `createSession` — clone + initialize + deposit + fee, one transaction "
        f"(one target) | {m['create']:,.0f} |",
        f"| deploying the full `SessionWallet` code alone (no initialization, no deposit) "
        f"| {m['full_deploy']:,} |",
        "",
        f"A clone costs {m['create'] / m['full_deploy']:.0%} of a bare full deployment, and the "
        "full deployment would still have to pay for initialization and the deposit.",
        "",
        "## Closing sessions (operator, stop-loss, refund to the owner)",
        "",
        "| how | gas per session | vs single |",
        "|---|---:|---:|",
        f"| `close` one by one | {single:,.0f} | 100% |",
    ]
    for size, per in m["batched"].items():
        lines.append(f"| `closeBatch` of {size} | {per:,.0f} | {per / single:.0%} |")
    lines += [
        "",
        "Batching saves the 21,000 base cost and the calldata overhead of each transaction, "
        "not the per-wallet work: every member costs a cold call into its wallet (2,600), "
        "its packed state slot, the refund's two token balances (cold reads and writes of "
        "the wallet's and the owner's balance) and two logs, plus the factory's `isWallet` "
        "check. That floor is why a batched close stays above half of a single one; a "
        "target of 40 % would need refunds that do not touch the token per session.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", type=Path, help="write the report to this file")
    parser.add_argument("--batch", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--singles", type=int, default=10)
    args = parser.parse_args()
    text = report(measure(args.batch, args.singles))
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
