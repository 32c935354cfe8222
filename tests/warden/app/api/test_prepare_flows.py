"""Each prepare endpoint end to end on anvil: the answered transactions, signed with the
owner's key and sent raw, do exactly what was asked, as the real indexer then shows it
through the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi.abi import decode

from tests._chain import Chain
from tests.conftest import FEE_BPS, TOKEN, Roles, Session, Stack, ceil_fee
from tests.warden.app.api._prepare import indexed_session, key_of, send_prepared, serve_prepare


def _create_body(chain: Chain, stack: Stack, roles: Roles, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner": roles.owner, "operator": roles.operator, "token": stack.token.address,
        "deposit": str(1_234 * TOKEN + 7), "expiry": chain.now() + 86_400,
        "budget": str(500 * TOKEN), "stop_loss": str(200 * TOKEN),
        "take_profit": str(3_000 * TOKEN), "policy": "berzerker",
        "targets": [stack.game.address, stack.overpull.address], "max_fee_bps": FEE_BPS,
    }  # fmt: skip
    body.update(over)
    return body


async def test_create_approves_then_creates_at_the_predicted_address(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    body = _create_body(fresh_chain, stack, roles, owner=roles.owner.lower())
    async with serve_prepare(db, fresh_chain, factory) as api:
        answer = await api.ok("/prepare/create", body)
        deposit = 1_234 * TOKEN + 7
        fee = ceil_fee(deposit)
        assert answer["fee"] == str(fee) and answer["owner"] == roles.owner
        assert answer["token"] == {"address": stack.token.address, "symbol": "WTT", "decimals": 18}
        approve, create = answer["transactions"]
        assert [approve["step"], create["step"]] == ["approve", "create"]
        assert approve["to"] == stack.token.address and create["to"] == factory
        assert create["nonce"] == approve["nonce"] + 1
        assert approve["nonce"] == fresh_chain.w3.eth.get_transaction_count(roles.owner)
        spender, amount = decode(["address", "uint256"], bytes.fromhex(approve["data"][10:]))
        assert (spender.lower(), amount) == (factory.lower(), deposit + fee)
        salt = bytes.fromhex(answer["salt"][2:])
        predicted = stack.factory.functions.predictWallet(roles.owner, salt).call()
        assert answer["wallet"] == predicted
        assert "1,234.000000000000000007 WTT" in answer["summary"], answer["summary"]
        assert "12.340000000000000001 WTT" in answer["summary"], answer["summary"]  # the fee
        assert all(int(t["max_fee_per_gas"]) >= int(t["max_priority_fee_per_gas"]) > 0
                   for t in answer["transactions"])  # fmt: skip

        before = stack.token.functions.balanceOf(roles.owner).call()
        send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
        session = await indexed_session(api, fresh_chain, db, factory, predicted)
    assert stack.token.functions.balanceOf(roles.owner).call() == before - deposit - fee
    expected = {
        "wallet": predicted, "owner": roles.owner, "operator": roles.operator,
        "token": stack.token.address, "initial_deposit": str(deposit), "deposit": str(deposit),
        "balance": str(deposit), "fee": str(fee), "budget": str(500 * TOKEN),
        "stop_loss": str(200 * TOKEN), "take_profit": str(3_000 * TOKEN),
        "expiry": str(body["expiry"]), "policy": "berzerker", "status": "active",
        "targets": [stack.game.address, stack.overpull.address], "salt": answer["salt"],
    }  # fmt: skip
    assert {k: session[k] for k in expected} == expected
    wallet = fresh_chain.at("SessionWallet", predicted)
    assert wallet.functions.maxFeeBps().call() == FEE_BPS


async def test_create_with_enough_allowance_is_one_transaction_and_a_given_salt(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    fresh_chain.send(stack.token.functions.approve(factory, 10**40), roles.owner)
    salt = "0x" + "ab" * 32
    body = _create_body(fresh_chain, stack, roles, salt=salt, stop_loss="0", targets=[])
    del body["take_profit"], body["policy"]  # defaults: none, ""
    async with serve_prepare(db, fresh_chain, factory) as api:
        answer = await api.ok("/prepare/create", body)
        assert [t["step"] for t in answer["transactions"]] == ["create"]
        assert answer["salt"] == salt
        send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
        session = await indexed_session(api, fresh_chain, db, factory, answer["wallet"])
        assert (session["stop_loss"], session["take_profit"], session["policy"]) == ("0", "0", "")
        assert session["targets"] == [] and session["salt"] == salt
        # the same salt again: the wallet exists, a 409 naming the salt
        status, error = await api.post("/prepare/create", body)
    assert status == 409 and error["error"]["parameter"] == "/salt", error


async def test_top_up_approves_the_wallet_and_deposits_with_the_fee_on_top(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    s = make_session()
    w = s.wallet.address
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    amount = 77 * TOKEN + 3
    async with serve_prepare(db, fresh_chain, factory) as api:
        body = {"owner": roles.owner, "wallet": w.lower(), "amount": str(amount),
                "max_fee_bps": FEE_BPS}  # fmt: skip
        answer = await api.ok("/prepare/top-up", body)
        assert [t["step"] for t in answer["transactions"]] == ["approve", "deposit"]
        assert answer["wallet"] == w and answer["fee"] == str(ceil_fee(amount))
        treasury = stack.token.functions.balanceOf(roles.treasury).call()
        send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
        session = await indexed_session(api, fresh_chain, db, factory, w)
    first = 1_000 * TOKEN
    assert session["balance"] == str(first + amount)
    assert session["deposit"] == str(first + amount)
    assert session["fee"] == str(ceil_fee(first) + ceil_fee(amount))
    assert stack.token.functions.balanceOf(roles.treasury).call() == treasury + ceil_fee(amount)
    assert stack.token.functions.allowance(roles.owner, w).call() == 0  # exactly used


async def test_withdraw_extend_revoke_close_each_do_what_was_asked(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    s = make_session()
    w = s.wallet.address
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    key = key_of(fresh_chain, roles.owner)
    me = {"owner": roles.owner, "wallet": w}
    async with serve_prepare(db, fresh_chain, factory) as api:
        answer = await api.ok("/prepare/withdraw", {**me, "amount": str(300 * TOKEN + 1)})
        assert [t["step"] for t in answer["transactions"]] == ["withdraw"]
        send_prepared(fresh_chain, answer["transactions"], key)
        session = await indexed_session(api, fresh_chain, db, factory, w)
        assert session["withdrawn"] == str(300 * TOKEN + 1)
        assert session["balance"] == str(700 * TOKEN - 1)

        later = s.params["expiry"] + 7 * 86_400
        answer = await api.ok("/prepare/extend", {**me, "expiry": later})
        send_prepared(fresh_chain, answer["transactions"], key)
        session = await indexed_session(api, fresh_chain, db, factory, w)
        assert session["expiry"] == str(later)

        answer = await api.ok("/prepare/revoke", me)
        send_prepared(fresh_chain, answer["transactions"], key)
        session = await indexed_session(api, fresh_chain, db, factory, w)
        assert session["status"] == "revoked"

        owner_before = stack.token.functions.balanceOf(roles.owner).call()
        answer = await api.ok("/prepare/close", me)
        assert "699.999999999999999999 WTT" in answer["summary"], answer["summary"]
        send_prepared(fresh_chain, answer["transactions"], key)
        session = await indexed_session(api, fresh_chain, db, factory, w)
        assert (session["status"], session["close_reason"]) == ("closed", "owner")
        assert session["refund"] == str(700 * TOKEN - 1) and session["balance"] == "0"
        assert stack.token.functions.balanceOf(roles.owner).call() == owner_before + 700 * TOKEN - 1

        # closed now: every wallet endpoint answers 409 naming the wallet
        for path, extra in (("top-up", {"amount": "1", "max_fee_bps": FEE_BPS}),
                            ("withdraw", {"amount": "1"}), ("extend", {"expiry": later + 1}),
                            ("revoke", {}), ("close", {})):  # fmt: skip
            status, error = await api.post(f"/prepare/{path}", {**me, **extra})
            assert status == 409 and error["error"]["parameter"] == "/wallet", (path, error)
            assert "closed" in error["error"]["message"]


async def test_withdraw_counts_the_fee_an_unrecorded_inflow_pays_first(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    """A plain transfer into the wallet pays its fee when the withdraw absorbs it: the
    whole balance is not available, the balance after that fee is."""
    s = make_session()
    w = s.wallet.address
    fresh_chain.send(stack.token.functions.transfer(w, 100 * TOKEN), roles.owner2)
    available = 1_100 * TOKEN - ceil_fee(100 * TOKEN)
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    me = {"owner": roles.owner, "wallet": w}
    async with serve_prepare(db, fresh_chain, factory) as api:
        status, error = await api.post("/prepare/withdraw", {**me, "amount": str(available + 1)})
        assert status == 409 and error["error"]["parameter"] == "/amount", error
        answer = await api.ok("/prepare/withdraw", {**me, "amount": str(available)})
        send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
        session = await indexed_session(api, fresh_chain, db, factory, w)
    assert session["balance"] == "0" and session["withdrawn"] == str(available)


async def test_an_answer_is_the_owners_consent_not_a_promise_a_race_can_break(
    fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    """Between the answer and the signature the chain moves: a fee raised is refused by
    the consent the prepared top-up carries (nothing but the approval happens), a balance
    spent elsewhere makes the prepared withdraw revert; preparing again says why."""
    s = make_session()
    w = s.wallet.address
    db, factory = tmp_path / "w.sqlite", stack.factory.address
    key = key_of(fresh_chain, roles.owner)
    me = {"owner": roles.owner, "wallet": w}
    async with serve_prepare(db, fresh_chain, factory) as api:
        top_up = await api.ok("/prepare/top-up", {**me, "amount": str(TOKEN), "max_fee_bps": 100})
        withdraw = await api.ok("/prepare/withdraw", {**me, "amount": str(1_000 * TOKEN)})
        fresh_chain.send(stack.factory.functions.setFee(200), roles.deployer)
        before = stack.token.functions.balanceOf(roles.owner).call()
        approve, deposit = send_prepared(fresh_chain, top_up["transactions"], key, succeed=False)
        assert (approve["status"], deposit["status"]) == ("0x1", "0x0")
        assert stack.token.functions.balanceOf(roles.owner).call() == before
        status, error = await api.post(
            "/prepare/top-up", {**me, "amount": str(TOKEN), "max_fee_bps": 100}
        )
        assert status == 400 and "consent to at least 200" in error["error"]["message"]

        fresh_chain.send(s.wallet.functions.withdraw(TOKEN), roles.owner)  # elsewhere
        # the prepared nonce is taken now: re-sign with the next one, as a wallet would
        late = [{**withdraw["transactions"][0],
                 "nonce": fresh_chain.w3.eth.get_transaction_count(roles.owner)}]  # fmt: skip
        (receipt,) = send_prepared(fresh_chain, late, key, succeed=False)
        assert receipt["status"] == "0x0"
        session = await indexed_session(api, fresh_chain, db, factory, w)
        assert session["balance"] == str(999 * TOKEN) and session["status"] == "active"
        status, error = await api.post("/prepare/withdraw", {**me, "amount": str(1_000 * TOKEN)})
        assert status == 409 and "can pay out 999 WTT" in error["error"]["message"], error
