"""A token the registry trusts for its transfers may still answer anything in `decimals()`
and `symbol()`: revert, burn its gas, answer a huge number, no data, text that reads as
another symbol, megabytes. The prepare endpoints still answer, showing base units and the
token's address instead of what they cannot trust; and a token refusing the transfer
itself is a 409 naming its revert, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from web3.contract import Contract

from chain.errors import CallReverted
from tests._chain import Chain
from tests.conftest import FEE_BPS, Roles, Session, Stack
from tests.warden.app.api._prepare import key_of, send_prepared, serve_prepare
from warden.app.api.prepare_chain import read_decimals, read_symbol

# (decimals mode, symbol mode) → (decimals, symbol) as answered; modes in OddMetadataToken
MODES = [
    ((0, 0), (6, "ODD")),
    ((1, 1), (None, None)),  # revert with a reason
    ((2, 2), (None, None)),  # burn all the gas
    ((3, 3), (None, None)),  # one word of all ones
    ((4, 4), (None, None)),  # no data
    ((5, 5), (None, None)),  # a right-to-left override in the symbol
    ((6, 6), (None, None)),  # 5,000 zero bytes
    ((7, 7), (None, None)),  # not UTF-8
    ((8, 8), (None, None)),  # offset beyond the data
    ((9, 9), (None, "OLD")),  # bytes32 symbol; decimals 255
    ((0, 10), (6, None)),  # a newline in the symbol
]


@pytest.fixture
def odd(fresh_chain: Chain, stack: Stack, roles: Roles) -> Contract:
    token = fresh_chain.deploy("OddMetadataToken")
    fresh_chain.send(stack.factory.functions.setTrustedToken(token.address, True), roles.deployer)
    fresh_chain.send(token.functions.mint(roles.owner, 10**30), roles.deployer)
    return token


async def test_odd_decimals_and_symbols_never_break_an_answer(
    fresh_chain: Chain, stack: Stack, roles: Roles, odd: Contract, tmp_path: Path
) -> None:
    body = {
        "owner": roles.owner, "operator": roles.operator, "token": odd.address,
        "deposit": "12345678", "expiry": fresh_chain.now() + 3600, "budget": "1",
        "max_fee_bps": FEE_BPS,
    }  # fmt: skip
    async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address) as api:
        for (dm, sm), (decimals, symbol) in MODES:
            fresh_chain.send(odd.functions.setModes(dm, sm), roles.deployer)
            answer = await api.ok("/prepare/create", body)
            assert answer["token"] == {"address": odd.address, "symbol": symbol,
                                       "decimals": decimals}, (dm, sm)  # fmt: skip
            summary = answer["summary"]
            if decimals is None:
                assert f"12345678 base units of token {odd.address}" in summary, summary
            elif symbol is None:
                assert f"12.345678 of token {odd.address} (12345678 base units)" in summary
            else:
                assert "12.345678 ODD (12345678 base units)" in summary, summary
            assert "\u202e" not in summary and "\n" not in summary
        # the worst of them still opens the session as prepared
        fresh_chain.send(odd.functions.setModes(2, 6), roles.deployer)
        answer = await api.ok("/prepare/create", body)
        send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
    wallet = fresh_chain.at("SessionWallet", answer["wallet"])
    assert wallet.functions.owner().call() == roles.owner
    assert odd.functions.balanceOf(answer["wallet"]).call() == 12345678


async def test_a_token_refusing_its_transfers_is_a_409_naming_the_revert(
    fresh_chain: Chain, stack: Stack, roles: Roles, hostile_token: Contract, tmp_path: Path
) -> None:
    body = {
        "owner": roles.owner, "operator": roles.operator, "token": hostile_token.address,
        "deposit": "1000", "expiry": fresh_chain.now() + 3600, "budget": "1",
        "max_fee_bps": FEE_BPS,
    }  # fmt: skip
    async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address) as api:
        for mode, param in ((1, 0), (2, 0), (3, 100_000), (5, 0)):
            if mode == 5:
                hostile_token.functions.setBlocked(roles.owner, True).transact(
                    {"from": roles.deployer}
                )
            hostile_token.functions.setMode(mode, param).transact({"from": roles.deployer})
            status, answer = await api.post("/prepare/create", body)
            assert status == 409, (mode, answer)
            message = answer["error"]["message"]
            assert "the create transaction would revert with" in message, message
            assert len(message) < 600, message  # a 100 kB revert is not echoed


@pytest.mark.parametrize(
    ("answer", "decimals", "symbol"),
    [
        (bytes(31) + b"\x12", 18, None),
        (b"", None, None),
        (bytes(33), None, None),
        (CallReverted("reverted", "0x"), None, None),
        ((77).to_bytes(32, "big"), 77, None),
        ((78).to_bytes(32, "big"), None, None),
        (b"USDC".ljust(32, b"\0"), 0, "USDC"),  # bytes32: also a (huge) uint
        (
            (32).to_bytes(32, "big") + (4).to_bytes(32, "big") + b"WETH".ljust(32, b"\0"),
            None,
            "WETH",
        ),
        ((32).to_bytes(32, "big") + (0).to_bytes(32, "big"), None, None),  # empty
        ((32).to_bytes(32, "big") + (2**255).to_bytes(32, "big"), None, None),  # huge length
        ((2**255).to_bytes(32, "big") + bytes(32), None, None),  # huge offset
        (
            (32).to_bytes(32, "big")
            + (5).to_bytes(32, "big")
            + "W\u200bTH".encode().ljust(32, b"\0"),
            None,
            None,
        ),
        (
            (32).to_bytes(32, "big") + (3).to_bytes(32, "big") + b"A B".ljust(32, b"\0"),
            None,
            None,
        ),
        ((32).to_bytes(32, "big") + (40).to_bytes(32, "big") + b"A" * 64, None, None),
    ],
)
def test_metadata_decoding(
    answer: bytes | Exception, decimals: int | None, symbol: str | None
) -> None:
    assert read_symbol(answer) == symbol
    if isinstance(answer, bytes) and answer == b"USDC".ljust(32, b"\0"):
        assert read_decimals(answer) is None  # far above 77
    else:
        assert read_decimals(answer) == decimals


async def test_a_hostile_session_token_makes_the_wallet_routes_409_not_5xx(
    fresh_chain: Chain, stack: Stack, roles: Roles, hostile_token: Contract, tmp_path: Path,
    make_session: Callable[..., Session],
) -> None:  # fmt: skip
    """The token turns hostile after the session opened: every way out that moves it is
    refused with the token's own revert (or its gas burn), named, in a 409."""
    s = make_session(token=hostile_token.address)
    me = {"owner": roles.owner, "wallet": s.wallet.address}
    requests = {
        "top-up": {**me, "amount": "10", "max_fee_bps": FEE_BPS},
        "withdraw": {**me, "amount": "10"},
        "close": me,
    }
    async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, stack.factory.address) as api:
        for mode, param in ((1, 0), (2, 0), (3, 100_000), (5, 0)):
            hostile_token.functions.setMode(mode, param).transact({"from": roles.deployer})
            hostile_token.functions.setBlocked(roles.owner, mode == 5).transact(
                {"from": roles.deployer}
            )
            for path, body in requests.items():
                status, answer = await api.post(f"/prepare/{path}", body)
                assert status == 409, (mode, path, answer)
                assert "would revert with" in answer["error"]["message"], (mode, path, answer)
            # revoke and extend move no tokens: still prepared
            assert (await api.post("/prepare/revoke", me))[0] == 200


async def test_a_token_that_refuses_to_change_a_nonzero_approval_gets_a_reset_first(
    fresh_chain: Chain, stack: Stack, roles: Roles, odd: Contract, tmp_path: Path
) -> None:
    """USDT's rule: approve(x) over a non-zero allowance reverts. A partial allowance
    standing, the answer resets it to 0 first, for the creation and for a top-up; a token
    without the rule gets no reset."""
    key = key_of(fresh_chain, roles.owner)
    factory = stack.factory.address
    body = {
        "owner": roles.owner, "operator": roles.operator, "token": odd.address,
        "deposit": "1000000", "expiry": fresh_chain.now() + 3600, "budget": "1",
        "max_fee_bps": FEE_BPS,
    }  # fmt: skip
    fresh_chain.send(odd.functions.approve(factory, 5), roles.owner)  # partial, standing
    async with serve_prepare(tmp_path / "w.sqlite", fresh_chain, factory) as api:
        answer = await api.ok("/prepare/create", body)
        assert [t["step"] for t in answer["transactions"]] == ["approve", "create"]
        fresh_chain.send(odd.functions.setStrictApprove(True), roles.deployer)
        answer = await api.ok("/prepare/create", body)
        steps = [t["step"] for t in answer["transactions"]]
        assert steps == ["reset_approval", "approve", "create"], steps
        assert "Reset the approval of" in answer["summary"]
        nonces = [t["nonce"] for t in answer["transactions"]]
        assert nonces == [nonces[0], nonces[0] + 1, nonces[0] + 2]
        send_prepared(fresh_chain, answer["transactions"], key)
        wallet = answer["wallet"]
        assert odd.functions.balanceOf(wallet).call() == 1_000_000

        fresh_chain.send(odd.functions.approve(wallet, 0), roles.owner)
        fresh_chain.send(odd.functions.approve(wallet, 3), roles.owner)
        top_up = {"owner": roles.owner, "wallet": wallet, "amount": "500", "max_fee_bps": FEE_BPS}
        answer = await api.ok("/prepare/top-up", top_up)
        steps = [t["step"] for t in answer["transactions"]]
        assert steps == ["reset_approval", "approve", "deposit"], steps
        send_prepared(fresh_chain, answer["transactions"], key)
    assert odd.functions.balanceOf(wallet).call() == 1_000_500
