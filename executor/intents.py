"""Intents: what the outbox takes from the rules side, and the rows it keeps of them.

The outbox does not import `rules`: it reads a decision and its intents through the
structural types below, which `rules.Decision` and `rules.Intent` satisfy as they are (as
would any other source of intents). `Outbox.record` returns the caller's own intent
objects, typed as the caller's type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Protocol, TypeVar

from database import Queries
from executor.schema import ORPHANED


class FiredIntent(Protocol):
    """An intent as the rules side produces it (`rules.Intent` is one)."""

    @property
    def key(self) -> str: ...  # unique per crossing: wallet:rule:position
    @property
    def wallet(self) -> str: ...
    @property
    def rule(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def position(self) -> int: ...  # of the snapshot whose evaluation fired the rule
    @property
    def now(self) -> int: ...  # chain time of that evaluation
    @property
    def version(self) -> str: ...  # rule set version


IntentT = TypeVar("IntentT", bound=FiredIntent)
IntentT_co = TypeVar("IntentT_co", bound=FiredIntent, covariant=True)


class RuleDecision(Protocol[IntentT_co]):
    """One session's decision: its new intents and latch changes (`rules.Decision`)."""

    @property
    def wallet(self) -> str: ...
    @property
    def intents(self) -> Sequence[IntentT_co]: ...  # highest priority first
    @property
    def latch_set(self) -> Set[str]: ...
    @property
    def latch_clear(self) -> Set[str]: ...


@dataclass(frozen=True, slots=True)
class IntentRow:
    id: int
    key: str
    wallet: str
    rule: str
    action: str
    reason: str
    position: int
    triggered_at: int
    state: str
    detail: str | None
    job_id: int | None
    created_ms: int
    misses: int = 0  # transactions mined for it that closed nothing


INTENT_COLUMNS = (
    "id, key, wallet, rule, action, reason, position, triggered_at, state, detail, job_id, "
    "created_ms, mined_without_effect"
)
_CLEAR = "DELETE FROM rule_latches WHERE wallet = ? AND rule = ?"
_SET = "INSERT INTO rule_latches (wallet, rule) VALUES (?, ?) ON CONFLICT (wallet, rule) DO NOTHING"


def latch_runs(
    decisions: Iterable[RuleDecision[IntentT]],
) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[IntentT]]:
    """The latch statements of `decisions` and their intents. Latch changes keep their
    order (one call may hold a wallet's change and its clock check), grouped into runs of
    one statement; the intents are stored after them."""
    runs: list[tuple[str, list[tuple[str, str]]]] = []
    intents: list[IntentT] = []
    for decision in decisions:
        for sql, names in ((_CLEAR, decision.latch_clear), (_SET, decision.latch_set)):
            if not names:
                continue
            if not runs or runs[-1][0] != sql:
                runs.append((sql, []))
            runs[-1][1].extend((decision.wallet, name) for name in names)
        intents.extend(decision.intents)
    return runs, intents


async def store_intents(tx: Queries, intents: Sequence[IntentT], now_ms: int) -> list[IntentT]:
    """Insert the intents not stored yet, inside the caller's transaction; returns them,
    and those open again (see `Outbox.record`)."""
    fresh: list[IntentT] = []
    known: set[str] = set()
    obsolete: dict[str, str] = {}
    again: list[IntentT] = []
    keys = [i.key for i in intents]
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        for key, state, detail in await tx.fetch(
            "SELECT key, state, detail FROM intents "
            f"WHERE key IN ({', '.join('?' for _ in chunk)})",
            chunk,
        ):
            known.add(key)
            if state == "obsolete":
                obsolete[key] = detail or ""
    for intent in intents:
        if intent.key not in known:
            known.add(intent.key)
            fresh.append(intent)
        elif intent.key in obsolete:
            # The rule fired again for an open session at the same position: whatever
            # made the intent obsolete (its trigger orphaned, or the close by someone
            # else) a reorg has undone, and the rule was unlatched for it. The same
            # crossing, so the same intent, open again; the guards and the preflight
            # decide afresh. A failed intent stays failed (the relayer's protection).
            why = obsolete.pop(intent.key)
            again.append(intent)
            detail = (
                "fired again on the new branch of a reorg"
                if why.startswith(ORPHANED)
                else f"fired again after a reorg undid what made it obsolete ({why[:120]})"
            )
            await tx.execute(
                "UPDATE intents SET state = 'pending', job_id = NULL, detail = ?, "
                "updated_ms = ? WHERE key = ?",
                (detail, now_ms, intent.key),
            )
    await tx.executemany(
        "INSERT INTO intents (key, wallet, rule, action, reason, position, "
        "triggered_at, rules_version, state, created_ms, updated_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
        [
            (i.key, i.wallet, i.rule, i.action, i.reason, i.position, i.now, i.version,
             now_ms, now_ms)
            for i in fresh
        ],
    )  # fmt: skip
    return fresh + again
