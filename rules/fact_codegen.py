"""One generated Python function per compiled group: snapshot and chain time in, the engine
fact's JSON text and the next time-driven check out.

Why generate code: this runs for every evaluation, and a generic loop over the group's
terms spends most of its time interpreting the plan (tuples of indices and coefficients,
list appends) rather than doing the arithmetic. The generated function is straight-line:
locals for the fields, the exact integer terms as expressions, one %-format of the whole
fact, and each time atom's crossing point. It computes exactly what FactBuilder's generic
read / fact / next_check_at compute (tests/rules/test_facts.py holds the two to the
same answers).

The source is built only from checked identifiers (snapshot field names) and integer
literals; every text that reaches the fact (the JSON template, constant strings) is a
value in the function's namespace, never spliced into the code.
"""

from __future__ import annotations

from collections.abc import Callable
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, NoReturn

from rules.errors import SnapshotError
from rules.snapshot import MAX_DECIMALS, Snapshot

if TYPE_CHECKING:
    from rules.facts import FactBuilder

Build = Callable[[int, Snapshot, int, bool], tuple[str, int | None]]


def _linear_source(const: int, parts: tuple[tuple[int, int], ...]) -> str:
    terms = [f"v{i}" if coef == 1 else f"({coef}) * v{i}" for i, coef in parts]
    if const or not terms:
        terms.append(f"({const})")
    return " + ".join(terms)


def generate_build(builder: FactBuilder) -> Build:
    """build(fact_id, snapshot, now, timed) -> (payload, next_check_at or None if not
    timed); raises SnapshotError exactly where FactBuilder.read would."""
    from rules import facts  # the module holding the encodings (imports this one)

    for name in builder.snapshot_vars + builder.text_fields:
        if not name.isidentifier():
            raise ValueError(f"not a field name: {name!r}")
    variables = builder.variables
    lines = ["def build(fact_id, s, now, timed):"]
    checked = []
    for i, var in enumerate(variables):
        if var == facts.NOW:
            lines.append(f"    v{i} = now")
            checked.append(f"v{i}")
        elif var != facts.UNIT:
            lines.append(f"    v{i} = s.{var}")
            checked.append(f"v{i}")
    if checked:
        test = " and ".join(f"type({v}) is int and 0 <= {v} <= MAX_UINT" for v in checked)
        lines += [f"    if not ({test}):", "        refuse(s, now)"]
    if facts.UNIT in variables:
        i = variables.index(facts.UNIT)
        lines += [
            "    d = s.decimals",
            "    if type(d) is not int or not 0 <= d <= MAX_DECIMALS:",
            "        refuse(s, now)",
            f"    v{i} = POW10[d]",
        ]
    texts = []
    if builder.text_fields:
        lines.append("    try:")
        for j, name in enumerate(builder.text_fields):
            lines.append(f"        x{j} = esc(s.{name})")
            texts.append(f"x{j}")
        lines += ["    except TypeError:", "        refuse_text(s)"]
    numbers = [(f"v{i}", True) for i in builder.num_index]
    for j, (parts, const, nonneg) in enumerate(builder.term_plan):
        lines.append(f"    t{j} = {_linear_source(const, parts)}")
        numbers.append((f"t{j}", nonneg))
    # Every number below 10**24 and not negative: one format call straight from the ints.
    short = " and ".join(f"{v} < SMALL" if nonneg else f"0 <= {v} < SMALL" for v, nonneg in numbers)
    head = ["fact_id", *texts]
    encoded = [
        f"(SHORT % {v} if {v} < SMALL else LONG % {v})" if nonneg else f"encode({v}, WIDTH)"
        for v, nonneg in numbers
    ]
    lines += [
        f"    if {short or 'True'}:",
        f"        payload = SHORT_TEMPLATE % ({', '.join([*head, *(v for v, _ in numbers)])},)",
        "    else:",
        f"        payload = TEMPLATE % ({', '.join([*head, *encoded])},)",
    ]
    lines += ["    if not timed:", "        return payload, None", "    best = None"]
    for k, op, const, parts in builder.time_plan:
        lines.append(f"    r = {_linear_source(const, parts)}")
        # k*t + r OP 0 (k > 0): the first t where the comparison can flip.
        if op in (">=", "<"):
            lines.append("    p = -r" if k == 1 else f"    p = -(r // {k})")
        elif op in (">", "<="):
            lines.append("    p = 1 - r" if k == 1 else f"    p = (-r) // {k} + 1")
        else:  # == / != flip only around an exact solution, if there is one
            lines += [
                f"    if r % {k}:",
                "        p = now",
                "    else:",
                f"        p = -(r // {k})",
                "        if p <= now:",
                "            p += 1",
            ]
        lines += ["    if p > now and (best is None or p < best):", "        best = p"]
    lines.append("    return payload, best")

    def refuse(snapshot: Snapshot, now: int) -> NoReturn:
        builder.read(snapshot, now)  # raises with the field's name
        raise SnapshotError(f"{snapshot.wallet}: a value is not a uint256")

    def refuse_text(snapshot: Snapshot) -> NoReturn:
        raise SnapshotError(f"{snapshot.wallet}: a text field is not a string")

    namespace = {
        "MAX_UINT": facts.MAX_UINT,
        "MAX_DECIMALS": MAX_DECIMALS,
        "POW10": facts.POW10,
        "SMALL": facts.SMALL,
        "SHORT": facts.SHORT_FORM,
        "LONG": f"pB%0{builder.width}d",
        "WIDTH": builder.width,
        "TEMPLATE": builder.template,
        "SHORT_TEMPLATE": builder.short_template,
        "encode": facts.encode,
        "esc": encode_basestring,
        "refuse": refuse,
        "refuse_text": refuse_text,
    }
    exec(compile("\n".join(lines), f"<rules fact builder {builder.name}>", "exec"), namespace)
    build: Build = namespace["build"]  # type: ignore[assignment]
    return build
