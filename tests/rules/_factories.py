"""Snapshots and rule sets for tests, built in code."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from rules import Rule, RuleSet, Snapshot
from rules.syntax import parse
from rules.typecheck import check_condition

D18 = 10**18


def snap(**changes: Any) -> Snapshot:
    base = Snapshot(
        wallet="0x00000000000000000000000000000000000000A1",
        owner="0x00000000000000000000000000000000000000B2",
        operator="0x00000000000000000000000000000000000000C3",
        token="0x00000000000000000000000000000000000000D4",
        policy="",
        status="active",
        deposit=100 * D18,
        withdrawn=0,
        balance=100 * D18,
        spent=0,
        budget=50 * D18,
        stop_loss=40 * D18,
        take_profit=200 * D18,
        expiry=1_700_100_000,
        created_at=1_700_000_000,
        last_activity=1_700_000_000,
        execution_count=0,
        decimals=18,
        position=1,
    )
    return dataclasses.replace(base, **changes)


def rule(
    name: str,
    when: str,
    action: str = "close",
    reason: str = "stop_loss",
    priority: int = 0,
    policies: frozenset[str] | None = None,
    replaces: tuple[str, ...] = (),
    enabled: bool = True,
) -> Rule:
    node = parse(when)
    errors = check_condition(node)
    assert not errors, [e.message for e in errors]
    return Rule(
        name=name,
        when=when,
        condition=node,
        action=action,
        reason=reason if action == "close" else "swept",
        priority=priority,
        enabled=enabled,
        policies=policies,
        replaces=replaces,
        file="<test>",
        line=1,
        column=1,
    )


def ruleset(*rules: Rule) -> RuleSet:
    text = "\n".join(f"{r.name}|{r.when}|{r.action}|{r.priority}|{r.policies}" for r in rules)
    return RuleSet(tuple(rules), ("<test>",), hashlib.sha256(text.encode()).hexdigest())
