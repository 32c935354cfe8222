"""The `when:` expression language: a recursive-descent parser and the AST (the tokens
and the limits on their size are in tokens.py).

Offsets are 0-based character positions inside the condition string; the loader maps them
to line and column in the YAML file.

    condition := or
    or        := and ("or" and)*
    and       := not ("and" not)*
    not       := "not" not | compare
    compare   := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]
    sum       := unary (("+" | "-") unary)*
    unary     := NUMBER "%" "of" unary | NUMBER ("tokens" | "token") | DURATION | NUMBER
               | FIELD | STRING | "(" condition ")"
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from contracts import UINT256_MAX
from rules.tokens import (
    DURATION_UNITS,
    MAX_NESTING,
    ExprError,
    Token,
    tokenize,
)

COMPARE_OPS = ("<=", ">=", "==", "!=", "<", ">")
KEYWORDS = ("and", "or", "not", "of", "tokens", "token")


# ---- AST -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: Fraction
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Duration:
    seconds: int
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Tokens:
    amount: Fraction  # in whole tokens; times 10**decimals in base units
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    offset: int


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    offset: int


@dataclass(frozen=True, slots=True)
class Percent:
    percent: Fraction
    operand: Node
    offset: int


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # "+" | "-"
    left: Node
    right: Node
    offset: int  # of the operator


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node
    offset: int  # of the operator


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]
    offset: int


@dataclass(frozen=True, slots=True)
class Not:
    item: Node
    offset: int


Node = Num | Duration | Tokens | Str | Field | Percent | Arith | Compare | BoolOp | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0  # parentheses, 'not' and '% of' entered and not yet left

    def enter(self, tok: Token) -> None:
        """Bounds the recursion: each level is a few frames here, in the type checker
        and in the compiler."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(
                tok.offset,
                f"nested more than {MAX_NESTING} levels deep (parentheses, 'not', '% of'): "
                "simplify the condition or split it into several rules",
            )

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text == word

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError(0, "empty condition: write e.g. balance <= stop_loss")
        node = self.parse_or()
        if self.tok.kind != "end":
            raise ExprError(self.tok.offset, f"unexpected {_describe(self.tok)}: {_join_hint()}")
        return node

    def parse_or(self) -> Node:
        first = self.parse_and()
        items = [first]
        while self.is_word("or"):
            self.take()
            items.append(self.parse_and())
        return first if len(items) == 1 else BoolOp("or", tuple(items), _offset(first))

    def parse_and(self) -> Node:
        first = self.parse_not()
        items = [first]
        while self.is_word("and"):
            self.take()
            items.append(self.parse_not())
        return first if len(items) == 1 else BoolOp("and", tuple(items), _offset(first))

    def parse_not(self) -> Node:
        if self.is_word("not"):
            tok = self.take()
            self.enter(tok)
            item = self.parse_not()
            self.depth -= 1
            return Not(item, tok.offset)
        return self.parse_compare()

    def parse_compare(self) -> Node:
        left = self.parse_sum()
        if self.tok.kind == "op" and self.tok.text in COMPARE_OPS:
            op = self.take()
            right = self.parse_sum()
            if self.tok.kind == "op" and self.tok.text in COMPARE_OPS:
                raise ExprError(
                    self.tok.offset,
                    "chained comparison: write 'a < b and b < c' instead of 'a < b < c'",
                )
            return Compare(op.text, left, right, op.offset)
        return left

    def parse_sum(self) -> Node:
        node = self.parse_unary()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take()
            node = Arith(op.text, node, self.parse_unary(), op.offset)
        return node

    def parse_unary(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            value = tok.number
            assert value is not None  # the tokenizer reads every number
            if self.tok.kind == "op" and self.tok.text == "%":
                self.take()
                if not self.is_word("of"):
                    raise ExprError(
                        self.tok.offset, f"expected 'of' after '{tok.text}%' (e.g. 50% of deposit)"
                    )
                self.take()
                self.enter(tok)
                operand = self.parse_unary()
                self.depth -= 1
                return Percent(value, operand, tok.offset)
            if self.is_word("tokens") or self.is_word("token"):
                self.take()
                return Tokens(value, tok.text, tok.offset)
            return Num(value, tok.text, tok.offset)
        if tok.kind == "dur":
            self.take()
            number = tok.text.rstrip("smhdw")
            if "." in number or "e" in number.lower():
                raise ExprError(
                    tok.offset,
                    f"bad duration '{tok.text}': use a whole number (e.g. 90m, not 1.5h)",
                )
            assert tok.number is not None  # the tokenizer reads every number
            seconds = int(tok.number) * DURATION_UNITS[tok.text[-1]]
            if seconds > UINT256_MAX:
                raise ExprError(
                    tok.offset,
                    f"duration '{tok.text[:24]}' is too long: durations must fit a uint256 "
                    "of seconds (at most 2^256 - 1)",
                )
            return Duration(seconds, tok.text, tok.offset)
        if tok.kind == "str":
            self.take()
            return Str(tok.text, tok.offset)
        if tok.kind == "ident" and tok.text not in KEYWORDS:
            self.take()
            return Field(tok.text, tok.offset)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            self.enter(tok)
            inner = self.parse_or()
            self.depth -= 1
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                raise ExprError(
                    tok.offset,
                    f"this '(' is not closed: add ')' before {_describe(self.tok)}",
                )
            self.take()
            return inner
        if tok.kind == "end":
            raise ExprError(tok.offset, "condition ends too early: a value is missing here")
        raise ExprError(tok.offset, f"expected a value, found {_describe(tok)}")


def _describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the condition"
    if tok.kind == "str":
        return f'"{tok.text}"'
    return f"'{tok.text}'"


def _join_hint() -> str:
    return "join conditions with 'and' / 'or'"


def _offset(node: Node) -> int:
    if isinstance(node, Compare | Arith):
        return _offset(node.left)
    if isinstance(node, BoolOp):
        return _offset(node.items[0])
    return node.offset


def node_start(node: Node) -> int:
    """Offset of the first character of `node` (for messages about whole operands)."""
    return _offset(node)


def parse(text: str) -> Node:
    """Parse a condition; raises ExprError at the first syntax error."""
    return _Parser(text).parse()
