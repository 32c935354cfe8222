"""The private durable-rules entry points rules/durable_entry.py relies on still exist and
behave as assumed. A failure here after a durable-rules upgrade names what changed: fix
durable_entry.py (and RulesHost.fire) before anything else."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import orjson
import pytest

from rules import durable_entry
from rules.durable_entry import EngineHost

C_FUNCTIONS = ("assert_fact", "retract_fact", "start_action_for_state", "complete_and_start_action")
_names = itertools.count()


def tiny(host: EngineHost) -> int:
    """A one-rule ruleset (x < "b") and its handle."""
    name = f"entry_test_{next(_names)}"
    host.set_rulesets({name: {"r0": {"all": [{"m": {"$lt": {"x": "b"}}}], "run": "a.r0"}}})
    handle = host.handle(name)
    assert isinstance(handle, int), f"Ruleset._handle is {handle!r}, no longer an int handle"
    return handle


def fact(fact_id: int, x: str) -> str:
    return orjson.dumps({"id": fact_id, "sid": "0", "x": x}).decode()


@pytest.mark.parametrize("name", C_FUNCTIONS)
def test_c_entry_points_exist(name: str) -> None:
    import durable_rules_engine  # type: ignore[import-not-found]

    assert callable(getattr(durable_rules_engine, name, None)), (
        f"durable_rules_engine.{name} is gone or not callable: durable-rules changed its C "
        "extension; see rules/durable_entry.py"
    )
    assert getattr(durable_entry, name) is getattr(durable_rules_engine, name)


def test_host_hooks_exist() -> None:
    from durable import engine

    for hook in ("_run", "get_action", "set_rulesets", "get_ruleset"):
        assert callable(getattr(engine.Host, hook, None)), (
            f"durable.engine.Host.{hook} is gone: EngineHost overrides or calls it"
        )


def test_no_engine_threads() -> None:
    import threading

    before = threading.active_count()
    EngineHost()
    assert threading.active_count() == before, (
        "EngineHost started threads: durable.engine.Host no longer starts them from _run"
    )


def test_a_match_is_one_action_carrying_the_rule_key_and_the_fact() -> None:
    host = EngineHost()
    handle = tiny(host)
    result = durable_entry.assert_fact(handle, fact(7, "a"))
    assert result[0] == durable_entry.OK, f"assert_fact of a matching fact returned {result!r}"
    started = durable_entry.start_action_for_state(handle, result[1])
    assert started is not None, "start_action_for_state returned no action for a match"
    assert orjson.loads(started[1]) == {"r0": {"m": {"id": 7, "sid": "0", "x": "a"}}}, (
        f"an action's text changed shape: {started[1]!r}"
    )
    assert durable_entry.complete_and_start_action(handle, result[1]) is None, (
        "complete_and_start_action handed out a second action for a single firing"
    )
    result = durable_entry.retract_fact(handle, fact(7, "a"))
    assert result[0] == durable_entry.OK, f"retract_fact returned {result!r}"
    assert durable_entry.start_action_for_state(handle, result[1]) is None


def test_no_match_is_not_handled_and_leaves_nothing() -> None:
    host = EngineHost()
    handle = tiny(host)
    result = durable_entry.assert_fact(handle, fact(8, "z"))
    assert result[0] == durable_entry.NOT_HANDLED, (
        f"assert_fact of a fact no rule matches returned {result!r}, not NOT_HANDLED"
    )
    assert durable_entry.start_action_for_state(handle, result[1]) is None
    assert durable_entry.retract_fact(handle, fact(8, "z"))[0] == durable_entry.OK


def test_retracted_fact_does_not_fire_again() -> None:
    host = EngineHost()
    handle = tiny(host)
    for fact_id in (1, 2, 3):
        result = durable_entry.assert_fact(handle, fact(fact_id, "a"))
        started = durable_entry.start_action_for_state(handle, result[1])
        assert started is not None
        assert orjson.loads(started[1])["r0"]["m"]["id"] == fact_id, (
            "an action for an earlier, retracted fact was handed out again"
        )
        assert durable_entry.complete_and_start_action(handle, result[1]) is None
        durable_entry.retract_fact(handle, fact(fact_id, "a"))


def test_result_codes_are_those_of_the_public_path() -> None:
    from durable import engine

    ruleset = engine.Ruleset.__new__(engine.Ruleset)
    assert ruleset._handle_result((durable_entry.OK, 5), None) == 5
    with pytest.raises(engine.MessageNotHandledException):
        ruleset._handle_result((durable_entry.NOT_HANDLED, 5), None)


def test_engine_never_runs_our_actions_itself() -> None:
    action = EngineHost().get_action("a.r0")
    with pytest.raises(AssertionError, match=r"ran action a\.r0"):
        action(None)


def test_durable_entry_is_the_only_module_naming_the_engine() -> None:
    package = Path(durable_entry.__file__).parent
    private = re.compile(r"durable_rules_engine|\bdurable\b.*import|import durable\b|\._handle\b")
    for path in sorted(package.glob("*.py")):
        if path.name == "durable_entry.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not private.search(line), (
                f"{path.name}:{number} reaches into durable-rules directly; go through "
                f"rules/durable_entry.py: {line.strip()}"
            )
