"""Tokens of the `when:` language, and the limits that keep checking a condition cheap.

A rule file is operator input read by a running daemon on SIGHUP, so the checker's cost
must not depend on what a number literal says: a literal is measured (digits, exponent)
before anything is computed from it, and only values that fit a uint256 are built.
Conditions are ASCII outside quoted text: a look-alike character (an angle quotation
mark for '<', a superscript two, an Arabic-Indic digit, a non-breaking space) is
refused at its column with the ASCII to type instead, never half-read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

from contracts import UINT256_MAX

# Bounds far above any real condition (the shipped presets are under 200 characters and
# 40 tokens), far below what costs time: each token is a few AST nodes, so the parser,
# the type checker and the compiler recurse at most a few hundred frames.
MAX_CONDITION_CHARS = 2_000
MAX_TOKENS = 200
MAX_NESTING = 32  # parentheses, 'not' and '% of' inside one another
MAX_DIGITS = 78  # digits of 2**256 - 1: more before or after the point cannot be a uint256
MAX_EXPONENT = 77  # 1e78 > 2**256 - 1

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_NUMBER = re.compile(r"[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n"
_NO_POWER = (
    "there is no power operator: write the number out or in e notation (e.g. 1e18); "
    "numbers must fit a uint256 (at most 2^256 - 1, about 1.16e77)"
)
_HINTS = {
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or '!=' to compare)",
    "^": _NO_POWER,
    "*": "there is no multiplication: use a percentage (50% of deposit), token units "
    "(2 tokens) or e notation for powers of ten (1e18)",
    "/": "there is no division: use a percentage, e.g. 50% of deposit",
}
# Characters people paste from documents, and the ASCII they stand for.
_LOOKALIKES = {
    "\u2039": "use '<'",  # single left-pointing angle quotation mark
    "\u203a": "use '>'",  # single right-pointing angle quotation mark
    "\u00ab": "use '<'",  # left-pointing double angle quotation mark
    "\u00bb": "use '>'",  # right-pointing double angle quotation mark
    "\u2264": "use '<='",  # less-than or equal to
    "\u2266": "use '<='",  # less-than over equal to
    "\u2265": "use '>='",  # greater-than or equal to
    "\u2267": "use '>='",  # greater-than over equal to
    "\u2260": "use '!='",  # not equal to
    "\uff1d": "use '=='",  # fullwidth equals sign
    "\u2212": "use '-'",  # minus sign
    "\u2013": "use '-'",  # en dash
    "\u2014": "use '-'",  # em dash
    "\u2010": "use '-'",  # hyphen
    "\uff0b": "use '+'",  # fullwidth plus sign
    "\u00d7": _HINTS["*"],  # multiplication sign
    "\u00f7": _HINTS["/"],  # division sign
    "\u201c": 'use a straight quote "',  # left double quotation mark
    "\u201d": 'use a straight quote "',  # right double quotation mark
    "\u201e": 'use a straight quote "',  # double low-9 quotation mark
    "\u2018": "use a straight quote '",  # left single quotation mark
    "\u2019": "use a straight quote '",  # right single quotation mark
    "\uff05": "use '%'",  # fullwidth percent sign
}


class ExprError(Exception):
    """A syntax or type error at `offset` in the condition string."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "num" | "dur" | "ident" | "str" | "op" | "end"
    text: str
    offset: int
    number: Fraction | None = None  # "num" and "dur": the literal's value, a uint256 or less


def _shown(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def non_ascii_message(ch: str) -> str:
    code = ord(ch)
    name = unicodedata.name(ch, "")
    label = f"U+{code:04X}" + (f" {name}" if name else "")
    digit = unicodedata.digit(ch, None)
    category = unicodedata.category(ch)
    if ch in _LOOKALIKES:
        hint = _LOOKALIKES[ch]
    elif digit is not None and category == "Nd":
        hint = f"write {digit} with the ASCII digits 0-9"
    elif digit is not None:
        hint = (
            "write numbers with the digits 0-9; there is no power operator (use e notation, "
            "e.g. 1e18)"
        )
    elif category == "Zs":
        hint = "replace it with a plain space"
    else:
        hint = "retype it in ASCII (non-ASCII text belongs inside quotes)"
    return f"non-ASCII character '{ch}' ({label}) in the condition: {hint}"


def read_number(text: str, offset: int) -> Fraction:
    """The value of a number literal (`1_000`, `1.5`, `1e18`), measured before it is
    computed: ExprError when it cannot be a uint256."""
    digits = text.replace("_", "").lower()
    mantissa, _, exponent = digits.partition("e")
    whole, _, fraction = mantissa.partition(".")
    fit = "numbers must fit a uint256 (at most 2^256 - 1, about 1.16e77)"
    # Leading zeros stripped before int(), which refuses over 4,300 digits, zeros included.
    significant = exponent.lstrip("0")
    if exponent and (len(significant) > 2 or int(significant or "0") > MAX_EXPONENT):
        raise ExprError(
            offset,
            f"exponent in '{_shown(text)}' is too large: {fit}, so the exponent is at "
            f"most {MAX_EXPONENT}",
        )
    if len(whole.lstrip("0")) > MAX_DIGITS or len(fraction) > MAX_DIGITS:
        raise ExprError(
            offset,
            f"number '{_shown(text)}' has too many digits: {fit}, which is {MAX_DIGITS} "
            f"digits at most before and after the point",
        )
    scale: int = 10 ** int(significant or "0")
    value = Fraction(int((whole + fraction).lstrip("0") or "0"), 10 ** len(fraction)) * scale
    if value > UINT256_MAX:
        raise ExprError(offset, f"number '{_shown(text)}' is too large: {fit}")
    return value


def tokenize(text: str) -> list[Token]:
    if len(text) > MAX_CONDITION_CHARS:
        raise ExprError(
            0,
            f"condition is {len(text):,} characters long, more than {MAX_CONDITION_CHARS:,}: "
            "split it into several rules",
        )
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in _SPACE:
            i += 1
            continue
        if len(tokens) >= MAX_TOKENS:
            raise ExprError(
                i,
                f"condition has more than {MAX_TOKENS} parts (values, operators, parentheses): "
                "split it into several rules",
            )
        if ord(ch) > 0x7F:
            raise ExprError(i, non_ascii_message(ch))
        if "0" <= ch <= "9":
            i = _number(text, i, tokens)
            continue
        if ch.isalpha() or ch == "_":
            m = _WORD.match(text, i)
            assert m is not None  # ch is an ASCII letter or '_'
            tokens.append(Token("ident", m.group(), i))
            i = m.end()
            continue
        if ch in "\"'":
            end = text.find(ch, i + 1)
            if end < 0:
                raise ExprError(i, f"unterminated string: close it with {ch}")
            tokens.append(Token("str", text[i + 1 : end], i))
            i = end + 1
            continue
        two = text[i : i + 2]
        if two in ("<=", ">=", "==", "!="):
            tokens.append(Token("op", two, i))
            i += 2
            continue
        if ch in "<>+-%()":
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        if ch == "=":
            raise ExprError(i, "'=' is not a comparison: use '=='")
        hint = _HINTS.get(ch, "remove it")
        raise ExprError(i, f"unexpected character '{ch}': {hint}")
    tokens.append(Token("end", "", len(text)))
    return tokens


def _number(text: str, i: int, tokens: list[Token]) -> int:
    """Reads the number (or duration) at `i` into `tokens`; the offset after it."""
    m = _NUMBER.match(text, i)
    assert m is not None  # text[i] is an ASCII digit
    end = m.end()
    unit = _WORD.match(text, end)
    if unit is None:
        tokens.append(Token("num", m.group(), i, read_number(m.group(), i)))
        return end
    word = unit.group()
    if word not in DURATION_UNITS:
        raise ExprError(
            i,
            f"bad duration '{_shown(text[i : unit.end()])}': write a whole number followed "
            "by s, m, h, d or w (e.g. 30s, 10m, 24h, 7d), or put a space before a word",
        )
    tokens.append(Token("dur", text[i : unit.end()], i, read_number(m.group(), i)))
    return unit.end()
