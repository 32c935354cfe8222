"""Validated rules as plain values: what the loader produces and the compiler consumes."""

from __future__ import annotations

from dataclasses import dataclass

from rules.errors import Problem
from rules.syntax import Node

ACTIONS = ("close", "sweep", "notify")
# Actions that end the session: at most one of them is emitted per decision. `notify`
# ends nothing: it fires beside them, and only tells the notification channels.
TERMINAL_ACTIONS = frozenset({"close", "sweep"})


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: str  # the condition as written
    condition: Node
    action: str  # "close" | "sweep" | "notify"
    reason: str  # close: a contracts.POLICY_REASONS member; sweep: "swept"; notify: ""
    priority: int  # higher wins
    enabled: bool
    policies: frozenset[str] | None  # None: every session; else only these policy names
    replaces: tuple[str, ...]  # generic rules this preset stands in for, within its scope
    file: str
    line: int
    column: int
    description: str = ""
    message: str = ""  # notify: the template (rules.template)

    def applies_to(self, policy: str) -> bool:
        return self.policies is None or policy in self.policies


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every rule from a set of files; `digest` identifies the exact file contents;
    `warnings`: what is suspicious but usable (a condition true for every session)."""

    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    digest: str
    warnings: tuple[Problem, ...] = ()

    def by_name(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def scoped_policies(self) -> tuple[str, ...]:
        """Policy names that some enabled rule is scoped to, sorted."""
        names: set[str] = set()
        for rule in self.rules:
            if rule.enabled and rule.policies is not None:
                names |= rule.policies
        return tuple(sorted(names))

    def in_scope(self, policy: str) -> tuple[Rule, ...]:
        """Enabled rules for a session with this policy, presets replacing generic rules,
        highest priority first (ties by name)."""
        chosen = [r for r in self.rules if r.enabled and r.applies_to(policy)]
        replaced = {name for r in chosen if r.policies is not None for name in r.replaces}
        kept = [r for r in chosen if r.name not in replaced]
        return tuple(sorted(kept, key=lambda r: (-r.priority, r.name)))
