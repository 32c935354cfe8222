"""Type checking of parsed conditions: amounts, times, durations, counts and text never mix.

Every error is collected (not just the first), each with the offset it is about.
"""

from __future__ import annotations

import difflib

from contracts import SESSION_STATUSES
from rules.snapshot import FIELD_TYPES, FieldType
from rules.syntax import (
    Arith,
    BoolOp,
    Compare,
    Duration,
    Field,
    Node,
    Num,
    Percent,
    Str,
    Tokens,
    node_start,
)
from rules.tokens import ExprError

T = FieldType


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def describe(node: Node, side: str) -> str:
    if isinstance(node, Field):
        return f"'{node.name}'"
    if isinstance(node, Num | Duration):
        return f"'{node.text}'"
    if isinstance(node, Tokens):
        return f"'{node.text} tokens'"
    if isinstance(node, Str):
        return f'"{node.value}"'
    if side == "whole":
        return "the expression"
    return f"the {side} side"


class TypeChecker:
    def __init__(self) -> None:
        self.errors: list[ExprError] = []

    def fail(self, offset: int, message: str) -> None:
        self.errors.append(ExprError(offset, message))

    def check_condition(self, node: Node) -> None:
        kind = self.check(node)
        if kind is not T.BOOL and kind is not None:
            self.fail(
                node_start(node),
                f"{describe(node, 'whole')} is {kind.value}, not a condition: "
                "compare it, e.g. balance <= stop_loss",
            )

    def check(self, node: Node) -> FieldType | None:
        """The type of `node`, or None when an error inside it was already reported."""
        if isinstance(node, Field):
            return self.check_field(node)
        if isinstance(node, Num):
            if node.value.denominator != 1:
                self.fail(
                    node.offset,
                    f"'{node.text}' is not a whole number: amounts without a unit are base "
                    f"units; write '{node.text} tokens' for token units",
                )
                return None
            return T.NUMBER
        if isinstance(node, Duration):
            return T.DURATION
        if isinstance(node, Tokens):
            return T.AMOUNT
        if isinstance(node, Str):
            return T.STRING
        if isinstance(node, Percent):
            inner = self.check(node.operand)
            if inner is not None and inner not in (T.AMOUNT, T.NUMBER):
                self.fail(
                    node.offset,
                    f"a percentage applies to an amount, but {describe(node.operand, 'right')} "
                    f"is {inner.value}: write e.g. 50% of deposit",
                )
                return None
            return T.AMOUNT
        if isinstance(node, Arith):
            return self.check_arith(node)
        if isinstance(node, Compare):
            self.check_compare(node)
            return T.BOOL
        if isinstance(node, BoolOp):
            for item in node.items:
                self.check_bool_operand(item, node.op)
            return T.BOOL
        self.check_bool_operand(node.item, "not")
        return T.BOOL

    def check_bool_operand(self, item: Node, op: str) -> None:
        kind = self.check(item)
        if kind is not T.BOOL and kind is not None:
            self.fail(
                node_start(item),
                f"'{op}' needs conditions on both sides, but {describe(item, 'operand')} is "
                f"{kind.value}: compare it, e.g. balance <= stop_loss",
            )

    def check_field(self, node: Field) -> FieldType | None:
        kind = FIELD_TYPES.get(node.name)
        if kind is not None:
            return kind
        if node.name == "position":
            self.fail(node.offset, "'position' is opaque and cannot be used in a condition")
            return None
        close = suggest(node.name, tuple(FIELD_TYPES))
        hint = f"did you mean '{close}'?" if close else "fields are " + ", ".join(FIELD_TYPES)
        self.fail(node.offset, f"unknown field '{node.name}': {hint}")
        return None

    def check_arith(self, node: Arith) -> FieldType | None:
        left = self.check(node.left)
        right = self.check(node.right)
        if left is None or right is None:
            return None
        result = _arith_result(node.op, left, right)
        if result is not None:
            return result
        verb = "add" if node.op == "+" else "subtract"
        if T.NUMBER in (left, right) and {left, right} & {T.TIME, T.DURATION}:
            hint = "give plain numbers a unit: 30s, 10m, 24h, 7d"
        elif T.TIME in (left, right) and node.op == "+":
            hint = "add durations to times, e.g. last_activity + 24h"
        else:
            hint = "amounts go with amounts, times with durations, counts with counts"
        self.fail(
            node.offset,
            f"cannot {verb} {describe(node.right, 'right')} ({right.value}) "
            f"{'to' if node.op == '+' else 'from'} {describe(node.left, 'left')} "
            f"({left.value}): {hint}",
        )
        return None

    def check_compare(self, node: Compare) -> None:
        left_node, right_node = node.left, node.right
        left = self._compare_side(left_node, right_node)
        right = self._compare_side(right_node, left_node)
        if left is None or right is None:
            return
        if T.BOOL in (left, right):
            self.fail(
                node.offset,
                f"'{node.op}' compares values, not conditions: join conditions with 'and' / 'or'",
            )
            return
        if T.STRING in (left, right):
            if left is not right:
                self._mismatch(node, left, right)
                return
            if node.op not in ("==", "!="):
                self.fail(
                    node.offset,
                    f"'{node.op}' does not apply to text: compare text with == or !=",
                )
                return
            self._check_status_literal(left_node, right_node)
            self._check_status_literal(right_node, left_node)
            return
        if left is right:
            return
        if T.NUMBER in (left, right):
            other = right if left is T.NUMBER else left
            if other in (T.TIME, T.DURATION):
                self.fail(
                    node.offset,
                    f"a plain number cannot be compared with {other.value}: give it a unit "
                    "(30s, 10m, 24h, 7d) or compare with a time field",
                )
            return
        self._mismatch(node, left, right)

    def _compare_side(self, node: Node, other: Node) -> FieldType | None:
        # An unquoted word next to a text field is almost always a missing pair of quotes.
        if (
            isinstance(node, Field)
            and node.name not in FIELD_TYPES
            and isinstance(other, Field)
            and FIELD_TYPES.get(other.name) is T.STRING
        ):
            self.fail(
                node.offset,
                f"unknown field '{node.name}': to compare {other.name} with text, quote it: "
                f'"{node.name}"',
            )
            return None
        return self.check(node)

    def _check_status_literal(self, field: Node, literal: Node) -> None:
        if (
            isinstance(field, Field)
            and field.name == "status"
            and isinstance(literal, Str)
            and literal.value not in SESSION_STATUSES
        ):
            close = suggest(literal.value, SESSION_STATUSES)
            hint = f'did you mean "{close}"? ' if close else ""
            self.fail(
                literal.offset,
                f'unknown status "{literal.value}": {hint}a session is "active", '
                '"revoked" or "closed"',
            )

    def _mismatch(self, node: Compare, left: FieldType, right: FieldType) -> None:
        self.fail(
            node.offset,
            f"type mismatch: {describe(node.left, 'left')} is {left.value} but "
            f"{describe(node.right, 'right')} is {right.value}; compare amounts with amounts, "
            "times with times, durations with durations",
        )


def _arith_result(op: str, left: FieldType, right: FieldType) -> FieldType | None:
    pair = (left, right)
    if T.BOOL in pair or T.STRING in pair:
        return None
    for kind in (T.AMOUNT, T.COUNT):
        if pair in ((kind, kind), (kind, T.NUMBER), (T.NUMBER, kind)):
            return kind
    if pair == (T.NUMBER, T.NUMBER):
        return T.NUMBER
    if pair == (T.TIME, T.DURATION):
        return T.TIME
    if pair == (T.DURATION, T.TIME) and op == "+":
        return T.TIME
    if pair == (T.TIME, T.TIME) and op == "-":
        return T.DURATION
    if pair == (T.DURATION, T.DURATION):
        return T.DURATION
    return None


def check_condition(node: Node) -> list[ExprError]:
    """All type errors of a parsed condition, in the order found."""
    checker = TypeChecker()
    checker.check_condition(node)
    return checker.errors
