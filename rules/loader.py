"""Reading rule files: each file through rule_file.py, then the checks across files
(unique names, what `replaces` names) and the rule set's digest; every problem reported
at once with file, line, column, rule name and the fix."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from rules.errors import Problem, RulesError
from rules.model import Rule, RuleSet
from rules.rule_file import Declared, RuleFileReader
from rules.typecheck import suggest


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


def _cross_file_checks(
    rules: list[Rule], declared: list[Declared], problems: list[Problem]
) -> None:
    seen: dict[str, Declared] = {}
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
    declared: list[Declared] = []
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
        rules.extend(RuleFileReader(name, text, problems, declared).read())
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
