"""The bodies of the `POST /prepare/...` endpoints: what a client asks for, and the unsigned
transactions it gets back.

Request fields are checked exactly, with the fix in the message: amounts (uint256) are
decimal strings of base units ("1000000"), never JSON numbers (many clients lose digits
beyond 2**53) and never "1e18", "-1", "+1", "1.5", "007" or anything above 2**256-1;
addresses are 0x + 40 hex digits (a mixed-case one must carry its EIP-55 checksum);
unknown fields and repeated keys are refused. A failure names the field by its JSON
pointer (`/targets/2`). Each field type carries the JSON Schema the OpenAPI document
shows, as strict as the schema can say (what it cannot, such as the range of a 78-digit
string, is refused here too).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from eth_utils.address import to_checksum_address
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from contracts import UINT256_MAX
from warden.app.api.errors import BadParameter, BadRequest
from warden.app.api.models import Address as AddressOut
from warden.app.api.models import Amount, Body

UINT64_MAX = 2**64 - 1
MAX_FEE_BPS = 1_000  # SessionWalletFactory.MAX_FEE_BPS: the factory never charges more
MAX_TARGETS = 16  # SessionWalletFactory.MAX_TARGETS
MAX_POLICY_BYTES = 32  # SessionWalletFactory.MAX_POLICY_BYTES
MAX_BODY = 16 * 1024  # bytes: a creation with 16 targets is under 2 KiB
BODY_SECONDS = 10.0  # a body must arrive within this, once its head has
MAX_DEPTH = 8  # nesting of a body; ours nest 2 deep (an object holding `targets`)

_DIGITS = re.compile(r"0|[1-9][0-9]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_SALT = re.compile(r"0x[0-9a-fA-F]{64}")
_EXAMPLE = '"1000000000000000000"'


def _amount(value: object) -> int:
    """A uint256 from a decimal string of base units, exactly; every other spelling is
    refused with what to write instead."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float):
            raise ValueError(
                f"amounts are decimal strings, not JSON numbers (a number loses digits "
                f"beyond 2**53 in many clients): send {json.dumps(str(value))}-style text "
                f"of base units, e.g. {_EXAMPLE}"
            )
        raise ValueError(f"expected a decimal string of base units, e.g. {_EXAMPLE}")
    if _DIGITS.fullmatch(value):
        if len(value) > 78:  # int() of over 4,300 digits would refuse in its own words
            raise ValueError("above 2**256-1, the largest uint256")
        amount = int(value)
        if amount > UINT256_MAX:
            raise ValueError("above 2**256-1, the largest uint256")
        return amount
    text = value.strip()
    if not text:
        raise ValueError(f"empty: write the amount in base units, e.g. {_EXAMPLE}")
    if text != value:
        raise ValueError("surrounding whitespace: send the digits alone")
    if text[0] == "-":
        raise ValueError("negative: amounts are 0 or more")
    if text[0] == "+":
        raise ValueError("a leading '+': send the digits alone")
    if text.isascii() and text.isdigit():
        raise ValueError(f"leading zeros: write {text.lstrip('0') or '0'}")
    if re.fullmatch(r"[0-9]*\.?[0-9]*[eE][+-]?[0-9]+", text):
        raise ValueError("exponent notation is not exact: write every digit in base units")
    if re.fullmatch(r"[0-9]+\.[0-9]+", text):
        raise ValueError(
            "a fraction: amounts are whole base units (for a token of 18 decimals, "
            '1.5 tokens is "1500000000000000000")'
        )
    raise ValueError(f"not a decimal number: write base units in digits, e.g. {_EXAMPLE}")


def _address(value: object) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ValueError("must be an address: 0x followed by 40 hex digits")
    checksummed = str(to_checksum_address(value))
    body = value[2:]
    if body not in (body.lower(), body.upper()) and value != checksummed:
        raise ValueError(
            "fails its EIP-55 checksum (mixed case): a character is probably mistyped; "
            "copy the address again, or send it in lower case"
        )
    return checksummed


def _nonzero_address(value: object) -> str:
    address = _address(value)
    if int(address, 16) == 0:
        raise ValueError("the zero address: name a real account or contract")
    return address


def _whole(low: int, high: int, what: str) -> Any:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = f" (send {value} as a JSON integer)" if isinstance(value, str) else ""
            raise ValueError(f"must be a JSON integer, {what}{hint}")
        if not low <= value <= high:
            raise ValueError(f"must be {low} to {high}, {what}")
        return value

    return check


def _salt(value: object) -> str:
    if not isinstance(value, str) or not _SALT.fullmatch(value):
        raise ValueError("must be 0x followed by 64 hex digits (32 bytes)")
    return value.lower()


def _policy(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise ValueError(f"{size} bytes in UTF-8; the factory takes at most {MAX_POLICY_BYTES}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (a lone surrogate)") from None
    return value


def _targets(value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("must be a list of addresses")
    if len(value) > MAX_TARGETS:
        raise ValueError(f"{len(value)} targets; a session lists at most {MAX_TARGETS}")
    return value


_AMOUNT_SCHEMA = {
    "type": "string", "pattern": "^(0|[1-9][0-9]{0,77})$",
    "description": "uint256 in base units, as a decimal string",
}  # fmt: skip
_ADDRESS_SCHEMA = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}

AmountIn = Annotated[int, BeforeValidator(_amount), WithJsonSchema(_AMOUNT_SCHEMA)]
AddressIn = Annotated[str, BeforeValidator(_address), WithJsonSchema(_ADDRESS_SCHEMA)]
NonZeroAddress = Annotated[str, BeforeValidator(_nonzero_address), WithJsonSchema(_ADDRESS_SCHEMA)]
Expiry = Annotated[int, BeforeValidator(_whole(1, UINT64_MAX, "unix seconds")), WithJsonSchema(
    {"type": "integer", "minimum": 1, "maximum": UINT64_MAX, "description": "unix seconds"}
)]  # fmt: skip
FeeBps = Annotated[int, BeforeValidator(_whole(0, MAX_FEE_BPS, "basis points")), WithJsonSchema({
    "type": "integer", "minimum": 0, "maximum": MAX_FEE_BPS,
    "description": "the highest fee you consent to, in basis points (the factory never "
    f"charges more than {MAX_FEE_BPS})",
})]  # fmt: skip
Salt = Annotated[str, BeforeValidator(_salt), WithJsonSchema(
    {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}
)]  # fmt: skip
Policy = Annotated[str, BeforeValidator(_policy), WithJsonSchema(
    {"type": "string", "maxLength": MAX_POLICY_BYTES,
     "description": f"at most {MAX_POLICY_BYTES} bytes in UTF-8"}
)]  # fmt: skip
Targets = Annotated[list[NonZeroAddress], BeforeValidator(_targets), WithJsonSchema(
    {"type": "array", "items": _ADDRESS_SCHEMA, "maxItems": MAX_TARGETS}
)]  # fmt: skip


class Request(BaseModel):
    """Base of every request body: exactly these fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WalletRequest(Request):
    """revoke, close: the owner acts on its wallet."""

    owner: AddressIn = Field(description="the wallet's owner, who signs and sends")
    wallet: AddressIn = Field(description="the session wallet")


class WithdrawRequest(WalletRequest):
    amount: AmountIn = Field(description="base units to withdraw to the owner")


class TopUpRequest(WalletRequest):
    amount: AmountIn = Field(description="base units added to the session; the fee is on top")
    max_fee_bps: FeeBps


class ExtendRequest(WalletRequest):
    expiry: Expiry = Field(description="the new expiry: later than the current one")


class CreateRequest(Request):
    owner: AddressIn = Field(description="the session's owner, who signs and sends")
    operator: NonZeroAddress = Field(description="an operator the registry trusts")
    token: NonZeroAddress = Field(description="a token the registry trusts")
    deposit: AmountIn = Field(description="base units moved in; the fee is on top")
    expiry: Expiry = Field(description="when the operator's rights end, in chain time")
    budget: AmountIn = Field(description="the most the operator may spend")
    stop_loss: AmountIn = Field("0", validate_default=True, description="0: none")
    take_profit: AmountIn = Field("0", validate_default=True, description="0: none")
    policy: Policy = Field("", description="a name for the off-chain rules")
    targets: Targets = Field(default_factory=list, description="contracts the operator may call")
    max_fee_bps: FeeBps
    salt: Salt | None = Field(None, description="32 bytes; a random one when left out")


# ------------------------------------------------------------------------- answers


class TokenInfo(Body):
    address: AddressOut
    symbol: str | None = Field(description="null when the token gives no usable symbol()")
    decimals: int | None = Field(description="null when the token gives no usable decimals()")


class PreparedTransaction(Body):
    """One unsigned EIP-1559 transaction: sign it with the owner's key as it is."""

    step: str = Field(
        description="reset_approval, approve, create, deposit, withdraw, extend, revoke, close"
    )
    description: str
    type: Literal["0x2"]
    chain_id: int
    from_: AddressOut = Field(alias="from")
    to: AddressOut
    data: Annotated[str, WithJsonSchema({"type": "string", "pattern": "^0x([0-9a-f]{2})*$"})]
    value: Amount
    nonce: int = Field(description="the owner's pending nonce when prepared (+1 per step)")
    gas: int | None = Field(
        description="gas limit: the node's estimate plus a margin; null when the node "
        "cannot estimate a step that depends on the one before (no eth_simulateV1)"
    )
    max_fee_per_gas: Amount
    max_priority_fee_per_gas: Amount

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)


Action = Literal["create", "top_up", "withdraw", "extend", "revoke", "close"]


class Prepared(Body):
    action: Action
    chain_id: int
    owner: AddressOut
    wallet: AddressOut = Field(description="the session wallet (for create: predicted)")
    salt: str | None = Field(description="create only: the salt the address is derived from")
    token: TokenInfo
    fee: Amount | None = Field(description="create and top-up: the fee paid on top")
    transactions: list[PreparedTransaction] = Field(description="send in this order")
    summary: str = Field(description="what the transactions do, for a person to confirm")


REQUESTS: tuple[type[Request], ...] = (
    CreateRequest, TopUpRequest, WithdrawRequest, ExtendRequest, WalletRequest,
)  # fmt: skip
ANSWERS: tuple[type[Body], ...] = (Prepared, PreparedTransaction, TokenInfo)


M = TypeVar("M", bound=BaseModel)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadParameter(f"/{_escape(key)}", "given more than once: send each field once")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise BadRequest(f"the body holds {name}, which is not JSON: send numbers as strings")


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def pointer(loc: tuple[int | str, ...]) -> str:
    """The JSON pointer of a pydantic error location."""
    return "/" + "/".join(_escape(str(part)) for part in loc) if loc else ""


def depth_of(text: str) -> int:
    """How deep arrays and objects nest in `text` (strings skipped): checked before the
    parser, which recurses once per level: 16 KiB of "[" is past Python's recursion limit
    (a RecursionError), and past the C stack where that limit is raised."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_body(raw: bytes, model: type[M]) -> M:
    """`raw` as `model`; a 400 naming the first bad field by its JSON pointer."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8: send JSON") from None
    if not text.strip():
        raise BadRequest(f"empty body: send a JSON object with {', '.join(model.model_fields)}")
    if depth_of(text) > MAX_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_DEPTH} levels: send a flat JSON object")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except ValueError as exc:  # JSONDecodeError, and an integer of over 4300 digits
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # cannot happen below MAX_DEPTH; never a 500 if it did
        raise BadRequest("the body nests too deeply: send a flat JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = pointer(tuple(error["loc"]))
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            raise BadParameter(where, f"unknown field (this endpoint takes: {allowed})") from None
        if error["type"] == "missing":
            raise BadParameter(where, "required") from None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise BadParameter(where, message) from None
