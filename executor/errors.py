"""What can go wrong in the executor, grouped by what the caller should do.

    ExecutorError
    ├── SignerError   give up at start: a person must fix the key (keystore missing or
    │                 unreadable, wrong password, a raw key outside a devnet; defined in
    │                 `signer.py`)
    └── OutboxError   the outbox holds something it never writes (a state transition
                      from the wrong state): a bug, stop loudly

Settings are checked where they are loaded (the app's config loader reports every key
that cannot work); `Executor` itself refuses, with a `ValueError`, only what would make it
build transactions the contract refuses (a batch above `contracts.MAX_BATCH`) or send
without a key.

RPC failures are `chain`'s `RetryableError` / `FatalError`: a retryable one ends the
current step and the next step starts over from the outbox, which is why every step is
safe to repeat. A node refusing a transaction is `chain.TxRejected`; the executor handles
each kind (nonce too low/high, already known, underpriced, no funds) and never retries
blindly.

What the executor decides about an intent is not an exception: a guard refusal, an
obsolete intent and a failed one are recorded in the outbox with their reason.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Base of every error the executor raises on purpose."""


class OutboxError(ExecutorError):
    pass
