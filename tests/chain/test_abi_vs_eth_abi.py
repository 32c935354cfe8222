"""The hand-written ABI code against eth_abi, on random values: `EventSpec.decode` (the
backfill's decoder) reads every event exactly as `eth_abi.decode` reads the same topics
and data, and `calls.single`/`calls.batch` write byte for byte what `eth_abi.encode`
writes. Edge values (0, 1, 2^255, 2^256-1, empty strings and lists, non-ASCII text) are
drawn often on purpose."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import calls
from chain.abi import EventSpec, event_specs
from contracts import MAX_BATCH, POLICY_REASONS, SWEEP_REASON

EXAMPLES = 200
SPECS = {spec.name: spec for spec in event_specs().values()}


def uints(bits: int) -> st.SearchStrategy[int]:
    top = 2**bits - 1
    edges = st.sampled_from([0, 1, 2 ** (bits - 1), top - 1, top])
    return st.one_of(edges, st.integers(0, top))


addresses = st.binary(min_size=20, max_size=20).map(lambda raw: to_checksum_address(raw))
texts = st.one_of(st.sampled_from(["", "berzerker", "stop-loss ⛔ 止损", "🦊" * 40]), st.text())


def values(typ: str) -> st.SearchStrategy[Any]:
    """Python values of an ABI type, in the form `EventSpec.decode` returns them."""
    if typ == "address":
        return addresses
    if typ.startswith("uint"):
        return uints(int(typ[4:]))
    if typ == "bool":
        return st.booleans()
    if typ == "string":
        return texts
    if typ == "bytes":
        return st.binary(max_size=100).map(lambda b: "0x" + b.hex())
    if typ == "address[]":
        return st.lists(addresses, max_size=5)
    if typ.startswith("bytes"):
        size = int(typ[5:])
        return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())
    raise AssertionError(f"no strategy for {typ}")


def to_abi(typ: str, value: Any) -> Any:
    """The form eth_abi.encode takes."""
    if typ.startswith("bytes"):  # bytes and bytesN
        return bytes.fromhex(value[2:])
    return value


def from_abi(typ: str, value: Any) -> Any:
    """eth_abi.decode's answer in the form `EventSpec.decode` returns."""
    if typ == "address":
        return to_checksum_address(value)
    if typ == "address[]":
        return [to_checksum_address(v) for v in value]
    if typ.startswith("bytes"):
        return "0x" + value.hex()
    return value


def test_every_event_is_covered() -> None:
    types = {t for spec in SPECS.values() for _, t in (*spec.indexed, *spec.data)}
    assert {"address", "uint256", "bool", "string", "address[]"} <= types
    assert len(SPECS) == len(event_specs())


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_event_decoder_agrees_with_eth_abi(name: str, data: st.DataObject) -> None:
    spec: EventSpec = SPECS[name]
    fields = (*spec.indexed, *spec.data)
    args = {field: data.draw(values(typ), label=field) for field, typ in fields}
    topics = [spec.topic] + [encode([t], [to_abi(t, args[f])]) for f, t in spec.indexed]
    types = [t for _, t in spec.data]
    payload = encode(types, [to_abi(t, args[f]) for f, t in spec.data])

    ours = spec.decode(topics, payload)

    theirs = {f: from_abi(t, decode([t], topic)[0]) for (f, t), topic in zip(
        spec.indexed, topics[1:], strict=True)}  # fmt: skip
    decoded = decode(types, payload)
    theirs |= {f: from_abi(t, v) for (f, t), v in zip(spec.data, decoded, strict=True)}
    assert ours == theirs == args


MEMBERS = st.one_of(
    st.tuples(st.just("close"), st.sampled_from(sorted(POLICY_REASONS))),
    st.tuples(st.just("sweep"), st.just(SWEEP_REASON)),
)
WALLET_FORMS = st.sampled_from([str.lower, lambda a: a, lambda a: "0x" + a[2:].upper()])


@settings(max_examples=EXAMPLES, deadline=None)
@given(wallet=addresses, member=MEMBERS)
def test_single_call_equals_eth_abi(wallet: str, member: tuple[str, str]) -> None:
    action, reason = member
    call = calls.single(wallet, action, reason)
    if action == "sweep":
        assert call.payload == calls.SWEEP
    else:
        code = calls.reason_code(action, reason)
        assert call.payload == calls.CLOSE + encode(["uint8"], [code])
    assert call.to == wallet


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    factory=addresses,
    members=st.lists(st.tuples(addresses, MEMBERS, WALLET_FORMS), min_size=1, max_size=MAX_BATCH),
)
def test_batch_call_equals_eth_abi(
    factory: str, members: list[tuple[str, tuple[str, str], Any]]
) -> None:
    call = calls.batch(factory, [(form(w), a, r) for w, (a, r), form in members])
    wallets = [w for w, _, _ in members]
    codes = [calls.reason_code(a, r) for _, (a, r), _ in members]
    expected = calls.CLOSE_BATCH + encode(
        ["address[]", "uint8[]", "uint256"], [wallets, codes, calls.MEMBER_GAS]
    )
    assert call.payload == expected
    assert call.to == factory and call.kind == "batch"
