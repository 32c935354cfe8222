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

from collections.abc import Iterator

from rules.compiler import Cond, Junction, NumAtom, StrAtom, atom_bound, lower, var_bound
from rules.facts import UNIT
from rules.syntax import BoolOp, Compare, Node, Not, node_start
from rules.tokens import ExprError

# 2 * 78 digits (a uint256 times a 78-digit coefficient) and some room: no hand-written
# comparison comes near it, and facts stay far below what slows the engine.
MAX_MAGNITUDE = 10**160
ACTIVE = "active"


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
        lowered = lower(compare)
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
    return _truth(lower(node), policy) is True


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
