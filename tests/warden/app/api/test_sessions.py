"""/sessions, /owners/{address}/sessions, /sessions/{wallet} and its events, against a
database indexed from a real chain."""

from __future__ import annotations

from typing import Any

from tests.warden.app.api import _expect
from tests.warden.app.api._schema import check_response
from tests.warden.app.api.conftest import RULES_VERSION, Api, Indexed


async def collect(api: Api, path: str, limit: int, **params: str) -> list[dict[str, Any]]:
    """Every item of a listing, page by page, checking each page's shape."""
    doc = await api.ok("/openapi.json")
    template = path if path in doc["paths"] else _template(path)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = await api.ok(path, params=query)
        check_response(doc, template, 200, page)
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit  # a short page is the last one


def _template(path: str) -> str:
    parts = path.split("/")
    if parts[1] == "owners":
        return "/owners/{address}/sessions"
    return "/sessions/{wallet}/events" if path.endswith("/events") else "/sessions/{wallet}"


async def test_sessions_in_creation_order_equal_the_indexed_state(
    api: Api, indexed: Indexed
) -> None:
    expected = [_expect.session_json(s) for s in await _expect.sessions(indexed.path)]
    assert len(expected) >= 20
    for limit in (1, 7, 1000):
        got = await collect(api, "/sessions", limit)
        assert got == expected, f"limit {limit}"
    default = await api.ok("/sessions")
    assert default["items"] == expected[:100] and (default["next_cursor"] is None) == (
        len(expected) <= 100
    )
    # uint256 amounts beyond 2**64 come back exact, as strings
    huge = [s for s in got if int(s["deposit"]) > 2**200]
    assert huge, "the workload makes one session with amounts near 2**255"
    assert all(isinstance(s["balance"], str) for s in got)


async def test_filters_by_owner_status_policy_and_their_combination(
    api: Api, indexed: Indexed
) -> None:
    sessions = await _expect.sessions(indexed.path)
    owners = sorted({s.owner for s in sessions})
    assert len(owners) >= 2
    for owner in owners:
        mine = [_expect.session_json(s) for s in sessions if s.owner == owner]
        assert await collect(api, "/sessions", 5, owner=owner.lower()) == mine
        assert (
            await collect(api, f"/owners/{owner.upper().replace('0X', '0x')}/sessions", 5) == mine
        )
    statuses = {s.status for s in sessions}
    assert {"active", "closed"} <= statuses
    for status in ("active", "revoked", "closed"):
        want = [_expect.session_json(s) for s in sessions if s.status == status]
        assert await collect(api, "/sessions", 4, status=status) == want
    for policy in {s.policy for s in sessions}:  # "" is a policy too
        want = [_expect.session_json(s) for s in sessions if s.policy == policy]
        assert want and await collect(api, "/sessions", 3, policy=policy) == want
    owner = owners[0]
    combined = [
        _expect.session_json(s)
        for s in sessions
        if s.owner == owner and s.status == "closed" and s.policy == sessions[0].policy
    ]
    got = await collect(api, f"/owners/{owner}/sessions", 2, status="closed",
                        policy=sessions[0].policy)  # fmt: skip
    assert got == combined
    nobody = "0x" + "00" * 19 + "01"
    assert await api.ok("/sessions", params={"owner": nobody}) == {
        "items": [],
        "next_cursor": None,
    }


async def test_session_detail_with_its_intents_jobs_transactions_and_refusals(
    api: Api, indexed: Indexed
) -> None:
    doc = await api.ok("/openapi.json")
    rows = {i.key: i for i in await _expect.intents(indexed.path)}
    done = rows[indexed.intent_keys["done"]]
    body = await api.ok(f"/sessions/{done.wallet.lower()}")
    check_response(doc, "/sessions/{wallet}", 200, body)
    sessions = {s.wallet: s for s in await _expect.sessions(indexed.path)}
    assert body["session"] == _expect.session_json(sessions[done.wallet])
    assert [i["key"] for i in body["intents"]] == [
        i.key for i in sorted(rows.values(), key=lambda i: i.id) if i.wallet == done.wallet
    ]
    (confirmed,) = [i for i in body["intents"] if i["key"] == done.key]
    assert confirmed["state"] == "confirmed" and confirmed["rules_version"] == RULES_VERSION
    assert confirmed["confirmed_position"] == sessions[done.wallet].last_position
    job = confirmed["job"]
    assert job["state"] == "mined" and job["mined_hash"] == indexed.tx_hashes["mined"]
    assert job["effective_gas_price"] == "2500000007"
    assert job["fee_paid"] == str(61_234 * 2_500_000_007)
    assert [(t["hash"], t["state"], t["max_fee_per_gas"]) for t in confirmed["transactions"]] == [
        (indexed.tx_hashes["first"], "replaced", str(2 * 10**9)),
        (indexed.tx_hashes["mined"], "mined", str(3 * 10**9)),
    ]
    assert all("raw" not in t for t in confirmed["transactions"])

    waiting = rows[indexed.intent_keys["waiting"]]
    body = await api.ok(f"/sessions/{waiting.wallet}")
    check_response(doc, "/sessions/{wallet}", 200, body)
    (pending,) = [i for i in body["intents"] if i["key"] == waiting.key]
    assert pending["state"] == "pending" and pending["job"] is None
    assert [(r["guard"], r["reason"]) for r in pending["refusals"]] == [
        ("rate", "3 jobs in the last hour"),
        ("balance", "relayer balance below 0.01 ETH"),
    ]
    assert pending["detail"] == "balance: relayer balance below 0.01 ETH"

    quiet = [w for w in indexed.wallets if w not in {i.wallet for i in rows.values()}]
    assert quiet
    assert (await api.ok(f"/sessions/{quiet[0]}"))["intents"] == []


async def test_session_events_in_chain_order_with_exact_arguments(
    api: Api, indexed: Indexed
) -> None:
    sessions = await _expect.sessions(indexed.path)
    busiest = max(sessions, key=lambda s: s.last_seq)
    want = [_expect.event_json(e) for e in await _expect.events(indexed.path, busiest.wallet)]
    assert len(want) >= 4
    for limit in (1, 3, 1000):
        assert await collect(api, f"/sessions/{busiest.wallet}/events", limit) == want
    created = await collect(api, f"/sessions/{busiest.wallet.lower()}/events", 10,
                            name="SessionCreated")  # fmt: skip
    assert created == [e for e in want if e["name"] == "SessionCreated"] and len(created) == 1
    assert created[0]["args"]["deposit"] == str(busiest.initial_deposit)
    whale = max(sessions, key=lambda s: s.initial_deposit)
    (first,) = await collect(api, f"/sessions/{whale.wallet}/events", 5, name="SessionCreated")
    assert first["args"]["deposit"] == str(whale.initial_deposit) and whale.initial_deposit > 2**200


async def test_unknown_wallet_is_a_json_404(api: Api) -> None:
    nobody = "0x" + "ab" * 20
    for path in (f"/sessions/{nobody}", f"/sessions/{nobody}/events"):
        status, body = await api.get(path)
        assert status == 404 and body["error"]["code"] == "not_found", body
        assert "0xABaB" in body["error"]["message"]  # named in its checksum form
    status, body = await api.get("/no/such/route")
    assert status == 404 and body["error"]["status"] == 404
