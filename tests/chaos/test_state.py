"""The chaos oracle itself: a fresh index equals another fresh index, and `compare` reports
a real difference (a lost event, a changed balance, a checkpoint behind) by name."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests._chain import Chain, CloseReason
from tests.chaos._state import close_targets, compare, fresh_index, missed_actions, relayer_txs
from tests.conftest import TOKEN, Roles, Session, Stack
from warden.devnet import Anvil

ROOT = Path(__file__).resolve().parents[2]


async def test_compare_finds_a_lost_event_a_changed_balance_and_a_checkpoint_behind(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    a, b = make_session(policy=""), make_session(policy="")
    fresh_chain.send(a.wallet.functions.withdraw(900 * TOKEN), roles.owner)  # below stop-loss
    before_close = fresh_chain.w3.eth.block_number
    fresh_chain.send(b.wallet.functions.close(CloseReason.STOP_LOSS), roles.operator)
    factory = stack.factory.address

    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    cp = await fresh_index(anvil.url, factory, start, one)
    assert cp.number == fresh_chain.w3.eth.block_number
    await fresh_index(anvil.url, factory, start, two)
    assert await compare(one, two) == []

    # A session whose stop-loss holds and that nobody closed is a missed action.
    missed = await missed_actions(one, [ROOT / "config/rules"], fresh_chain.now())
    assert len(missed) == 1 and a.wallet.address in missed[0] and "stop-loss" in missed[0]

    lost = tmp_path / "lost.sqlite"
    shutil.copy(one, lost)
    with sqlite3.connect(lost) as db:
        (pos,) = db.execute("SELECT MAX(position) FROM events WHERE name = 'Withdrawn'").fetchone()
        db.execute("DELETE FROM events WHERE position = ?", (pos,))
        db.execute("UPDATE sessions SET balance = '1' WHERE wallet = ?", (b.wallet.address,))
    diff = await compare(lost, one)
    assert f"events position={pos}: missing" in "\n".join(diff), diff
    assert any(f"sessions wallet={b.wallet.address}: balance is '1'" in d for d in diff), diff
    assert len(diff) == 2

    behind = tmp_path / "behind.sqlite"
    await fresh_index(anvil.url, factory, start, behind, upto=before_close)
    diff = await compare(behind, one)
    assert any(d.startswith("checkpoint is") for d in diff)
    assert any("events position=" in d and "missing" in d for d in diff)  # the Closed event

    # The operator's close is found on chain and decoded to its wallet.
    txs = await relayer_txs(anvil.url, roles.operator, start)
    assert [close_targets(tx, factory) for tx in txs] == [[b.wallet.address]]
    assert txs[0].status == 1
