"""Fire once per crossing: pure decisions from an evaluation and the session's latches.

A rule fires when its condition holds and it is not latched; firing latches it. A latched
rule re-arms (its latch is cleared) when an evaluation finds its condition false. Latches of
rules outside the evaluation's scope (disabled, removed or replaced since) are left alone:
nothing says their condition turned false. A closed session decides nothing.

At most one terminal intent (close or sweep) is emitted per decision: the highest
priority one (ties: rule name). The other newly-true terminal rules are latched all the
same, so they do not fire on the next evaluation while that close is on its way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.evaluator import Evaluation
from rules.model import TERMINAL_ACTIONS, Rule


@dataclass(frozen=True, slots=True)
class Intent:
    wallet: str
    rule: str
    action: str  # "close" | "sweep" (later "notify")
    reason: str  # close: stop_loss | take_profit | expired | idle; sweep: swept
    position: int  # of the snapshot whose evaluation fired the rule
    now: int  # chain time of that evaluation
    version: str  # rule set version

    @property
    def key(self) -> str:
        """Unique per crossing: one rule fires at most once per session position."""
        return f"{self.wallet}:{self.rule}:{self.position}"


@dataclass(frozen=True, slots=True)
class Decision:
    wallet: str
    intents: tuple[Intent, ...]  # highest priority first
    latch_set: frozenset[str]  # rule names to latch for this wallet
    latch_clear: frozenset[str]  # rule names to re-arm

    @property
    def changed(self) -> bool:
        return bool(self.intents or self.latch_set or self.latch_clear)

    def apply(self, latched: frozenset[str]) -> frozenset[str]:
        """The session's latches once this decision is persisted."""
        return (latched - self.latch_clear) | self.latch_set


_NONE: frozenset[str] = frozenset()


def decide(evaluation: Evaluation, latched: frozenset[str]) -> Decision:
    wallet = evaluation.wallet
    if evaluation.status == "closed":
        return Decision(wallet, (), _NONE, _NONE)
    matched = evaluation.matched
    if not latched:
        # The common case (every evaluation of an unlatched session, a whole expiry
        # burst): nothing to re-arm, every match is fresh.
        if not matched:
            return Decision(wallet, (), _NONE, _NONE)
        fresh: tuple[Rule, ...] | list[Rule] = matched
        clear = _NONE
    else:
        true_names = {rule.name for rule in matched}
        clear = frozenset(
            name
            for name in latched
            if name not in true_names and any(r.name == name for r in evaluation.in_scope)
        )
        fresh = [rule for rule in matched if rule.name not in latched]
    intents: list[Intent] = []
    terminal_emitted = False
    for rule in fresh:  # matched is ordered by priority, then name
        if rule.action in TERMINAL_ACTIONS:
            if terminal_emitted:
                continue
            terminal_emitted = True
        intents.append(
            Intent(
                wallet=wallet,
                rule=rule.name,
                action=rule.action,
                reason=rule.reason,
                position=evaluation.position,
                now=evaluation.now,
                version=evaluation.version,
            )
        )
    return Decision(wallet, tuple(intents), frozenset(r.name for r in fresh), clear)
