"""Reading rule files: each file through rule_file.py, then the checks across files
(unique names, what `replaces` names) and the rule set's digest; every problem reported
at once with file, line, column, rule name and the fix."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable
from pathlib import Path

from rules.analysis import capacity_problems
from rules.errors import Problem, RulesError
from rules.model import Rule, RuleSet
from rules.rule_file import Declared, RuleFileReader
from rules.runner import gc_paused
from rules.typecheck import suggest

# A rule file is small text; past this it is the wrong file (yamlsource refuses more
# than a million characters anyway), and reading stops here rather than filling memory.
MAX_FILE_BYTES = 4_000_000


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; a directory stands for its *.yaml and *.yml files, sorted. A
    directory that cannot be listed stays as given: reading it reports why."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
                continue
        except OSError:
            pass
        out.append(path)
    return out


def read_rule_text(path: Path) -> str | Problem:
    """The file's text, or the Problem saying why it cannot be used. Only regular files
    are opened: a FIFO would block the daemon and a device never ends."""
    name = str(path)
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return Problem(name, 1, 1, "cannot read file: it is a directory, not a rule file")
        if not stat.S_ISREG(info.st_mode):
            return Problem(name, 1, 1, "cannot read file: not a regular file")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return Problem(name, 1, 1, f"cannot read file: {exc.strerror or exc}")
    if len(data) > MAX_FILE_BYTES:
        return Problem(
            name, 1, 1, f"file is larger than {MAX_FILE_BYTES:,} bytes: is this the right file?"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return Problem(
            name,
            line,
            column,
            f"byte 0x{data[exc.start]:02x} is not UTF-8: save the file as UTF-8 text",
        )


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
    # A 10,000-rule file makes about a million objects (document, conditions, rules); the
    # collections they triggered walked them all again and again, 0.4 s of 2.4. The
    # checks keep no reference cycles, and the pause ends with the call.
    with gc_paused():
        return _check_files(paths)


def _check_files(paths: Iterable[str | Path]) -> tuple[list[Problem], RuleSet | None]:
    problems: list[Problem] = []
    rules: list[Rule] = []
    declared: list[Declared] = []
    warnings: list[Problem] = []
    digest = hashlib.sha256()
    files = expand_paths(paths)
    if not files:
        problems.append(Problem("<none>", 1, 1, "no rule files given"))
    for path in files:
        name = str(path)
        text = read_rule_text(path)
        if isinstance(text, Problem):
            problems.append(text)
            continue
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
        reader = RuleFileReader(name, text, problems, declared)
        try:
            rules.extend(reader.read())
        except Exception as exc:  # a bug of ours must not stop the other files
            problems.append(Problem(name, 1, 1, internal_error(exc)))
        warnings.extend(reader.warnings)
    _cross_file_checks(rules, declared, problems)
    if not problems:  # only a usable set is compiled, so only it is sized against the engine
        for rule, message in capacity_problems(rules):
            problems.append(Problem(rule.file, rule.line, rule.column, message, rule.name))
    if problems:
        return problems, None
    files_read = tuple(str(p) for p in files)
    return [], RuleSet(tuple(rules), files_read, digest.hexdigest(), tuple(warnings))


def internal_error(exc: BaseException) -> str:
    """A Problem's message for an exception the checks did not expect (a bug of ours):
    the operator sees it as one line, like any other problem, never as a traceback."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return (
        f"internal error while loading rules: {type(exc).__name__}: {text} (nothing from "
        "these rule files was used; please report this with the files)"
    )


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """The rules in these files (directories expand to their YAML files); RulesError with
    every problem otherwise."""
    problems, ruleset = check_files(paths)
    if ruleset is None:
        raise RulesError(problems)
    return ruleset
