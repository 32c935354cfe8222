"""The seam between the indexer's projection and the rules: one `Session` row becomes
the `Snapshot` the rules evaluate. Kept in the composition layer because neither package
may import the other."""

from __future__ import annotations

from indexer import Session
from rules import Snapshot


def snapshot_of(session: Session, decimals: int) -> Snapshot:
    return Snapshot(
        wallet=session.wallet,
        owner=session.owner,
        operator=session.operator,
        token=session.token,
        policy=session.policy,
        status=session.status,
        deposit=session.deposit,
        withdrawn=session.withdrawn,
        balance=session.balance,
        spent=session.spent,
        budget=session.budget,
        stop_loss=session.stop_loss,
        take_profit=session.take_profit,
        expiry=session.expiry,
        created_at=session.created_at,
        last_activity=session.last_activity,
        execution_count=session.execution_count,
        decimals=decimals,
        position=session.last_position,
    )
