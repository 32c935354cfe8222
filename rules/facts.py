"""The per-evaluation half of a compiled group: read a snapshot's integers once, turn them
into the engine fact, and find when time alone can next change a comparison.

The number encoding the engine compares (`encode`) lives here. So does the plan fixed
when the group is compiled (values in a fixed order, index-based terms, the fact's JSON
templates, the time atoms normalised), with two users: the function generated from it
for the hot path (`build`, rules/fact_codegen.py: every evaluation, every session of an
expiry burst), and the generic `read` / `fact` / `next_check_at` that the tests hold
`build` to (`read` also names the field of a refused snapshot).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from rules.errors import SnapshotError
from rules.fact_codegen import generate_build
from rules.snapshot import MAX_DECIMALS, Snapshot

UNIT = "$unit"  # the variable 10**decimals, for `N tokens`
NOW = "now"
MAX_UINT = 2**256 - 1
MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
POW10 = tuple(10**d for d in range(MAX_DECIMALS + 1))

Linear = tuple[tuple[tuple[str, int], ...], int]  # ((variable, coefficient)...), constant


SMALL = 10**24  # below: the short form (amounts up to a million 18-decimal tokens, times)
SHORT_FORM = "pA%024d"


def encode(value: int, width: int) -> str:
    """Text that sorts (byte-wise, as the engine compares strings) like the integer.

    Four fixed-width forms, one per range, ordered by their two-letter tag:
    nA (value <= -10**24: 10**width + value in `width` digits), nB (-10**24 < value < 0:
    10**24 + value in 24 digits), pA (0 <= value < 10**24, 24 digits), pB (10**24 <= value,
    `width` digits). Every value has exactly one text, so == is exact too. The short forms
    exist because most values (amounts, times) are far below 10**24, and the engine's cost
    grows with the fact's length: 24 instead of 79 digits per number saves about a third
    of the time spent in durable-rules. `width` must hold every |value| of the group.
    """
    if value >= 0:
        if value < SMALL:
            return SHORT_FORM % value
        return "pB" + str(value).zfill(width)
    if value > -SMALL:
        return f"nB{SMALL + value:024d}"
    return "nA" + str(10**width + value).zfill(width)


@dataclass(frozen=True, slots=True)
class TimeAtom:
    """k * now + sum(coef * var) + const OP 0 with k != 0: its truth changes with time."""

    k: int
    op: str
    others: tuple[tuple[str, int], ...]
    const: int


def _tuple_getter(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """attrgetter that always returns a tuple, whatever the number of names."""
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    many: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return many


def _json_key(name: str) -> str:
    return json.dumps(name, ensure_ascii=False).replace("%", "%%")


class FactBuilder:
    """How one group turns (snapshot, now) into its engine fact and its next check time.

    `values` is a tuple: the snapshot fields the group reads (sorted), then `now`, then
    10**decimals, each present only if some rule needs it.
    """

    def __init__(
        self,
        name: str,
        *,
        width: int,
        variables: Sequence[str],
        text_fields: Sequence[str],
        num_fields: Sequence[str],
        terms: Sequence[tuple[str, Linear]],
        text_terms: Sequence[tuple[str, str]],
        time_atoms: Sequence[TimeAtom],
    ) -> None:
        self.name = name
        self.width = width
        self.snapshot_vars = tuple(sorted(v for v in variables if v not in (NOW, UNIT)))
        self.variables = self.snapshot_vars + tuple(v for v in (NOW, UNIT) if v in variables)
        self._has_now = NOW in variables
        self._has_unit = UNIT in variables
        index = {name: i for i, name in enumerate(self.variables)}
        self._read_snapshot = _tuple_getter(self.snapshot_vars)
        self.text_fields = tuple(text_fields)
        self.num_fields = tuple(num_fields)
        self.num_index = tuple(index[name] for name in self.num_fields)
        self.terms = tuple(terms)
        # (index, coefficient) pairs; a term of non-negative parts needs no sign test.
        self.term_plan = tuple(
            (
                tuple((index[v], c) for v, c in parts),
                const,
                const >= 0 and all(c > 0 for _, c in parts),
            )
            for _, (parts, const) in self.terms
        )
        self.text_terms = dict(text_terms)
        # The fact's JSON with a slot per value: `template` takes each number already
        # encoded (%s), `short_template` takes the integers themselves when every one of
        # them is in the short form's range (the common case: no string per number).
        self.template, self.short_template = (
            ",".join(
                [
                    '{"id":%d',
                    *(f"{_json_key(name)}:%s" for name in self.text_fields),
                    *(f"{_json_key(n)}:{number}" for n in self.num_fields),
                    *(f"{_json_key(key)}:{number}" for key, _ in self.terms),
                    *(f"{_json_key(k)}:{_json_key(text)}" for k, text in self.text_terms.items()),
                ]
            )
            + "}"
            for number in ('"%s"', f'"{SHORT_FORM}"')
        )
        self.time_plan: list[tuple[int, str, int, tuple[tuple[int, int], ...]]] = []
        for atom in time_atoms:
            # Normalise to k > 0 so the first crossing point is a floor division.
            sign = 1 if atom.k > 0 else -1
            op = atom.op if sign == 1 else MIRROR[atom.op]
            self.time_plan.append(
                (
                    atom.k * sign,
                    op,
                    atom.const * sign,
                    tuple((index[v], c * sign) for v, c in atom.others),
                )
            )
        self.build = generate_build(self)

    # ---- values --------------------------------------------------------------------

    def read(self, snapshot: Snapshot, now: int) -> tuple[int, ...]:
        """The integers this group reads, each checked to be a uint256."""
        values: tuple[int, ...] = self._read_snapshot(snapshot)
        for value in values:
            if type(value) is not int or value < 0 or value > MAX_UINT:
                self._refuse(snapshot, values)
        if self._has_now:
            if type(now) is not int or now < 0 or now > MAX_UINT:
                raise SnapshotError(f"{snapshot.wallet}: now={now!r} is not a uint256")
            values += (now,)
        if self._has_unit:
            decimals = snapshot.decimals
            if type(decimals) is not int or not 0 <= decimals <= MAX_DECIMALS:
                raise SnapshotError(
                    f"{snapshot.wallet}: decimals {decimals!r} outside 0..{MAX_DECIMALS}"
                )
            values += (POW10[decimals],)
        return values

    def _refuse(self, snapshot: Snapshot, values: tuple[Any, ...]) -> None:
        for name, value in zip(self.snapshot_vars, values, strict=False):
            if type(value) is not int or not 0 <= value <= MAX_UINT:
                raise SnapshotError(f"{snapshot.wallet}: {name}={value!r} is not a uint256")

    def _term_values(self, values: tuple[int, ...]) -> list[int]:
        out = []
        for parts, const, _ in self.term_plan:
            total = const
            for i, coef in parts:
                total += coef * values[i]
            out.append(total)
        return out

    # ---- the fact ------------------------------------------------------------------

    def fact(self, fact_id: int, snapshot: Snapshot, values: tuple[int, ...]) -> dict[str, Any]:
        """The same fact as a dict, for Host.assert_fact (the public engine path)."""
        fact: dict[str, Any] = {"id": fact_id}
        for name in self.text_fields:
            fact[name] = getattr(snapshot, name)
        for name, i in zip(self.num_fields, self.num_index, strict=True):
            fact[name] = encode(values[i], self.width)
        for (key, _), total in zip(self.terms, self._term_values(values), strict=True):
            fact[key] = encode(total, self.width)
        fact.update(self.text_terms)
        return fact

    # ---- time ----------------------------------------------------------------------

    def next_check_at(self, values: tuple[int, ...], now: int) -> int | None:
        """Earliest chain time after `now` at which a time-dependent comparison of this
        group could change truth, given read()'s values."""
        best: int | None = None
        for k, op, const, parts in self.time_plan:
            rest = const
            for i, coef in parts:
                rest += coef * values[i]
            # k*t + rest OP 0: first t with k*t + rest >= 0, and first with > 0.
            if op == ">=" or op == "<":
                point = -(rest // k)
            elif op == ">" or op == "<=":
                point = (-rest) // k + 1
            else:  # == / != change only around an exact solution, if there is one
                if rest % k:
                    continue
                point = -(rest // k)
                if point <= now:
                    point += 1
            if point > now and (best is None or point < best):
                best = point
        return best
