"""A reference evaluator over the parsed AST: plain Python ints and Fractions, no engine,
no linearisation, no fixed-width strings. The differential tests hold the engine to it."""

from __future__ import annotations

import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from rules import Snapshot
from rules.syntax import (
    Arith,
    BoolOp,
    Compare,
    Duration,
    Field,
    Node,
    Not,
    Num,
    Percent,
    Str,
    Tokens,
)

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def value(node: Node, snap: Snapshot, now: int) -> Fraction | str:
    if isinstance(node, Field):
        if node.name == "now":
            return Fraction(now)
        raw = getattr(snap, node.name)
        return raw if isinstance(raw, str) else Fraction(raw)
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Duration):
        return Fraction(node.seconds)
    if isinstance(node, Tokens):
        scale: int = 10**snap.decimals
        return node.amount * scale
    if isinstance(node, Str):
        return node.value
    if isinstance(node, Percent):
        inner = value(node.operand, snap, now)
        assert isinstance(inner, Fraction)
        return node.percent * inner / 100
    if isinstance(node, Arith):
        left, right = value(node.left, snap, now), value(node.right, snap, now)
        assert isinstance(left, Fraction) and isinstance(right, Fraction)
        return left + right if node.op == "+" else left - right
    raise TypeError(node)


def holds(node: Node, snap: Snapshot, now: int) -> bool:
    if isinstance(node, Compare):
        return OPS[node.op](value(node.left, snap, now), value(node.right, snap, now))
    if isinstance(node, BoolOp):
        results = [holds(item, snap, now) for item in node.items]
        return all(results) if node.op == "and" else any(results)
    if isinstance(node, Not):
        return not holds(node.item, snap, now)
    raise TypeError(node)


def comparisons(node: Node) -> list[Compare]:
    if isinstance(node, Compare):
        return [node]
    if isinstance(node, BoolOp):
        return [c for item in node.items for c in comparisons(item)]
    if isinstance(node, Not):
        return comparisons(node.item)
    return []
