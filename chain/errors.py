"""What can go wrong talking to a node, grouped by what the caller should do, and
`classify_rpc_error`: which of these a JSON-RPC error object is.

ChainError
├── RetryableError              wait and try again (the client already retried)
│   ├── RpcUnavailable          transport: refused, dropped, timed out, HTTP 5xx
│   ├── RateLimited             HTTP 429 or a provider's rate-limit error
│   ├── BadResponse             truncated/invalid JSON, a result that breaks the
│   │                           request (logs outside the range, a batch item missing),
│   │                           a node behind the block asked for
│   ├── ProviderError           a JSON-RPC error the provider calls transient
│   │                           ("header not found", "internal error")
│   ├── LogRangeTooLarge        eth_getLogs asked for too much: split the range
│   └── UnknownBlock            a block hash the node no longer has: the chain
│                               moved; start over from the reorg check
└── FatalError                  give up: retrying cannot help, a person must act
    ├── WrongChain              the endpoint serves another chain id than configured
    ├── RpcRejected             method missing, invalid params, auth refused (HTTP 4xx)
    ├── CallReverted            eth_call/estimateGas reverted; `data` holds the reason
    └── TxRejected              eth_sendRawTransaction refused; `kind` says why (nonce
                                too low/high, already known, underpriced, no funds, fee
                                below base fee): the sender decides, never a blind retry
"""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Base of every error the chain layer raises on purpose."""


class RetryableError(ChainError):
    """Transient: the same request may succeed later or on another endpoint."""


class RpcUnavailable(RetryableError):
    pass


class RateLimited(RetryableError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadResponse(RetryableError):
    pass


class ProviderError(RetryableError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LogRangeTooLarge(RetryableError):
    """The provider refused an eth_getLogs range; retry with a smaller one."""


class UnknownBlock(RetryableError):
    """Asked by hash for a block the node does not know (it was just reorged out)."""


class FatalError(ChainError):
    """Retrying cannot help."""


class WrongChain(FatalError):
    pass


class RpcRejected(FatalError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class CallReverted(FatalError):
    def __init__(self, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.data = data


class TxRejected(FatalError):
    """The node refused a raw transaction. `kind` is one of KINDS."""

    KINDS = (
        "already_known",
        "nonce_too_low",
        "nonce_too_high",
        "underpriced",
        "insufficient_funds",
        "fee_below_base",
        "other",
    )

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


# Substrings providers use when an eth_getLogs range or result set is too large
# (geth, erigon, Alchemy, Infura, QuickNode, Ankr, BlastAPI, anvil forks).
_RANGE_MESSAGES = (
    "query returned more than",
    "block range",
    "too many",
    "range too large",
    "response size",
    "limit exceeded",
    "exceed maximum",
    "logs matched",
    "range is too",
)
_RATE_MESSAGES = ("rate limit", "too many requests", "exceeded its compute units", "capacity")
_FATAL_CODES = {-32600, -32601, -32602}
# A block asked for that the node does not have (yet, or any more): transient, whatever
# the code says (anvil: "BlockOutOfRangeError: block height is 1129 but requested was 1130").
_BEHIND_MESSAGES = ("blockoutofrange", "block height is", "header not found")
# eth_sendRawTransaction refusals (geth, erigon, nethermind, anvil, reth wording).
_TX_REJECTIONS = (
    ("already known", "already_known"),
    ("already imported", "already_known"),
    ("known transaction", "already_known"),
    ("nonce too low", "nonce_too_low"),
    ("nonce too high", "nonce_too_high"),
    ("nonce has already been used", "nonce_too_low"),
    ("underpriced", "underpriced"),
    ("insufficient funds", "insufficient_funds"),
    ("less than block base fee", "fee_below_base"),
    ("fee cap less than block base fee", "fee_below_base"),
    # a gas limit the node's blocks cannot hold: asking again cannot change the answer
    ("exceeds block gas limit", "other"),
    ("gas_limit > env.block.gas_limit", "other"),
)


def classify_rpc_error(error: dict[str, Any], method: str) -> Exception:
    """A JSON-RPC error object as the exception the caller should act on."""
    code = error.get("code")
    message = str(error.get("message", ""))
    lowered = message.lower()
    where = f"{method}: {message} (code {code})"
    if method == "eth_getLogs" and any(m in lowered for m in _RANGE_MESSAGES):
        return LogRangeTooLarge(where)
    if method == "eth_sendRawTransaction":
        for needle, kind in _TX_REJECTIONS:
            if needle in lowered:
                return TxRejected(where, kind)
        if code in _FATAL_CODES or "invalid" in lowered or "rejected" in lowered:
            return TxRejected(where, "other")
    if method == "eth_getLogs" and ("unknown block" in lowered or "block not found" in lowered):
        return UnknownBlock(where)
    if code == 429 or any(m in lowered for m in _RATE_MESSAGES):
        return RateLimited(where)
    if code == 3 or "revert" in lowered:
        data = error.get("data")
        return CallReverted(where, data if isinstance(data, str) else None)
    if any(m in lowered for m in _BEHIND_MESSAGES):
        # the node's head moved under the call (anvil mid-reorg answers -32602): ask again
        return ProviderError(where, code if isinstance(code, int) else None)
    if code in _FATAL_CODES:
        return RpcRejected(where, code if isinstance(code, int) else None)
    return ProviderError(where, code if isinstance(code, int) else None)
