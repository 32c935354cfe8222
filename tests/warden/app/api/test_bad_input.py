"""Every malformed address, cursor, limit, enum and unknown or repeated parameter is a
400 whose JSON names the parameter; nothing is answered from a half-understood query."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.warden.app.api import _expect
from tests.warden.app.api.conftest import Api, Indexed
from warden.app.api import BadParameter
from warden.app.api.params import decode_cursor, encode_cursor

GOOD = "0x" + "ab" * 20


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


CASES = [
    ("/sessions?owner=0x1234", "owner"),
    ("/sessions?owner=" + "ab" * 20, "owner"),  # no 0x
    ("/sessions?owner=0x" + "zz" * 20, "owner"),
    ("/sessions?owner=0x" + "ab" * 21, "owner"),
    ("/sessions?owner=", "owner"),
    ("/sessions?status=open", "status"),
    ("/sessions?limit=0", "limit"),
    ("/sessions?limit=1001", "limit"),
    ("/sessions?limit=-1", "limit"),
    ("/sessions?limit=ten", "limit"),
    ("/sessions?limit=1e2", "limit"),
    ("/sessions?cursor=%%%", "cursor"),
    ("/sessions?cursor=bm90IGEgY3Vyc29y", "cursor"),  # "not a cursor"
    ("/sessions?cursor=" + _b64("sessions:-5"), "cursor"),
    ("/sessions?cursor=" + _b64("sessions:007"), "cursor"),
    ("/sessions?cursor=" + _b64("events:7"), "cursor"),  # another listing's cursor
    ("/sessions?cursor=" + _b64("sessions:7") + "==", "cursor"),  # padded: not as issued
    ("/sessions?cursor=" + _b64("sessions:9" + "0" * 30), "cursor"),
    ("/sessions?sort=wallet", "sort"),
    ("/sessions?owner=" + GOOD + "&owner=" + GOOD, "owner"),
    ("/sessions/0x12", "wallet"),
    ("/sessions/not-an-address", "wallet"),
    ("/sessions/" + GOOD + "?verbose=1", "verbose"),
    ("/sessions/0x12/events", "wallet"),
    ("/sessions/" + GOOD + "/events?name=Transfer", "name"),
    ("/sessions/" + GOOD + "/events?cursor=" + _b64("sessions:1"), "cursor"),
    ("/sessions/" + GOOD + "/events?limit=5000", "limit"),
    ("/owners/0xnothex/sessions", "address"),
    ("/owners/" + GOOD + "/sessions?owner=" + GOOD, "owner"),
    ("/owners/" + GOOD + "/sessions?status=gone", "status"),
    ("/intents?state=done", "state"),
    ("/intents?action=notify", "action"),
    ("/intents?reason=owner", "reason"),
    ("/intents?wallet=0x", "wallet"),
    ("/intents?cursor=" + _b64("intents:x"), "cursor"),
    ("/intents?cursor=" + _b64("sessions:3"), "cursor"),
    ("/status?verbose=true", "verbose"),
    ("/stats?policy=x", "policy"),
    ("/health?x=1", "x"),
    ("/ready?x=1", "x"),
    ("/metrics?format=json", "format"),
    ("/openapi.json?v=2", "v"),
]


@pytest.mark.parametrize(("path", "parameter"), CASES)
async def test_bad_input_is_a_400_naming_the_parameter(api: Api, path: str, parameter: str) -> None:
    status, body = await api.get(path)
    assert status == 400, (path, status, body)
    error = body["error"]
    assert error["code"] == "bad_parameter" and error["parameter"] == parameter, body
    assert error["message"].startswith(f"{parameter}: ")
    doc = await api.ok("/openapi.json")
    documented = {p.split("?")[0] for p in doc["paths"]}
    template = next(t for t in documented if _matches(t, path.split("?")[0]))
    assert "400" in doc["paths"][template]["get"]["responses"], template


def _matches(template: str, path: str) -> bool:
    a, b = template.split("/"), path.split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


async def test_every_documented_query_parameter_is_accepted(api: Api, indexed: Indexed) -> None:
    """The other side of refusing unknown ones: each parameter the document lists, given a
    valid value, is answered 200."""
    doc = await api.ok("/openapi.json")
    wallet = indexed.wallets[0]
    owners = Counter(s.owner for s in await _expect.sessions(indexed.path))
    owner = owners.most_common(1)[0][0]
    values = {"owner": owner, "wallet": wallet, "address": wallet, "policy": "berzerker",
              "rule": "idle", "limit": "2", "name": "SessionCreated", "after": "0",
              "kinds": "session,alert.indexing_lag", "channel": "backend"}  # fmt: skip
    tried = 0
    for template, item in doc["paths"].items():
        path = template.replace("{wallet}", wallet).replace("{address}", owner)
        for p in item["get"]["parameters"]:
            if p["in"] != "query":
                continue
            schema = p["schema"]
            if p["name"] == "cursor":
                first = await api.ok(path, params={"limit": "1"})
                assert first["next_cursor"] is not None, path
                value = first["next_cursor"]
            else:
                value = schema["enum"][0] if "enum" in schema else values[p["name"]]
            status, body = await api.get(path, params={p["name"]: value})
            assert status == 200, (path, p["name"], body)
            tried += 1
    assert tried >= 15


BEYOND_SQLITE = [2**63, 2**64 + 1, 10**19]  # SQLite integers stop at 2**63 - 1


@pytest.mark.parametrize(
    ("template", "scope"),
    [
        ("/sessions", "sessions"),
        ("/owners/{wallet}/sessions", "sessions"),
        ("/sessions/{wallet}/events", "events"),
        ("/intents", "intents"),
    ],
)
async def test_a_cursor_beyond_sqlite_integers_is_a_400_not_a_500(
    api: Api, indexed: Indexed, template: str, scope: str
) -> None:
    path = template.replace("{wallet}", indexed.wallets[0])
    for key in BEYOND_SQLITE:
        status, body = await api.get(path, params={"cursor": encode_cursor(scope, key)})
        assert status == 400, (path, key, status, body)
        assert body["error"]["parameter"] == "cursor", body
    last = encode_cursor(scope, 2**63 - 1)  # the largest key is still a cursor: past the end
    assert await api.ok(path, params={"cursor": last}) == {"items": [], "next_cursor": None}


def test_cursor_round_trip_and_scoping() -> None:
    for key in (0, 1, 2**32, (2**30) << 32 | 7, 2**63 - 1):
        assert decode_cursor("cursor", "events", encode_cursor("events", key)) == key
    for key in BEYOND_SQLITE:  # no position is that large: never issued, never accepted
        with pytest.raises(BadParameter, match="cursor: not a cursor of this listing"):
            decode_cursor("cursor", "events", encode_cursor("events", key))
    with pytest.raises(BadParameter, match="cursor: not a cursor of this listing"):
        decode_cursor("cursor", "sessions", encode_cursor("events", 5))


MALFORMED_CURSORS = {
    "empty": "",
    "not base64": "!!!!",
    "base64 of one char too many": _b64("sessions:12") + "A",  # length 1 mod 4
    "standard alphabet": base64.b64encode(b"sessions:1\xfb\xff").decode(),
    "non-ASCII": "c2Vzc2lvbnM6MQ\u00e9",
    "spaces": " " + _b64("sessions:1"),
    "huge": _b64("sessions:" + "1" * 6_000),
    "not UTF-8 inside": base64.urlsafe_b64encode(b"sessions:\xff\xfe").rstrip(b"=").decode(),
    "NUL inside": _b64("sessions:1\x00"),
    "no scope": _b64("12"),
    "empty key": _b64("sessions:"),
    "negative": _b64("sessions:-1"),
    "minus zero": _b64("sessions:-0"),
    "plus sign": _b64("sessions:+5"),
    "float": _b64("sessions:1.5"),
    "exponent": _b64("sessions:1e3"),
    "hex": _b64("sessions:0x10"),
    "underscores": _b64("sessions:1_000"),
    "other digits": _b64("sessions:\u0663"),
    "bool": _b64("sessions:true"),
    "json": _b64('{"scope": "sessions", "key": 1}'),
    "two keys": _b64("sessions:1:2"),
    "2**63": _b64(f"sessions:{2**63}"),
    "2**256": _b64(f"sessions:{2**256}"),
}


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS.values(), ids=MALFORMED_CURSORS.keys())
async def test_every_malformed_cursor_is_a_400_naming_cursor(api: Api, cursor: str) -> None:
    for path, scope in (("/sessions", "sessions"), ("/intents", "intents")):
        raw = cursor.replace("sessions", scope) if cursor.isascii() else cursor
        status, body = await api.get(path, params={"cursor": raw})
        assert status == 400, (path, cursor, status, body)
        assert body["error"]["parameter"] == "cursor", body


@settings(max_examples=1_000, deadline=None)
@given(st.one_of(
    st.text(max_size=60),
    st.binary(max_size=40).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
    st.tuples(st.sampled_from(["sessions", "events", "x", ""]), st.text(max_size=25)).map(
        lambda t: _b64(f"{t[0]}:{t[1]}")
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(lambda k: _b64(f"sessions:{k}")),
))  # fmt: skip
def test_decoding_any_cursor_gives_a_key_or_a_bad_parameter(raw: str) -> None:
    """Whatever the string, decoding ends in a key the listing can use (a SQLite
    integer, issued exactly this way) or in a 400 naming `cursor`: no other exception."""
    try:
        key = decode_cursor("cursor", "sessions", raw)
    except BadParameter as exc:
        assert exc.parameter == "cursor"
        return
    assert 0 <= key < 2**63
    assert encode_cursor("sessions", key) == raw
