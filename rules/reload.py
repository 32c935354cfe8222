"""Hot reload: validate and compile a new set of files beside the running rules, then swap.

A reload never raises: whatever goes wrong while reading, parsing, checking or compiling
the new files (including an exception nobody expected, which is a bug of ours) becomes a
Problem in the result, the old rules keep running, and `failures` counts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rules.engine_host import RulesHost
from rules.errors import Problem, RulesError
from rules.evaluator import Evaluator
from rules.loader import check_files, internal_error


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    version: str  # the version running after the call
    changed: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # the new files', when ok
    failures: int = 0  # reloads refused since the holder was made, this one included


def _internal(exc: Exception, paths: Sequence[str | Path]) -> list[Problem]:
    names = [str(p) for p in paths]
    return [Problem(", ".join(names) if names else "<no rule files>", 1, 1, internal_error(exc))]


class RulesHolder:
    """The running Evaluator. `reload` swaps it in one assignment, only after the new files
    loaded and compiled; on any problem the old rules keep running and the result says why.

    The swap does not reschedule sessions: after a successful change the caller should
    re-evaluate the active sessions once, since due times came from the old rules.
    """

    def __init__(self, host: RulesHost, paths: Sequence[str | Path]) -> None:
        """RulesError (every problem, each with FILE:LINE) when the files are not usable."""
        self.host = host
        self.paths = list(paths)
        self.reloads = 0
        self.failures = 0
        result = self._load(self.paths)
        if isinstance(result, list):
            raise RulesError(result)
        self.current = result

    @property
    def version(self) -> str:
        return self.current.version

    def reload(self, paths: Sequence[str | Path] | None = None) -> ReloadResult:
        """Never raises: the result says whether the new files run now, and why not."""
        new_paths = list(paths) if paths is not None else self.paths
        result = self._load(new_paths, unchanged=self.current.ruleset.digest)
        if isinstance(result, list):
            self.failures += 1
            return ReloadResult(False, self.version, False, result, failures=self.failures)
        warnings = list(result.ruleset.warnings)
        changed = result is not self.current
        if changed:
            self.current = result
            self.reloads += 1
        self.paths = new_paths
        return ReloadResult(True, self.version, changed, warnings=warnings, failures=self.failures)

    def _load(
        self, paths: list[str | Path], unchanged: str | None = None
    ) -> Evaluator | list[Problem]:
        """The files compiled, the running evaluator when their digest is `unchanged`, or
        every problem (an unexpected exception is one too: a bug must not stop the daemon)."""
        try:
            problems, ruleset = check_files(paths)
            if ruleset is None:
                return problems
            if ruleset.digest == unchanged:
                return self.current
            return Evaluator(self.host, ruleset)
        except Exception as exc:  # any failure is reported, none escapes
            return _internal(exc, paths)
