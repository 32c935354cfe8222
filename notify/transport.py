"""The I/O seam of delivery: POST a body to a URL (`HttpPoster`, aiohttp; `MockPoster`
for unit tests), or run a program with the body on stdin (`run_command`).

An `Outcome` never quotes the URL: a Slack or Discord webhook URL is a credential, and a
generic webhook's may carry a token in its query. Errors are named by their kind (HTTP
status, timeout, the connection error's class), and a response body is quoted only in
its first 200 printable characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp

_PRINTABLE = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # "HTTP 204", "HTTP 500: …", "timed out after 10 s", "connection refused"
    retry_after: float | None = None  # seconds the receiver asked us to wait (429, 503)


class Poster(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome: ...


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        seconds = float(value)
        if 0 <= seconds < 86_400:
            return seconds
    return None


def _connection_error(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        name = type(cause).__name__ if cause is not None else "error"
        return f"cannot connect ({name})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection without an answer"
    return f"request failed ({type(exc).__name__})"


class HttpPoster:
    """One aiohttp session for every channel (connections are pooled per host)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpPoster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome:
        if self._session is None:
            # no redirects: a 3xx is an answer, not an invitation to send the body elsewhere
            self._session = aiohttp.ClientSession(headers={"User-Agent": "session-warden-notify/1"})
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:  # fmt: skip
                if 200 <= r.status < 300:
                    return Outcome(True, f"HTTP {r.status}")
                text = (await r.content.read(200)).decode("utf-8", "replace")
                shown = _PRINTABLE.sub(" ", text).strip()
                return Outcome(
                    False,
                    f"HTTP {r.status}" + (f": {shown}" if shown else ""),
                    _retry_after(r.headers.get("Retry-After")),
                )
        except TimeoutError:
            return Outcome(False, f"timed out after {timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(False, _connection_error(exc))


Handler = Callable[[str, bytes, Mapping[str, str]], Awaitable[Outcome]]


class MockPoster:
    """A `Poster` that hands every request to `handler` (unit tests)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> Outcome:
        self.sent.append((url, body, dict(headers)))
        try:
            return await asyncio.wait_for(self.handler(url, body, headers), timeout)
        except TimeoutError:
            return Outcome(False, f"timed out after {timeout:g} s")


async def run_command(argv: Sequence[str], stdin: bytes, timeout: float) -> Outcome:
    """Run `argv` (no shell: the event's content is never interpolated into a command
    line) with the event's JSON on stdin; exit status 0 is delivered. A program that
    outlives `timeout` is killed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "WARDEN_NOTIFY": "1"},
        )  # fmt: skip
    except OSError as exc:
        return Outcome(False, f"cannot run {argv[0]}: {exc.strerror or type(exc).__name__}")
    try:
        _, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return Outcome(False, f"{argv[0]} timed out after {timeout:g} s (killed)")
    if proc.returncode == 0:
        return Outcome(True, "exit 0")
    tail = _PRINTABLE.sub(" ", (err or b"")[-200:].decode("utf-8", "replace")).strip()
    return Outcome(False, f"{argv[0]} exited {proc.returncode}" + (f": {tail}" if tail else ""))
