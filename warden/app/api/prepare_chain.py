"""What the prepare endpoints ask the node, through the one seam (`chain.ChainClient`):
the factory's registry and fee, a wallet's state, a token's balance, allowance and
metadata, the owner's nonce, chain time, gas estimates, a simulation of dependent steps,
and fees. Plus the calldata of every transaction they prepare.

Answers from the factory and its wallets (our contracts) are decoded strictly: a word
that is not one is the node's fault (`BadResponse`, a 502). Answers from a token are
decoded defensively: the registry vouches for a token's transfers, not for its
`decimals()` or `symbol()`, and a token may revert, burn its gas or answer garbage there;
such an answer is `None`, never an error.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from chain import ChainClient, RetryPolicy, Transport, checksum
from chain.errors import BadResponse, CallReverted, ProviderError, RpcRejected
from executor import ExecutorSettings
from executor.fees import Fees, fetch_fees

# A request's node questions are few and it has a caller waiting: retry briefly, then
# answer 503 (the daemon's own client waits minutes; an HTTP client will not).
API_RETRY = RetryPolicy(initial=0.2, factor=2.0, max_delay=1.0, jitter=0.25, attempts=3)
CALL_GAS = 1_000_000  # an eth_call's gas: a token burning its gas in decimals() stops here
MAX_DECIMALS = 77  # 10**77 is the largest power of ten below 2**256
MAX_SYMBOL = 32  # characters; a longer symbol() is not shown
# Gas limit from `eth_estimateGas`: the node's binary search finds the least that
# succeeds on the state it saw; 20 % covers the state moving (another balance slot
# written, a fee changed) before the transaction is mined. Unused gas is not paid.
ESTIMATE_MARGIN_PERCENT = 20
# Gas limit from a simulated `gasUsed` (a step that depends on the one before): used gas
# is after the refund (at most a fifth back, EIP-3529), and a call keeps 1/64 of the gas
# back; 5/4 * 64/63 undoes both, then the same margin.
REFUND_NUMERATOR, REFUND_DENOMINATOR = 5 * 64, 4 * 63
# Bounds on what a node may claim: no block holds a billion gas, no account has sent
# 2**64 transactions (EIP-2681); beyond them the answer is a lie, not a figure to pass on.
MAX_GAS = 10**9
MAX_NONCE = 2**64 - 1


def selector(signature: str) -> bytes:
    return bytes(keccak(text=signature)[:4])


def call_data(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> bytes:
    return selector(signature) + (encode(list(types), list(args)) if types else b"")


SESSION_PARAMS = "(address,address,uint256,uint64,uint256,uint256,uint256,string,address[],uint16)"
CREATE = f"createSession({SESSION_PARAMS},bytes32)"


def with_margin(estimate: int) -> int:
    return estimate + -(-estimate * ESTIMATE_MARGIN_PERCENT // 100)


def limit_from_used(used: int) -> int:
    return with_margin(-(-used * REFUND_NUMERATOR // REFUND_DENOMINATOR))


@dataclass(frozen=True)
class Preparation:
    """The prepare endpoints' node and factory. The app opens a `ChainClient` of its own
    on `rpc` for its lifetime (short retries: a request has a caller waiting) and closes
    it at shutdown; `deadline` bounds each request's node questions together."""

    rpc: tuple[str, ...]
    factory: str
    chain_id: int
    fees: ExecutorSettings = field(default_factory=ExecutorSettings)
    retry: RetryPolicy = API_RETRY
    timeout: float = 10.0  # seconds per node request
    deadline: float = 20.0  # seconds for all of one prepare request's node questions
    max_concurrent: int = 8  # prepare requests asking the node at once; more wait (deadline)
    transport: Transport | None = None  # tests: a MockTransport

    def client(self) -> ChainClient:
        return ChainClient(
            list(self.rpc), chain_id=self.chain_id, retry=self.retry, timeout=self.timeout,
            transport=self.transport,
        )  # fmt: skip


@dataclass(frozen=True)
class TokenMeta:
    symbol: str | None
    decimals: int | None


@dataclass(frozen=True)
class Simulated:
    gas_used: int
    revert: str | None  # 0x revert data when the call failed, else None


Answer = bytes | Exception  # an eth_call's return data, or its classified error


class Node:
    """The node questions of one prepare request."""

    def __init__(self, client: ChainClient) -> None:
        self.client = client

    async def calls(self, calls: Sequence[tuple[str, bytes]]) -> list[Answer]:
        """`eth_call`s at the latest block, in one request; a call's revert (or any
        JSON-RPC error of its own) comes back in its place, malformed hex as
        `BadResponse` in its place."""
        batch = [
            ("eth_call", [{"to": to, "data": "0x" + data.hex(), "gas": hex(CALL_GAS)}, "latest"])
            for to, data in calls
        ]
        out: list[Answer] = []
        for answer in await self.client.batch_each(batch):
            if isinstance(answer, Exception):
                out.append(answer)
                continue
            raw = _hex(answer)
            out.append(BadResponse(f"eth_call answered {answer!r:.80}") if raw is None else raw)
        return out

    async def facts(self, owner: str) -> tuple[int, int]:
        """(the latest block's timestamp, the owner's pending nonce)."""
        block, nonce = await self.client.batch([
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_getTransactionCount", [owner, "pending"]),
        ])  # fmt: skip
        if not isinstance(block, dict):
            raise BadResponse(f"eth_getBlockByNumber(latest) answered {block!r:.80}")
        count = _quantity(nonce, "nonce")
        if count > MAX_NONCE:
            raise BadResponse(f"the node's nonce for {owner} is {count}, beyond 2**64-1")
        return _quantity(block.get("timestamp"), "block timestamp"), count

    async def code(self, address: str) -> bytes:
        raw = _hex(await self.client.call("eth_getCode", address, "latest"))
        if raw is None:
            raise BadResponse("eth_getCode answered something that is not hex")
        return raw

    async def estimate(self, sender: str, to: str, data: bytes) -> int:
        """`eth_estimateGas`; a revert raises `CallReverted` (its `data` the reason)."""
        tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "value": "0x0"}
        return _gas(await self.client.call("eth_estimateGas", tx), "eth_estimateGas")

    async def simulate(self, sender: str, steps: Sequence[tuple[str, bytes]]) -> list[Simulated]:
        """`eth_simulateV1` of `steps` in order, in one block, from `sender`: each one's
        gas used and revert. `RpcRejected` when the node has no such method."""
        calls = [{"from": sender, "to": to, "data": "0x" + data.hex()} for to, data in steps]
        answer = await self.client.call(
            "eth_simulateV1", {"blockStateCalls": [{"calls": calls}]}, "latest"
        )
        try:
            results = answer[0]["calls"]
            if not isinstance(results, list) or len(results) != len(steps):
                raise TypeError
            out = []
            for result in results:
                failed = result["status"] != "0x1"
                data = result.get("returnData") or "0x"
                if _hex(data) is None:
                    raise TypeError
                out.append(Simulated(_gas(result["gasUsed"], "gasUsed"), data if failed else None))
            return out
        except (LookupError, TypeError, BadResponse):
            raise BadResponse(f"eth_simulateV1 answered {answer!r:.120}") from None

    async def token_calls(self, token: str, calls: Sequence[bytes]) -> list[Answer]:
        """`eth_call`s to a token, each asked alone and once: a token that burns its gas
        or fails in its own way makes some nodes answer a JSON-RPC error that reads as
        transient (anvil: -32603 "InvalidFEOpcode"), which must neither be retried nor
        take the other answers with it. Such an error comes back in its place; a node
        that does not answer at all is still raised."""

        async def one(data: bytes) -> Answer:
            tx = {"to": token, "data": "0x" + data.hex(), "gas": hex(CALL_GAS)}
            try:
                (answer,) = await self.client.batch_at(
                    self.client.endpoint, [("eth_call", [tx, "latest"])]
                )
            except (CallReverted, ProviderError, RpcRejected) as exc:
                return exc
            raw = _hex(answer)
            return BadResponse(f"eth_call answered {answer!r:.80}") if raw is None else raw

        return list(await asyncio.gather(*(one(data) for data in calls)))

    async def fees(self, settings: ExecutorSettings) -> Fees:
        return await fetch_fees(self.client, settings)


# --------------------------------------------------------------------- decoding


def _hex(value: object) -> bytes | None:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) % 2:
        return None
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        return None


def _quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or not 3 <= len(value) <= 66:
        raise BadResponse(f"the node's {what} is {value!r:.80}, not a hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise BadResponse(f"the node's {what} is {value!r:.80}, not a hex quantity") from None


def _gas(value: object, what: str) -> int:
    gas = _quantity(value, what)
    if gas > MAX_GAS:
        raise BadResponse(f"the node's {what} is {gas} gas, more than any block holds")
    return gas


def word(answer: Answer, what: str) -> int:
    """A uint from one of our contracts' answers; anything else is the node's fault."""
    if isinstance(answer, Exception):
        if isinstance(answer, CallReverted):
            raise BadResponse(f"{what} reverted on a view that cannot revert: {answer}")
        raise answer
    if len(answer) != 32:
        raise BadResponse(f"{what} answered {len(answer)} bytes, not one word")
    return int.from_bytes(answer, "big")


def flag(answer: Answer, what: str) -> bool:
    value = word(answer, what)
    if value > 1:
        raise BadResponse(f"{what} answered {value}, not a bool")
    return value == 1


def address(answer: Answer, what: str) -> str:
    value = word(answer, what)
    if value >> 160:
        raise BadResponse(f"{what} answered a word that is not an address")
    return checksum(value.to_bytes(20, "big"))


def loose_uint(answer: Answer) -> int | None:
    """A token's uint answer (balanceOf, allowance), or None when it gives none."""
    if isinstance(answer, Exception) or len(answer) != 32:
        return None
    return int.from_bytes(answer, "big")


def read_decimals(answer: Answer) -> int | None:
    value = loose_uint(answer)
    return value if value is not None and value <= MAX_DECIMALS else None


def read_symbol(answer: Answer) -> str | None:
    """An ABI string (or an old-style bytes32) that is short, printable text; None for
    anything else: a symbol is shown to a person deciding to sign."""
    if isinstance(answer, Exception):
        return None
    text: str | None = None
    if len(answer) == 32:  # bytes32 symbols (MKR-era tokens)
        text = _text(answer.rstrip(b"\0"))
    elif len(answer) >= 64:
        offset = int.from_bytes(answer[:32], "big")
        if offset <= len(answer) - 32:
            length = int.from_bytes(answer[offset : offset + 32], "big")
            start = offset + 32
            if length <= 4 * MAX_SYMBOL and start + length <= len(answer):
                text = _text(answer[start : start + length])
    return text


def _text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not 0 < len(text) <= MAX_SYMBOL or text != text.strip():
        return None
    # control, format (bidi overrides, zero-width), unassigned, private-use characters
    # could make a symbol read as another one; spaces inside one are suspect too
    if any(unicodedata.category(c)[0] in "CZ" for c in text):
        return None
    return text
