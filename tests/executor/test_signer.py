"""The relayer key: keystore round trip, password sources, devnet-only raw keys, and that
the key and the password never show up in anything a person or a log can see."""

from __future__ import annotations

import copy
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from executor.signer import (
    SignedTx,
    Signer,
    SignerError,
    load_password,
    write_keystore,
)

KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
ADDRESS = Account.from_key(KEY).address
PASSWORD = "correct horse battery staple"
CHEAP = 2**4  # scrypt n: fast for tests, never for real keys


def secrets_in(text: str) -> list[str]:
    """Which secret spellings appear in `text` (the key in any case, with or without 0x,
    and the password)."""
    lowered = text.lower()
    found = [s for s in (KEY[2:], KEY[2:].upper()) if s.lower() in lowered]
    found += [PASSWORD] if PASSWORD in text else []
    return found


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "relayer.json"
    assert write_keystore(path, KEY, PASSWORD, kdf_iterations=CHEAP) == ADDRESS
    return path


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def tx(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "chainId": 31337,
        "nonce": 7,
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 0,
        "data": "0x",
        "gas": 21_000,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "type": 2,
    }
    base.update(overrides)
    return base


def test_keystore_round_trip_signs_for_its_address(keystore: Path) -> None:
    signer = Signer.from_keystore(keystore, PASSWORD)
    assert signer.address == ADDRESS
    assert not signer.devnet
    signed = signer.sign(tx(nonce=7, data="0x1234"))
    assert isinstance(signed, SignedTx)
    assert signed.nonce == 7
    assert signed.raw.startswith("0x02")  # EIP-2718 envelope of a type 2 transaction
    assert signed.hash.startswith("0x") and signed.hash == signed.hash.lower()
    assert Account.recover_transaction(signed.raw) == ADDRESS


def test_keystore_file_is_private_and_never_overwritten(keystore: Path) -> None:
    assert keystore.stat().st_mode & 0o777 == 0o600
    before = keystore.read_bytes()
    with pytest.raises(SignerError, match="already exists"):
        write_keystore(keystore, "0x" + "22" * 32, "other", kdf_iterations=CHEAP)
    assert keystore.read_bytes() == before


def test_sign_is_deterministic_and_hash_matches_the_raw_transaction(keystore: Path) -> None:
    signer = Signer.from_keystore(keystore, PASSWORD)
    first, second = signer.sign(tx()), signer.sign(tx())
    assert first == second  # RFC 6979: the same tx gets the same signature and hash
    other = signer.sign(tx(nonce=8))
    assert other.hash != first.hash and other.nonce == 8
    assert "0x" + keccak(bytes.fromhex(first.raw[2:])).hex() == first.hash


def test_sign_refuses_incomplete_or_legacy_transactions(keystore: Path) -> None:
    signer = Signer.from_keystore(keystore, PASSWORD)
    incomplete = tx()
    del incomplete["maxPriorityFeePerGas"], incomplete["chainId"]
    with pytest.raises(ValueError, match="chainId, maxPriorityFeePerGas"):
        signer.sign(incomplete)
    with pytest.raises(ValueError, match="type 2"):
        signer.sign(tx(type=0))


def test_wrong_password_names_the_keystore(keystore: Path, all_logs: Any) -> None:
    with pytest.raises(SignerError) as err:
        Signer.from_keystore(keystore, "wrong password")
    assert str(keystore) in str(err.value)
    assert "wrong password or corrupt" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"address": "x"}', "no `crypto` section"),
        ("[1, 2]", "no `crypto` section"),
        ('{"crypto": {"cipher": "aes-128-ctr"}, "version": 3}', "wrong password or corrupt"),
    ],
)
def test_corrupt_keystore_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(SignerError, match=message) as err:
        Signer.from_keystore(path, PASSWORD)
    assert str(path) in str(err.value)


def test_keystore_whose_address_does_not_match_its_key(keystore: Path) -> None:
    data = json.loads(keystore.read_text())
    data["address"] = "00" * 20
    keystore.write_text(json.dumps(data))
    with pytest.raises(SignerError, match="corrupt or edited") as err:
        Signer.from_keystore(keystore, PASSWORD)
    assert str(keystore) in str(err.value)


def test_missing_keystore_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "relayer.json"
    with pytest.raises(SignerError) as err:
        Signer.from_keystore(missing, PASSWORD)
    assert str(missing) in str(err.value)
    assert "No such file" in str(err.value) and "executor.keystore" in str(err.value)


def test_password_from_env() -> None:
    assert load_password("RELAYER_PW", None, {"RELAYER_PW": PASSWORD}) == PASSWORD
    # a value from the environment is taken verbatim: only files get a newline stripped
    assert load_password("RELAYER_PW", None, {"RELAYER_PW": "pw\n"}) == "pw\n"


def test_password_from_file_strips_one_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    for content, expected in [
        (PASSWORD + "\n", PASSWORD),
        (PASSWORD + "\r\n", PASSWORD),
        (PASSWORD + "\n\n", PASSWORD + "\n"),
        (" spaced ", " spaced "),
    ]:
        path.write_text(content, newline="")
        assert load_password(None, str(path), {}) == expected


def test_password_source_errors_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(SignerError, match="exactly one"):
        load_password(None, None, {})
    with pytest.raises(SignerError, match="exactly one"):
        load_password("PW", str(tmp_path / "pw"), {"PW": "x"})
    with pytest.raises(SignerError, match="RELAYER_PW is not set"):
        load_password("RELAYER_PW", None, {"OTHER": "x"})
    with pytest.raises(SignerError, match="environment variable RELAYER_PW is empty"):
        load_password("RELAYER_PW", None, {"RELAYER_PW": ""})
    missing = tmp_path / "missing-pw"
    with pytest.raises(SignerError, match=f"password file {missing}: No such file"):
        load_password(None, str(missing), {})
    newline_only = tmp_path / "newline"
    newline_only.write_text("\n")
    with pytest.raises(SignerError, match=f"password file {newline_only} is empty"):
        load_password(None, str(newline_only), {})
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SignerError, match="not UTF-8"):
        load_password(None, str(binary), {})


@pytest.mark.parametrize("chain_id", [31337, 1337])
def test_raw_key_on_a_devnet_warns(chain_id: int, all_logs: pytest.LogCaptureFixture) -> None:
    signer = Signer.from_raw_key(KEY, chain_id=chain_id)
    assert signer.address == ADDRESS and signer.devnet
    (warning,) = [r for r in all_logs.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("raw private key in use: devnet only")
    assert ADDRESS in warning.getMessage()
    assert Account.recover_transaction(signer.sign(tx(chainId=chain_id)).raw) == ADDRESS


@pytest.mark.parametrize("chain_id", [1, 10, 8453, 11155111, 31338])
def test_raw_key_outside_a_devnet_is_refused(chain_id: int, all_logs: Any) -> None:
    with pytest.raises(SignerError) as err:
        Signer.from_raw_key(KEY, chain_id=chain_id)
    message = str(err.value)
    assert f"not on chain {chain_id}" in message
    assert "devnet" in message and "keystore" in message
    assert not secrets_in(message)
    assert not [r for r in all_logs.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "bad", ["", "0x", "0x1234", KEY + "00", "zz" * 32, "0x" + "00" * 32, "0x" + "ff" * 32]
)
def test_malformed_raw_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(SignerError) as err:
        Signer.from_raw_key(bad, chain_id=31337)
    if len(bad) > 4:
        assert bad.lower().removeprefix("0x") not in str(err.value).lower()


def test_key_and_password_never_leak(
    keystore: Path, tmp_path: Path, all_logs: pytest.LogCaptureFixture
) -> None:
    """Everything a person, a log, a config dump or an error can show, checked for every
    spelling of the key and for the password."""
    seen: list[str] = []
    signer = Signer.from_keystore(keystore, PASSWORD)
    devnet = Signer.from_raw_key(KEY.upper().replace("0X", "0x"), chain_id=31337)
    for s in (signer, devnet):
        seen += [repr(s), str(s), f"{s}", f"{s!r}", str(vars(type(s)).keys())]
        assert not hasattr(s, "__dict__")  # no attribute for a dump to walk into
        assert ADDRESS in repr(s)
        with pytest.raises(AttributeError):
            s.address = "0x0"  # type: ignore[misc,unused-ignore]
        for leak in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError) as err:
                leak(s)
            seen.append(str(err.value))
    for attempt in (
        lambda: Signer.from_keystore(keystore, PASSWORD + "x"),
        lambda: Signer.from_keystore(tmp_path / "missing.json", PASSWORD),
        lambda: Signer.from_raw_key(KEY, chain_id=1),
        lambda: Signer.from_raw_key(KEY[:-2], chain_id=31337),
        lambda: load_password("PW", None, {}),
        lambda: write_keystore(keystore, KEY, PASSWORD, kdf_iterations=CHEAP),
        lambda: write_keystore(tmp_path / "k2.json", KEY, PASSWORD, kdf_iterations=3),
    ):
        with pytest.raises(SignerError) as failure:
            attempt()
        seen += [str(failure.value), repr(failure.value)]
    seen += [r.getMessage() for r in all_logs.records] + [all_logs.text]
    assert all_logs.records, "loading a key logs its address"
    leaks = {text: secrets_in(text) for text in seen if secrets_in(text)}
    assert not leaks
