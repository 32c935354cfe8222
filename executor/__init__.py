"""Executor: every intent becomes exactly one relayer transaction, under guards, seen
through to confirmation. See `executor.executor` for the loop, `executor.outbox` for the
tables and `executor.errors` for what can go wrong."""

from executor.errors import ConfigError, ExecutorError, GuardConfigError, OutboxError
from executor.executor import Executor, ExecutorConfig, StepReport
from executor.fees import FeePolicy, Fees
from executor.guards import Guards, Refusal
from executor.history import OutboxReads
from executor.outbox import ORPHANED, STATES, Claim, IntentRow, Job, Outbox
from executor.settings import ExecutorSettings
from executor.signer import SignedTx, Signer, SignerError, load_password, write_keystore

__all__ = [
    "ORPHANED",
    "STATES",
    "Claim",
    "ConfigError",
    "Executor",
    "ExecutorConfig",
    "ExecutorError",
    "ExecutorSettings",
    "FeePolicy",
    "Fees",
    "GuardConfigError",
    "Guards",
    "IntentRow",
    "Job",
    "Outbox",
    "OutboxError",
    "OutboxReads",
    "Refusal",
    "SignedTx",
    "Signer",
    "SignerError",
    "StepReport",
    "load_password",
    "write_keystore",
]
