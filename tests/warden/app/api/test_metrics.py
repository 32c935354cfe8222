"""/metrics: Prometheus text format that parses, with figures from the database and the
daemon's live counters."""

from __future__ import annotations

import re

import warden
from tests.indexer._support import opened
from tests.warden.app.api import _expect
from tests.warden.app.api.conftest import Api, Indexed, serve_api
from warden.app.api import LiveState

_SAMPLE = re.compile(
    r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
    r"(-?[0-9.]+(?:e[+-][0-9]+)?|[+-]Inf|NaN)"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')


Samples = dict[tuple[str, frozenset[tuple[str, str]]], str]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(type per family, value per (sample name, labels)); fails on any line that is not
    a HELP, a TYPE or a sample of a declared family, or on a family declared twice."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: Samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types and kind in {"gauge", "counter", "histogram"}, line
            types[name] = kind
            continue
        m = _SAMPLE.fullmatch(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or (types.get(family) == "histogram"), line
        key = (name, frozenset(_LABEL.findall(labels)))
        assert key not in samples, f"duplicate sample {line}"
        samples[key] = value
    return types, samples


def one(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], str], name: str, **labels: str
) -> str:
    return samples[(name, frozenset(labels.items()))]


def num(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], str], name: str, **labels: str
) -> float:
    return float(one(samples, name, **labels))


async def test_metrics_parse_and_agree_with_the_database_and_live_state(
    api: Api, live: LiveState, indexed: Indexed
) -> None:
    live.head, live.indexed_block, live.safe_block, live.caught_up = 500, 480, 470, True
    live.reorgs = 3
    live.bloom_mismatches = 2
    live.bloom_false_positives = 7
    live.rpc.requests = 1234
    live.rpc.errors.update({"RateLimited": 5, "ProviderError": 2})
    live.relayer_balance = 10**30 + 7
    live.rules_version = 'v"1"\\x'
    for seconds in (0.2, 0.5, 3.0, 3.0, 4_000.0):
        live.trigger_to_tx.observe(seconds)

    text = await api.ok("/metrics")
    types, samples = parse(text)
    async with opened(indexed.path) as store:
        counts = await store.counts()
        ignored = await store.db.execute_fetchall("SELECT reason FROM ignored_logs")
    spoofed = sum(not r[0].startswith("malformed") for r in ignored)
    assert spoofed > 0, "the workload emits look-alike logs"
    # Samples are float64 text ("20.0"); counts and block numbers this size are exact.
    assert num(samples, "warden_events_indexed") == counts["events"]
    assert num(samples, "warden_spoofed_logs") == spoofed
    assert num(samples, "warden_lag_blocks") == 20
    assert num(samples, "warden_chain_head_block") == 500
    assert num(samples, "warden_safe_block") == 470
    assert num(samples, "warden_caught_up") == 1
    assert types["warden_reorgs_total"] == "counter" and num(samples, "warden_reorgs_total") == 3
    assert num(samples, "warden_log_bloom_mismatches_total") == 2
    assert num(samples, "warden_log_bloom_false_positives_total") == 7
    assert num(samples, "warden_rpc_errors_total", kind="RateLimited") == 5
    assert num(samples, "warden_rpc_errors_total", kind="ProviderError") == 2
    assert num(samples, "warden_rpc_requests_total") == 1234
    # in ether, correctly rounded (the exact wei is in /status)
    assert num(samples, "warden_relayer_balance_ether") == (10**30 + 7) / 10**18
    assert num(samples, "warden_rules_info", version='v\\"1\\"\\\\x') == 1
    assert num(samples, "warden_build_info", version=warden.__version__) == 1
    intents = await _expect.intent_counts(indexed.path)
    for state, n in intents.items():
        assert num(samples, "warden_intents", state=state) == n
    sessions = await _expect.sessions(indexed.path)
    assert num(samples, "warden_sessions", status="closed") == sum(
        s.status == "closed" for s in sessions
    )
    h = "warden_trigger_to_tx_seconds"
    assert types[h] == "histogram"
    assert num(samples, f"{h}_bucket", le="0.5") == 2
    assert num(samples, f"{h}_bucket", le="5.0") == 4
    assert num(samples, f"{h}_bucket", le="600.0") == 4
    assert num(samples, f"{h}_bucket", le="+Inf") == 5 == num(samples, f"{h}_count")
    assert num(samples, f"{h}_sum") == 4_006.7
    buckets = [float(v) for (n, _), v in samples.items() if n == f"{h}_bucket"]
    assert buckets == sorted(buckets)  # cumulative
    assert types["process_cpu_seconds_total"] == "counter"  # the process collector
    assert types["python_info"] == "gauge"  # the platform collector


async def test_unknown_figures_are_left_out_not_zeroed(api: Api) -> None:
    _, samples = parse(await api.ok("/metrics"))
    names = {n for n, _ in samples}
    assert "warden_chain_head_block" not in names and "warden_relayer_balance_ether" not in names
    assert "warden_indexed_block" in names  # the database knows it
    assert num(samples, "warden_caught_up") == 0
    assert not any(n.endswith("_created") for n in names)


async def test_each_app_has_its_own_registry(indexed: Indexed) -> None:
    """Two apps in one process (as here) both answer, each with every family once; the
    latency histogram belongs to the daemon's LiveState, so both show its observations."""
    live = LiveState()
    live.trigger_to_tx.observe(1.5)
    async with serve_api(indexed.path, live) as a, serve_api(indexed.path, live) as b:
        for api in (a, b):
            _, samples = parse(await api.ok("/metrics"))
            assert num(samples, "warden_trigger_to_tx_seconds_count") == 1
