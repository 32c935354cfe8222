"""Limits checked before anything is signed; pure decisions, the executor records them.

A refusal is *final* when waiting cannot change it (a wallet the indexer does not know, a
call shape Warden never makes, a session whose operator is not the relayer, an intent
past its time-to-live): the intent fails with the reason. Otherwise it is *transient*
(the fee market above the cap, the relayer below its minimum balance, a session's rate
limit): the intent stays pending and is tried again on the next step, so a drained relayer
resumes by itself once funded and nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.units import ETHER
from contracts import MAX_BATCH, POLICY_REASONS
from executor.errors import GuardConfigError
from executor.outbox import IntentRow
from indexer import Session


@dataclass(frozen=True)
class Guards:
    max_batch_size: int = 100
    min_relayer_balance: int = ETHER // 20  # wei
    intent_ttl: int = 24 * 3600  # chain seconds from the triggering evaluation
    max_jobs_per_session: int = 3  # transactions carrying one session's intents …
    rate_window_ms: int = 3_600_000  # … within this wall-clock window
    # Tokens whose sessions may share a batch; None: all. A hostile token could burn a
    # whole batch's gas in its transfer, so production configs list the tokens they know.
    batch_tokens: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= MAX_BATCH:
            raise GuardConfigError(
                f"max_batch_size is {self.max_batch_size}: it must be 1 to {MAX_BATCH} "
                "(SessionWalletFactory.closeBatch refuses more)"
            )
        for name in ("min_relayer_balance", "intent_ttl", "rate_window_ms"):
            if getattr(self, name) < 0:
                raise GuardConfigError(f"{name} is negative: use 0 or more")
        if self.max_jobs_per_session < 1:
            raise GuardConfigError("max_jobs_per_session must be at least 1")

    def batchable(self, session: Session) -> bool:
        return self.batch_tokens is None or session.token in self.batch_tokens


@dataclass(frozen=True, slots=True)
class Refusal:
    guard: str
    reason: str
    final: bool


@dataclass(frozen=True, slots=True)
class Obsolete:
    reason: str


def check_intent(
    intent: IntentRow, session: Session | None, *, relayer: str, guards: Guards, now: int
) -> Refusal | Obsolete | None:
    """What stops this intent before preflight, if anything; `now` is chain time."""
    if session is None:
        return Refusal("known_wallet", f"{intent.wallet} is not a session the indexer knows", True)
    if session.status == "closed":
        how = f"{session.close_reason} by {session.closed_by}"
        return Obsolete(f"session already closed ({how})")
    if intent.action == "close" and intent.reason not in POLICY_REASONS:
        return Refusal("call_shape", f"close with reason {intent.reason!r} is not allowed", True)
    if intent.action not in ("close", "sweep"):
        return Refusal("call_shape", f"action {intent.action!r} is not a call Warden makes", True)
    if intent.action == "close" and session.operator != relayer:
        return Refusal(
            "operator",
            f"the session's operator is {session.operator}, not the relayer {relayer}: only "
            "its operator may close it with a policy reason",
            True,
        )
    if guards.intent_ttl and now - intent.triggered_at > guards.intent_ttl:
        return Refusal(
            "ttl",
            f"triggered at chain time {intent.triggered_at}, {now - intent.triggered_at} s ago, "
            f"beyond intent_ttl {guards.intent_ttl} s",
            True,
        )
    return None


def rate_refusal(jobs_in_window: int, guards: Guards) -> Refusal | None:
    if jobs_in_window >= guards.max_jobs_per_session:
        return Refusal(
            "rate_limit",
            f"{jobs_in_window} transactions for this session in the last "
            f"{guards.rate_window_ms // 1000} s (max_jobs_per_session "
            f"{guards.max_jobs_per_session})",
            False,
        )
    return None


def balance_refusal(balance: int, relayer: str, guards: Guards) -> Refusal | None:
    if balance < guards.min_relayer_balance:
        return Refusal(
            "relayer_balance",
            f"relayer {relayer} holds {balance} wei, below min_relayer_balance "
            f"{guards.min_relayer_balance}: fund it; sending resumes by itself",
            False,
        )
    return None


def fee_refusal(max_fee_per_gas: int, cap: int | None) -> Refusal | None:
    if cap is not None and max_fee_per_gas > cap:
        return Refusal(
            "fee_cap",
            f"the market asks max fee {max_fee_per_gas} wei/gas, above max_fee_per_gas {cap}: "
            "waiting for fees to fall (or raise the cap)",
            False,
        )
    return None
