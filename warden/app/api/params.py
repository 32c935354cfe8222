"""Query and path parameters as pydantic models: one declaration per parameter serves both
validation and the OpenAPI document, so what is checked is what is documented.

Every value arrives as a string; each parameter type (`Parsed`) parses it with a plain
function and carries its own JSON Schema. A failure names the parameter: the first error
of a model becomes a `BadParameter` (400). Unknown parameters are refused (`extra`
forbidden), and so is a repeated one.

Cursors are opaque to clients: urlsafe base64 (unpadded) of `<scope>:<sort key>`, where
the scope names the listing (a cursor of /events is refused by /sessions) and the key is
a SQLite integer (below 2**63).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote_to_bytes

from eth_utils.address import to_checksum_address
from multidict import MultiDict, MultiMapping
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from chain import event_specs
from contracts import POLICY_REASONS, SESSION_STATUSES, SWEEP_REASON
from executor import STATES
from notify import CATEGORIES, KINDS, known_pattern
from notify import STATES as DELIVERY_STATES
from rules.model import TERMINAL_ACTIONS
from warden.app.api.errors import BadParameter

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CURSOR_KEY = re.compile(r"0|[1-9][0-9]{0,18}")
_SQLITE_MAX = 2**63 - 1

INTENT_STATES: tuple[str, ...] = STATES
# `notify` firings are never intents (they are rule.notify events): not an intent's action
INTENT_ACTIONS: tuple[str, ...] = tuple(sorted(TERMINAL_ACTIONS))
INTENT_REASONS = (*POLICY_REASONS, SWEEP_REASON)  # rules never close as owner
EVENT_NAMES = tuple(sorted({spec.name for spec in event_specs().values()}))


@dataclass(frozen=True, eq=False)  # hashed by identity: `X | None` hashes its parts
class Parsed:
    """Annotated metadata: parse the raw string with `parse` (a ValueError's message is
    the complaint), document it as `schema`."""

    parse: Callable[[str], Any]
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        def validate(raw: Any) -> Any:
            if not isinstance(raw, str):  # only the app's own code passes non-strings
                raise PydanticCustomError("bad_parameter", "must be a string")
            try:
                return self.parse(raw)
            except ValueError as exc:
                raise PydanticCustomError(
                    "bad_parameter", "{message}", {"message": str(exc)}
                ) from None

        return core_schema.no_info_plain_validator_function(validate)

    def __get_pydantic_json_schema__(
        self, schema: Any, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


def parse_address(raw: str) -> str:
    """Any case in, the checksum form (as stored) out."""
    if not _ADDRESS.fullmatch(raw):
        raise ValueError("must be an address: 0x followed by 40 hex digits")
    return str(to_checksum_address(raw))


def _limit(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValueError(f"must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def _one_of(choices: tuple[str, ...]) -> Parsed:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return raw

    return Parsed(parse, {"type": "string", "enum": list(choices)})


def encode_cursor(scope: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{scope}:{key}".encode()).rstrip(b"=").decode()


def _cursor_key(scope: str, raw: str) -> int:
    bad = ValueError("not a cursor of this listing: pass back `next_cursor` unchanged")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    prefix, _, key = text.partition(":")
    if prefix != scope or not _CURSOR_KEY.fullmatch(key) or int(key) > _SQLITE_MAX:
        raise bad
    if encode_cursor(scope, int(key)) != raw:  # only the form we issue
        raise bad
    return int(key)


def decode_cursor(name: str, scope: str, raw: str) -> int:
    try:
        return _cursor_key(scope, raw)
    except ValueError as exc:
        raise BadParameter(name, str(exc)) from None


# What a cursor looks like; which such strings are cursors (base64 of this listing's
# scope and a key below 2**63) is beyond JSON Schema: the others are a 400 too.
_CURSOR_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "minLength": 2,
                  "maxLength": 40}  # fmt: skip


def _cursor(scope: str) -> Parsed:
    return Parsed(lambda raw: _cursor_key(scope, raw), _CURSOR_SCHEMA)


_ADDRESS_SCHEMA = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
Address = Annotated[str, Parsed(parse_address, _ADDRESS_SCHEMA)]
Limit = Annotated[int, Parsed(_limit, {
    "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
})]  # fmt: skip
Text = Annotated[str, Parsed(str, {"type": "string"})]


class Params(BaseModel):
    """Base of every parameter model: unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoQuery(Params):
    pass


class WalletPath(Params):
    wallet: Address = Field(description="session wallet address (any case)")


class OwnerPath(Params):
    address: Address = Field(description="owner address (any case)")


class OwnerSessionsQuery(Params):
    status: Annotated[str, _one_of(SESSION_STATUSES)] | None = Field(
        None, description="session status"
    )
    policy: Text | None = Field(
        None, description="policy name as in the creation event (may be empty)"
    )
    cursor: Annotated[int, _cursor("sessions")] | None = Field(
        None, description="`next_cursor` of the previous page"
    )
    limit: Limit = Field(DEFAULT_LIMIT, description="page size")


class SessionsQuery(OwnerSessionsQuery):
    owner: Address | None = Field(None, description="owner address (any case)")


class EventsQuery(Params):
    name: Annotated[str, _one_of(EVENT_NAMES)] | None = Field(None, description="event name")
    cursor: Annotated[int, _cursor("events")] | None = Field(
        None, description="`next_cursor` of the previous page"
    )
    limit: Limit = Field(DEFAULT_LIMIT, description="page size")


class IntentsQuery(Params):
    wallet: Address | None = Field(None, description="session wallet (any case)")
    state: Annotated[str, _one_of(INTENT_STATES)] | None = Field(None, description="intent state")
    rule: Text | None = Field(None, description="rule name")
    action: Annotated[str, _one_of(INTENT_ACTIONS)] | None = Field(None, description="action")
    reason: Annotated[str, _one_of(INTENT_REASONS)] | None = Field(None, description="close reason")
    cursor: Annotated[int, _cursor("intents")] | None = Field(
        None, description="`next_cursor` of the previous page"
    )
    limit: Limit = Field(DEFAULT_LIMIT, description="page size")


class ActivityQuery(Params):
    limit: Limit = Field(DEFAULT_LIMIT, description="how many of the latest closes and reactions")


def _kinds(raw: str) -> tuple[str, ...]:
    kinds = tuple(raw.split(","))
    for k in kinds:
        if not known_pattern(k):
            raise ValueError(
                f"{k!r} is no event kind: name kinds (session.closed), categories (session, "
                "intent, rule, alert, event, notify) or *, comma-separated (docs/notify.md)"
            )
    return kinds


def _stream_cursor(raw: str) -> int:
    if not _CURSOR_KEY.fullmatch(raw) or int(raw) > _SQLITE_MAX:
        raise ValueError("must be an event cursor: a decimal integer (an event's `id:`)")
    return int(raw)


def _follow(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError("must be true or false")
    return raw == "true"


_KIND = "(" + "|".join(re.escape(k) for k in ("*", *CATEGORIES, *KINDS)) + ")"
Kinds = Annotated[tuple[str, ...], Parsed(_kinds, {
    "type": "string", "pattern": f"^{_KIND}(,{_KIND})*$",
})]  # fmt: skip


class StreamQuery(Params):
    after: Annotated[int, Parsed(_stream_cursor, {
        # 18 digits at most in the document: every one of them is below 2**63 (a 19-digit
        # cursor up to 2**63 - 1 is taken too, but a pattern cannot draw that line)
        "type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$",
    })] | None = Field(None, description="start after this cursor (0: the whole log); "
                       "Last-Event-ID wins over it; absent: new events only")  # fmt: skip
    kinds: Kinds | None = Field(
        None, description="only these kinds or categories, comma-separated (session,alert)"
    )
    wallet: Address | None = Field(None, description="only this session's events (any case)")
    follow: Annotated[bool, Parsed(_follow, {"type": "string", "enum": ["false", "true"]})] = Field(
        True, description="false: send the events logged now, then end the response"
    )


class NotificationsQuery(Params):
    state: Annotated[str, _one_of(DELIVERY_STATES)] | None = Field(
        None, description="delivery state"
    )
    channel: Text | None = Field(None, description="channel name (notify.channels[].name)")
    kind: Annotated[str, _one_of(tuple(KINDS))] | None = Field(None, description="event kind")
    cursor: Annotated[int, _cursor("notifications")] | None = Field(
        None, description="`next_cursor` of the previous page"
    )
    limit: Limit = Field(DEFAULT_LIMIT, description="page size")


P = TypeVar("P", bound=Params)


def _validated(model: type[P], values: Mapping[str, str]) -> P:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields) or "none"
            raise BadParameter(
                name, f"unknown parameter (this endpoint takes: {allowed})"
            ) from None
        raise BadParameter(name, error["msg"]) from None


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unquote(raw: str, parameter: str) -> str:
    """One percent-encoded query component, strictly: a `%` must start an escape and the
    bytes must be UTF-8 (no lone surrogates), else a 400 naming `parameter`."""
    if _BAD_ESCAPE.search(raw):
        raise BadParameter(parameter, "bad percent-encoding: % must be followed by 2 hex digits")
    try:
        return unquote_to_bytes(raw.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadParameter(parameter, "not valid UTF-8 once percent-decoded") from None


def split_query(raw: str) -> MultiDict[str]:
    """The raw query string as name → values, decoded strictly (yarl's `request.query`
    would pass bad escapes through and turn invalid UTF-8 into replacement characters).
    An undecodable name is reported as `query`."""
    out: MultiDict[str] = MultiDict()
    for part in raw.split("&"):
        if not part:
            continue
        raw_name, _, raw_value = part.partition("=")
        name = _unquote(raw_name, "query")
        out.add(name, _unquote(raw_value, name))
    return out


def parse_query(query: MultiMapping[str], model: type[P]) -> P:
    """The query as `model`; an unknown, repeated or malformed parameter is a 400
    naming it."""
    for name in query:
        if len(query.getall(name)) > 1:
            raise BadParameter(name, "given more than once")
    return _validated(model, dict(query))


def parse_path(match_info: Mapping[str, str], model: type[P]) -> P:
    return _validated(model, dict(match_info))
