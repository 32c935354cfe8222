"""The OpenAPI 3.1 document, generated from the route table and the pydantic models of
parameters (`params.py`) and bodies (`models.py`), so neither can drift from it.

Body schemas are the models' serialization schemas (what is sent: amounts as strings);
parameter schemas are their validation schemas (what is accepted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from warden.app.api.models import COMPONENTS
from warden.app.api.params import Params
from warden.app.api.prepare_models import ANSWERS, REQUESTS
from warden.app.api.routes import Route

REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "bad parameter: `error.parameter` names it",
    401: "missing or wrong bearer token",
    404: "no such session",
    405: "method not allowed: every route answers GET and HEAD only (see `Allow`)",
    409: "the chain's state refuses the request now (a closed wallet, too small a balance, "
    "a revert the estimate met): `error.message` says which, `error.parameter` the field",
    413: "the body is larger than 16 KiB",
    500: "internal error",
    502: "the node answered wrongly or refused the question",
    503: "not ready",
}
_BUSY = (
    "busy: every database read connection is taken and the line for one is full or too "
    "slow (api.read_queue, api.read_wait); retry after `Retry-After` seconds"
)
# One server-sent event as a client parses it (the schema of each event of the stream)
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^(0|[1-9][0-9]*)$", "description": "cursor"},
        "event": {"type": "string", "description": "the event's kind, or `gap` (pruned events)"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "description": "the event document (docs/notify.md)"},
        "retry": {"type": "integer"},
    },
}  # fmt: skip
_STREAM = (
    "Server-sent events, one per logged notification event: `id: <cursor>`, `event: "
    "<kind>`, `data: <the event as JSON on one line>` (docs/notify.md has every kind). "
    "Resume with the header `Last-Event-ID: <cursor>` (it wins over `after`); a comment "
    "line `: keepalive` follows any quiet spell of the keepalive interval. A cursor below "
    "the highest one retention pruned first gets `event: gap` (no `id:`), `data: "
    '{"after", "pruned_through", "next"}` (cursors as strings; `next` the oldest kept '
    "event after it, or null): events may be missing there."
)
_POST_ERRORS = {
    400: "bad body field (`error.parameter` is its JSON pointer, e.g. `/targets/2`) or "
    "malformed body; the message says the fix",
    405: "method not allowed: this route answers POST only (see `Allow`)",
    503: "the node did not answer (in time): retry later",
}


class _Schema(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # a property's title would only repeat its name


def components(*, prepare: bool = False) -> dict[str, Any]:
    """Response bodies as sent; with `prepare`, the prepare routes' request bodies as
    accepted (validation schemas) and their answers too."""
    answers = (*COMPONENTS, *(ANSWERS if prepare else ()))
    _, top = models_json_schema(
        [(model, "serialization") for model in answers],
        ref_template=REF,
        schema_generator=_Schema,
    )
    out = dict(top["$defs"])
    if prepare:
        _, requests = models_json_schema(
            [(model, "validation") for model in REQUESTS],
            ref_template=REF,
            schema_generator=_Schema,
        )
        out.update(requests["$defs"])
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _parameters(model: type[Params], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF, schema_generator=_Schema)
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        for option in prop.pop("anyOf", []):  # `X | None`: absent, rather than null
            if option != {"type": "null"}:
                prop.update(option)
        if prop.get("default") is None:
            prop.pop("default", None)
        elif isinstance(prop["default"], bool):  # as it is written in the query
            prop["default"] = "true" if prop["default"] else "false"
        out.append({
            "name": name, "in": where, "required": where == "path",
            "description": description, "schema": prop,
        })  # fmt: skip
    return out


def _responses(route: Route, *, secured: bool, head: bool = False) -> dict[str, Any]:
    if route.stream:
        ok: dict[str, Any] = {
            "description": _STREAM,
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        }
    elif route.response is None:
        ok = {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    else:
        ok = {
            "description": route.summary,
            "content": {"application/json": {"schema": _ref(route.response.__name__)}},
        }
    responses: dict[str, Any] = {"200": ok}
    # every route refuses unknown query parameters and request bodies (400) and methods
    # other than GET and HEAD (405)
    guarded = secured and not route.public
    codes = sorted({*route.errors, 400, 405, 500, *((401,) if guarded else ())})
    post = route.method == "POST"
    for code in codes:
        # /ready's 503 is its own body; every other error is an Error
        ready = code == 503 and route.path == "/ready"
        name = route.response.__name__ if ready and route.response else "Error"
        described = (_POST_ERRORS if post else {}).get(code, _ERRORS[code])
        if code == 503 and not (ready or post or route.stream):
            described = _BUSY
        elif route.stream and code == 503:
            described = "too many event streams open (api: max 64)"
        elif route.stream and code == 400:
            described = f"{described}, or a malformed `Last-Event-ID`"
        responses[str(code)] = {
            "description": described,
            "content": {"application/json": {"schema": _ref(name)}},
        }
    if head:  # the same statuses and headers, never a body
        for answer in responses.values():
            answer.pop("content", None)
    return responses


def _operation(route: Route, *, secured: bool, head: bool = False) -> dict[str, Any]:
    parameters = _parameters(route.query, "query")
    if route.path_params is not None:
        parameters = _parameters(route.path_params, "path") + parameters
    name = route.handler.__name__
    op: dict[str, Any] = {
        "operationId": f"{name}_head" if head else name,
        "summary": f"{route.summary} (headers only)" if head else route.summary,
        "parameters": parameters,
        "responses": _responses(route, secured=secured, head=head),
    }
    if route.stream:
        op["parameters"].append({
            "name": "Last-Event-ID", "in": "header", "required": False,
            "description": "the `id:` of the last event received: resume after it",
            # 18 digits: all below 2**63, which the server's own check draws exactly
            "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"},
        })  # fmt: skip
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body.__name__)}},
        }
    if route.public:
        op["security"] = []  # overrides the document-wide bearer requirement
    return op


def _path_item(route: Route, *, secured: bool) -> dict[str, Any]:
    if route.method == "POST":
        return {"post": _operation(route, secured=secured)}
    return {
        "get": _operation(route, secured=secured),
        "head": _operation(route, secured=secured, head=True),
    }


def build_openapi(routes: Sequence[Route], *, version: str, secured: bool) -> dict[str, Any]:
    """The document of `routes` as served: with `secured` (a token is configured) every
    route but the public ones needs the bearer token and may answer 401; without, none
    does and none can."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Session Warden API",
            "version": version,
            "description": "Read-only view of indexed sessions, intents, health and metrics, "
            "and (POST /prepare/...) the unsigned transactions an owner signs. Amounts are "
            "decimal strings. Unknown query parameters and body fields are refused with 400.",
        },
        "paths": {route.path: _path_item(route, secured=secured) for route in routes},
        "components": {"schemas": components(prepare=any(r.body for r in routes))},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
