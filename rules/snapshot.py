"""The input contract: one frozen snapshot per session, built by the daemon from the
indexer's projection, and the types of the fields a `when:` condition may name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A session's state after its latest indexed event; amounts in token base units."""

    wallet: str  # checksummed address: the session id
    owner: str
    operator: str
    token: str
    policy: str  # policy name from the creation event ("" if none)
    status: str  # "active" | "revoked" | "closed"
    deposit: int  # creation deposit + top-ups
    withdrawn: int
    balance: int
    spent: int
    budget: int
    stop_loss: int  # 0 = not set
    take_profit: int  # 0 = not set
    expiry: int  # unix seconds
    created_at: int
    last_activity: int
    execution_count: int
    decimals: int
    position: int  # opaque, sortable position of the latest applied event

    @property
    def remaining_budget(self) -> int:
        return self.budget - self.spent


class FieldType(Enum):
    """What a value in a condition is; comparisons and arithmetic need matching types."""

    AMOUNT = "an amount"
    TIME = "a time"
    DURATION = "a duration"
    COUNT = "a count"
    STRING = "a string"
    NUMBER = "a number"  # a plain integer literal: takes the type of what it meets
    BOOL = "a condition"


# `now` is not a snapshot field: it is the chain time passed to evaluate().
FIELD_TYPES: dict[str, FieldType] = {
    "balance": FieldType.AMOUNT,
    "deposit": FieldType.AMOUNT,
    "withdrawn": FieldType.AMOUNT,
    "spent": FieldType.AMOUNT,
    "budget": FieldType.AMOUNT,
    "remaining_budget": FieldType.AMOUNT,
    "stop_loss": FieldType.AMOUNT,
    "take_profit": FieldType.AMOUNT,
    "expiry": FieldType.TIME,
    "created_at": FieldType.TIME,
    "last_activity": FieldType.TIME,
    "now": FieldType.TIME,
    "execution_count": FieldType.COUNT,
    "decimals": FieldType.COUNT,
    "status": FieldType.STRING,
    "policy": FieldType.STRING,
    "owner": FieldType.STRING,
    "operator": FieldType.STRING,
    "wallet": FieldType.STRING,
    "token": FieldType.STRING,
}

# Fields whose value is derived from others; the compiler expands them to their parts.
DERIVED: dict[str, tuple[tuple[str, int], ...]] = {
    "remaining_budget": (("budget", 1), ("spent", -1)),
}

MAX_DECIMALS = 77  # 10**77 < 2**256: `N tokens` stays inside the uint256 range per unit


def field_value(snapshot: Snapshot, name: str, now: int) -> int | str:
    """The value of a condition field for this snapshot at chain time `now`."""
    if name == "now":
        return now
    value: int | str = getattr(snapshot, name)
    return value
