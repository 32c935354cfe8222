"""The relayer's key: loaded once, used only to sign, never shown.

The key comes from an encrypted JSON keystore (the Ethereum "V3" format that geth,
eth-account and Foundry's `cast wallet` write) with its password from an environment
variable or a file. A raw private key is accepted only on a local devnet (chain id 31337 or
1337) and a WARNING says so each time one is loaded.

The key never leaves this module in readable form: a `Signer` holds it inside a closure
(not an attribute), its repr shows only the address, it refuses to be copied or pickled,
and every error message names the file or variable to fix, never the key or the password.
Errors are raised `from None` so a logged traceback does not carry the decryption
library's frames and their locals.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from eth_account import Account
from eth_account.signers.local import LocalAccount

from executor.errors import ExecutorError

log = logging.getLogger("warden.signer")

DEVNET_CHAIN_IDS = frozenset({31337, 1337})  # anvil/hardhat and geth --dev/ganache
_TX_FIELDS = ("chainId", "nonce", "to", "value", "data", "gas", "maxFeePerGas",
              "maxPriorityFeePerGas")  # fmt: skip
_MAKE_KEYSTORE = (
    "create one with `cast wallet import relayer --interactive` or "
    "`python -c 'from executor.signer import write_keystore; ...'`"
)


class SignerError(ExecutorError):
    """The relayer key cannot be loaded or used: a person must fix the configuration.
    The message names the keystore file or the password source, never a secret."""


@dataclass(frozen=True)
class SignedTx:
    raw: str  # 0x-hex of the signed EIP-2718 envelope, ready for eth_sendRawTransaction
    hash: str  # 0x-hex, lowercase
    nonce: int


class Signer:
    """Signs EIP-1559 transactions for one address. Build it with `from_keystore` (or
    `from_raw_key` on a devnet); the key itself is reachable only through `sign`."""

    __slots__ = ("_sign", "address", "devnet")

    address: str
    devnet: bool
    _sign: Callable[[dict[str, Any]], Any]

    def __init__(self, key: bytes, *, devnet: bool = False) -> None:
        account = _account(key)
        object.__setattr__(self, "address", account.address)
        object.__setattr__(self, "devnet", devnet)

        def sign(tx: dict[str, Any]) -> Any:
            return account.sign_transaction(tx)

        object.__setattr__(self, "_sign", sign)

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_keystore(cls, path: str | os.PathLike[str], password: str) -> Signer:
        where = Path(path)
        try:
            text = where.read_text(encoding="utf-8")
        except OSError as exc:
            raise SignerError(
                f"cannot read the relayer keystore {where}: {exc.strerror or exc}; "
                f"check `executor.keystore` in the config ({_MAKE_KEYSTORE})"
            ) from None
        try:
            keystore = json.loads(text)
        except ValueError:
            raise SignerError(
                f"the relayer keystore {where} is not JSON: {_MAKE_KEYSTORE}"
            ) from None
        if not isinstance(keystore, dict) or not ({"crypto", "Crypto"} & keystore.keys()):
            raise SignerError(
                f"the relayer keystore {where} is not an encrypted JSON keystore "
                f"(no `crypto` section): {_MAKE_KEYSTORE}"
            )
        signer = _decrypt(keystore, password, where)
        claimed = keystore.get("address")
        if isinstance(claimed, str) and claimed.lower().removeprefix("0x") != (
            signer.address.lower().removeprefix("0x")
        ):
            raise SignerError(
                f"the relayer keystore {where} says address 0x{claimed.removeprefix('0x')} but "
                f"its key belongs to {signer.address}: the file is corrupt or edited"
            )
        log.info("relayer key loaded from keystore %s: address %s", where, signer.address)
        return signer

    @classmethod
    def from_raw_key(cls, key: str, *, chain_id: int) -> Signer:
        if chain_id not in DEVNET_CHAIN_IDS:
            raise SignerError(
                f"a raw private key is accepted only on a local devnet (chain id "
                f"{' or '.join(map(str, sorted(DEVNET_CHAIN_IDS)))}), not on chain {chain_id}: "
                f"put the key in an encrypted keystore and set `executor.keystore` and its "
                f"password source instead ({_MAKE_KEYSTORE})"
            )
        signer = cls(_parse_key(key), devnet=True)
        log.warning(
            "raw private key in use: devnet only (chain id %d); relayer address %s. "
            "Never use a raw key on a real network.",
            chain_id,
            signer.address,
        )
        return signer

    # -- use -------------------------------------------------------------------
    def sign(self, tx: dict[str, Any]) -> SignedTx:
        """Sign an EIP-1559 (type 2) transaction dict; every field must be present."""
        missing = [f for f in _TX_FIELDS if f not in tx]
        if missing:
            raise ValueError(f"transaction to sign lacks {', '.join(missing)}")
        if tx.get("type", 2) not in (2, "0x2"):
            raise ValueError(f"only EIP-1559 (type 2) transactions are signed, not {tx['type']}")
        signed = self._sign({**tx, "type": 2})
        return SignedTx(
            raw=signed.raw_transaction.to_0x_hex(),
            hash=signed.hash.to_0x_hex().lower(),
            nonce=int(tx["nonce"]),
        )

    # -- never leak --------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Signer(address={self.address}{', devnet' if self.devnet else ''})"

    __str__ = __repr__

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Signer is immutable")

    def _refuse(self, *args: object) -> NoReturn:
        raise TypeError("a Signer holds a private key and cannot be copied or pickled")

    __getstate__ = _refuse
    __reduce__ = _refuse
    __reduce_ex__ = _refuse
    __copy__ = _refuse
    __deepcopy__ = _refuse


def load_password(env: str | None, file: str | None, environ: Mapping[str, str]) -> str:
    """The keystore password from exactly one source: the environment variable named
    `env`, or the file `file` (one trailing newline stripped, as `echo` writes it)."""
    if (env is None) == (file is None):
        raise SignerError(
            "set exactly one keystore password source: `password_env` (an environment "
            "variable name) or `password_file` (a path)"
        )
    if env is not None:
        if env not in environ:
            raise SignerError(
                f"the keystore password variable {env} is not set: export it before starting"
            )
        password, source = environ[env], f"environment variable {env}"
    else:
        assert file is not None
        try:
            password = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SignerError(f"cannot read the keystore password file {file}: {reason}") from None
        password = password.removesuffix("\n").removesuffix("\r")
        source = f"password file {file}"
    if not password:
        raise SignerError(f"the keystore password from {source} is empty")
    return password


def write_keystore(
    path: str | os.PathLike[str],
    key: str | bytes,
    password: str,
    *,
    kdf_iterations: int | None = None,
) -> str:
    """Encrypt `key` into a new keystore file (mode 0600, never overwriting) and return
    its address. `kdf_iterations` is scrypt's n: leave it unset for real keys (eth-account's
    strong default); tests pass a small power of two to stay fast."""
    if not password:
        raise SignerError("a keystore needs a non-empty password")
    raw = _parse_key(key) if isinstance(key, str) else key
    try:
        keystore = Account.encrypt(raw, password, kdf="scrypt", iterations=kdf_iterations)
    except ValueError:
        raise SignerError("cannot encrypt the key: check kdf_iterations (a power of 2)") from None
    where = Path(path)
    try:
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SignerError(f"keystore {where} already exists: not overwriting a key") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(keystore, out)
    address: str = _account(raw).address
    return address


def _decrypt(keystore: dict[str, Any], password: str, where: Path) -> Signer:
    try:
        key = bytes(Account.decrypt(keystore, password))
    except Exception:  # any failure means the same to the person fixing it
        raise SignerError(
            f"cannot decrypt the relayer keystore {where}: wrong password or corrupt file"
        ) from None
    return Signer(key)


def _parse_key(key: str) -> bytes:
    text = key.strip()
    digits = text[2:] if text[:2].lower() == "0x" else text
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SignerError("the raw private key must be 32 bytes of hex (64 digits, optional 0x)")
    return raw


def _account(key: bytes) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(key)
    except Exception:  # eth-keys' message may echo the key
        raise SignerError("not a valid secp256k1 private key") from None
    return account
