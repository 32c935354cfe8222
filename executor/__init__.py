"""Executor: every intent becomes exactly one relayer transaction, under guards, seen
through to confirmation. See `executor.executor` for the loop, `executor.outbox` for the
tables and `executor.errors` for what can go wrong."""

from executor.changes import IntentChange, IntentChanges
from executor.errors import ExecutorError, OutboxError
from executor.executor import Executor, StepReport
from executor.fees import Fees
from executor.guards import Refusal
from executor.history import OutboxReads
from executor.intents import FiredIntent, RuleDecision
from executor.outbox import ORPHANED, STATES, Claim, IntentRow, Job, Outbox
from executor.settings import ExecutorSettings
from executor.signer import SignedTx, Signer, SignerError, load_password, write_keystore

__all__ = [
    "ORPHANED",
    "STATES",
    "Claim",
    "Executor",
    "ExecutorError",
    "ExecutorSettings",
    "Fees",
    "FiredIntent",
    "IntentChange",
    "IntentChanges",
    "IntentRow",
    "Job",
    "Outbox",
    "OutboxError",
    "OutboxReads",
    "Refusal",
    "RuleDecision",
    "SignedTx",
    "Signer",
    "SignerError",
    "StepReport",
    "load_password",
    "write_keystore",
]
