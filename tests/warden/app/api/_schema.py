"""A small JSON Schema checker for the subset the API's OpenAPI document uses (what
pydantic generates: `anyOf` for nullable fields, `$ref` for nested models), and a
structural check of the document itself: enough to hold responses to the documented
shapes without a validator dependency."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return dict(node)


# Every keyword this checker understands or may ignore (annotations); any other in the
# document fails the check rather than being skipped unseen.
_KEYWORDS = frozenset({
    "$ref", "type", "const", "enum", "anyOf", "allOf", "oneOf", "pattern", "minimum",
    "maximum", "properties", "required", "additionalProperties", "items",
    "title", "description", "default",
})  # fmt: skip


def errors(doc: dict[str, Any], schema: dict[str, Any], value: Any, at: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty when it conforms)."""
    unknown = set(schema) - _KEYWORDS
    assert not unknown, f"{at}: the checker does not know {sorted(unknown)}"
    if "$ref" in schema:
        return errors(doc, resolve(doc, schema["$ref"]), value, at)
    out: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, k) for k in kinds):
            return [f"{at}: {value!r} is not {kinds}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if "anyOf" in schema and all(errors(doc, s, value, at) for s in schema["anyOf"]):
        out.append(f"{at}: {value!r} matches none of anyOf")
    for part in schema.get("allOf", []):
        out += errors(doc, part, value, at)
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not errors(doc, s, value, at)]
        if len(matching) != 1:
            out.append(f"{at}: matches {len(matching)} of oneOf")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        out.append(f"{at}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += errors(doc, props[key], item, f"{at}.{key}")
            elif extra is False:
                out.append(f"{at}: unexpected property {key}")
            elif isinstance(extra, dict):
                out += errors(doc, extra, item, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += errors(doc, schema["items"], item, f"{at}[{i}]")
    return out


def response_schema(doc: dict[str, Any], path: str, status: int) -> dict[str, Any]:
    response = doc["paths"][path]["get"]["responses"][str(status)]
    (content,) = response["content"].values()
    return dict(content["schema"])


def check_response(doc: dict[str, Any], path: str, status: int, body: Any) -> None:
    problems = errors(doc, response_schema(doc, path, status), body)
    assert not problems, f"GET {path} {status} breaks its documented schema: {problems[:5]}"


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def structural_problems(doc: dict[str, Any]) -> list[str]:
    """What an OpenAPI 3.1 validator would refuse, for the features this document uses."""
    out: list[str] = []
    if not str(doc.get("openapi", "")).startswith("3.1."):
        out.append("openapi must be 3.1.x")
    info = doc.get("info", {})
    if not isinstance(info.get("title"), str) or not isinstance(info.get("version"), str):
        out.append("info needs title and version strings")
    schemes = doc.get("components", {}).get("securitySchemes", {})
    for requirement in doc.get("security", []):
        out += [f"unknown security scheme {k}" for k in requirement if k not in schemes]
    ids: set[str] = set()
    for path, item in doc.get("paths", {}).items():
        if not path.startswith("/"):
            out.append(f"path {path} must start with /")
        templated = set(re.findall(r"{([^}]+)}", path))
        for method, op in item.items():
            if method not in _METHODS:
                out.append(f"{path}: {method} is not an HTTP method")
                continue
            op_id = op.get("operationId")
            if op_id in ids:
                out.append(f"duplicate operationId {op_id}")
            ids.add(op_id)
            seen: set[tuple[str, str]] = set()
            in_path: set[str] = set()
            for p in op.get("parameters", []):
                key = (p["name"], p["in"])
                if key in seen:
                    out.append(f"{path}: parameter {key} twice")
                seen.add(key)
                if p["in"] not in {"query", "path", "header", "cookie"}:
                    out.append(f"{path}: parameter {p['name']} in {p['in']}")
                if p["in"] == "path":
                    in_path.add(p["name"])
                    if p.get("required") is not True:
                        out.append(f"{path}: path parameter {p['name']} must be required")
                if "schema" not in p:
                    out.append(f"{path}: parameter {p['name']} has no schema")
            if in_path != templated:
                out.append(f"{path}: path parameters {in_path} != template {templated}")
            responses = op.get("responses", {})
            if not responses:
                out.append(f"{path}: no responses")
            for code, response in responses.items():
                if not re.fullmatch(r"[1-5][0-9][0-9]|[1-5]XX|default", code):
                    out.append(f"{path}: bad response code {code}")
                if not isinstance(response.get("description"), str):
                    out.append(f"{path} {code}: response needs a description")
    out += [f"unresolved {ref}" for ref in _refs(doc) if not _resolves(doc, ref)]
    return out


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolves(doc: dict[str, Any], ref: str) -> bool:
    try:
        resolve(doc, ref)
    except (KeyError, AssertionError, TypeError):
        return False
    return True
