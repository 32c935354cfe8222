"""Evaluation of one session snapshot at one chain time: which rules hold, and when the
answer can next change by time alone."""

from __future__ import annotations

from dataclasses import dataclass

from rules.compiler import CompiledGroup
from rules.engine_host import RulesHost
from rules.errors import EngineError
from rules.model import Rule, RuleSet
from rules.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Evaluation:
    wallet: str
    status: str
    position: int
    now: int
    version: str  # the rule set that produced it
    in_scope: tuple[Rule, ...]  # enabled rules for this session, highest priority first
    matched: tuple[Rule, ...]  # those whose condition holds now, same order
    next_check_at: int | None  # earliest later chain time a time condition can flip


class Evaluator:
    """A RuleSet compiled onto the shared Host: one engine ruleset per policy group.

    Sessions whose policy no rule is scoped to share the default group. Groups are
    registered under names carrying a fresh generation number, so a reload never reuses
    a ruleset name.
    """

    def __init__(self, host: RulesHost, ruleset: RuleSet) -> None:
        self.host = host
        self.ruleset = ruleset
        self.version = ruleset.digest[:16]
        self.generation = host.next_generation()
        self._fact_ids = 0
        self._groups: dict[str, CompiledGroup] = {}
        definitions = {}
        policies = ruleset.scoped_policies()
        for index, policy in enumerate((None, *policies)):
            # The default group: a policy name no scope mentions ("" never is one).
            rules = ruleset.in_scope("" if policy is None else policy)
            if policy is None:
                rules = tuple(r for r in rules if r.policies is None)
            group = CompiledGroup(f"warden_g{self.generation}_{index}", rules)
            self._groups["\0default" if policy is None else policy] = group
            if rules:
                definitions[group.engine_name] = group.definition
        self._default = self._groups["\0default"]
        if definitions:
            host.register(definitions)
        self._handles = {name: host.handle_of(name) for name in definitions}

    def group_for(self, policy: str) -> CompiledGroup:
        return self._groups.get(policy, self._default)

    def evaluate(self, snapshot: Snapshot, now: int) -> Evaluation:
        group = self._groups.get(snapshot.policy, self._default)
        timed = snapshot.status != "closed"
        matched: tuple[Rule, ...] = ()
        next_check: int | None = None
        if group.rules:  # else nothing to read: no rule, no time atom
            self._fact_ids += 1
            fact_id = self._fact_ids
            payload, next_check = group.facts.build(fact_id, snapshot, now, timed)
            keys = self.host.fire(self._handles[group.engine_name], fact_id, payload)
            if keys:
                matched = self._matched(group, keys)
        return Evaluation(
            wallet=snapshot.wallet,
            status=snapshot.status,
            position=snapshot.position,
            now=now,
            version=self.version,
            in_scope=group.rules,
            matched=matched,
            next_check_at=next_check,
        )

    @staticmethod
    def _matched(group: CompiledGroup, keys: list[str]) -> tuple[Rule, ...]:
        try:
            return group.matched(keys)
        except KeyError as exc:
            raise EngineError(f"{group.engine_name} fired unknown rule {exc}") from exc
