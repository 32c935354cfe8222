"""The only transactions Warden makes, encoded, and the check that a payload is one of them.

A close with a policy reason (stop-loss, take-profit, expired, idle) or a sweep on a wallet
the indexer knows, a batch of those through the configured factory's `closeBatch`, and a
zero-value self-transfer that cancels a stuck nonce. `check_call` decodes the exact bytes
about to be signed and refuses anything else, so a bug upstream cannot make the relayer
sign an arbitrary call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.abi import checksum
from contracts import (
    CLOSE_REASONS,
    MAX_BATCH,
    MAX_MEMBER_GAS,
    MIN_MEMBER_GAS,
    POLICY_REASONS,
    SWEEP_REASON,
)

REASON_CODE = {name: code for code, name in enumerate(CLOSE_REASONS)}
SWEPT = REASON_CODE[SWEEP_REASON]
CANCEL_GAS = 21_000
MEMBER_GAS = 100_000  # a batch member's default stipend: an honest close takes ~30k
# closeBatch keeps this back (plus 600 per member) before it tries a member, to report
# the members it did not reach (SessionWalletFactory.BATCH_RESERVE, RESERVE_PER_UNREACHED)
BATCH_RESERVE = 12_000
RESERVE_PER_MEMBER = 600


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


CLOSE = _selector("close(uint8)")
SWEEP = _selector("sweep()")
CLOSE_BATCH = _selector("closeBatch(address[],uint8[],uint256)")


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # close | sweep | batch | cancel
    to: str
    data: str  # 0x calldata

    @property
    def payload(self) -> bytes:
        return bytes.fromhex(self.data[2:])


def reason_code(action: str, reason: str) -> int:
    if action == "sweep":
        return SWEPT
    if action == "close" and reason in POLICY_REASONS:
        return REASON_CODE[reason]
    raise ValueError(f"Warden never sends {action} with reason {reason!r}")


def single(wallet: str, action: str, reason: str) -> Call:
    if action == "sweep":
        return Call("sweep", wallet, "0x" + SWEEP.hex())
    code = reason_code(action, reason)
    return Call("close", wallet, "0x" + (CLOSE + encode(["uint8"], [code])).hex())


def batch(
    factory: str, members: Sequence[tuple[str, str, str]], member_gas: int = MEMBER_GAS
) -> Call:
    """`closeBatch` of (wallet, action, reason) members, each run with at most
    `member_gas`; a sweep is a close(Swept)."""
    if not 1 <= len(members) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} members, not {len(members)}")
    if not MIN_MEMBER_GAS <= member_gas <= MAX_MEMBER_GAS:
        raise ValueError(
            f"a member's gas stipend is {MIN_MEMBER_GAS} to {MAX_MEMBER_GAS}, not {member_gas}"
        )
    # The ABI encoding of (address[], uint8[], uint256) written out: eth_abi's validation
    # of every address cost ~15 ms per batch of 256, a large share of an expiry storm.
    n = len(members)
    words = [f"{96:064x}", f"{128 + 32 * n:064x}", f"{member_gas:064x}", f"{n:064x}"]
    for wallet, _, _ in members:
        if len(wallet) != 42 or not wallet.startswith(("0x", "0X")):
            raise ValueError(f"not an address: {wallet!r}")
        int(wallet[2:], 16)  # raises ValueError unless hexadecimal
        words.append("0" * 24 + wallet[2:].lower())
    words.append(f"{n:064x}")
    words.extend(f"{reason_code(action, reason):064x}" for _, action, reason in members)
    return Call("batch", factory, "0x" + CLOSE_BATCH.hex() + "".join(words))


def member_gas(call: Call) -> int:
    """The stipend a `closeBatch` call gives each member."""
    return int.from_bytes(call.payload[4 + 64 : 4 + 96], "big")


def batch_gas(call: Call, members: int, allowance: int) -> int:
    """The gas limit a batch is sent with: intrinsic gas (base and calldata, EIP-2028),
    an allowance per honest member, and what the contract keeps back before each member
    (one whole stipend and the reserve): so every honest member (one that costs at most the
    allowance) is reached even when one member burns its whole stipend. More that do are
    covered only as far as the honest members' unused allowance goes; past that the batch
    stops and reports the rest (`BatchIncomplete`), which is sent again
    (tests/contracts/test_hostile_members.py). `Executor` proves it by a simulation."""
    payload = call.payload
    zeros = payload.count(0)
    stipend = member_gas(call)
    intrinsic = 21_000 + 4 * zeros + 16 * (len(payload) - zeros)
    kept = stipend + stipend // 63 + BATCH_RESERVE + RESERVE_PER_MEMBER * members
    return intrinsic + members * allowance + kept


# Calldata of closeBatch at its most expensive (every byte that can be nonzero is): the
# selector and five head words, then per member an address word (12 zero bytes) and a
# reason word (31 zero bytes). EIP-2028: 16 gas per nonzero byte, 4 per zero byte.
_WORST_HEAD = 16 * (4 + 5 * 32)
_WORST_MEMBER = 16 * 20 + 4 * 12 + 16 * 1 + 4 * 31


def max_batch_members(gas_limit: int, stipend: int, allowance: int) -> int:
    """The most members a `closeBatch` with this stipend and allowance may hold for its
    `batch_gas` to stay within `gas_limit` (a block's gas limit), whatever its wallets'
    bytes; at most `MAX_BATCH`, 0 when not even one fits."""
    fixed = 21_000 + _WORST_HEAD + stipend + stipend // 63 + BATCH_RESERVE
    per_member = _WORST_MEMBER + allowance + RESERVE_PER_MEMBER
    return max(0, min(MAX_BATCH, (gas_limit - fixed) // per_member))


def simulation(relayer: str, call: Call, gas: int) -> dict[str, Any]:
    """`eth_simulateV1` parameters: `call` from the relayer at gas limit `gas`, one block."""
    tx = {"from": relayer, "to": call.to, "data": call.data, "gas": hex(gas)}
    return {"blockStateCalls": [{"calls": [tx]}]}


def simulated_count(answer: object) -> int | None:
    """`closeBatch`'s return value (closedCount) from an `eth_simulateV1` answer of one
    call; None unless the call succeeded and returned one uint256 (a revert, out of gas,
    an error, a malformed answer)."""
    try:
        result = answer[0]["calls"][0]  # type: ignore[index]
        data = result["returnData"]
        if result["status"] != "0x1" or not isinstance(data, str) or len(data) != 66:
            return None
        return int(data, 16)
    except (LookupError, TypeError, ValueError):
        return None


def cancel(relayer: str) -> Call:
    return Call("cancel", relayer, "0x")


def check_call(
    to: str, data: str, *, factory: str, relayer: str, known: Callable[[str], bool]
) -> str | None:
    """None when (to, data) is a call Warden may make; otherwise why not. `known` answers
    whether a wallet, as a lowercase 0x address, is one the indexer knows."""
    try:
        payload = bytes.fromhex(data[2:] if data.startswith("0x") else data)
        target = to_checksum_address(to)
    except ValueError as exc:
        return f"malformed call: {exc}"
    selector, body = payload[:4], payload[4:]
    if not payload:
        return None if target == to_checksum_address(relayer) else "value-less call to " + to
    if selector == CLOSE_BATCH:
        if target != to_checksum_address(factory):
            return f"closeBatch sent to {target}, not the configured factory {factory}"
        try:
            wallets, codes, stipend = _close_batch_arguments(body)
        except Exception as exc:  # eth_abi raises several unrelated types
            return f"closeBatch arguments do not decode: {exc}"
        if not 1 <= len(wallets) <= MAX_BATCH or len(wallets) != len(codes):
            return f"closeBatch of {len(wallets)} wallets and {len(codes)} reasons"
        if not MIN_MEMBER_GAS <= stipend <= MAX_MEMBER_GAS:
            return f"closeBatch with a member gas stipend of {stipend}"
        for wallet, code in zip(wallets, codes, strict=True):
            problem = _member(wallet, code, known)
            if problem:
                return problem
        return None
    if selector == CLOSE and len(body) == 32:
        (code,) = decode(["uint8"], body)
        return _member(bytes.fromhex(target[2:]), code, known) or (
            "close(Swept) is sent as sweep()" if code == SWEPT else None
        )
    if selector == SWEEP and not body:
        return (
            None
            if known(target.lower())
            else f"sweep of {target}, a wallet the indexer does not know"
        )
    return f"selector 0x{selector.hex()} to {target} is not a call Warden makes"


_WORD = 32
_PAD = bytes(12)


def _close_batch_arguments(body: bytes) -> tuple[list[bytes], list[int], int]:
    """closeBatch's (wallets as 20 raw bytes, reason codes, stipend). The canonical
    encoding — the only one `batch` writes — is read directly (eth_abi takes ~10 ms for
    256 members, and a storm checks hundreds of batches); anything else goes through
    eth_abi, whose verdict stands."""
    n = len(body)
    if n >= 4 * _WORD and n % _WORD == 0:
        head = [int.from_bytes(body[i : i + _WORD], "big") for i in range(0, 4 * _WORD, _WORD)]
        first, second, stipend, count = head
        codes_at = 4 * _WORD + count * _WORD
        if first == 3 * _WORD and second == codes_at and codes_at + _WORD <= n:
            reasons = int.from_bytes(body[codes_at : codes_at + _WORD], "big")
            if n == codes_at + _WORD + reasons * _WORD:
                words = [body[i : i + _WORD] for i in range(4 * _WORD, codes_at, _WORD)]
                codes = [body[i : i + _WORD] for i in range(codes_at + _WORD, n, _WORD)]
                if all(w[:12] == _PAD for w in words) and all(not any(c[:31]) for c in codes):
                    return [w[12:] for w in words], [c[31] for c in codes], stipend
    wallets, codes_, stipend_ = decode(["address[]", "uint8[]", "uint256"], body)
    return [bytes.fromhex(w[2:]) for w in wallets], list(codes_), stipend_


def _member(wallet: bytes, code: int, known: Callable[[str], bool]) -> str | None:
    if not known("0x" + wallet.hex()):
        return f"{checksum(wallet)} is not a wallet the indexer knows"
    if code >= len(CLOSE_REASONS) or CLOSE_REASONS[code] not in (*POLICY_REASONS, SWEEP_REASON):
        return f"close reason {code} is not a policy reason"
    return None
