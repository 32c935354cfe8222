"""Hot reload: validate and compile a new set of files beside the running rules, then swap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rules.engine_host import RulesHost
from rules.errors import Problem
from rules.evaluator import Evaluator
from rules.loader import check_files, load_rules


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str  # the version running after the call
    changed: bool
    problems: list[Problem] = field(default_factory=list)


class RulesHolder:
    """The running Evaluator. `reload` swaps it in one assignment, only after the new files
    loaded and compiled; on any problem the old rules keep running and the result says why.

    The swap does not reschedule sessions: after a successful change the caller should
    re-evaluate the active sessions once, since due times came from the old rules.
    """

    def __init__(self, host: RulesHost, paths: Sequence[str | Path]) -> None:
        self.host = host
        self.paths = list(paths)
        self.current = Evaluator(host, load_rules(self.paths))
        self.reloads = 0

    @property
    def version(self) -> str:
        return self.current.version

    def reload(self, paths: Sequence[str | Path] | None = None) -> ReloadResult:
        new_paths = list(paths) if paths is not None else self.paths
        problems, ruleset = check_files(new_paths)
        if ruleset is None:
            return ReloadResult(False, self.version, False, problems)
        if ruleset.digest == self.current.ruleset.digest:
            self.paths = new_paths
            return ReloadResult(True, self.version, False)
        evaluator = Evaluator(self.host, ruleset)
        self.current = evaluator
        self.paths = new_paths
        self.reloads += 1
        return ReloadResult(True, self.version, True)
