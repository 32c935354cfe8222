"""The fee (contracts v2, issue 15): paid once on every inflow the operator can spend,
rounded up, never above the creator's `maxFeeBps`: the creation deposit and every top-up
(on top, by the owner), a balance already at the predicted address and any plain transfer
the wallet finds (out of the inflow, in a `Synced`). A close refunds without a fee."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from tests._chain import Chain, CloseReason
from tests.conftest import (
    FEE_BPS,
    TOKEN,
    Roles,
    Session,
    Stack,
    as_tuple,
    ceil_fee,
    session_params,
)

pytestmark = pytest.mark.usefixtures("fresh_chain")


def top_up(chain: Chain, s: Session, owner: str, amount: int, fee: int, max_bps: int) -> Any:
    chain.send(chain.at("MockToken", s.params["token"]).functions.approve(
        s.wallet.address, amount + fee), owner)  # fmt: skip
    return chain.send(s.wallet.functions.deposit(amount, max_bps), owner)


def treasury_gain(chain: Chain, stack: Stack, roles: Roles, since: int) -> int:
    return chain.balance(stack.token, roles.treasury) - since


def test_a_99_wei_deposit_and_top_up_each_pay_the_fee_rounded_up(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    assert [ceil_fee(a) for a in (1, 99, 100, 101, 10_000)] == [1, 1, 1, 2, 100]
    assert [stack.factory.functions.feeFor(a).call() for a in (0, 1, 99, 100, 101)] == [
        0, 1, 1, 1, 2]  # fmt: skip
    treasury = chain.balance(stack.token, roles.treasury)
    owner = chain.balance(stack.token, roles.owner)
    s = make_session(deposit=99)
    (created,) = chain.events(s.receipt, stack.factory)
    assert (created["args"]["fee"], created["args"]["balanceAfter"]) == (1, 99)
    assert treasury_gain(chain, stack, roles, treasury) == 1
    # the fee is on top: an allowance of just the amount does not do
    chain.send(stack.token.functions.approve(s.wallet.address, 99), roles.owner)
    revert = chain.expect_revert(s.wallet.functions.deposit(99, FEE_BPS), roles.owner,
                                 "ERC20InsufficientAllowance")  # fmt: skip
    assert revert.args == (s.wallet.address, 0, 1)
    r = top_up(chain, s, roles.owner, 99, 1, FEE_BPS)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["event"], dict(ev["args"])) == ("Deposited", {
        "seq": 1, "from": roles.owner, "amount": 99, "fee": 1, "balanceAfter": 198})  # fmt: skip
    # splitting saves nothing: three 1-wei top-ups pay 1 wei each
    for seq in (2, 3, 4):
        (ev,) = chain.events(top_up(chain, s, roles.owner, 1, 1, FEE_BPS), s.wallet)
        assert (ev["args"]["seq"], ev["args"]["fee"]) == (seq, 1)
    assert treasury_gain(chain, stack, roles, treasury) == 5
    assert owner - chain.balance(stack.token, roles.owner) == 99 + 99 + 3 + 5
    assert chain.balance(stack.token, s.wallet.address) == 201


def test_a_balance_already_at_the_predicted_address_pays_the_fee(
    chain: Chain, stack: Stack, roles: Roles
) -> None:
    salt = b"\x33" * 32
    f = stack.factory.functions
    predicted = f.predictWallet(roles.owner, salt).call()
    prefund, deposit = 12_345, 1_000 * TOKEN
    chain.send(stack.token.functions.transfer(predicted, prefund), roles.owner2)
    treasury = chain.balance(stack.token, roles.treasury)
    chain.send(stack.token.functions.approve(stack.factory.address,
                                             deposit + ceil_fee(deposit)), roles.owner)  # fmt: skip
    params = session_params(chain, stack, roles, deposit=deposit)
    receipt = chain.send(f.createSession(as_tuple(params), salt), roles.owner)
    (created,) = chain.events(receipt, stack.factory)
    fee = ceil_fee(deposit) + ceil_fee(prefund)  # 10 * TOKEN + 124
    balance = deposit + prefund - ceil_fee(prefund)
    assert created["args"]["wallet"] == predicted
    assert (created["args"]["fee"], created["args"]["balanceAfter"]) == (fee, balance)
    assert treasury_gain(chain, stack, roles, treasury) == fee
    wallet = chain.at("SessionWallet", predicted)
    assert chain.balance(stack.token, predicted) == wallet.functions.recordedBalance().call()
    assert wallet.functions.recordedBalance().call() == balance
    paid = [(e["args"]["from"], e["args"]["value"]) for e in chain.events(receipt, stack.token)
            if e["event"] == "Transfer" and e["args"]["to"] == roles.treasury]  # fmt: skip
    assert sorted(paid) == sorted([(roles.owner, ceil_fee(deposit)),
                                   (predicted, ceil_fee(prefund))])  # fmt: skip


INFLOW = 12_345  # pays ceil(123.45) = 124 at 1 %


Op = Callable[[Stack, Session, Contract], ContractFunction]


def _play(st: Stack, s: Session, stuck: Contract) -> ContractFunction:
    data = st.game.encode_abi("play", args=[TOKEN])
    return s.wallet.functions.execute(st.game.address, data, TOKEN)


# operation -> (caller, call, the event it emits after the Synced); `stuck` is another
# token sitting in the wallet, for `recover`
OPERATIONS: dict[str, tuple[str, Op, str | None]] = {
    "execute": ("operator", _play, "Executed"),
    "withdraw": ("owner", lambda st, s, stuck: s.wallet.functions.withdraw(TOKEN), "Withdrawn"),
    "extend": ("owner", lambda st, s, stuck: s.wallet.functions.extend(s.params["expiry"] + 1),
               "Extended"),
    "revoke": ("owner", lambda st, s, stuck: s.wallet.functions.revoke(), "Revoked"),
    "sync": ("stranger", lambda st, s, stuck: s.wallet.functions.sync(), None),
    "recover": ("stranger", lambda st, s, stuck: s.wallet.functions.recover(stuck.address),
                "Recovered"),
}  # fmt: skip


@pytest.mark.parametrize("op", OPERATIONS, ids=str)
def test_a_plain_transfer_pays_its_fee_before_the_next_operation(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session], op: str
) -> None:
    """Whatever runs next records the inflow first, fee taken out of it, in a `Synced`."""
    caller, call, event = OPERATIONS[op]
    s = make_session()
    stuck = chain.deploy("MockToken", "Stuck", "STK")
    chain.send(stuck.functions.mint(s.wallet.address, 5), roles.deployer)
    chain.send(stack.game.functions.setOutcome(False, 0), roles.deployer)
    treasury = chain.balance(stack.token, roles.treasury)
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    r = chain.send(call(stack, s, stuck), getattr(roles, caller))
    events = chain.events(r, s.wallet)
    synced, rest = events[0], events[1:]
    fee = ceil_fee(INFLOW)
    assert (synced["event"], dict(synced["args"])) == ("Synced", {
        "seq": 1, "previousBalance": 1_000 * TOKEN, "fee": fee,
        "balanceAfter": 1_000 * TOKEN + INFLOW - fee})  # fmt: skip
    assert [e["event"] for e in rest] == ([] if event is None else [event])
    assert all(e["args"]["seq"] == 2 for e in rest)
    assert treasury_gain(chain, stack, roles, treasury) == fee
    out = TOKEN if op in ("execute", "withdraw") else 0  # lost to the game, or withdrawn
    balance = 1_000 * TOKEN + INFLOW - fee - out
    assert chain.balance(stack.token, s.wallet.address) == balance
    assert s.wallet.functions.recordedBalance().call() == balance
    if rest:
        assert rest[0]["args"]["balanceAfter"] == balance


def test_an_operation_refused_records_no_inflow_and_takes_no_fee(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    treasury = chain.balance(stack.token, roles.treasury)
    chain.expect_revert(s.wallet.functions.withdraw(10**6 * TOKEN), roles.owner,
                        "AmountExceedsBalance")  # fmt: skip
    chain.expect_revert(s.wallet.functions.withdraw(TOKEN), roles.stranger, "NotOwner")
    assert treasury_gain(chain, stack, roles, treasury) == 0
    assert s.wallet.functions.recordedBalance().call() == 1_000 * TOKEN


def test_a_close_refunds_everything_without_a_fee(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    treasury = chain.balance(stack.token, roles.treasury)
    owner = chain.balance(stack.token, roles.owner)
    r = chain.send(s.wallet.functions.close(CloseReason.OWNER), roles.owner)
    (ev,) = chain.events(r, s.wallet)
    assert (ev["event"], ev["args"]["refund"]) == ("Closed", 1_000 * TOKEN + INFLOW)
    assert chain.balance(stack.token, roles.owner) - owner == 1_000 * TOKEN + INFLOW
    # a late inflow after the close is recovered to the owner, without a fee either
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    chain.send(s.wallet.functions.recover(stack.token.address), roles.stranger)
    assert chain.balance(stack.token, roles.owner) - owner == 1_000 * TOKEN + 2 * INFLOW
    assert treasury_gain(chain, stack, roles, treasury) == 0


def test_max_fee_refuses_a_raised_fee_and_caps_what_found_inflows_pay(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    s = make_session()  # consented to FEE_BPS (100)
    f = stack.factory.functions
    chain.send(f.setFee(150), roles.deployer)  # raised while a creation was pending
    params = session_params(chain, stack, roles)
    chain.send(stack.token.functions.approve(stack.factory.address, 10**4 * TOKEN), roles.owner)
    revert = chain.expect_revert(f.createSession(as_tuple(params), b"\x05" * 32), roles.owner,
                                 "FeeAboveMax")  # fmt: skip
    assert revert.args == (150, FEE_BPS)
    chain.send(stack.token.functions.approve(s.wallet.address, 10**4 * TOKEN), roles.owner)
    revert = chain.expect_revert(s.wallet.functions.deposit(TOKEN, FEE_BPS), roles.owner,
                                 "FeeAboveMax")  # fmt: skip
    assert revert.args == (150, FEE_BPS)
    # a top-up consents per call: at 150 it goes through, paying 150
    (ev,) = chain.events(chain.send(s.wallet.functions.deposit(TOKEN, 150), roles.owner),
                         s.wallet)  # fmt: skip
    assert ev["args"]["fee"] == ceil_fee(TOKEN, 150)
    # a found inflow has no consent but the creator's: the lower of the two rates
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    (ev,) = chain.events(chain.send(s.wallet.functions.sync(), roles.stranger), s.wallet)
    assert ev["args"]["fee"] == ceil_fee(INFLOW, FEE_BPS) == 124
    chain.send(f.setFee(50), roles.deployer)
    chain.send(stack.token.functions.transfer(s.wallet.address, INFLOW), roles.owner2)
    (ev,) = chain.events(chain.send(s.wallet.functions.sync(), roles.stranger), s.wallet)
    assert ev["args"]["fee"] == ceil_fee(INFLOW, 50) == 62


def test_a_zero_fee_takes_nothing_anywhere(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    f = stack.factory.functions
    chain.send(f.setFee(0), roles.deployer)
    treasury = chain.balance(stack.token, roles.treasury)
    salt = b"\x06" * 32
    chain.send(stack.token.functions.transfer(f.predictWallet(roles.owner, salt).call(), 7),
               roles.owner2)  # fmt: skip
    chain.send(stack.token.functions.approve(stack.factory.address, 500), roles.owner)
    params = session_params(chain, stack, roles, deposit=500, maxFeeBps=0)
    receipt = chain.send(f.createSession(as_tuple(params), salt), roles.owner)
    (created,) = chain.events(receipt, stack.factory)
    assert (created["args"]["fee"], created["args"]["balanceAfter"]) == (0, 507)
    transfers = [e for e in chain.events(receipt, stack.token) if e["event"] == "Transfer"]
    assert len(transfers) == 1  # the deposit alone
    wallet = chain.at("SessionWallet", created["args"]["wallet"])
    s = Session(wallet=wallet, params=params, receipt=receipt)
    (ev,) = chain.events(top_up(chain, s, roles.owner, 10, 0, 0), wallet)
    assert (ev["args"]["amount"], ev["args"]["fee"], ev["args"]["balanceAfter"]) == (10, 0, 517)
    chain.send(stack.token.functions.transfer(wallet.address, 3), roles.owner2)
    (ev,) = chain.events(chain.send(wallet.functions.sync(), roles.stranger), wallet)
    assert (ev["args"]["fee"], ev["args"]["balanceAfter"]) == (0, 520)
    assert treasury_gain(chain, stack, roles, treasury) == 0


def test_sync_records_a_decrease_as_it_is_without_a_fee(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> None:
    """A balance that fell outside the wallet (a rebasing or slashing token; here the
    token's storage is written directly) is recorded with fee 0."""
    s = make_session()
    # OpenZeppelin's ERC20 keeps `_balances` at slot 0
    slot = Web3.keccak(encode(["address", "uint256"], [s.wallet.address, 0]))
    lower = 1_000 * TOKEN - 77
    chain.anvil.rpc("anvil_setStorageAt", stack.token.address, slot.to_0x_hex(),
                    "0x" + lower.to_bytes(32, "big").hex())  # fmt: skip
    assert chain.balance(stack.token, s.wallet.address) == lower
    treasury = chain.balance(stack.token, roles.treasury)
    (ev,) = chain.events(chain.send(s.wallet.functions.sync(), roles.stranger), s.wallet)
    assert (ev["event"], dict(ev["args"])) == ("Synced", {
        "seq": 1, "previousBalance": 1_000 * TOKEN, "fee": 0, "balanceAfter": lower})  # fmt: skip
    assert treasury_gain(chain, stack, roles, treasury) == 0
    chain.expect_revert(s.wallet.functions.sync(), roles.stranger, "NothingToSync")
