"""Revert decoding: every error of the contracts round-trips, real reverts from anvil
(through the executor's own RPC client) decode to the right error and verdict, a real
`closeBatch` reports its failed members, and garbage never raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import CallReverted, ChainClient
from chain.errors import BadResponse
from chain.reverts import (
    EMPTY,
    MALFORMED,
    OBSOLETE_ERRORS,
    Revert,
    batch_failures,
    decode_revert,
    error_specs,
)
from contracts import load_artifact
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Session, Stack


def abi_errors(contract: str) -> list[dict[str, Any]]:
    return [item for item in load_artifact(contract).abi if item["type"] == "error"]


def signature(item: dict[str, Any]) -> str:
    return f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"


def selector_of(sig: str) -> str:
    return "0x" + keccak(text=sig)[:4].hex()


def value_strategy(typ: str) -> st.SearchStrategy[Any]:
    if typ.startswith("uint"):
        return st.integers(0, 2 ** int(typ[4:]) - 1)
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(to_checksum_address)
    if typ == "string":
        return st.text()
    if typ.startswith("bytes") and typ[5:].isdigit():
        size = int(typ[5:])
        return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())
    raise AssertionError(f"no strategy for {typ}: add one")


ALL_ERRORS = [
    (contract, item)
    for contract in ("SessionWallet", "SessionWalletFactory", "MockToken")
    for item in abi_errors(contract)
] + [("builtin", {"name": "Error", "inputs": [{"type": "string"}]}),
     ("builtin", {"name": "Panic", "inputs": [{"type": "uint256"}]})]  # fmt: skip


def test_the_table_holds_every_error_the_docs_name() -> None:
    names = {spec.name for spec in error_specs().values()}
    documented = {
        "NotFactory", "NotOwner", "NotOperator", "SessionIsClosed", "OperatorRevoked",
        "AlreadyRevoked", "SessionExpired", "ExecutionPaused", "OperatorNotTrusted",
        "TargetNotAllowed", "BudgetExceeded", "AmountExceedsBalance", "ZeroAmount",
        "ExpiryNotLater", "NotSweepable", "NothingToSync", "SessionStillOpen",
        "InvalidInitialization", "ReentrancyGuardReentrantCall", "SafeERC20FailedOperation",
        "SessionsPaused", "ZeroAddress", "ZeroDeposit", "ExpiryNotInFuture",
        "UntrustedOperator", "UntrustedTarget", "TooManyTargets", "PolicyTooLong",
        "InvalidThresholds", "FeeTooHigh", "LengthMismatch", "BatchTooLarge", "UnknownWallet",
        "OwnableUnauthorizedAccount", "FailedDeployment", "ERC20InsufficientBalance",
        "ERC20InsufficientAllowance", "Error", "Panic", "CallNotAllowed", "FeeAboveMax",
        "UntrustedToken", "TokenAsTarget", "MemberGasOutOfRange",
    }  # fmt: skip
    assert documented <= names
    assert names >= OBSOLETE_ERRORS
    assert {signature(item) for _, item in ALL_ERRORS} == {
        f"{s.name}({','.join(s.types)})" for s in error_specs().values()
    }


@pytest.mark.parametrize(
    ("contract", "item"), ALL_ERRORS, ids=[f"{c}.{i['name']}" for c, i in ALL_ERRORS]
)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_error_round_trips(contract: str, item: dict[str, Any], data: st.DataObject) -> None:
    types = [i["type"] for i in item["inputs"]]
    args = tuple(data.draw(value_strategy(t)) for t in types)
    sel = selector_of(signature(item))
    wire = [
        bytes.fromhex(a[2:]) if t.startswith("bytes") else a
        for t, a in zip(types, args, strict=True)
    ]
    raw = sel + encode(types, wire).hex()
    revert = decode_revert(raw)
    assert revert == Revert(item["name"], args, sel)
    assert revert.obsolete == (item["name"] in OBSOLETE_ERRORS)
    assert revert.data == raw
    assert decode_revert(bytes.fromhex(raw[2:])) == revert  # bytes in, same answer
    assert all(type(a) is type(b) for a, b in zip(revert.args, args, strict=True))
    assert str(revert).startswith(item["name"] + "(")
    # the arguments must be all there: one word short is malformed, never a wrong answer
    if types:
        short = decode_revert(raw[:-64])
        assert short.name == MALFORMED and not short.obsolete and short.selector == sel


def test_string_forms() -> None:
    def enc(sig: str, *args: Any) -> str:
        types = sig[sig.index("(") + 1 : -1].split(",") if "()" not in sig else []
        return selector_of(sig) + encode(types, list(args)).hex()

    assert str(decode_revert(enc("SessionIsClosed()"))) == "SessionIsClosed()"
    assert str(decode_revert(enc("BudgetExceeded(uint256,uint256)", 1, 2))) == (
        "BudgetExceeded(1, 2)"
    )
    assert str(decode_revert(enc("Error(string)", 'no "way"'))) == 'Error("no \\"way\\"")'
    assert str(decode_revert(enc("Error(string)", "0xabc"))) == 'Error("0xabc")'
    assert str(decode_revert(enc("Panic(uint256)", 0x11))) == "Panic(0x11)"
    who = "0x" + "Ab" * 20
    assert str(decode_revert(enc("TargetNotAllowed(address)", who))) == (
        f"TargetNotAllowed({to_checksum_address(who)})"
    )
    huge = 2**256 - 1  # exact, not a float
    assert decode_revert(enc("BudgetExceeded(uint256,uint256)", huge, 0)).args == (huge, 0)
    for empty in (None, "", "0x", b""):
        revert = decode_revert(empty)
        assert (revert.name, revert.selector, revert.obsolete) == (EMPTY, None, False)
        assert str(revert) == "empty revert"
    unknown = decode_revert("0xdeadbeef" + "00" * 32)
    assert str(unknown) == "unknown error 0xdeadbeef"
    assert unknown.selector == "0xdeadbeef" and not unknown.obsolete
    assert unknown.data == "0xdeadbeef" + "00" * 32  # kept whole for the report
    assert str(decode_revert("0xdead")).startswith("malformed revert data")


def test_a_revert_built_by_name_equals_the_decoded_one() -> None:
    """Tests and callers write `Revert("SessionIsClosed")`: it must be the same value."""
    sel = selector_of("SessionIsClosed()")
    assert Revert("SessionIsClosed") == decode_revert(sel)
    assert Revert("SessionIsClosed").obsolete and Revert("SessionIsClosed").selector == sel
    assert not Revert("NotOwner", ()).obsolete
    # InsufficientBalance has one signature in both ABIs: its selector is known too
    assert Revert("InsufficientBalance", (1, 2)).selector == selector_of(
        "InsufficientBalance(uint256,uint256)"
    )


GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    st.text(max_size=100),
    st.sampled_from(list(error_specs())).flatmap(
        lambda sel: st.binary(max_size=200).map(lambda b: sel + b.hex())
    ),
    st.none(),
)


@settings(max_examples=500, deadline=None)
@given(data=GARBAGE)
def test_garbage_never_raises(data: Any) -> None:
    revert = decode_revert(data)
    assert isinstance(revert, Revert)
    assert isinstance(str(revert), str)
    if revert.obsolete:
        # an obsolete verdict only ever comes from a well-formed known error
        assert revert.name in OBSOLETE_ERRORS and revert.selector == selector_of(revert.name + "()")


@pytest.mark.parametrize("bad", ["0x0", "0xzz112233", "0x1122 3344", "11", "0x00", "0x000000"])
def test_malformed_inputs(bad: str) -> None:
    revert = decode_revert(bad)
    assert revert.name == MALFORMED and not revert.obsolete


# -- real reverts from anvil ----------------------------------------------------------


async def preflight(chain: Chain, fn: Any, sender: str) -> Revert | None:
    """What the executor's preflight sees: eth_call through `ChainClient`."""
    tx = fn.build_transaction({"from": sender, "gas": 3_000_000})
    call = {"from": sender, "to": tx["to"], "data": tx["data"]}
    async with ChainClient([chain.anvil.url]) as client:
        try:
            await client.call("eth_call", call, "latest")
        except CallReverted as exc:
            return decode_revert(exc.data)
    return None


async def test_obsolete_reverts_from_the_chain(
    fresh_chain: Chain, make_session: Callable[..., Session], roles: Roles
) -> None:
    chain = fresh_chain
    closed = make_session()
    chain.send(closed.wallet.functions.close(CloseReason.OWNER), roles.owner)
    again = closed.wallet.functions.close(CloseReason.STOP_LOSS)
    revert = await preflight(chain, again, roles.operator)
    assert revert == Revert("SessionIsClosed") and revert.obsolete
    _, mined = chain.try_send(again, roles.operator)  # the same, from a mined transaction
    assert mined == revert

    revoked = make_session()
    chain.send(revoked.wallet.functions.revoke(), roles.owner)
    revert = await preflight(
        chain, revoked.wallet.functions.close(CloseReason.STOP_LOSS), roles.operator
    )
    assert revert is not None and revert.name == "OperatorRevoked" and revert.obsolete

    open_one = make_session()  # open and not expired: nobody but its parties may close it
    revert = await preflight(
        chain, open_one.wallet.functions.close(CloseReason.SWEPT), roles.stranger
    )
    assert revert is not None and revert.name == "NotSweepable" and revert.obsolete
    # a close that would succeed is no revert at all
    assert await preflight(chain, open_one.wallet.functions.close(1), roles.operator) is None


async def test_failures_from_the_chain_are_not_obsolete(
    fresh_chain: Chain, make_session: Callable[..., Session], roles: Roles, stack: Stack
) -> None:
    chain = fresh_chain
    s = make_session()
    revert = await preflight(chain, s.wallet.functions.close(CloseReason.OWNER), roles.operator)
    assert revert == Revert("NotOwner") and not revert.obsolete
    revert = await preflight(chain, s.wallet.functions.withdraw(10_000 * TOKEN), roles.owner)
    assert revert == Revert("AmountExceedsBalance", (10_000 * TOKEN, 1_000 * TOKEN))
    assert not revert.obsolete
    revert = await preflight(
        chain, stack.factory.functions.closeBatch([roles.owner], [], 100_000), roles.operator
    )
    assert revert is not None and revert.name == "LengthMismatch" and not revert.obsolete
    # an ERC-20 error from the token itself
    revert = await preflight(chain, stack.token.functions.transfer(roles.owner, 1), roles.stranger)
    assert revert == Revert("ERC20InsufficientBalance", (roles.stranger, 0, 1))


async def test_batch_failures_from_a_real_close_batch(
    fresh_chain: Chain, make_session: Callable[..., Session], roles: Roles, stack: Stack
) -> None:
    chain = fresh_chain
    good = [make_session(deposit=(i + 1) * TOKEN) for i in range(2)]
    already_closed = make_session()
    chain.send(already_closed.wallet.functions.close(CloseReason.OWNER), roles.owner)
    revoked = make_session()
    chain.send(revoked.wallet.functions.revoke(), roles.owner)
    stranger = stack.lookalike.address  # not a wallet of this factory
    members = [good[0].wallet.address, already_closed.wallet.address, stranger,
               revoked.wallet.address, good[1].wallet.address]  # fmt: skip
    receipt = chain.send(
        stack.factory.functions.closeBatch(
            members, [CloseReason.STOP_LOSS] * len(members), 100_000
        ),
        roles.operator,
    )
    expected = {
        already_closed.wallet.address: Revert("SessionIsClosed"),
        stranger: Revert("UnknownWallet", (stranger,)),
        revoked.wallet.address: Revert("OperatorRevoked"),
    }
    # web3's receipt (bytes topics) and the raw JSON-RPC one (hex strings) agree
    assert batch_failures(receipt["logs"], stack.factory.address) == expected
    raw = chain.anvil.rpc("eth_getTransactionReceipt", receipt["transactionHash"].to_0x_hex())
    assert batch_failures(raw["logs"], stack.factory.address.lower()) == expected
    assert {w for w, r in expected.items() if r.obsolete} == {
        already_closed.wallet.address,
        revoked.wallet.address,
    }
    # the same logs credited to another address are not the factory's word
    assert batch_failures(raw["logs"], stack.token.address) == {}


def test_batch_failures_ignores_look_alikes_and_rejects_broken_logs() -> None:
    factory = "0x" + "11" * 20
    topic = "0x" + keccak(text="BatchCloseFailed(address,bytes)").hex()
    wallet = "0x" + "00" * 12 + "22" * 20
    reason = selector_of("SessionIsClosed()")
    data = "0x" + encode(["bytes"], [bytes.fromhex(reason[2:])]).hex()
    log = {"address": factory, "topics": [topic, wallet], "data": data, "logIndex": "0x0"}
    spoof = {**log, "address": "0x" + "33" * 20}
    other_event = {**log, "topics": ["0x" + "44" * 32, wallet]}
    assert batch_failures([log, spoof, other_event, {"address": factory, "topics": []}], factory)
    assert batch_failures([spoof, other_event], factory) == {}
    (revert,) = batch_failures([log], factory).values()
    assert revert == Revert("SessionIsClosed")
    with pytest.raises(BadResponse, match="data too short"):
        batch_failures([{**log, "data": "0x"}], factory)
    with pytest.raises(BadResponse, match="not hex"):
        batch_failures([{**log, "data": "0xzz"}], factory)
    with pytest.raises(BadResponse, match="topics"):
        batch_failures([{**log, "topics": [topic]}], factory)
    # a nested reason that is garbage is reported as such, not raised
    junk = "0x" + encode(["bytes"], [b"\x01\x02"]).hex()
    (junk_revert,) = batch_failures([{**log, "data": junk}], factory).values()
    assert junk_revert.name == MALFORMED and not junk_revert.obsolete
