"""Limits checked before anything is signed; pure decisions, the executor records them.

A refusal is *final* when waiting cannot change it (a wallet the indexer does not know, a
call shape Warden never makes, a session whose operator is not the relayer, an intent
past its time-to-live): the intent fails with the reason. Otherwise it is *transient*
(the fee market above the cap, the relayer below its minimum balance, a session's rate
limit): the intent stays pending and is tried again on the next step, so a drained relayer
resumes by itself once funded and nothing is lost.

Every limit is read from `ExecutorSettings`, checked where it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import MAX_BATCH, MAX_MEMBER_GAS, MIN_MEMBER_GAS, POLICY_REASONS
from executor.intents import IntentRow
from executor.settings import ExecutorSettings
from indexer import Session


def batch_tokens(settings: ExecutorSettings) -> frozenset[str] | None:
    """The tokens `batch_tokens` narrows batching to; None: every token the registry
    lists (`executor.batching`)."""
    return None if settings.batch_tokens is None else frozenset(settings.batch_tokens)


def batch_problem(settings: ExecutorSettings) -> str | None:
    """Why the batches these settings describe cannot be sent, if they cannot: the
    factory's `closeBatch` refuses more than MAX_BATCH members and a stipend outside its
    bounds, and the gas of a refused batch is lost."""
    if not 1 <= settings.max_batch_size <= MAX_BATCH:
        return (
            f"max_batch_size is {settings.max_batch_size}: it must be 1 to {MAX_BATCH} "
            "(SessionWalletFactory.closeBatch refuses more)"
        )
    if not MIN_MEMBER_GAS <= settings.batch_member_gas <= MAX_MEMBER_GAS:
        return (
            f"batch_member_gas is {settings.batch_member_gas}: it must be {MIN_MEMBER_GAS} to "
            f"{MAX_MEMBER_GAS} (SessionWalletFactory.closeBatch refuses other stipends)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    guard: str
    reason: str
    final: bool


@dataclass(frozen=True, slots=True)
class Obsolete:
    reason: str


def check_intent(
    intent: IntentRow,
    session: Session | None,
    *,
    relayer: str,
    settings: ExecutorSettings,
    now: int,
) -> Refusal | Obsolete | None:
    """What stops this intent before preflight, if anything; `now` is chain time."""
    if session is None:
        # Its rule fired on an indexed session, so a reorg took the creation away since:
        # obsolete, not failed, so that a new branch creating it again and crossing at the
        # same position opens the intent again (`Outbox.record`); a failed one would stay
        # failed and the close would never be sent (seen in the 1,000-round reorg chaos).
        return Obsolete(f"{intent.wallet} is no longer an indexed session (a reorg removed it)")
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
    if settings.intent_ttl and now - intent.triggered_at > settings.intent_ttl:
        return Refusal(
            "ttl",
            f"triggered at chain time {intent.triggered_at}, {now - intent.triggered_at} s ago, "
            f"beyond intent_ttl {settings.intent_ttl} s",
            True,
        )
    return None


def explained_by_index(error: str, session: Session, now: int) -> bool:
    """Whether the indexed `session` (at chain time `now`) shows what a preflight revert
    named `error` says, one of `chain.reverts.OBSOLETE_ERRORS`."""
    if error == "SessionIsClosed":
        return session.status == "closed"
    if error == "OperatorRevoked":
        return session.status in ("revoked", "closed")
    if error == "NotSweepable":  # sweepable once revoked or at expiry (SessionWallet.sol)
        return session.status == "active" and now < session.expiry
    return True


def rate_refusal(jobs_in_window: int, settings: ExecutorSettings) -> Refusal | None:
    if jobs_in_window >= settings.max_jobs_per_session:
        return Refusal(
            "rate_limit",
            f"{jobs_in_window} transactions for this session in the last "
            f"{settings.rate_window} s (max_jobs_per_session "
            f"{settings.max_jobs_per_session})",
            False,
        )
    return None


def balance_refusal(balance: int, relayer: str, settings: ExecutorSettings) -> Refusal | None:
    if balance < settings.min_relayer_balance:
        return Refusal(
            "relayer_balance",
            f"relayer {relayer} holds {balance} wei, below min_relayer_balance "
            f"{settings.min_relayer_balance}: fund it; sending resumes by itself",
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
