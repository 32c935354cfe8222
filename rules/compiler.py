"""Compilation of rules into durable-rules rulesets defined as data, plus the exact-integer
fact builder (rules/facts.py) and the time thresholds each ruleset needs.

Why the shape: durable-rules compares numbers beyond int64 wrongly, so every number in a
fact is a string that sorts like the integer (facts.encode: a two-letter range tag and
zero-padded digits, 24 for everyday values, the group's width past 10**24), which the
engine compares exactly. Arithmetic never happens in the engine: each comparison is rewritten
exactly (rationals scaled to integers) as `left OP right` where each side is either a
snapshot field or a named term the fact builder computes in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rules.facts import MAX_UINT, MIRROR, UNIT, FactBuilder, Linear, TimeAtom, encode
from rules.model import Rule
from rules.snapshot import DERIVED, FIELD_TYPES, MAX_DECIMALS, FieldType
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

MIN_WIDTH = 78  # digits of 2**256 - 1
NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}
ENGINE_OPS = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}


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


def var_bound(var: str) -> int:
    """The largest value of a variable: 10**decimals for token units, else a uint256."""
    return 10**MAX_DECIMALS if var == UNIT else MAX_UINT


def atom_bound(atom: NumAtom) -> int:
    """The largest |value| either side of the comparison can take."""
    return sum(abs(c) * var_bound(v) for v, c in atom.coefs) + abs(atom.const)


class CompiledGroup:
    """The engine ruleset for the sessions of one policy group, and how to build its fact."""

    def __init__(self, engine_name: str, rules: tuple[Rule, ...], *, facts: bool = True) -> None:
        """`facts=False` plans the engine ruleset (its definition and the fact's keys)
        without generating the fact builder: what the checker needs to size a group."""
        self.engine_name = engine_name
        self.rules = rules
        self.terms: dict[Linear, str] = {}
        self.text_terms: dict[str, str] = {}
        self.fields: set[str] = set()
        self.text_fields: set[str] = set()
        self.time_atoms: list[TimeAtom] = []
        self.index_of_key: dict[str, int] = {}
        conds = [lower(rule.condition) for rule in rules]
        bounds = [abs(a.const) for c in conds for a in atoms(c) if isinstance(a, NumAtom)]
        for cond in conds:
            for atom in atoms(cond):
                if isinstance(atom, NumAtom):
                    bounds.append(atom_bound(atom))
                    k = dict(atom.coefs).get("now", 0)
                    if k:
                        others = tuple((v, c) for v, c in atom.coefs if v != "now")
                        self.time_atoms.append(TimeAtom(k, atom.op, others, atom.const))
        self.width = max(MIN_WIDTH, len(str(max(bounds, default=0))))
        self.definition: dict[str, Any] = {}
        for index, cond in enumerate(conds):
            key = f"r{index}"
            action = f"{engine_name}.{key}"
            self.index_of_key[key] = index
            self.definition[key] = {"all": [{"m": self._engine_cond(cond)}], "run": action}
        self.variables = sorted(
            {v for lin in self.terms for v, _ in lin[0]}
            | (self.fields - self.text_fields)
            | {v for atom in self.time_atoms for v, _ in atom.others}
            | ({"now"} if self.time_atoms else set())
        )
        if facts:
            self.facts = self._builder()
        self._single = {key: (rules[i],) for key, i in self.index_of_key.items()}

    def matched(self, keys: list[str]) -> tuple[Rule, ...]:
        """The rules behind the engine's fired rule keys, in the order of `rules`
        (priority); KeyError for a key this group does not have."""
        if len(keys) == 1:
            return self._single[keys[0]]
        return tuple(self.rules[i] for i in sorted({self.index_of_key[k] for k in keys}))

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

    def _builder(self) -> FactBuilder:
        return FactBuilder(
            self.engine_name,
            width=self.width,
            variables=self.variables,
            text_fields=sorted(self.text_fields),
            num_fields=sorted(self.fields - self.text_fields),
            terms=[(key, lin) for lin, key in self.terms.items()],
            text_terms=[(key, text) for text, key in self.text_terms.items()],
            time_atoms=self.time_atoms,
        )
