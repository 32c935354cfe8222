"""Errors of the rules package, grouped by what the caller should do.

```
Exception
├── RulesError        the rule files are wrong: show every Problem to the operator, keep
│                     running the previous rules (load_rules, RulesHolder.reload)
├── SnapshotError     the caller built a Snapshot the rules cannot evaluate (a bug upstream:
│                     e.g. token decimals beyond 77); nothing was decided for it
└── EngineError       durable-rules failed or misbehaved (an exception inside the engine or
                      an action, a firing for a fact that was not asserted); the evaluation
                      is void: stop, report, restart from persisted latches
```
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a rule file; line and column are 1-based. A "warning" does not
    make the files unusable (RuleSet.warnings); an "error" does."""

    file: str
    line: int
    column: int
    message: str
    rule: str | None = None
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        if self.rule is not None:
            where += f": rule '{self.rule}'"
        if self.severity == "warning":
            where += ": warning"
        return f"{where}: {self.message}"


class RulesError(Exception):
    """Rule files that cannot be used; `problems` lists every one found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in rule files"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


class SnapshotError(ValueError):
    """A snapshot outside what the rules accept; raised before the engine is called."""


class EngineError(RuntimeError):
    """durable-rules raised, or reported something our stateless use cannot produce."""
