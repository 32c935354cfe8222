"""/activity (what the console's chart plots) and /status `token_decimals`: the latest
closes and reactions, oldest first, each exactly as stored."""

from __future__ import annotations

from tests.warden.app.api import _expect
from tests.warden.app.api._schema import check_response
from tests.warden.app.api.conftest import NOW_MS, Api, Indexed
from warden.app.api import LiveState


async def test_activity_lists_the_latest_closes_and_reactions_oldest_first(
    api: Api, indexed: Indexed
) -> None:
    doc = await api.ok("/openapi.json")
    body = await api.ok("/activity", params={"limit": "1000"})
    check_response(doc, "/activity", 200, body)
    sessions = await _expect.sessions(indexed.path)
    closed = sorted(
        (s for s in sessions if s.status == "closed" and s.closed_at is not None),
        key=lambda s: (s.closed_at, s.wallet),
    )
    assert len(closed) >= 3, "the workload closes sessions for several reasons"
    assert body["closes"] == [
        {"closed_at": s.closed_at, "reason": s.close_reason, "wallet": s.wallet} for s in closed
    ]
    # one intent was sent (a close, then a fee bump): its reaction is its first send
    (reaction,) = body["reactions"]
    done = indexed.intent_keys["done"]
    intents = await api.ok("/intents", params={"state": "confirmed"})
    (intent,) = [i for i in intents["items"] if i["key"] == done]
    assert reaction == {
        "intent_id": intent["id"], "wallet": intent["wallet"], "rule": "stop-loss",
        "created_ms": NOW_MS, "sent_ms": NOW_MS + 2, "latency_ms": 2,
    }  # fmt: skip
    # the dropped sweep was signed but never sent: no reaction

    latest = await api.ok("/activity", params={"limit": "2"})
    assert latest["closes"] == body["closes"][-2:]


async def test_activity_refuses_a_bad_limit(api: Api) -> None:
    for bad in ("0", "1001", "-1", "x", ""):
        status, body = await api.get("/activity", params={"limit": bad})
        assert status == 400 and body["error"]["parameter"] == "limit", (bad, body)
    status, body = await api.get("/activity", params={"cursor": "abc"})
    assert status == 400 and body["error"]["parameter"] == "cursor"


async def test_status_carries_the_decimals_the_rules_use(api: Api, live: LiveState) -> None:
    assert (await api.ok("/status"))["token_decimals"] == {}
    live.token_decimals["0x" + "ab" * 20] = 6
    live.token_decimals["0x" + "cd" * 20] = 18
    body = await api.ok("/status")
    assert body["token_decimals"] == {"0x" + "ab" * 20: 6, "0x" + "cd" * 20: 18}
