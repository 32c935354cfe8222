"""The OpenAPI 3.1 document, built from the route table so the two cannot drift."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from warden.app.api.routes import Route
from warden.app.api.schemas import SCHEMAS

_ERRORS = {
    400: "bad parameter: `error.parameter` names it",
    401: "missing or wrong bearer token",
    404: "no such session",
    500: "internal error",
    503: "not ready",
}


def _responses(route: Route) -> dict[str, Any]:
    if route.response == "text":
        ok: dict[str, Any] = {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    else:
        ok = {
            "description": route.summary,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{route.response}"}}
            },
        }
    responses: dict[str, Any] = {"200": ok}
    # every route refuses unknown query parameters, so every route can answer 400
    codes = sorted({*route.errors, 400, 500, *(() if route.public else (401,))})
    for code in codes:
        schema = route.response if code == 503 else "Error"
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    return responses


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path",
                "description": p.description,
                "schema": p.schema(),
            }
            for p in route.params
        ],
        "responses": _responses(route),
    }
    if route.public:
        op["security"] = []  # overrides the document-wide bearer requirement
    return op


def build_openapi(routes: Sequence[Route], *, version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Session Warden API",
            "version": version,
            "description": "Read-only view of indexed sessions, intents, health and metrics. "
            "Amounts are decimal strings. Unknown query parameters are refused with 400.",
        },
        "paths": {route.path: {"get": _operation(route)} for route in routes},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
