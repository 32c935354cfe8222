"""RPC URLs as they may be shown: providers put the API key in the path, the query or
the userinfo, so a URL is never logged or printed whole."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit


def redact_url(url: str) -> str:
    """An RPC URL as it may be shown: `scheme://host[:port]`, then `/…` when it had a path,
    query or fragment. Providers put the API key in the path or the query (Infura, Alchemy)
    or in the userinfo, so none of those is ever logged or printed."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(unparsable URL)"
    if not parts.scheme or not host:
        return "(unparsable URL)"
    shown = f"{parts.scheme}://{f'[{host}]' if ':' in host else host}"
    if port is not None:
        shown += f":{port}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        shown += "/…"
    return shown


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that may carry a credential (the whole URL, userinfo, path and
    its segments, query and its values, fragment): what a log redaction filter masks."""
    found = [url]
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return found
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, *userinfo.split(":")]
    if parts.path.strip("/"):
        found += [parts.path, *parts.path.split("/")]
    if parts.query:
        found += [parts.query, *(value for _, value in parse_qsl(parts.query))]
    found += [parts.fragment]
    return [part for part in found if part]
