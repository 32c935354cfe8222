"""Compilation of rules into durable-rules rulesets defined as data, plus the exact-integer
fact builder and the time thresholds each ruleset needs.

Why the shape: durable-rules compares numbers beyond int64 wrongly, so every number in a
fact is a fixed-width string (sign letter + zero-padded decimal digits), which the engine
compares exactly. Arithmetic never happens in the engine: each comparison is rewritten
exactly (rationals scaled to integers) as `left OP right` where each side is either a
snapshot field or a named term the fact builder computes in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rules.errors import SnapshotError
from rules.model import Rule
from rules.snapshot import DERIVED, FIELD_TYPES, MAX_DECIMALS, FieldType, Snapshot
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

UNIT = "$unit"  # the variable 10**decimals, for `N tokens`
MAX_UINT = 2**256 - 1
MIN_WIDTH = 78  # digits of 2**256 - 1
NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
ENGINE_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}

Linear = tuple[tuple[tuple[str, int], ...], int]  # ((variable, coefficient)...), constant


@dataclass(frozen=True, slots=True)
class NumAtom:
    """sum(coef * variable) + const OP 0, with integer coefficients."""

    op: str
    coefs: tuple[tuple[str, int], ...]
    const: int


@dataclass(frozen=True, slots=True)
class StrAtom:
    op: str  # "==" | "!="
    left: tuple[str, str]  # ("field", name) | ("text", value)
    right: tuple[str, str]


@dataclass(frozen=True, slots=True)
class Junction:
    op: str  # "and" | "or"
    items: tuple[Cond, ...]


Cond = NumAtom | StrAtom | Junction


def _linear(node: Node) -> tuple[dict[str, Fraction], Fraction]:
    if isinstance(node, Field):
        parts = DERIVED.get(node.name, ((node.name, 1),))
        return {name: Fraction(coef) for name, coef in parts}, Fraction(0)
    if isinstance(node, Num):
        return {}, node.value
    if isinstance(node, Duration):
        return {}, Fraction(node.seconds)
    if isinstance(node, Tokens):
        return {UNIT: node.amount}, Fraction(0)
    if isinstance(node, Percent):
        coefs, const = _linear(node.operand)
        factor = node.percent / 100
        return {k: v * factor for k, v in coefs.items()}, const * factor
    if isinstance(node, Arith):
        left, lc = _linear(node.left)
        right, rc = _linear(node.right)
        sign = 1 if node.op == "+" else -1
        out = dict(left)
        for k, v in right.items():
            out[k] = out.get(k, Fraction(0)) + sign * v
        return out, lc + sign * rc
    raise TypeError(f"not a value: {node!r}")


def _is_text(node: Node) -> bool:
    return isinstance(node, Str) or (
        isinstance(node, Field) and FIELD_TYPES.get(node.name) is FieldType.STRING
    )


def lower(node: Node, negated: bool = False) -> Cond:
    """The condition as atoms joined by and/or, `not` pushed down to the comparisons."""
    if isinstance(node, Not):
        return lower(node.item, not negated)
    if isinstance(node, BoolOp):
        op = node.op if not negated else ("or" if node.op == "and" else "and")
        return Junction(op, tuple(lower(item, negated) for item in node.items))
    if not isinstance(node, Compare):
        raise TypeError(f"not a condition: {node!r}")
    op = NEGATE[node.op] if negated else node.op
    if _is_text(node.left):
        return StrAtom(op, _text_side(node.left), _text_side(node.right))
    left, lc = _linear(node.left)
    right, rc = _linear(node.right)
    diff = dict(left)
    for k, v in right.items():
        diff[k] = diff.get(k, Fraction(0)) - v
    const = lc - rc
    scale = math.lcm(const.denominator, *(v.denominator for v in diff.values()))
    coefs = tuple(sorted((k, int(v * scale)) for k, v in diff.items() if v != 0))
    return NumAtom(op, coefs, int(const * scale))


def _text_side(node: Node) -> tuple[str, str]:
    if isinstance(node, Field):
        return ("field", node.name)
    assert isinstance(node, Str)
    return ("text", node.value)


def atoms(cond: Cond) -> list[NumAtom | StrAtom]:
    if isinstance(cond, Junction):
        return [a for item in cond.items for a in atoms(item)]
    return [cond]


def _bound(var: str) -> int:
    return 10**MAX_DECIMALS if var == UNIT else MAX_UINT


def encode(value: int, width: int) -> str:
    """Fixed-width text that sorts like the integer: 'n' < 'p', complement for negatives."""
    if value >= 0:
        return "p" + str(value).zfill(width)
    return "n" + str(10**width + value).zfill(width)


@dataclass(frozen=True, slots=True)
class TimeAtom:
    """k * now + sum(coef * var) + const OP 0 with k != 0: its truth changes with time."""

    k: int
    op: str
    others: tuple[tuple[str, int], ...]
    const: int


class CompiledGroup:
    """The engine ruleset for the sessions of one policy group, and how to build its fact."""

    def __init__(self, engine_name: str, rules: tuple[Rule, ...]) -> None:
        self.engine_name = engine_name
        self.rules = rules
        self.terms: dict[Linear, str] = {}
        self.text_terms: dict[str, str] = {}
        self.fields: set[str] = set()
        self.text_fields: set[str] = set()
        self.time_atoms: list[TimeAtom] = []
        self.index_of_action: dict[str, int] = {}
        conds = [lower(rule.condition) for rule in rules]
        bounds = [abs(a.const) for c in conds for a in atoms(c) if isinstance(a, NumAtom)]
        for cond in conds:
            for atom in atoms(cond):
                if isinstance(atom, NumAtom):
                    bounds.append(sum(abs(c) * _bound(v) for v, c in atom.coefs) + abs(atom.const))
                    k = dict(atom.coefs).get("now", 0)
                    if k:
                        others = tuple((v, c) for v, c in atom.coefs if v != "now")
                        self.time_atoms.append(TimeAtom(k, atom.op, others, atom.const))
        self.width = max(MIN_WIDTH, len(str(max(bounds, default=0))))
        self.definition: dict[str, Any] = {}
        for index, cond in enumerate(conds):
            key = f"r{index}"
            action = f"{engine_name}.{key}"
            self.index_of_action[action] = index
            self.definition[key] = {"all": [{"m": self._engine_cond(cond)}], "run": action}
        self.variables = sorted(
            {v for lin in self.terms for v, _ in lin[0]}
            | (self.fields - self.text_fields)
            | {v for atom in self.time_atoms for v, _ in atom.others}
            | ({"now"} if self.time_atoms else set())
        )
        self._text_field_list = sorted(self.text_fields)
        self._num_field_list = sorted(self.fields - self.text_fields)
        self._term_list = [(key, parts, const) for (parts, const), key in self.terms.items()]
        self.text_terms_fact = {key: text for text, key in self.text_terms.items()}

    # ---- engine conditions -----------------------------------------------------------

    def _engine_cond(self, cond: Cond) -> dict[str, Any]:
        if isinstance(cond, Junction):
            return {"$" + cond.op: [self._engine_cond(item) for item in cond.items]}
        if isinstance(cond, StrAtom):
            return self._text_cond(cond)
        return self._num_cond(cond)

    def _text_cond(self, atom: StrAtom) -> dict[str, Any]:
        left, right = atom.left, atom.right
        if left[0] == "text" and right[0] == "field":
            left, right = right, left
        key = self._text_key(left)
        value: Any = right[1] if right[0] == "text" else {"$m": self._text_key(right)}
        if atom.op == "==":
            return {key: value}
        return {"$neq": {key: value}}

    def _text_key(self, side: tuple[str, str]) -> str:
        if side[0] == "field":
            self.fields.add(side[1])
            self.text_fields.add(side[1])
            return side[1]
        return self.text_terms.setdefault(side[1], f"s{len(self.text_terms)}")

    def _num_cond(self, atom: NumAtom) -> dict[str, Any]:
        op, coefs, const = atom.op, atom.coefs, atom.const
        if not any(c > 0 for _, c in coefs):
            op, coefs, const = MIRROR[op], tuple((v, -c) for v, c in coefs), -const
        left = tuple((v, c) for v, c in coefs if c > 0)
        right = tuple((v, -c) for v, c in coefs if c < 0)
        # E = left - right + const OP 0  <=>  left OP right - const
        left_key = self._num_key((left, 0))
        right_value: Any = (
            {"$m": self._num_key((right, -const))} if right else encode(-const, self.width)
        )
        if op == "==":
            return {left_key: right_value}
        return {ENGINE_OPS[op]: {left_key: right_value}}

    def _num_key(self, lin: Linear) -> str:
        parts, const = lin
        if const == 0 and len(parts) == 1 and parts[0][1] == 1 and parts[0][0] != UNIT:
            self.fields.add(parts[0][0])
            return parts[0][0]
        return self.terms.setdefault(lin, f"t{len(self.terms)}")

    # ---- facts -----------------------------------------------------------------------

    def values(self, snapshot: Snapshot, now: int) -> dict[str, int]:
        """The integer variables this group reads, checked to be uint256."""
        out: dict[str, int] = {}
        for var in self.variables:
            if var == UNIT:
                decimals = snapshot.decimals
                if not 0 <= decimals <= MAX_DECIMALS:
                    raise SnapshotError(
                        f"{snapshot.wallet}: decimals {decimals} outside 0..{MAX_DECIMALS}"
                    )
                out[var] = 10**decimals
                continue
            value = now if var == "now" else getattr(snapshot, var)
            if type(value) is not int or not 0 <= value <= MAX_UINT:
                raise SnapshotError(f"{snapshot.wallet}: {var}={value!r} is not a uint256")
            out[var] = value
        return out

    def fact(self, fact_id: int, snapshot: Snapshot, values: dict[str, int]) -> dict[str, Any]:
        """The engine fact: numbers as fixed-width text, terms computed exactly here."""
        width = self.width
        positive = f"p%0{width}d"
        fact: dict[str, Any] = {"id": fact_id}
        for name in self._text_field_list:
            fact[name] = getattr(snapshot, name)
        for name in self._num_field_list:
            value = values[name]
            fact[name] = positive % value  # fields are uint256: never negative
        for key, parts, const in self._term_list:
            total = const
            for var, coef in parts:
                total += coef * values[var]
            fact[key] = positive % total if total >= 0 else encode(total, width)
        fact.update(self.text_terms_fact)
        return fact

    def next_check_at(self, values: dict[str, int], now: int) -> int | None:
        """Earliest chain time after `now` at which a time-dependent comparison of this
        group could change truth, given the snapshot's values()."""
        if not self.time_atoms:
            return None
        best: int | None = None
        for atom in self.time_atoms:
            rest = atom.const + sum(c * values[v] for v, c in atom.others)
            k, op = atom.k, atom.op
            if k < 0:
                k, rest, op = -k, -rest, MIRROR[op]
            at_least = -(rest // k)  # first t with k*t + rest >= 0
            above = (-rest) // k + 1  # first t with k*t + rest > 0
            if op in (">=", "<"):
                points: tuple[int, ...] = (at_least,)
            elif op in (">", "<="):
                points = (above,)
            else:  # == / != change only around an exact solution, if there is one
                points = (at_least, above) if rest % k == 0 else ()
            for point in points:
                if point > now and (best is None or point < best):
                    best = point
        return best
