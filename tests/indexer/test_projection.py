"""The projection is pure: each session is rebuilt exactly from its events, and a gap in
a wallet's sequence numbers is recorded rather than hidden."""

from __future__ import annotations

from typing import Any

import pytest

from indexer import Event, apply, replay
from indexer.projection import ProjectionError

W = "0x00000000000000000000000000000000000000A1"
OWNER = "0x00000000000000000000000000000000000000B2"


def ev(name: str, seq: int, block: int, **args: Any) -> Event:
    return Event(
        position=(block << 32) | seq, block_number=block, block_hash=f"0x{block:064x}",
        tx_hash="0x" + "11" * 32, tx_index=0, log_index=seq, timestamp=1_000 + block,
        address=W, name=name, wallet=W, seq=seq, args=args,
    )  # fmt: skip


def created(balance: int = 100) -> Event:
    return ev(
        "SessionCreated", 0, 1, wallet=W, owner=OWNER, operator=OWNER, token=OWNER,
        deposit=balance, fee=1, expiry=5_000, budget=50, stopLoss=10, takeProfit=300,
        policy="merchant", targets=[OWNER], salt="0x" + "00" * 32, balanceAfter=balance,
    )  # fmt: skip


def test_a_full_lifecycle_is_rebuilt() -> None:
    s = replay([
        created(),
        ev("Deposited", 1, 2, amount=20, fee=3, balanceAfter=120, **{"from": OWNER}),
        ev("Executed", 2, 3, target=OWNER, selector="0x12345678", approved=30, spent=30,
           received=0, totalSpent=30, balanceAfter=90),
        ev("Withdrawn", 3, 4, to=OWNER, amount=40, balanceAfter=50),
        ev("Extended", 4, 5, previousExpiry=5_000, newExpiry=9_000, balanceAfter=50),
        ev("Synced", 5, 6, previousBalance=50, fee=1, balanceAfter=57),
        ev("Revoked", 6, 7, operator=OWNER, balanceAfter=57),
        ev("Closed", 7, 8, reason=5, by=OWNER, refund=57, balanceAfter=0),
    ])  # fmt: skip
    assert s is not None
    assert (s.deposit, s.withdrawn, s.spent, s.balance, s.expiry) == (120, 40, 30, 0, 9_000)
    assert (s.status, s.close_reason, s.refund, s.execution_count) == ("closed", "swept", 57, 1)
    assert (s.revoked_at, s.closed_at, s.last_activity) == (1_007, 1_008, 1_008)
    assert s.remaining_budget == 20 and s.seq_gaps == 0 and s.last_seq == 7
    assert s.fee == 1 + 3 + 1  # creation, top-up, the inflow found by the sync


def test_a_sequence_gap_is_recorded_with_where_it_happened() -> None:
    s = replay([
        created(),
        ev("Deposited", 1, 2, amount=1, fee=0, balanceAfter=101, **{"from": OWNER}),
        ev("Deposited", 3, 9, amount=1, fee=0, balanceAfter=103, **{"from": OWNER}),
    ])  # fmt: skip
    assert s is not None
    assert s.seq_gaps == 1 and s.gap_note == "seq 3 after 1 at block 9"
    assert s.balance == 103  # still taken from the chain's balanceAfter


def test_an_event_for_a_session_never_created_is_refused() -> None:
    with pytest.raises(ProjectionError, match="unknown wallet"):
        apply(None, ev("Deposited", 1, 2, amount=1, fee=0, balanceAfter=1, **{"from": OWNER}))


def test_creating_twice_is_refused() -> None:
    s = apply(None, created())
    with pytest.raises(ProjectionError, match="created twice"):
        apply(s, created())
