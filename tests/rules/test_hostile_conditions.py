# ruff: noqa: RUF001, RUF003  (the look-alike characters are the point of these tests)
"""Conditions written to hurt the checker: numbers past uint256 (refused from their text,
never computed), non-ASCII look-alikes, deep nesting, endless conditions. Each is one
Problem at the right column with the fix; none raises, none takes long."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from rules import check_files
from rules.syntax import parse
from rules.tokens import MAX_CONDITION_CHARS, MAX_NESTING, MAX_TOKENS, ExprError, tokenize

COLUMN = 11  # of the condition in "    when: ..."


def problems_of(tmp_path: Path, when: str) -> list[tuple[int, int, str]]:
    path = tmp_path / "r.yaml"
    path.write_text(
        f"rules:\n  - name: a\n    when: {when}\n    action: close\n    reason: stop_loss\n",
        encoding="utf-8",
    )
    problems, _ = check_files([path])
    return [(p.line, p.column, p.message) for p in problems]


def one_problem(tmp_path: Path, when: str) -> tuple[int, str]:
    """(column in the condition, message) of the single problem."""
    found = problems_of(tmp_path, when)
    assert len(found) == 1, found
    line, column, message = found[0]
    assert line == 3
    assert message.startswith("in 'when': ")
    return column - COLUMN, message.removeprefix("in 'when': ")


FIT = "numbers must fit a uint256 (at most 2^256 - 1, about 1.16e77)"


@pytest.mark.parametrize(
    ("when", "offset", "message"),
    [
        (
            "balance <= 1e999999999",
            11,
            f"exponent in '1e999999999' is too large: {FIT}, so the exponent is at most 77",
        ),
        (
            "balance <= 1e78",
            11,
            f"exponent in '1e78' is too large: {FIT}, so the exponent is at most 77",
        ),
        ("balance <= 2e77", 11, f"number '2e77' is too large: {FIT}"),
        (f"balance <= {2**256}", 11, f"number '{str(2**256)[:24]}...' is too large: {FIT}"),
        (
            "balance <= " + "9" * 1000,
            11,
            f"number '{'9' * 24}...' has too many digits: {FIT}, which is 78 digits at most "
            "before and after the point",
        ),
        (
            "balance <= 1." + "1" * 79 + " tokens",
            11,
            f"number '1.{'1' * 22}...' has too many digits: {FIT}, which is 78 digits at most "
            "before and after the point",
        ),
        (
            "balance <= 2^256",
            12,
            "unexpected character '^': there is no power operator: write the number out or in "
            f"e notation (e.g. 1e18); {FIT}",
        ),
        (
            "balance <= 10**80",
            13,
            "unexpected character '*': there is no multiplication: use a percentage (50% of "
            "deposit), token units (2 tokens) or e notation for powers of ten (1e18)",
        ),
        (
            "balance <= deposit / 2",
            19,
            "unexpected character '/': there is no division: use a percentage, e.g. 50% of deposit",
        ),
        (
            f"now >= expiry + {10**72}w",
            16,
            f"duration '{str(10**72)[:24]}' is too long: durations must fit a uint256 of seconds "
            "(at most 2^256 - 1)",
        ),
    ],
)
def test_numbers_past_uint256_are_refused_from_their_text(
    tmp_path: Path, when: str, offset: int, message: str
) -> None:
    assert one_problem(tmp_path, when) == (offset, message)


@pytest.mark.parametrize(
    "when",
    [
        "balance <= 1e77",
        f"balance <= {2**256 - 1}",
        "balance <= " + "0" * 300 + "1e" + "0" * 300 + "77",
        "balance <= 1." + "0" * 78 + " tokens",
        "balance <= 115792089237316195423570985008687907853269984665640564039457584007913129639935",
    ],
)
def test_numbers_up_to_uint256_are_fine(tmp_path: Path, when: str) -> None:
    assert problems_of(tmp_path, when) == []


def test_no_python_int_string_limit_is_reached(tmp_path: Path) -> None:
    """int() refuses more than 4,300 digits: a literal that long (zeros included) is
    measured first, never handed to it."""
    assert sys.get_int_max_str_digits() <= 4300 or sys.get_int_max_str_digits() == 0
    for when in (
        "balance <= " + "0" * 1900 + "1",
        "balance <= 1e" + "0" * 1900 + "1",
        "balance <= 1." + "0" * 1900,
    ):
        with contextlib.suppress(ExprError):  # a refusal is fine; a ValueError is not
            tokenize(when)
        assert len(problems_of(tmp_path, when)) <= 1


@pytest.mark.parametrize(
    ("when", "offset", "message"),
    [
        (
            "balance ‹= ²",
            8,
            "non-ASCII character '‹' (U+2039 SINGLE LEFT-POINTING ANGLE QUOTATION MARK) in the "
            "condition: use '<'",
        ),
        (
            "balance <= ²",
            11,
            "non-ASCII character '²' (U+00B2 SUPERSCRIPT TWO) in the condition: write numbers "
            "with the digits 0-9; there is no power operator (use e notation, e.g. 1e18)",
        ),
        (
            "balance <= ٣",
            11,
            "non-ASCII character '٣' (U+0663 ARABIC-INDIC DIGIT THREE) in the condition: write "
            "3 with the ASCII digits 0-9",
        ),
        (
            "balance <= １０",
            11,
            "non-ASCII character '１' (U+FF11 FULLWIDTH DIGIT ONE) in the condition: write 1 "
            "with the ASCII digits 0-9",
        ),
        (
            "balance ≤ stop_loss",
            8,
            "non-ASCII character '≤' (U+2264 LESS-THAN OR EQUAL TO) in the condition: use '<='",
        ),
        (
            "status == “active”",
            10,
            "non-ASCII character '“' (U+201C LEFT DOUBLE QUOTATION MARK) in the condition: use "
            'a straight quote "',
        ),
        (
            "balance\u00a0<= 1",
            7,
            "non-ASCII character '\u00a0' (U+00A0 NO-BREAK SPACE) in the condition: replace it "
            "with a plain space",
        ),
        (
            "bаlance <= 1",  # a Cyrillic а
            1,
            "non-ASCII character 'а' (U+0430 CYRILLIC SMALL LETTER A) in the condition: retype "
            "it in ASCII (non-ASCII text belongs inside quotes)",
        ),
    ],
)
def test_non_ascii_outside_quotes_is_refused_at_its_column(
    tmp_path: Path, when: str, offset: int, message: str
) -> None:
    assert one_problem(tmp_path, when) == (offset, message)


def test_non_ascii_inside_quotes_is_text(tmp_path: Path) -> None:
    assert problems_of(tmp_path, 'policy == "café" and balance <= 1') == []


def test_nesting_tokens_and_length_are_bounded(tmp_path: Path) -> None:
    deep = "(" * (MAX_NESTING + 1) + "balance <= 1" + ")" * (MAX_NESTING + 1)
    assert one_problem(tmp_path, deep) == (
        MAX_NESTING,
        f"nested more than {MAX_NESTING} levels deep (parentheses, 'not', '% of'): simplify "
        "the condition or split it into several rules",
    )
    fine = "(" * MAX_NESTING + "balance <= 1" + ")" * MAX_NESTING
    assert problems_of(tmp_path, fine) == []
    nots = "not " * (MAX_NESTING + 1) + "balance <= 1"
    assert "nested more than" in one_problem(tmp_path, nots)[1]
    percents = "balance <= " + "50% of " * (MAX_NESTING + 1) + "deposit"
    assert "nested more than" in one_problem(tmp_path, percents)[1]
    many = " + ".join(["balance"] * (MAX_TOKENS // 2 + 1)) + " > 0"
    _, message = one_problem(tmp_path, many)
    assert message == (
        f"condition has more than {MAX_TOKENS} parts (values, operators, parentheses): split "
        "it into several rules"
    )
    long = "balance <= 1" + " " * MAX_CONDITION_CHARS
    assert problems_of(tmp_path, f'"{long}"')[0][2] == (
        f"in 'when': condition is {len(long):,} characters long, more than "
        f"{MAX_CONDITION_CHARS:,}: split it into several rules"
    )


def test_comparisons_too_large_once_fractions_are_cleared_are_refused(tmp_path: Path) -> None:
    message = (
        "the numbers in this comparison are too large or too precise: with its fractions "
        "cleared it needs integers over 160 digits; use fewer decimal places, fewer nested "
        "percentages or smaller numbers"
    )
    assert one_problem(tmp_path, "balance <= 1e77% of 1e77% of 1e77% of deposit") == (0, message)
    tiny = "0." + "0" * 76 + "1"
    assert one_problem(tmp_path, f"balance <= {tiny}% of {tiny}% of {tiny}% of deposit") == (
        0,
        message,
    )
    assert problems_of(tmp_path, "balance <= 1e77% of deposit") == []


def test_the_parser_never_recurses_past_its_bounds() -> None:
    """Every limit holds for the parser used directly too (the type checker and the
    compiler recurse at most a few frames per node)."""
    with pytest.raises(ExprError):
        parse("(" * 10_000 + "balance <= 1" + ")" * 10_000)
    with pytest.raises(ExprError):
        parse("not " * 10_000 + "balance <= 1")
    with pytest.raises(ExprError):
        parse(" + ".join(["balance"] * 5_000) + " > 0")
