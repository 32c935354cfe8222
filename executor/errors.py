"""What can go wrong in the executor, grouped by what the caller should do.

    ExecutorError
    ├── ConfigError            give up at start: a person must fix the configuration
    │   ├── SignerError        keystore missing or unreadable, wrong password, a raw key
    │   │                      outside a devnet (defined in `signer.py`)
    │   └── GuardConfigError   a guard limit that cannot work (batch above the contract's
    │                          256, negative limits)
    └── OutboxError            the outbox holds something it never writes (a state
                               transition from the wrong state): a bug, stop loudly

RPC failures are the indexer's `RetryableError` / `FatalError` (the executor uses the same
client): a retryable one ends the current step and the next step starts over from the
outbox, which is why every step is safe to repeat. A node refusing a transaction is
`indexer.TxRejected`; the executor handles each kind (nonce too low/high, already known,
underpriced, no funds) and never retries blindly.

What the executor decides about an intent is not an exception: a guard refusal, an
obsolete intent and a failed one are recorded in the outbox with their reason.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Base of every error the executor raises on purpose."""


class ConfigError(ExecutorError):
    """The executor cannot start with this configuration."""


class GuardConfigError(ConfigError):
    pass


class OutboxError(ExecutorError):
    pass
