"""The catalogue, its documentation and the derivation agree: docs/notify.md shows every
kind with the catalogue's severity and example data, each lifecycle event derived from
a real event shape carries exactly the documented fields, amounts are strings, and
filter patterns are checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from indexer import Event
from indexer.projection import apply_all
from notify import KINDS, known_pattern, matches_kind, session_events
from notify.catalogue import Severity

DOC = Path(__file__).resolve().parents[2] / "docs" / "notify.md"
OWNER = "0x" + "11" * 20
W = "0x" + "ab" * 20
BIG = 2**256 - 1


def documented() -> dict[str, tuple[str, dict[str, object]]]:
    text = DOC.read_text()
    found = {}
    for m in re.finditer(r"### `([a-z_.]+)` \((\w+)\)\n\n.*?```json\n(.*?)\n```", text, re.S):
        found[m.group(1)] = (m.group(2), json.loads(m.group(3)))
    return found


def test_every_kind_is_documented_with_its_example() -> None:
    docs = documented()
    assert set(docs) == set(KINDS)
    for name, (severity, body) in docs.items():
        kind = KINDS[name]
        assert severity == kind.severity.label == body["severity"], name
        assert body["kind"] == name and body["data"] == dict(kind.example), name
        assert isinstance(body["cursor"], str)


def event(name: str, log: int, seq: int | None, **args: object) -> Event:
    return Event(
        position=(7 << 32) | log, block_number=7, block_hash="0x" + "cd" * 32,
        tx_hash="0x" + "ef" * 32, tx_index=0, log_index=log, timestamp=1_000, address=W,
        wallet=W, name=name, seq=seq, args=dict(args),
    )  # fmt: skip


def lifecycle() -> list[Event]:
    return [
        event("SessionCreated", 0, None, wallet=W, owner=OWNER, operator=OWNER, token=OWNER,
              deposit=BIG, fee=BIG - 1, expiry=2**64 - 1, budget=BIG, stopLoss=BIG - 2,
              takeProfit=0, policy="p", targets=[OWNER], salt="0x" + "00" * 32,
              balanceAfter=BIG),
        event("Deposited", 1, 1, **{"from": OWNER}, amount=BIG, fee=1, balanceAfter=BIG),
        event("Synced", 2, 2, previousBalance=5, fee=1, balanceAfter=10),
        event("Withdrawn", 3, 3, to=OWNER, amount=BIG, balanceAfter=0),
        event("Executed", 4, 4, target=OWNER, selector="0xa9059cbb", approved=BIG, spent=BIG,
              received=0, totalSpent=BIG, balanceAfter=1),
        event("Revoked", 5, 5, operator=OWNER, balanceAfter=1),
        event("Extended", 6, 6, previousExpiry=1, newExpiry=2, balanceAfter=1),
        event("Recovered", 7, 7, asset=OWNER, amount=3, balanceAfter=1),
        event("Closed", 8, 8, reason=1, by=OWNER, refund=BIG, balanceAfter=0),
        event("Closed", 9, 9, reason=5, by=OWNER, refund=BIG, balanceAfter=0),
    ]  # fmt: skip


def test_derived_lifecycle_events_carry_the_documented_fields_exactly() -> None:
    events = lifecycle()
    session = apply_all(None, events[:1])
    derived = session_events(events, {W: session}, at_ms=5)
    kinds = [d.kind for d in derived]
    assert kinds == [
        "session.created", "session.topped_up", "session.topped_up", "session.withdrawn",
        "session.executed", "session.revoked", "session.extended", "session.closed",
        "session.swept",
    ]  # fmt: skip
    for d in derived:
        example = set(KINDS[d.kind].example)
        assert set(d.data) == example or (
            d.data.get("via") == "transfer" and set(d.data) == example - {"from"}
        ), d.kind
        body = d.body()
        assert body["session"] == {"wallet": W, "owner": OWNER, "policy": "p"}
        for key, value in d.data.items():
            assert not isinstance(value, float), (d.kind, key)
            if isinstance(value, int) and not isinstance(value, bool):
                assert value < 2**53, (d.kind, key)  # numbers only where JSON is exact
    assert derived[0].data["deposit"] == str(BIG)
    assert derived[2].data == {"via": "transfer", "amount": "6", "fee": "1", "balance": "10"}
    assert derived[-2].data["reason"] == "stop_loss" and derived[-1].data["reason"] == "swept"
    assert len({d.id for d in derived}) == len(derived)


def test_events_of_unknown_sessions_and_factory_events_make_none() -> None:
    events = lifecycle()
    assert session_events(events[1:], {}, at_ms=1) == []


@pytest.mark.parametrize(
    ("pattern", "kind", "hit"),
    [("*", "session.closed", True), ("session", "session.closed", True),
     ("session.closed", "session.closed", True), ("session.closed", "session.swept", False),
     ("alert", "session.closed", False), ("sess", "session.closed", False)],
)  # fmt: skip
def test_kind_patterns(pattern: str, kind: str, hit: bool) -> None:
    assert matches_kind(pattern, kind) is hit


def test_known_patterns_and_severities() -> None:
    assert all(known_pattern(k) for k in KINDS)
    assert not known_pattern("session.opened") and not known_pattern("")
    assert Severity.parse("Warning") is Severity.WARNING
    with pytest.raises(ValueError, match="one of info, warning, critical"):
        Severity.parse("loud")
