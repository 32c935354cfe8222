"""Every private durable-rules entry point Warden uses, named here and nowhere else.

The hot path calls the engine's C extension directly: the public path (Host.assert_fact
and the engine's Python action loop) costs about 25 µs per firing, this about 2 µs
(engine_host.py). None of these names is durable-rules' public API, so an upgrade may
rename them or change what they return; tests/rules/test_durable_entry.py checks every
assumption below on a tiny ruleset and says what changed. durable-rules is pinned
(pyproject.toml) for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import durable_rules_engine  # type: ignore[import-not-found]
from durable import engine

# Result codes of assert_fact / retract_fact (see durable.engine.Ruleset._handle_result).
OK = 0  # (OK, state): actions may be waiting on that state
NOT_HANDLED = 1  # (NOT_HANDLED, state): no rule matched; nothing waits

# (ruleset handle, fact as JSON text) -> (result code, state handle)
assert_fact: Callable[[int, str], tuple[int, int]] = durable_rules_engine.assert_fact
retract_fact: Callable[[int, str], tuple[int, int]] = durable_rules_engine.retract_fact
# (ruleset handle, state handle) -> None, or (state JSON, '{"<rule key>": {"m": fact}}')
start_action_for_state: Callable[[int, int], tuple[str, str] | None] = (
    durable_rules_engine.start_action_for_state
)
# (ruleset handle, state handle) -> the next action's JSON text, or None when none is left
complete_and_start_action: Callable[[int, int], str | None] = (
    durable_rules_engine.complete_and_start_action
)


class EngineHost(engine.Host):  # type: ignore[misc]
    """engine.Host used only to compile rulesets (set_rulesets) and find their handles."""

    def _run(self) -> None:
        # engine.Host.__init__ starts timer threads that dispatch actions and timers
        # concurrently with our calls; we use neither, and the engine is not thread-safe.
        return

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        # Compiling a ruleset resolves each rule's action by name. The engine never runs
        # them: the caller reads which rule fired from the action's text instead.
        def unused(_closure: Any) -> None:
            raise AssertionError(f"durable-rules ran action {action_name} itself")

        return unused

    def handle(self, ruleset_name: str) -> int:
        """The compiled ruleset's handle in the C extension."""
        handle: int = self.get_ruleset(ruleset_name)._handle
        return handle
