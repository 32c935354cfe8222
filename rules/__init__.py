"""YAML policies compiled to durable-rules; pure: snapshots and chain time in, decisions out.

Typical use (the daemon):

    host = RulesHost()
    holder = RulesHolder(host, ["config/rules"])
    runner = RulesRunner(holder.current, latches_from_db)
    evaluation, decision = runner.decide(snapshot, now)   # store decision, then:
    runner.commit(evaluation, decision)
    for wallet in runner.due(block_timestamp): ...        # time-driven re-evaluation
"""

from rules.engine_host import RulesHost
from rules.errors import EngineError, Problem, RulesError, SnapshotError
from rules.evaluator import Evaluation, Evaluator
from rules.latch import Decision, Intent, decide
from rules.loader import check_files, expand_paths, load_rules
from rules.model import Rule, RuleSet
from rules.reload import ReloadResult, RulesHolder
from rules.runner import RulesRunner, gc_paused, replay
from rules.schedule import TimeScheduler
from rules.snapshot import FIELD_TYPES, Snapshot

__all__ = [
    "FIELD_TYPES",
    "Decision",
    "EngineError",
    "Evaluation",
    "Evaluator",
    "Intent",
    "Problem",
    "ReloadResult",
    "Rule",
    "RuleSet",
    "RulesError",
    "RulesHolder",
    "RulesHost",
    "RulesRunner",
    "Snapshot",
    "SnapshotError",
    "TimeScheduler",
    "check_files",
    "decide",
    "expand_paths",
    "gc_paused",
    "load_rules",
    "replay",
]
