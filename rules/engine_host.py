"""The one durable-rules Host of the process, used the safe way (see DESIGN.md):
rulesets registered as data under never-reused names, actions resolved by get_action,
one fact asserted, its firings collected and the fact retracted at once, one thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import durable_rules_engine  # type: ignore[import-not-found]
import orjson
from durable import engine

from rules.errors import EngineError

# durable_rules_engine result codes (see durable.engine.Ruleset._handle_result)
_OK, _NOT_HANDLED = 0, 1


class RulesHost(engine.Host):  # type: ignore[misc]
    """A Host without background threads; every call comes from its owner's thread."""

    def __init__(self) -> None:
        self._fired: list[tuple[str, Any]] = []
        self._action_errors: list[BaseException] = []
        self._generation = 0
        super().__init__()

    def _run(self) -> None:
        # engine.Host starts timer threads that dispatch actions and timers concurrently
        # with our calls; we use neither, and the engine is not safe across threads.
        return

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        fired = self._fired
        errors = self._action_errors

        def action(c: Any) -> None:
            # The engine swallows action exceptions into the state: record them ourselves.
            try:
                fired.append((action_name, c.m["id"]))
            except BaseException as exc:
                errors.append(exc)

        return action

    def next_generation(self) -> int:
        """A fresh number for ruleset names: a name is never registered twice."""
        self._generation += 1
        return self._generation

    def register(self, definitions: dict[str, Any]) -> None:
        try:
            self.set_rulesets(definitions)
        except Exception as exc:
            raise EngineError(f"durable-rules refused the rulesets: {exc}") from exc

    def run_fact(self, ruleset_name: str, fact: dict[str, Any], direct: bool = True) -> list[str]:
        """Assert `fact`, return the actions that fired for it, retract it.

        direct=True calls the compiled ruleset's C entry points with an orjson payload
        (one serialisation; no exception object for the common no-match case) and runs the
        firings through the engine's own action machinery; direct=False goes through
        Host.assert_fact / Host.retract_fact. Both give the same firings; the direct path is
        about 5x faster (BENCHMARKS.md).
        """
        self._fired.clear()
        self._action_errors.clear()
        try:
            if direct:
                self._run_direct(ruleset_name, fact)
            else:
                self._run_public(ruleset_name, fact)
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"durable-rules failed on {ruleset_name}: {exc!r}") from exc
        if self._action_errors:
            raise EngineError(f"a rule action failed: {self._action_errors[0]!r}")
        names = []
        for action_name, fact_id in self._fired:
            if fact_id != fact["id"]:
                raise EngineError(
                    f"{action_name} fired for fact {fact_id} while evaluating {fact['id']}"
                )
            names.append(action_name)
        return names

    def _run_public(self, ruleset_name: str, fact: dict[str, Any]) -> None:
        # No rule matched is a normal outcome; the fact is stored all the same.
        with contextlib.suppress(engine.MessageNotHandledException):
            self.assert_fact(ruleset_name, fact)
        self.retract_fact(ruleset_name, fact)

    def _run_direct(self, ruleset_name: str, fact: dict[str, Any]) -> None:
        ruleset = self.get_ruleset(ruleset_name)
        handle = ruleset._handle
        payload = orjson.dumps(fact).decode()
        errors: list[BaseException] = []

        def complete(error: BaseException | None, _state: Any) -> None:
            if error:
                errors.append(error)

        for call in (durable_rules_engine.assert_fact, durable_rules_engine.retract_fact):
            result = call(handle, payload)
            if result[0] == _OK:
                ruleset.do_actions(result[1], complete)
            elif result[0] != _NOT_HANDLED:
                raise EngineError(f"durable-rules returned {result!r} for fact {fact['id']}")
            if errors:
                raise EngineError(f"durable-rules action dispatch failed: {errors[0]!r}")
