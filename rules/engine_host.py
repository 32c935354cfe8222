"""The one durable-rules Host of the process, used the safe way (see DESIGN.md):
rulesets registered as data under never-reused names, one fact asserted, its firings
collected and the fact retracted at once, one thread. Firings are collected either by
`fire` (the compiled ruleset's C entry points and its action queue, read directly) or
through Host.assert_fact and actions resolved by get_action (the public path).
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
_assert_fact = durable_rules_engine.assert_fact
_retract_fact = durable_rules_engine.retract_fact
_start_action_for_state = durable_rules_engine.start_action_for_state
_complete_and_start_action = durable_rules_engine.complete_and_start_action


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

    def handle_of(self, ruleset_name: str) -> int:
        """The compiled ruleset's handle in the C extension, for `fire`."""
        handle: int = self.get_ruleset(ruleset_name)._handle
        return handle

    def fire(self, handle: int, fact_id: int, payload: str) -> list[str]:
        """Assert the fact `payload` (JSON text with this `id`), return the keys of the
        rules that fired for it (in firing order), retract it.

        The engine decides: its C entry points match the fact and hand out one action at
        a time (`start_action_for_state`, then `complete_and_start_action` for the next).
        We run those actions ourselves, which is only reading the rule key: the engine's
        Python action loop around the same calls (JSON-decoding the state, a Closure with
        two wall-clock reads, re-encoding and re-storing the unchanged state) costs about
        25 µs per firing, this about 2 µs.

        Anything unexpected (an action for another fact, an unreadable action, an error
        code) raises EngineError, after every started action has been completed and the
        fact retracted: a bad action is consumed, not abandoned, because an abandoned
        action is handed out again and would poison every later evaluation.
        """
        keys: list[str] = []
        problems: list[str] = []
        try:
            result = _assert_fact(handle, payload)
            try:
                if result[0] == _OK:
                    self._drain(handle, result[1], fact_id, keys, problems)
                elif result[0] != _NOT_HANDLED:
                    problems.append(f"durable-rules returned {result!r} asserting fact {fact_id}")
            finally:
                result = _retract_fact(handle, payload)
            if result[0] == _OK:
                self._drain(handle, result[1], fact_id, keys, problems)
            elif result[0] != _NOT_HANDLED:
                problems.append(f"durable-rules returned {result!r} retracting fact {fact_id}")
        except Exception as exc:
            raise EngineError(f"durable-rules failed on fact {fact_id}: {exc!r}") from exc
        if problems:
            raise EngineError("; ".join(problems))
        return keys

    @staticmethod
    def _drain(handle: int, state: int, fact_id: int, keys: list[str], problems: list[str]) -> None:
        started = _start_action_for_state(handle, state)
        message: str | None = started[1] if started else None
        while message:
            try:
                # One rule per action, on the one fact just asserted: {"rN": {"m": fact}}.
                ((key, match),) = orjson.loads(message).items()
                fired_for = match["m"]["id"]
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"durable-rules started an unreadable action {message!r}: {exc!r}")
            else:
                if fired_for == fact_id:
                    keys.append(key)
                else:
                    problems.append(f"{key} fired for fact {fired_for} while evaluating {fact_id}")
            message = _complete_and_start_action(handle, state)

    def run_fact(self, ruleset_name: str, fact: dict[str, Any], direct: bool = True) -> list[str]:
        """Assert `fact`, return the actions that fired for it, retract it.

        direct=True goes through `fire` with one orjson payload; direct=False goes
        through Host.assert_fact / Host.retract_fact and the engine's own action loop
        (get_action). Both give the same firings; the differential tests hold them to it.
        """
        if direct:
            ruleset = self.get_ruleset(ruleset_name)
            keys = self.fire(ruleset._handle, fact["id"], orjson.dumps(fact).decode())
            definition = ruleset.get_definition()
            return [definition[key]["run"] for key in keys]
        self._fired.clear()
        self._action_errors.clear()
        try:
            # No rule matched is a normal outcome; the fact is stored all the same.
            with contextlib.suppress(engine.MessageNotHandledException):
                self.assert_fact(ruleset_name, fact)
            self.retract_fact(ruleset_name, fact)
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
