"""The executor against a real anvil, a real SQLite file and the real indexer: closes reach
the chain and come back indexed; stuck, refused and obsolete cases end right.

Moved to `test_tracking.py` (the in-process node of `_fake_node.py`, where a real node adds
nothing): `test_nonce_taken_by_an_outside_transaction_is_recovered`. The stuck transaction's
replacement is tested there too, case by case; here it stays end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from web3.types import TxParams

from executor import Signer
from rules import Evaluator, RulesHost, RulesRunner, load_rules
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import GWEI, RELAYER_KEY, rig, table
from warden.app.snapshots import snapshot_of
from warden.devnet import Anvil

ROOT = Path(__file__).resolve().parents[2]


def closed_reason(chain: Chain, session: Session) -> int | None:
    """The reason of the wallet's Closed event on chain, if any."""
    logs = session.wallet.events.Closed().get_logs(from_block=session.receipt["blockNumber"])
    assert len(logs) <= 1
    return int(logs[0]["args"]["reason"]) if logs else None


async def test_stop_loss_intent_from_the_rules_closes_on_chain_and_confirms(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    wallet = session.wallet.address
    fresh_chain.send(session.wallet.functions.withdraw(850 * TOKEN), roles.owner)  # 150 < 200
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        now = await r.index()
        # The rules decide from the indexed session, exactly as the daemon will.
        runner = RulesRunner(Evaluator(RulesHost(), load_rules([ROOT / "config/rules"])))
        indexed = await r.store.session(wallet)
        assert indexed is not None and indexed.balance == 150 * TOKEN
        evaluation, decision = runner.decide(snapshot_of(indexed, 18), now)
        fresh = await r.outbox.record([decision], 0)
        runner.commit(evaluation, decision)
        assert [i.reason for i in fresh] == ["stop_loss"]
        owner_before = fresh_chain.balance(stack.token, roles.owner)

        await r.run()

        (key,) = [i.key for i in fresh]
        state, detail = await r.state(key)
        assert state == "confirmed", detail
        assert closed_reason(fresh_chain, session) == CloseReason.STOP_LOSS
        assert fresh_chain.balance(stack.token, roles.owner) - owner_before == 150 * TOKEN
        closed = await r.store.session(wallet)
        assert closed is not None and closed.status == "closed" and closed.refund == 150 * TOKEN
        jobs = table(r.db_path, "SELECT kind, state, receipt_status FROM jobs")
        assert jobs == [("close", "done", 1)]
        assert table(r.db_path, "SELECT state FROM transactions") == [("mined",)]
        # Restart: the latch is in SQLite with the intent; the same crossing fires nothing.
        again = RulesRunner.from_rows(runner.evaluator, await r.outbox.latch_rows())
        _, decision2 = again.decide(snapshot_of(indexed, 18), now)
        assert decision2.intents == ()


async def test_take_profit_sweep_and_expiry_each_close_with_their_reason(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    tp, revoked, expired = make_session(), make_session(), make_session()
    fresh_chain.send(revoked.wallet.functions.revoke(), roles.owner)
    fresh_chain.mine(expired.params["expiry"] + 1)
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        keys = [
            await r.intend(tp.wallet.address, "take_profit"),
            await r.intend(revoked.wallet.address, action="sweep", rule="sweep"),
        ]
        await r.run()
        assert [(await r.state(k))[0] for k in keys] == ["confirmed", "confirmed"]
    assert closed_reason(fresh_chain, tp) == CloseReason.TAKE_PROFIT
    assert closed_reason(fresh_chain, revoked) == CloseReason.SWEPT
    assert closed_reason(fresh_chain, expired) is None  # no intent, no transaction


async def test_stuck_low_fee_transaction_is_replaced_and_confirmed_once(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        key = await r.intend(session.wallet.address)
        # anvil's base fee is not part of the snapshot the next test reverts to: put it
        # back as found, or the next test starts with a market far above its cap.
        found = anvil.rpc("eth_feeHistory", "0x1", "latest", [])["baseFeePerGas"][-1]
        anvil.rpc("evm_setAutomine", False)
        try:
            await r.step()  # signed and sent at today's fees: sits in the pool
            assert table(r.db_path, "SELECT state FROM transactions") == [("sent",)]
            # Fees jump far above what it offered: it stays unmined while blocks pass.
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(200 * GWEI))
            for _ in range(3):
                anvil.rpc("evm_mine")
            assert closed_reason(fresh_chain, session) is None
            # anvil leaves a transaction under the base fee out of its pending count, so
            # the executor takes it as lost and sends it again before replacing it: the
            # replacement may come only in the steps below. The exact step is tested
            # against the in-process node (test_tracking.py).
            await r.step(index=False)
            anvil.rpc("evm_mine")
        finally:
            anvil.rpc("evm_setAutomine", True)
        try:
            await r.run()
        finally:
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", found)
        assert (await r.state(key))[0] == "confirmed"
    txs = table(
        r.db_path, "SELECT nonce, state, CAST(max_fee_per_gas AS INTEGER) FROM transactions "
        "ORDER BY created_ms, rowid",
    )  # fmt: skip
    assert [t[1] for t in txs] == ["replaced", "mined"]
    assert txs[0][0] == txs[1][0]  # one nonce: only one of them could ever be mined
    assert txs[1][2] > 200 * GWEI > txs[0][2]
    assert closed_reason(fresh_chain, session) == CloseReason.STOP_LOSS


async def test_drained_relayer_refuses_then_resumes_when_funded(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    funds = fresh_chain.w3.eth.get_balance(roles.operator)
    anvil.rpc("anvil_setBalance", roles.operator, hex(10**15))  # below the 0.01 ETH minimum
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        key = await r.intend(session.wallet.address)
        with caplog.at_level(logging.ERROR, logger="warden.executor"):
            for _ in range(3):
                await r.step()
        state, detail = await r.state(key)
        assert state == "pending"
        assert detail is not None and "below min_relayer_balance" in detail
        assert await r.outbox.refusals(key) == [
            ("relayer_balance", detail.removeprefix("relayer_balance: "))
        ]  # recorded once, not once per step
        assert sum("ALERT" in m for m in caplog.messages) == 1
        assert table(r.db_path, "SELECT COUNT(*) FROM jobs") == [(0,)]
        anvil.rpc("anvil_setBalance", roles.operator, hex(funds))
        await r.run()
        assert (await r.state(key))[0] == "confirmed"
    assert closed_reason(fresh_chain, session) == CloseReason.STOP_LOSS


async def test_revert_in_preflight_makes_the_intent_obsolete_once_indexed_not_retried(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    closed_by_owner, revoked = make_session(), make_session()
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [
            await r.intend(closed_by_owner.wallet.address),
            await r.intend(revoked.wallet.address),
        ]
        # Both change on chain after the last indexing: only the preflight can see it, and
        # a reorg could still remove it, so the intents wait for the index (nothing sent).
        fresh_chain.send(closed_by_owner.wallet.functions.close(CloseReason.OWNER), roles.owner)
        fresh_chain.send(revoked.wallet.functions.revoke(), roles.owner)
        await r.step(index=False)
        for key in keys:
            state, detail = await r.state(key)
            assert state == "pending" and detail is not None and "index_behind" in detail
        assert table(r.db_path, "SELECT COUNT(*) FROM jobs") == [(0,)]
        await r.run()  # indexed now: the index shows why, so they are obsolete
        assert [await r.state(k) for k in keys] == [
            ("obsolete", f"session already closed (owner by {roles.owner})"),
            ("obsolete", "preflight: OperatorRevoked()"),
        ]
        assert table(r.db_path, "SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_guards_refuse_with_reasons(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    trust = stack.factory.functions.setTrustedOperator(roles.stranger, True)
    fresh_chain.send(trust, roles.deployer)
    mine = make_session()
    foreign = make_session(operator=roles.stranger)
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        now = await r.index()
        unknown = await r.intend(stack.lookalike.address)
        not_ours = await r.intend(foreign.wallet.address)
        stale = await r.intend(mine.wallet.address, "idle", now=now - 2 * 86_400)
        await r.step()
        # a wallet the index does not know (the rules only fire on indexed sessions: a
        # reorg removed it) is nothing to send for: obsolete, so it can open again
        assert (await r.state(unknown))[0] == "obsolete"
        assert "no longer an indexed session" in str((await r.state(unknown))[1])
        assert "operator" in str((await r.state(not_ours))[1])
        assert str((await r.state(stale))[1]).startswith("ttl: ")
        assert table(r.db_path, "SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_fee_cap_defers_without_losing_the_intent(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    async with rig(
        anvil.url, tmp_path / "w.db", stack.factory.address, start,
        max_fee_per_gas=GWEI // 10,
    ) as r:  # fmt: skip
        key = await r.intend(session.wallet.address)
        await r.step()
        state, detail = await r.state(key)
        assert state == "pending" and detail is not None and detail.startswith("fee_cap: ")
        assert table(r.db_path, "SELECT COUNT(*) FROM jobs") == [(0,)]


async def test_dry_run_records_what_would_be_sent_and_sends_nothing(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    session = make_session()
    nonce = fresh_chain.w3.eth.get_transaction_count(roles.operator)
    async with rig(
        anvil.url, tmp_path / "w.db", stack.factory.address, start,
        dry_run=True, relayer=roles.operator,
    ) as r:  # fmt: skip
        key = await r.intend(session.wallet.address)
        await r.run()
        state, detail = await r.state(key)
    assert state == "dry_run"
    assert detail is not None and detail.startswith(
        f"dry-run: would send close to {session.wallet.address}"
    )
    assert fresh_chain.w3.eth.get_transaction_count(roles.operator) == nonce
    assert closed_reason(fresh_chain, session) is None


async def test_batch_of_100_closes_in_one_transaction_and_a_bad_member_does_not_sink_it(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    sessions = [make_session() for _ in range(101)]
    bad = sessions[37]
    async with rig(anvil.url, tmp_path / "w.db", stack.factory.address, start) as r:
        await r.index()
        keys = [await r.intend(s.wallet.address, "expired") for s in sessions]
        anvil.rpc("evm_setAutomine", False)
        try:
            await r.step(index=False)  # preflight passes for all 101; 1 batch of 100 + 1 single
            # The owner closes one member in the same block, ahead of the batch.
            tx = bad.wallet.functions.close(CloseReason.OWNER).build_transaction(
                cast(TxParams, {"from": roles.owner, "maxPriorityFeePerGas": 50 * GWEI,
                                "maxFeePerGas": 100 * GWEI, "gas": 200_000})
            )  # fmt: skip
            fresh_chain.w3.eth.send_transaction(tx)
            anvil.rpc("evm_mine")
        finally:
            anvil.rpc("evm_setAutomine", True)
        await r.run()
        states = [await r.state(k) for k in keys]
        jobs = table(r.db_path, "SELECT kind, receipt_status, mined_hash FROM jobs ORDER BY id")
    assert [j[:2] for j in jobs] == [("batch", 1), ("close", 1)]
    assert states[37] == ("obsolete", "batch member reverted: SessionIsClosed()")
    assert all(s == ("confirmed", s[1]) for i, s in enumerate(states) if i != 37), states
    assert closed_reason(fresh_chain, bad) == CloseReason.OWNER
    assert all(
        closed_reason(fresh_chain, s) == CloseReason.EXPIRED for s in sessions if s is not bad
    )
    batch_hash = jobs[0][2]
    assert sum(batch_hash in str(s[1]) for s in states) == 99  # 99 confirmed by one tx


async def test_obsolete_while_stuck_is_cancelled_so_the_nonce_is_not_stranded(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, make_session: Any, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    first, second = make_session(), make_session()
    async with rig(
        anvil.url, tmp_path / "w.db", stack.factory.address, start,
        max_fee_per_gas=20 * GWEI,
    ) as r:  # fmt: skip
        await r.index()
        key = await r.intend(first.wallet.address)
        anvil.rpc("evm_setAutomine", False)
        try:
            await r.step(index=False)
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(60 * GWEI))  # above our cap
            owner_close = first.wallet.functions.close(CloseReason.OWNER).build_transaction(
                {"from": roles.owner, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 500 * GWEI,
                 "gas": 200_000}
            )  # fmt: skip
            fresh_chain.w3.eth.send_transaction(owner_close)
            anvil.rpc("evm_mine")  # the owner's close is in; ours is stuck under the cap
            anvil.rpc("evm_mine")
            await r.step()  # indexed: our intent is obsolete; the job has nothing left to do
            assert (await r.state(key))[0] == "obsolete"
            anvil.rpc("evm_mine")
            anvil.rpc("evm_mine")
            report = await r.step()
            assert report.cancelled == 1
            anvil.rpc("evm_mine")
        finally:
            anvil.rpc("evm_setAutomine", True)
        await r.step()
        cancel = table(r.db_path, "SELECT kind, state, to_address, data FROM jobs")
        assert cancel == [("cancel", "mined", roles.operator, "0x")] or cancel == [
            ("cancel", "done", roles.operator, "0x")
        ]
        # Fees fall back under the cap; the next intent gets the next nonce and goes through.
        anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(GWEI))
        anvil.rpc("evm_mine")
        key2 = await r.intend(second.wallet.address)
        await r.run()
        assert (await r.state(key2))[0] == "confirmed"


def test_signer_for_the_relayer_is_the_operator(roles: Roles) -> None:
    assert Signer.from_raw_key(RELAYER_KEY, chain_id=31337).address == roles.operator
