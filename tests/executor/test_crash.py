"""kill -9 of a real process running the executor, between signing and sending, between
sending and recording, and after mining: afterwards no intent has two mined transactions,
none is lost, and every session is closed exactly once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from eth_abi.abi import decode
from web3.types import TxData

from chain.calls import CLOSE, CLOSE_BATCH, SWEEP
from tests._chain import Chain
from tests.conftest import Roles, Session, Stack
from tests.executor._support import rig, table
from warden.devnet import Anvil

ROUNDS = 7
POINTS = ("signed", "sent", "mined")


def run(url: str, db: Path, factory: str, start: int, spec: str | None) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.executor._crash_proc", url, str(db), factory, str(start),
         *([spec] if spec else [])],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    if proc.returncode not in (0, -9):
        raise AssertionError(proc.stderr.decode()[-3000:])
    return proc.returncode


def relayer_targets(chain: Chain, relayer: str, first_block: int) -> list[str]:
    """Every wallet a mined relayer transaction touched, once per transaction."""
    touched: list[str] = []
    for number in range(first_block, chain.w3.eth.block_number + 1):
        block = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in cast("list[TxData]", block["transactions"]):
            if tx["from"] != relayer:
                continue
            data = bytes(tx["input"])
            if data[:4] == CLOSE_BATCH:
                wallets, _ = decode(["address[]", "uint8[]"], data[4:])
                touched.extend(chain.w3.to_checksum_address(w) for w in wallets)
            elif data[:4] in (CLOSE, SWEEP):
                touched.append(tx["to"])
    return touched


async def test_kill_9_at_every_point_loses_nothing_and_sends_nothing_twice(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    db = tmp_path / "w.db"
    factory = stack.factory.address
    start = fresh_chain.w3.eth.block_number + 1
    wallets: list[str] = []
    kills = 0
    for round_ in range(ROUNDS):
        for point in POINTS:
            new = [make_session().wallet.address for _ in range(3)]
            wallets += new
            async with rig(anvil.url, db, factory, start) as r:
                await r.index()
                for wallet in new:
                    await r.intend(wallet, "idle")
            spec = f"{point}:{1 + round_ % 2}"
            if run(anvil.url, db, factory, start, spec) == -9:
                kills += 1
    assert run(anvil.url, db, factory, start, None) == 0
    assert kills >= 20

    states = table(db, "SELECT wallet, state FROM intents ORDER BY id")
    assert [w for w, _ in states] == wallets  # none lost, none doubled
    assert {s for _, s in states} == {"confirmed"}, states
    touched = relayer_targets(fresh_chain, roles.operator, start)
    assert sorted(touched) == sorted(wallets)  # each wallet in exactly one mined transaction
    for job_id, mined in table(db, "SELECT job_id, COUNT(*) FROM transactions "
                                   "WHERE state = 'mined' GROUP BY job_id"):  # fmt: skip
        assert mined == 1, job_id
    await asyncio.sleep(0)
