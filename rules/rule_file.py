"""One rule file read into validated Rule values: every problem in it reported with
line, column, rule name and the fix (the checks across files are in loader.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from contracts import POLICY_REASONS, SWEEP_REASON
from rules.analysis import always_true, magnitude_errors
from rules.errors import Problem
from rules.model import ACTIONS, Rule
from rules.syntax import Node, parse
from rules.template import template_problems
from rules.tokens import ExprError
from rules.typecheck import check_condition, suggest
from yamlsource import (
    YamlError,
    YamlMap,
    YamlSeq,
    item_position,
    key_position,
    read_yaml,
    value_position,
)


class Declared(NamedTuple):
    """Where a rule with a valid name was written, whether or not the rule is usable."""

    name: str
    file: str
    line: int
    column: int


TOP_KEYS = ("rules",)
RULE_KEYS = (
    "name",
    "description",
    "when",
    "action",
    "reason",
    "priority",
    "enabled",
    "scope",
    "replaces",
    "message",
)
SCOPE_KEYS = ("policy",)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _did_you_mean(word: str, choices: tuple[str, ...]) -> str:
    close = suggest(word, choices)
    if close:
        return f"did you mean '{close}'?"
    return "expected one of " + ", ".join(choices)


def _type_name(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class RuleFileReader:
    """Validates one file; problems go to the shared list."""

    def __init__(
        self, file: str, text: str, problems: list[Problem], declared: list[Declared]
    ) -> None:
        self.file = file
        self.text = text
        self.problems = problems
        self.declared = declared
        self.warnings: list[Problem] = []
        self.line_starts = [0, *(newline.end() for newline in re.finditer("\n", text))]

    def report(self, pos: tuple[int, int], message: str, rule: str | None = None) -> None:
        """`pos` is the 1-based (line, column) of what is wrong."""
        self.problems.append(Problem(self.file, pos[0], pos[1], message, rule))

    def read(self) -> list[Rule]:
        if not self.text.strip() or all(
            not line.strip() or line.lstrip().startswith("#") for line in self.text.splitlines()
        ):
            self.report((1, 1), "file is empty: add a 'rules:' list (see docs/rules.md)")
            return []
        try:
            data = read_yaml(self.text, self.file)
        except YamlError as exc:
            self.report((exc.line, exc.column), exc.message)
            return []
        if not isinstance(data, YamlMap):
            self.report(
                (1, 1),
                f"expected a mapping with a 'rules:' list at the top, found {_type_name(data)}",
            )
            return []
        for key in data:
            if key not in TOP_KEYS:
                self.report(
                    key_position(data, key),
                    f"unknown top-level key '{key}': {_did_you_mean(str(key), TOP_KEYS)}",
                )
        if "rules" not in data:
            self.report((1, 1), "missing 'rules:' list at the top of the file")
            return []
        items = data["rules"]
        if not isinstance(items, YamlSeq) or not items:
            self.report(
                value_position(data, "rules"),
                "'rules' must be a non-empty list of rules, each starting with '- name: ...'",
            )
            return []
        rules = []
        for index, item in enumerate(items):
            rule = self.read_rule(item, item_position(items, index))
            if rule is not None:
                rules.append(rule)
        return rules

    def read_rule(self, item: Any, pos: tuple[int, int]) -> Rule | None:
        if not isinstance(item, YamlMap):
            self.report(
                pos,
                f"a rule must be a mapping with name, when and action; found {_type_name(item)}",
            )
            return None
        start = len(self.problems)
        name_value = item.get("name")
        name: str | None = None
        if "name" not in item:
            self.report(pos, "missing 'name': give the rule a unique name, e.g. name: stop-loss")
        elif not isinstance(name_value, str) or not _NAME.fullmatch(name_value):
            shown_name = repr(name_value) if isinstance(name_value, str) else _type_name(name_value)
            self.report(
                value_position(item, "name"),
                "rule name must be 1-64 letters, digits, '-', '_' or '.' (e.g. stop-loss), "
                f"found {shown_name}",
            )
        else:
            name = name_value
            # Kept even if the rule turns out broken, so a later rule reusing the name is
            # still reported as a duplicate.
            line, column = value_position(item, "name")
            self.declared.append(Declared(name, self.file, line, column))
        for key in item:
            if key not in RULE_KEYS:
                self.report(
                    key_position(item, key),
                    f"unknown key '{key}' in rule: {_did_you_mean(str(key), RULE_KEYS)}",
                    name,
                )
        for key in ("when", "action"):
            if key not in item:
                example = "balance <= stop_loss" if key == "when" else "close"
                self.report(pos, f"missing '{key}': e.g. {key}: {example}", name)
        condition = self.read_when(item, name)
        action, reason = self.read_action(item, name)
        message = self.read_message(item, name, action)
        priority = self.read_scalar(
            item, "priority", int, 0, "a whole number, e.g. priority: 100", name
        )
        enabled = self.read_scalar(item, "enabled", bool, True, "true or false", name)
        description = self.read_scalar(item, "description", str, "", "text", name)
        policies = self.read_scope(item, name)
        replaces = self.read_replaces(item, name, policies is not None)
        if len(self.problems) != start or name is None or condition is None:
            return None
        if enabled and always_true(condition, policies):
            self.warnings.append(
                Problem(
                    self.file,
                    *value_position(item, "when"),
                    "this condition holds for every active session by construction (e.g. "
                    'status == "active" alone, balance >= 0): the rule fires for every '
                    "session as soon as it is indexed; add what should trigger it, e.g. "
                    "balance <= stop_loss",
                    name,
                    "warning",
                )
            )
        line, column = value_position(item, "name")
        return Rule(
            name=name,
            when=str(item["when"]),
            condition=condition,
            action=action,
            reason=reason,
            priority=priority,
            enabled=enabled,
            policies=policies,
            replaces=replaces,
            file=self.file,
            line=line,
            column=column,
            description=description,
            message=message,
        )

    def read_message(self, item: YamlMap, name: str | None, action: str) -> str:
        """`message:` of a notify rule: text whose `{field}` placeholders name snapshot
        fields (rules.template); refused on any other action."""
        if "message" not in item:
            if action == "notify":
                self.report(
                    key_position(item, "action"),
                    "action 'notify' needs a message, e.g. message: \"session {wallet} "
                    'holds {balance}"',
                    name,
                )
            return ""
        text = item["message"]
        pos = value_position(item, "message")
        if action != "notify":
            self.report(pos, "'message' belongs to action 'notify' only", name)
            return ""
        if not isinstance(text, str) or not text.strip():
            self.report(pos, f"'message' must be text, found {_type_name(text)} {text!r}", name)
            return ""
        where = self.offset_mapper(pos, text)
        for offset, problem in template_problems(text):
            self.report(where(offset), f"in 'message': {problem}", name)
        return text

    def read_scalar(
        self,
        item: YamlMap,
        key: str,
        kind: type,
        default: Any,
        expected: str,
        name: str | None,
    ) -> Any:
        if key not in item:
            return default
        value = item[key]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            self.report(
                value_position(item, key),
                f"'{key}' must be {expected}, found {_type_name(value)} {value!r}",
                name,
            )
            return default
        return value

    def read_when(self, item: YamlMap, name: str | None) -> Node | None:
        if "when" not in item:
            return None
        text = item["when"]
        pos = value_position(item, "when")
        if not isinstance(text, str):
            self.report(
                pos,
                f"'when' must be a condition written as text, found {_type_name(text)} {text!r}",
                name,
            )
            return None
        where = self.offset_mapper(pos, text)
        try:
            node = parse(text)
        except ExprError as exc:
            self.report(where(exc.offset), f"in 'when': {exc.message}", name)
            return None
        errors = check_condition(node) or magnitude_errors(node)
        for error in errors:
            self.report(where(error.offset), f"in 'when': {error.message}", name)
        return None if errors else node

    def read_action(self, item: YamlMap, name: str | None) -> tuple[str, str]:
        action = item.get("action")
        reason = item.get("reason")
        if "action" in item and action not in ACTIONS:
            hint = _did_you_mean(str(action), ACTIONS)
            self.report(
                value_position(item, "action"),
                f"unknown action {action!r}: {hint} (close ends the session with a reason, "
                "sweep refunds a revoked or expired one, notify only tells the channels)",
                name,
            )
            return "", ""
        if action == "close":
            if "reason" not in item:
                self.report(
                    key_position(item, "action"),
                    "action 'close' needs a reason: " + ", ".join(POLICY_REASONS),
                    name,
                )
            elif reason not in POLICY_REASONS:
                self.report(
                    value_position(item, "reason"),
                    f"bad reason {reason!r} for close: "
                    + _did_you_mean(str(reason), POLICY_REASONS),
                    name,
                )
            return "close", str(reason)
        if action == "notify":
            if "reason" in item:
                self.report(
                    value_position(item, "reason"),
                    "action 'notify' takes no reason (it ends nothing): leave it out",
                    name,
                )
            return "notify", ""
        if action == "sweep":
            if "reason" in item and reason != SWEEP_REASON:
                self.report(
                    value_position(item, "reason"),
                    f"bad reason {reason!r} for sweep: a sweep's reason is always 'swept' "
                    "(leave it out)",
                    name,
                )
            return "sweep", SWEEP_REASON
        return "", ""

    def read_scope(self, item: YamlMap, name: str | None) -> frozenset[str] | None:
        if "scope" not in item:
            return None
        scope = item["scope"]
        if not isinstance(scope, YamlMap):
            self.report(
                value_position(item, "scope"),
                "'scope' must be a mapping such as scope: {policy: berzerker}, found "
                + _type_name(scope),
                name,
            )
            return None
        for key in scope:
            if key not in SCOPE_KEYS:
                self.report(
                    key_position(scope, key),
                    f"unknown key '{key}' in scope: {_did_you_mean(str(key), SCOPE_KEYS)}",
                    name,
                )
        if "policy" not in scope:
            if all(key in SCOPE_KEYS for key in scope):
                self.report(
                    value_position(item, "scope"),
                    "scope needs 'policy': a name or a list of names",
                    name,
                )
            return None
        value = scope["policy"]
        names = [value] if isinstance(value, str) else value
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(n, str) and n for n in names)
        ):
            self.report(
                value_position(scope, "policy"),
                f"scope policy must be a policy name or a list of names, found {_type_name(value)}",
                name,
            )
            return None
        return frozenset(names)

    def read_replaces(self, item: YamlMap, name: str | None, scoped: bool) -> tuple[str, ...]:
        if "replaces" not in item:
            return ()
        value = item["replaces"]
        names = [value] if isinstance(value, str) else value
        pos = value_position(item, "replaces")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.report(
                pos,
                f"'replaces' must be a rule name or a list of names, found {_type_name(value)}",
                name,
            )
            return ()
        if not scoped:
            self.report(
                key_position(item, "replaces"),
                "'replaces' needs a scope: a preset stands in for a generic rule only for the "
                "policies in its scope",
                name,
            )
            return ()
        return tuple(names)

    def offset_mapper(self, pos: tuple[int, int], value: str) -> Callable[[int], tuple[int, int]]:
        """Maps an offset in the condition starting at `pos` to (line, column) in the
        file, all 1-based."""
        text = self.text
        j = self.line_starts[pos[0] - 1] + pos[1] - 1
        starts: list[int] = []
        for ch in value:
            # Skip quotes, escapes and the indentation of folded lines until the character.
            while j < len(text) and text[j] != ch and not (ch == " " and text[j] == "\n"):
                j += 1
            starts.append(j)
            j += 1
        end = starts[-1] + 1 if starts else self.line_starts[pos[0] - 1] + pos[1] - 1

        def where(offset: int) -> tuple[int, int]:
            absolute = starts[offset] if offset < len(starts) else end
            line = _bisect_right(self.line_starts, absolute) - 1
            return line + 1, absolute - self.line_starts[line] + 1

        return where


def _bisect_right(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < values[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo
