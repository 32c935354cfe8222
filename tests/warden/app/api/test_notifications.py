"""/notifications over real HTTP: every delivery of the indexed chain's event log, paged
by cursor without gaps or repeats, filtered by state, channel and kind; the delivery
figures in /metrics; /stream replays the same log."""

from __future__ import annotations

import sqlite3

import pytest

from tests.warden.app.api.conftest import Api, Indexed


def _rows(indexed: Indexed, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(f"file:{indexed.path}?mode=ro", uri=True) as db:
        return db.execute(sql).fetchall()


async def test_pages_cover_every_delivery_once_in_order(api: Api, indexed: Indexed) -> None:
    total = _rows(indexed, "SELECT COUNT(*) FROM notify_deliveries")[0][0]
    assert isinstance(total, int) and total > 20
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        page = await api.ok("/notifications", params=params)
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == total and seen == sorted(set(seen))


@pytest.mark.parametrize(
    ("query", "sql"),
    [
        ({"state": "dead"}, "state = 'dead'"),
        ({"state": "delivered"}, "state = 'delivered'"),
        ({"state": "pending"}, "state = 'pending'"),
        ({"channel": "ops"}, "channel = 'ops'"),
        ({"channel": "nobody"}, "channel = 'nobody'"),
    ],
)
async def test_filters(api: Api, indexed: Indexed, query: dict[str, str], sql: str) -> None:
    page = await api.ok("/notifications", params={**query, "limit": "1000"})
    want = _rows(indexed, f"SELECT id FROM notify_deliveries WHERE {sql} ORDER BY id")
    assert [n["id"] for n in page["items"]] == [r[0] for r in want]


async def test_kind_filter_and_the_dead_letter_detail(api: Api) -> None:
    closes = await api.ok("/notifications", params={"kind": "session.closed", "limit": "1000"})
    assert closes["items"] and {n["kind"] for n in closes["items"]} == {"session.closed"}
    assert {n["channel"] for n in closes["items"]} == {"backend", "ops"}
    dead = (await api.ok("/notifications", params={"state": "dead"}))["items"]
    assert len(dead) == 1 and dead[0]["attempts"] == 10
    assert dead[0]["last_error"] == "HTTP 500: down" and dead[0]["delivered_ms"] is None


async def test_metrics_show_deliveries_by_state_and_the_lag(api: Api) -> None:
    text = await api.ok("/metrics")
    assert 'warden_notifications{channel="backend",state="dead"} 1.0' in text
    assert 'warden_notifications{channel="backend",state="delivered"} 1.0' in text
    assert 'warden_notify_delivery_lag_seconds{channel="ops"}' in text


async def test_bad_parameters_name_themselves(api: Api) -> None:
    for params, name in (({"state": "lost"}, "state"), ({"kind": "session.opened"}, "kind"),
                         ({"cursor": "abc"}, "cursor"), ({"limit": "0"}, "limit")):  # fmt: skip
        status, body = await api.get("/notifications", params=params)
        assert status == 400 and body["error"]["parameter"] == name, body
