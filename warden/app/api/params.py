"""Query and path parameters: one declaration per parameter serves both validation and
the OpenAPI document, so what is checked is what is documented.

Cursors are opaque to clients: urlsafe base64 (unpadded) of `<scope>:<sort key>`, where
the scope names the listing (a cursor of /events is refused by /sessions)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_utils.address import to_checksum_address
from multidict import MultiMapping

from warden.app.api.errors import BadParameter

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CURSOR_KEY = re.compile(r"(0|[1-9][0-9]{0,30})")

Kind = Literal["address", "enum", "string", "cursor", "limit"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    description: str
    where: Literal["query", "path"] = "query"
    choices: tuple[str, ...] = ()  # for enums
    scope: str = ""  # for cursors: which listing's sort key

    def parse(self, raw: str) -> Any:
        match self.kind:
            case "address":
                return parse_address(self.name, raw)
            case "enum":
                if raw not in self.choices:
                    raise BadParameter(self.name, f"must be one of {', '.join(self.choices)}")
                return raw
            case "cursor":
                return decode_cursor(self.name, self.scope, raw)
            case "limit":
                if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
                    raise BadParameter(self.name, f"must be an integer from 1 to {MAX_LIMIT}")
                return int(raw)
            case "string":
                return raw

    def schema(self) -> dict[str, Any]:
        match self.kind:
            case "address":
                return {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
            case "enum":
                return {"type": "string", "enum": list(self.choices)}
            case "limit":
                return {
                    "type": "integer", "minimum": 1, "maximum": MAX_LIMIT,
                    "default": DEFAULT_LIMIT,
                }  # fmt: skip
            case "cursor" | "string":
                return {"type": "string"}


def parse_address(name: str, raw: str) -> str:
    """Any case in, the checksum form (as stored) out."""
    if not _ADDRESS.fullmatch(raw):
        raise BadParameter(name, "must be an address: 0x followed by 40 hex digits")
    return str(to_checksum_address(raw))


def encode_cursor(scope: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{scope}:{key}".encode()).rstrip(b"=").decode()


def decode_cursor(name: str, scope: str, raw: str) -> int:
    bad = BadParameter(name, "not a cursor of this listing: pass back `next_cursor` unchanged")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    prefix, _, key = text.partition(":")
    if prefix != scope or not _CURSOR_KEY.fullmatch(key) or encode_cursor(scope, int(key)) != raw:
        raise bad
    return int(key)


def parse_query(query: MultiMapping[str], params: Sequence[Param]) -> dict[str, Any]:
    """Values of the declared query parameters (absent ones left out, `limit` defaulted);
    any undeclared or repeated parameter is a 400 naming it."""
    declared = {p.name: p for p in params if p.where == "query"}
    out: dict[str, Any] = {}
    for name in query:
        if name not in declared:
            allowed = ", ".join(declared) or "none"
            raise BadParameter(name, f"unknown parameter (this endpoint takes: {allowed})")
        values = query.getall(name)
        if len(values) > 1:
            raise BadParameter(name, "given more than once")
        out[name] = declared[name].parse(values[0])
    if "limit" in declared:
        out.setdefault("limit", DEFAULT_LIMIT)
    return out


def parse_path(match_info: Mapping[str, str], params: Sequence[Param]) -> dict[str, Any]:
    return {p.name: p.parse(match_info[p.name]) for p in params if p.where == "path"}
