"""Reading rule files: YAML (ruamel, for positions) to validated Rule values, every problem
reported at once with file, line, column, rule name and the fix."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from contracts import POLICY_REASONS, SWEEP_REASON
from rules.errors import Problem, RulesError
from rules.model import ACTIONS, Rule, RuleSet
from rules.syntax import ExprError, Node, parse
from rules.typecheck import check_condition, suggest

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


class _FileReader:
    """Validates one file; problems go to the shared list."""

    def __init__(
        self, file: str, text: str, problems: list[Problem], declared: list[_Declared]
    ) -> None:
        self.file = file
        self.text = text
        self.problems = problems
        self.declared = declared
        self.line_starts = [0]
        for i, ch in enumerate(text):
            if ch == "\n":
                self.line_starts.append(i + 1)

    def report(self, pos: tuple[int, int], message: str, rule: str | None = None) -> None:
        self.problems.append(Problem(self.file, pos[0] + 1, pos[1] + 1, message, rule))

    def read(self) -> list[Rule]:
        if not self.text.strip() or all(
            not line.strip() or line.lstrip().startswith("#") for line in self.text.splitlines()
        ):
            self.report((0, 0), "file is empty: add a 'rules:' list (see docs/rules.md)")
            return []
        yaml = YAML(typ="rt")
        try:
            data = yaml.load(self.text)
        except DuplicateKeyError as exc:
            mark = exc.problem_mark
            key = re.search(r'duplicate key "([^"]*)"', str(exc.problem))
            shown = key.group(1) if key else "?"
            self.report(
                (mark.line, mark.column),
                f"duplicate key '{shown}' in one mapping: keep only one of them",
            )
            return []
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line, mark.column) if mark is not None else (0, 0)
            context = ""
            if exc.context and exc.context_mark is not None:
                context = (
                    f" ({exc.context} started at line {exc.context_mark.line + 1}, "
                    f"column {exc.context_mark.column + 1})"
                )
            self.report(
                (line, column),
                f"YAML syntax error: {exc.problem}{context}; check quotes and indentation",
            )
            return []
        if not isinstance(data, CommentedMap):
            self.report(
                (0, 0),
                f"expected a mapping with a 'rules:' list at the top, found {_type_name(data)}",
            )
            return []
        for key in data:
            if key not in TOP_KEYS:
                self.report(
                    data.lc.key(key),
                    f"unknown top-level key '{key}': {_did_you_mean(str(key), TOP_KEYS)}",
                )
        if "rules" not in data:
            self.report((0, 0), "missing 'rules:' list at the top of the file")
            return []
        items = data["rules"]
        if not isinstance(items, CommentedSeq) or not items:
            self.report(
                data.lc.value("rules"),
                "'rules' must be a non-empty list of rules, each starting with '- name: ...'",
            )
            return []
        rules = []
        for index, item in enumerate(items):
            rule = self.read_rule(item, items.lc.item(index))
            if rule is not None:
                rules.append(rule)
        return rules

    def read_rule(self, item: Any, pos: tuple[int, int]) -> Rule | None:
        if not isinstance(item, CommentedMap):
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
                item.lc.value("name"),
                "rule name must be 1-64 letters, digits, '-', '_' or '.' (e.g. stop-loss), "
                f"found {shown_name}",
            )
        else:
            name = name_value
            # Kept even if the rule turns out broken, so a later rule reusing the name is
            # still reported as a duplicate.
            line, column = item.lc.value("name")
            self.declared.append(_Declared(name, self.file, line + 1, column + 1))
        for key in item:
            if key not in RULE_KEYS:
                self.report(
                    item.lc.key(key),
                    f"unknown key '{key}' in rule: {_did_you_mean(str(key), RULE_KEYS)}",
                    name,
                )
        for key in ("when", "action"):
            if key not in item:
                example = "balance <= stop_loss" if key == "when" else "close"
                self.report(pos, f"missing '{key}': e.g. {key}: {example}", name)
        condition = self.read_when(item, name)
        action, reason = self.read_action(item, name)
        priority = self.read_scalar(
            item, "priority", int, 0, "a whole number, e.g. priority: 100", name
        )
        enabled = self.read_scalar(item, "enabled", bool, True, "true or false", name)
        description = self.read_scalar(item, "description", str, "", "text", name)
        policies = self.read_scope(item, name)
        replaces = self.read_replaces(item, name, policies is not None)
        if len(self.problems) != start or name is None or condition is None:
            return None
        line, column = item.lc.value("name")
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
            line=line + 1,
            column=column + 1,
            description=description,
        )

    def read_scalar(
        self,
        item: CommentedMap,
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
                item.lc.value(key),
                f"'{key}' must be {expected}, found {_type_name(value)} {value!r}",
                name,
            )
            return default
        return value

    def read_when(self, item: CommentedMap, name: str | None) -> Node | None:
        if "when" not in item:
            return None
        text = item["when"]
        pos = item.lc.value("when")
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
        errors = check_condition(node)
        for error in errors:
            self.report(where(error.offset), f"in 'when': {error.message}", name)
        return None if errors else node

    def read_action(self, item: CommentedMap, name: str | None) -> tuple[str, str]:
        action = item.get("action")
        reason = item.get("reason")
        if "action" in item and action not in ACTIONS:
            hint = _did_you_mean(str(action), ACTIONS)
            self.report(
                item.lc.value("action"),
                f"unknown action {action!r}: {hint} (close ends the session with a reason, "
                "sweep refunds a revoked or expired one)",
                name,
            )
            return "", ""
        if action == "close":
            if "reason" not in item:
                self.report(
                    item.lc.key("action"),
                    "action 'close' needs a reason: " + ", ".join(POLICY_REASONS),
                    name,
                )
            elif reason not in POLICY_REASONS:
                self.report(
                    item.lc.value("reason"),
                    f"bad reason {reason!r} for close: "
                    + _did_you_mean(str(reason), POLICY_REASONS),
                    name,
                )
            return "close", str(reason)
        if action == "sweep":
            if "reason" in item and reason != SWEEP_REASON:
                self.report(
                    item.lc.value("reason"),
                    f"bad reason {reason!r} for sweep: a sweep's reason is always 'swept' "
                    "(leave it out)",
                    name,
                )
            return "sweep", SWEEP_REASON
        return "", ""

    def read_scope(self, item: CommentedMap, name: str | None) -> frozenset[str] | None:
        if "scope" not in item:
            return None
        scope = item["scope"]
        if not isinstance(scope, CommentedMap):
            self.report(
                item.lc.value("scope"),
                "'scope' must be a mapping such as scope: {policy: berzerker}, found "
                + _type_name(scope),
                name,
            )
            return None
        for key in scope:
            if key not in SCOPE_KEYS:
                self.report(
                    scope.lc.key(key),
                    f"unknown key '{key}' in scope: {_did_you_mean(str(key), SCOPE_KEYS)}",
                    name,
                )
        if "policy" not in scope:
            if all(key in SCOPE_KEYS for key in scope):
                self.report(
                    item.lc.value("scope"), "scope needs 'policy': a name or a list of names", name
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
                scope.lc.value("policy"),
                f"scope policy must be a policy name or a list of names, found {_type_name(value)}",
                name,
            )
            return None
        return frozenset(names)

    def read_replaces(self, item: CommentedMap, name: str | None, scoped: bool) -> tuple[str, ...]:
        if "replaces" not in item:
            return ()
        value = item["replaces"]
        names = [value] if isinstance(value, str) else value
        pos = item.lc.value("replaces")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.report(
                pos,
                f"'replaces' must be a rule name or a list of names, found {_type_name(value)}",
                name,
            )
            return ()
        if not scoped:
            self.report(
                item.lc.key("replaces"),
                "'replaces' needs a scope: a preset stands in for a generic rule only for the "
                "policies in its scope",
                name,
            )
            return ()
        return tuple(names)

    def offset_mapper(self, pos: tuple[int, int], value: str) -> Callable[[int], tuple[int, int]]:
        """Maps an offset in the parsed condition to (line, column) in the file, 0-based."""
        text = self.text
        j = self.line_starts[pos[0]] + pos[1]
        starts: list[int] = []
        for ch in value:
            # Skip quotes, escapes and the indentation of folded lines until the character.
            while j < len(text) and text[j] != ch and not (ch == " " and text[j] == "\n"):
                j += 1
            starts.append(j)
            j += 1
        end = starts[-1] + 1 if starts else self.line_starts[pos[0]] + pos[1]

        def where(offset: int) -> tuple[int, int]:
            absolute = starts[offset] if offset < len(starts) else end
            line = _bisect_right(self.line_starts, absolute) - 1
            return line, absolute - self.line_starts[line]

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


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml and *.yml files, sorted."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


class _Declared(NamedTuple):
    """Where a rule with a valid name was written, whether or not the rule is usable."""

    name: str
    file: str
    line: int
    column: int


def _cross_file_checks(
    rules: list[Rule], declared: list[_Declared], problems: list[Problem]
) -> None:
    seen: dict[str, _Declared] = {}
    for here in declared:
        there = seen.setdefault(here.name, here)
        if there is not here:
            problems.append(
                Problem(
                    here.file,
                    here.line,
                    here.column,
                    f"duplicate rule name '{here.name}': first defined at "
                    f"{there.file}:{there.line}:{there.column}; rule names must be unique "
                    "across all loaded files, rename one",
                    here.name,
                )
            )
    first: dict[str, Rule] = {}
    for rule in rules:
        first.setdefault(rule.name, rule)
    for rule in rules:
        for target in rule.replaces:
            other = first.get(target)
            if other is None and target in seen:
                continue  # that rule is broken and already reported
            if other is None:
                close = suggest(target, tuple(first))
                hint = f"did you mean '{close}'?" if close else "name a rule from the loaded files"
                message = f"replaces unknown rule '{target}': {hint}"
            elif other.policies is not None or other is rule:
                message = f"cannot replace '{target}': only a rule without a scope can be replaced"
            else:
                continue
            problems.append(Problem(rule.file, rule.line, rule.column, message, rule.name))


def check_files(paths: Iterable[str | Path]) -> tuple[list[Problem], RuleSet | None]:
    """Every problem in the files (empty when they are usable) and the rule set if usable."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    declared: list[_Declared] = []
    digest = hashlib.sha256()
    files = expand_paths(paths)
    if not files:
        problems.append(Problem("<none>", 1, 1, "no rule files given"))
    for path in files:
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, 1, 1, f"cannot read file: {exc}"))
            continue
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        rules.extend(_FileReader(name, text, problems, declared).read())
    _cross_file_checks(rules, declared, problems)
    if problems:
        return problems, None
    return [], RuleSet(tuple(rules), tuple(str(p) for p in files), digest.hexdigest())


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """The rules in these files (directories expand to their YAML files); RulesError with
    every problem otherwise."""
    problems, ruleset = check_files(paths)
    if ruleset is None:
        raise RulesError(problems)
    return ruleset
