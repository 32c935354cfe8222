"""The one durable-rules host of the process, used the safe way (see DESIGN.md):
rulesets registered as data under never-reused names, one fact asserted, its firings
collected and the fact retracted at once, one thread. The engine's private entry points
it calls are all in durable_entry.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from rules.durable_entry import (
    NOT_HANDLED,
    OK,
    EngineHost,
    assert_fact,
    complete_and_start_action,
    retract_fact,
    start_action_for_state,
)
from rules.errors import EngineError


class RulesHost:
    """Compiled rulesets and their evaluation; every call comes from its owner's thread."""

    def __init__(self) -> None:
        self._engine = EngineHost()
        self._generation = 0

    def next_generation(self) -> int:
        """A fresh number for ruleset names: a name is never registered twice."""
        self._generation += 1
        return self._generation

    def register(self, definitions: dict[str, Any]) -> None:
        try:
            self._engine.set_rulesets(definitions)
        except Exception as exc:
            raise EngineError(f"durable-rules refused the rulesets: {exc}") from exc

    def handle_of(self, ruleset_name: str) -> int:
        """The compiled ruleset's handle, for `fire`."""
        return self._engine.handle(ruleset_name)

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
            result = assert_fact(handle, payload)
            try:
                if result[0] == OK:
                    self._drain(handle, result[1], fact_id, keys, problems)
                elif result[0] != NOT_HANDLED:
                    problems.append(f"durable-rules returned {result!r} asserting fact {fact_id}")
            finally:
                result = retract_fact(handle, payload)
            if result[0] == OK:
                self._drain(handle, result[1], fact_id, keys, problems)
            elif result[0] != NOT_HANDLED:
                problems.append(f"durable-rules returned {result!r} retracting fact {fact_id}")
        except Exception as exc:
            raise EngineError(f"durable-rules failed on fact {fact_id}: {exc!r}") from exc
        if problems:
            raise EngineError("; ".join(problems))
        return keys

    @staticmethod
    def _drain(handle: int, state: int, fact_id: int, keys: list[str], problems: list[str]) -> None:
        started = start_action_for_state(handle, state)
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
            message = complete_and_start_action(handle, state)
