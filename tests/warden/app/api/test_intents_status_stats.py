"""/intents, /status, /ready, /stats: figures from the outbox, the sessions and the
daemon's live state."""

from __future__ import annotations

from typing import cast

from database import Database
from tests.indexer._support import opened
from tests.warden.app.api import _expect
from tests.warden.app.api._schema import check_response
from tests.warden.app.api.conftest import Api, Indexed
from tests.warden.app.api.test_sessions import collect
from warden.app.api import LiveState
from warden.app.leadership import Leadership


async def test_intents_listing_and_every_filter(api: Api, indexed: Indexed) -> None:
    rows = await _expect.intents(indexed.path)
    assert len(rows) >= 30
    ids = [i["id"] for i in await collect(api, "/intents", 4)]
    assert ids == sorted(ids) == [r.id for r in rows]
    for state in ("pending", "confirmed", "obsolete", "failed"):
        got = await collect(api, "/intents", 3, state=state)
        assert [i["key"] for i in got] == [r.key for r in rows if r.state == state]
    got = await collect(api, "/intents", 2, action="sweep")
    assert [i["key"] for i in got] == [indexed.intent_keys["dropped"]]
    dropped = got[0]
    assert dropped["state"] == "obsolete" and dropped["detail"] == "session closed meanwhile"
    assert dropped["job_id"] is None  # the dropped job gave it back before it went obsolete
    got = await collect(api, "/intents", 5, reason="idle", rule="idle")
    assert [i["key"] for i in got] == [r.key for r in rows if r.rule == "idle"]
    wallet = rows[0].wallet
    got = await collect(api, "/intents", 5, wallet=wallet.lower())
    assert [i["key"] for i in got] == [r.key for r in rows if r.wallet == wallet]
    assert await api.ok("/intents", params={"rule": "no-such-rule"}) == {
        "items": [],
        "next_cursor": None,
    }


async def test_ready_turns_200_once_caught_up(api: Api, live: LiveState) -> None:
    doc = await api.ok("/openapi.json")
    live.head, live.indexed_block = 120, 80
    status, body = await api.get("/ready")
    assert status == 503 and body["ready"] is False and "80 of head 120" in body["reason"]
    check_response(doc, "/ready", 503, body)
    live.indexed_block, live.caught_up = 120, True
    status, body = await api.get("/ready")
    assert (status, body) == (200, {"ready": True, "reason": None})
    assert await api.ok("/health") == {"alive": True}


class _SharedDatabase:
    """What `Leadership` reads of its database to know it is one of several replicas."""

    dialect = "postgresql"


async def test_a_standby_is_ready_only_while_another_replica_leads(
    api: Api, live: LiveState
) -> None:
    """A standby serves the reads a leader keeps current; before any leads (a first
    start) or once it saw only itself lead (it just stepped down), nothing keeps them
    current: 503, and the load balancer sends reads elsewhere."""
    doc = await api.ok("/openapi.json")
    lead = Leadership(cast(Database, _SharedDatabase()), identity="a", ttl=6, margin=1.5)
    live.leadership = lead
    assert lead.role == "standby"
    for seen in (None, "", "a"):
        lead.leader_seen = seen
        status, body = await api.get("/ready")
        assert status == 503 and body == {"ready": False, "reason": "standby: no other "
                                          "replica leads yet"}, seen  # fmt: skip
        check_response(doc, "/ready", 503, body)
    lead.leader_seen = "b"
    status, body = await api.get("/ready")
    assert (status, body) == (200, {"ready": True, "reason": "standby: b leads"})


async def test_status_reports_chain_relayer_rules_and_intent_counts(
    api: Api, live: LiveState, indexed: Indexed
) -> None:
    doc = await api.ok("/openapi.json")
    async with opened(indexed.path) as store:
        checkpoint = await store.checkpoint()
    assert checkpoint is not None
    body = await api.ok("/status")  # nothing live yet: the indexed block from the database
    check_response(doc, "/status", 200, body)
    assert body["indexed_block"] == checkpoint.number and body["chain_head"] is None
    assert body["lag_blocks"] is None and body["relayer"] == {"address": None, "balance": None}

    live.head, live.indexed_block, live.safe_block = 1_000, 990, 968
    live.relayer_address = "0x" + "12" * 20
    live.relayer_balance = 2**255 + 1  # exact, whatever its size
    live.rules_version = "abc123"
    body = await api.ok("/status")
    check_response(doc, "/status", 200, body)
    assert (body["chain_head"], body["indexed_block"], body["safe_block"]) == (1_000, 990, 968)
    assert body["lag_blocks"] == 10 and body["caught_up"] is False
    assert body["relayer"] == {"address": live.relayer_address, "balance": str(2**255 + 1)}
    assert body["rules_version"] == "abc123"
    assert body["intents"] == await _expect.intent_counts(indexed.path)
    assert body["intents"]["confirmed"] == 1 and body["intents"]["obsolete"] == 1
    sessions = await _expect.sessions(indexed.path)
    assert body["sessions"] == {
        status: sum(s.status == status for s in sessions)
        for status in ("active", "revoked", "closed")
    }


async def test_stats_are_exact_totals_over_sessions(api: Api, indexed: Indexed) -> None:
    doc = await api.ok("/openapi.json")
    sessions = await _expect.sessions(indexed.path)
    body = await api.ok("/stats")
    check_response(doc, "/stats", 200, body)
    closed = [s for s in sessions if s.status == "closed"]
    assert body["active_sessions"] == sum(s.status == "active" for s in sessions)
    assert body["sessions"]["total"] == len(sessions)
    assert body["volume_deposited"] == str(sum(s.deposit for s in sessions))
    assert int(body["volume_deposited"]) > 2**255 - 2**71  # the whale's, not rounded
    assert body["fees_collected"] == str(sum(s.fee for s in sessions))
    assert body["volume_withdrawn"] == str(sum(s.withdrawn for s in sessions))
    assert body["volume_refunded"] == str(sum(s.refund for s in sessions))
    reasons: dict[str, int] = {}
    for s in closed:
        assert s.close_reason is not None
        reasons[s.close_reason] = reasons.get(s.close_reason, 0) + 1
    assert body["closed_by_reason"] == reasons
    with_sl = [s for s in closed if s.stop_loss]
    hits = sum(s.close_reason == "stop_loss" for s in with_sl)
    assert body["stop_loss"]["hits"] == hits
    assert body["stop_loss"]["closed_with_threshold"] == len(with_sl)
    assert body["stop_loss"]["rate"] == (round(hits / len(with_sl), 4) if with_sl else None)
    with_tp = [s for s in closed if s.take_profit]
    tp_hits = sum(s.close_reason == "take_profit" for s in with_tp)
    assert body["take_profit"]["hits"] == tp_hits
    assert body["take_profit"]["closed_with_threshold"] == len(with_tp)
    durations = [s.closed_at - s.created_at for s in closed if s.closed_at is not None]
    assert body["average_duration_seconds"] == sum(durations) // len(durations)
