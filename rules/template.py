"""`message:` templates of `action: notify` rules: text with `{field}` placeholders,
checked when the rule file is read and filled when the rule fires. Safe by construction:
a placeholder names one field of the session's snapshot (or `rule`, `now`) and nothing
else — no attribute or index access, no format spec, no conversion, no expression — so
a template can neither run code nor reach anything but those values. `{{` and `}}` are
literal braces. Amounts are filled exactly, in base units."""

from __future__ import annotations

import string
from collections.abc import Mapping

from rules.snapshot import FIELD_TYPES

FIELDS = frozenset({*FIELD_TYPES, "wallet", "owner", "operator", "token", "rule", "now"})
MAX_LENGTH = 1000


def template_problems(text: str) -> list[tuple[int, str]]:
    """(offset in `text`, what is wrong) for each bad placeholder; [] when fine."""
    if len(text) > MAX_LENGTH:
        return [(0, f"a message is at most {MAX_LENGTH} characters, found {len(text)}")]
    out: list[tuple[int, str]] = []
    offset = 0
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        return [(0, f"unbalanced braces ({exc}): write {{{{ and }}}} for literal braces")]
    for literal, field, spec, conversion in parts:
        offset += len(literal)
        if field is None:
            continue
        where = text.find("{" + field, offset)
        where = offset if where < 0 else where
        if conversion is not None or spec:
            out.append((where, f"{{{field}}} takes no conversion or format spec: write "
                        f"{{{field.split('!')[0]}}}"))  # fmt: skip
        elif field not in FIELDS:
            shown = field if len(field) <= 40 else field[:40] + "…"
            known = ", ".join(sorted(FIELDS))
            out.append((where, f"unknown field {{{shown}}} in message: one of {known}"))
        offset = where + len(field) + 2
    return out


def render(text: str, values: Mapping[str, object]) -> str:
    """`text` with each `{field}` replaced by str(values[field]) (checked templates
    only; a field missing from `values` is left as written)."""
    out: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(text):
        out.append(literal)
        if field is not None:
            value = values.get(field)
            out.append("{" + field + "}" if value is None else str(value))
    return "".join(out)
