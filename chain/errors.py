"""What can go wrong talking to a node, grouped by what the caller should do.

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
