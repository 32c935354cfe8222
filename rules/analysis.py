"""What types alone do not show, judged on the exact linear form the compiler will use
(`compiler.lower`) of a condition that type-checked:

- an error when a comparison's numbers, once its fractions are cleared, exceed
  `MAX_MAGNITUDE`: the engine's fact for the whole policy group would carry numbers
  that long, on every evaluation (`1e77% of 1e77% of ... deposit`, 78-digit decimals);
- a warning when the condition holds for every active session by construction
  (`status == "active"` alone, `balance >= 0`): the rule would fire for every session
  as soon as it is indexed.

The second is a sound interval analysis, nothing cleverer: every field is taken
anywhere in its range (uint256; 10**decimals for token units) independently of the
others, `status` is "active" and `policy` is the rule's scope when it names one policy.
When it says "always true", no session can make the condition false. It misses
tautologies that need a relation across comparisons: `balance <= balance + 1` is found
(one comparison: 0 <= 1), `spent <= budget or spent > budget` is not.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

from rules.compiler import (
    CompiledGroup,
    Cond,
    Junction,
    NumAtom,
    StrAtom,
    atom_bound,
    lower,
    var_bound,
)
from rules.facts import UNIT
from rules.model import Rule, RuleSet
from rules.syntax import BoolOp, Compare, Node, Not, node_start
from rules.tokens import ExprError

# What durable-rules 2.0 can take in one compiled ruleset (one policy group), measured:
# more than 64 matches of one fact fail every evaluation of that session (error 303), a
# ruleset of more than 512 alternatives never finishes compiling (the reload would hang
# in C, deaf to signals), and a fact of more than 255 properties is refused (error 302).
# Counting every 'or' alternative (the condition's disjunctive normal form) bounds the
# matches; the fact's properties are the fields and the computed terms.
MAX_GROUP_BRANCHES = 64
MAX_FACT_PROPERTIES = 240
# 2 * 78 digits (a uint256 times a 78-digit coefficient) and some room: no hand-written
# comparison comes near it, and facts stay far below what slows the engine.
MAX_MAGNITUDE = 10**160
ACTIVE = "active"
# Nodes are frozen values: each analysis below lowers the same condition, once.
_lower = functools.lru_cache(maxsize=1024)(lower)


def _comparisons(node: Node) -> Iterator[Compare]:
    if isinstance(node, Compare):
        yield node
    elif isinstance(node, BoolOp):
        for item in node.items:
            yield from _comparisons(item)
    elif isinstance(node, Not):
        yield from _comparisons(node.item)


def magnitude_errors(node: Node) -> list[ExprError]:
    """Comparisons whose integer form would exceed MAX_MAGNITUDE (type-checked input)."""
    errors: list[ExprError] = []
    for compare in _comparisons(node):
        lowered = _lower(compare)
        if isinstance(lowered, NumAtom) and atom_bound(lowered) > MAX_MAGNITUDE:
            errors.append(
                ExprError(
                    node_start(compare),
                    "the numbers in this comparison are too large or too precise: with its "
                    "fractions cleared it needs integers over 160 digits; use fewer decimal "
                    "places, fewer nested percentages or smaller numbers",
                )
            )
    return errors


def always_true(node: Node, policies: frozenset[str] | None) -> bool:
    """True only when the condition holds for every active session in scope."""
    policy = next(iter(policies)) if policies is not None and len(policies) == 1 else None
    return _truth(_lower(node), policy) is True


def _truth(cond: Cond, policy: str | None) -> bool | None:
    """True / False when the condition has that value for every active session, None when
    it depends on the session."""
    if isinstance(cond, Junction):
        values = [_truth(item, policy) for item in cond.items]
        if cond.op == "and":
            if all(v is True for v in values):
                return True
            return False if any(v is False for v in values) else None
        if any(v is True for v in values):
            return True
        return False if all(v is False for v in values) else None
    if isinstance(cond, StrAtom):
        return _text_truth(cond, policy)
    return _number_truth(cond)


def _text_truth(atom: StrAtom, policy: str | None) -> bool | None:
    if atom.left == atom.right and atom.left[0] == "field":
        equal: bool | None = True
    else:
        left, right = _known(atom.left, policy), _known(atom.right, policy)
        equal = None if left is None or right is None else left == right
    if equal is None:
        return None
    return equal if atom.op == "==" else not equal


def _known(side: tuple[str, str], policy: str | None) -> str | None:
    kind, value = side
    if kind == "text":
        return value
    if value == "status":
        return ACTIVE
    if value == "policy":
        return policy
    return None


def _number_truth(atom: NumAtom) -> bool | None:
    """sum(c * v) + const OP 0 over independent variables in their ranges."""
    low = high = atom.const
    for var, coef in atom.coefs:
        least = 1 if var == UNIT else 0
        ends = (coef * least, coef * var_bound(var))
        low += min(ends)
        high += max(ends)
    op = atom.op
    if op == ">=":
        return True if low >= 0 else False if high < 0 else None
    if op == ">":
        return True if low > 0 else False if high <= 0 else None
    if op == "<=":
        return True if high <= 0 else False if low > 0 else None
    if op == "<":
        return True if high < 0 else False if low >= 0 else None
    equal = True if low == high == 0 else False if low > 0 or high < 0 else None
    if equal is None:
        return None
    return equal if op == "==" else not equal


def branches(cond: Cond, cap: int) -> int:
    """Alternatives of the condition in disjunctive normal form, counted up to cap + 1."""
    if not isinstance(cond, Junction):
        return 1
    total = 0 if cond.op == "or" else 1
    for item in cond.items:
        count = branches(item, cap)
        total = min(total + count if cond.op == "or" else total * count, cap + 1)
    return total


def _groups(rules: Sequence[Rule]) -> Iterator[tuple[str, tuple[Rule, ...]]]:
    """The rules of each policy group, as the Evaluator compiles them."""
    ruleset = RuleSet(tuple(rules), (), "")
    for policy in (None, *ruleset.scoped_policies()):
        members = ruleset.in_scope("" if policy is None else policy)
        if policy is None:
            yield (
                "sessions without a scoped policy",
                tuple(r for r in members if r.policies is None),
            )
        else:
            yield f"policy '{policy}'", members


def capacity_problems(rules: Sequence[Rule]) -> list[tuple[Rule, str]]:
    """Groups the engine cannot run, each reported at the rule that crosses the limit."""
    found: list[tuple[Rule, str]] = []
    for label, members in _groups(rules):
        used = 0
        properties: set[object] = set()
        for rule in members:
            used += branches(_lower(rule.condition), MAX_GROUP_BRANCHES)
            if used > MAX_GROUP_BRANCHES:
                found.append(
                    (
                        rule,
                        _too_many(
                            label,
                            f"more than {MAX_GROUP_BRANCHES} "
                            "alternatives (rules, counting each 'or')",
                        ),
                    )
                )
                break
            alone = CompiledGroup("capacity_check", (rule,), facts=False)
            properties |= set(alone.fields) | set(alone.terms) | set(alone.text_terms)
            if len(properties) + 1 > MAX_FACT_PROPERTIES:
                found.append(
                    (
                        rule,
                        _too_many(
                            label,
                            f"more than {MAX_FACT_PROPERTIES} distinct fields and computed values",
                        ),
                    )
                )
                break
    return found


def _too_many(label: str, what: str) -> str:
    return (
        f"the rules for {label} need {what}, more than the rules engine evaluates for one "
        "session: disable or merge rules, or scope them to fewer policies"
    )
