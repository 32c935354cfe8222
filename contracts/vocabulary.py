"""The session contracts' vocabulary, in one place: what every package that speaks about
sessions (the decoder, the projection, the rules, the executor, the API) must agree on.

These are facts of `contracts/src`, not choices of Warden's: the `Reason` enum's order is
the uint8 a `Closed` event and a `close(reason)` call carry, and `closeBatch` refuses more
than `MAX_BATCH` members.
"""

from __future__ import annotations

UINT256_MAX = 2**256 - 1

# SessionWallet.Reason, in enum order: the index is the on-chain code.
CLOSE_REASONS = ("owner", "stop_loss", "take_profit", "expired", "idle", "swept")
# The reasons an operator (a rule) may close with; the owner closes as "owner", anyone
# sweeps an expired or revoked session as "swept".
POLICY_REASONS = ("stop_loss", "take_profit", "expired", "idle")
SWEEP_REASON = "swept"

# A session's status as the indexer projects it from its events.
SESSION_STATUSES = ("active", "revoked", "closed")
OPEN_STATUSES = ("active", "revoked")  # the statuses rules still evaluate

MAX_BATCH = 256  # SessionWalletFactory.closeBatch refuses more members
MIN_MEMBER_GAS = 40_000  # closeBatch's bounds on each member's gas stipend
MAX_MEMBER_GAS = 1_000_000
