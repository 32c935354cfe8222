"""Only the calls Warden makes pass the shape check, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address

from chain import calls
from chain.abi import checksum
from chain.calls import CLOSE, CLOSE_BATCH, check_call
from contracts import MIN_MEMBER_GAS

FACTORY = "0x" + "fa" * 20
RELAYER = "0x" + "5e" * 20
A, B, STRANGER = ("0x" + c * 20 for c in ("aa", "bb", "cc"))
KNOWN = {w.lower() for w in (A, B)}  # check_call asks in lowercase


def check(to: str, data: str) -> str | None:
    return check_call(to, data, factory=FACTORY, relayer=RELAYER, known=KNOWN.__contains__)


def test_what_the_executor_builds_passes() -> None:
    for reason in ("stop_loss", "take_profit", "expired", "idle"):
        call = calls.single(A, "close", reason)
        assert check(call.to, call.data) is None
    sweep = calls.single(B, "sweep", "swept")
    assert check(sweep.to, sweep.data) is None
    batch = calls.batch(FACTORY, [(A, "close", "idle"), (B, "sweep", "swept")])
    assert check(batch.to, batch.data) is None
    cancel = calls.cancel(RELAYER)
    assert check(cancel.to, cancel.data) is None


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _batch(wallets: list[str], codes: list[int], stipend: int = calls.MEMBER_GAS) -> str:
    return _hex(
        CLOSE_BATCH + encode(["address[]", "uint8[]", "uint256"], [wallets, codes, stipend])
    )


@pytest.mark.parametrize(
    ("to", "data", "expected"),
    [
        (STRANGER, _hex(CLOSE + encode(["uint8"], [1])), "not a wallet the indexer knows"),
        (A, _hex(CLOSE + encode(["uint8"], [0])), "close reason 0 is not a policy reason"),
        (A, _hex(CLOSE + encode(["uint8"], [9])), "close reason 9 is not a policy reason"),
        (A, _hex(CLOSE + encode(["uint8"], [5])), "close(Swept) is sent as sweep()"),
        (A, "0xa9059cbb" + "00" * 64, "selector 0xa9059cbb"),
        (STRANGER, "0x", "value-less call to"),
        (A, _batch([A], [1]), "not the configured factory"),
        (FACTORY, _batch([A, STRANGER], [1, 1]), "not a wallet the indexer knows"),
        (FACTORY, _batch([A, B], [1]), "2 wallets and 1 reasons"),
        (FACTORY, _batch([A], [1], MIN_MEMBER_GAS - 1), f"stipend of {MIN_MEMBER_GAS - 1}"),
        (FACTORY, _batch([A], [1], 10**6 + 1), "member gas stipend of 1000001"),
        (FACTORY, _batch([A], [1], 2**256 - 1), "member gas stipend of"),
        (FACTORY, _hex(CLOSE_BATCH + b"\x00" * 5), "do not decode"),
        (A, "0xzz", "malformed call"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_with_the_reason(to: str, data: str, expected: str) -> None:
    problem = check(to, data)
    assert problem is not None and expected in problem


def test_builders_refuse_what_warden_never_sends() -> None:
    with pytest.raises(ValueError, match="reason 'owner'"):
        calls.single(A, "close", "owner")
    with pytest.raises(ValueError, match="1 to 256 members, not 257"):
        calls.batch(FACTORY, [(A, "close", "idle")] * 257)
    low = MIN_MEMBER_GAS - 1
    with pytest.raises(ValueError, match=f"stipend is {MIN_MEMBER_GAS} to 1000000, not {low}"):
        calls.batch(FACTORY, [(A, "close", "idle")], member_gas=low)


def test_fast_checksum_and_batch_encoding_equal_the_libraries() -> None:
    import random

    rng = random.Random(7)
    wallets = ["0x" + rng.randbytes(20).hex() for _ in range(300)]
    for wallet in wallets:
        assert checksum(bytes.fromhex(wallet[2:])) == to_checksum_address(wallet)
    members = [(w, "close", "expired") for w in wallets[:256]]
    expected = CLOSE_BATCH + encode(
        ["address[]", "uint8[]", "uint256"], [wallets[:256], [3] * 256, 250_000]
    )
    batch = calls.batch(FACTORY, members, member_gas=250_000)
    assert batch.payload == expected
    assert calls.member_gas(batch) == 250_000
    with pytest.raises(ValueError):
        calls.batch(FACTORY, [("0x" + "zz" * 20, "close", "idle")])
    with pytest.raises(ValueError):
        calls.batch(FACTORY, [("0x1234", "close", "idle")])


@pytest.mark.parametrize("seed", range(40))
def test_the_direct_reading_of_a_batch_agrees_with_eth_abi(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Canonical encodings (what `calls.batch` writes) are read without eth_abi; every
    other encoding, dirty padding included, gets eth_abi's verdict."""
    import random

    from eth_abi.abi import decode

    rng = random.Random(seed)
    n = rng.randint(1, 300)
    wallets = ["0x" + rng.randbytes(20).hex() for _ in range(n)]
    codes = [rng.randrange(256) for _ in range(n if seed % 3 else rng.randint(0, 300))]
    stipend = rng.choice([0, MIN_MEMBER_GAS, rng.randrange(2**256)])
    body = encode(["address[]", "uint8[]", "uint256"], [wallets, codes, stipend])
    with monkeypatch.context() as m:  # the canonical form never reaches eth_abi
        m.setattr(calls, "decode", None)
        got = calls._close_batch_arguments(body)
    want = decode(["address[]", "uint8[]", "uint256"], body)
    assert got == ([bytes.fromhex(w[2:]) for w in want[0]], list(want[1]), want[2])
    # a dirty byte where eth_abi wants padding (an address word's first 12 bytes, a
    # uint8 word's first 31), or a truncated tail: eth_abi decides, not the direct path
    spoiled = bytearray(body)
    where = rng.choice([4 * 32 + 3, len(body) - 20, len(body) - 1])
    spoiled[where] ^= 0xFF
    for bad in (bytes(spoiled), body[:-1], body + bytes(32)):
        assert _verdict(calls._close_batch_arguments, bad) == _verdict(_by_eth_abi, bad)


def _by_eth_abi(body: bytes) -> tuple[list[bytes], list[int], int]:
    from eth_abi.abi import decode

    wallets, codes, stipend = decode(["address[]", "uint8[]", "uint256"], body)
    return [bytes.fromhex(w[2:]) for w in wallets], list(codes), stipend


def _verdict(read: Any, body: bytes) -> object:
    try:
        return read(body)
    except Exception as exc:
        return type(exc)
