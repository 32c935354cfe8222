"""What can go wrong in the HTTP API, grouped by what the caller should do.

    ApiError                 the request cannot be answered as asked: answer with `status`
    ├── BadParameter   400   fix the named query or path parameter and retry
    ├── BadRequest     400   the request itself is malformed (a body on GET): fix it
    ├── Unauthorized   401   send `Authorization: Bearer <token>`
    ├── NotFound       404   the wallet (or path) does not exist: do not retry as is
    ├── Conflict       409   the chain's state refuses it now (a closed wallet, too
    │                        small a balance, a revert): change the request or the state
    ├── NodeFailed     502   the node answered wrongly or refused the question: a
    │                        person must look at the node (or its configuration)
    ├── NodeUnavailable 503  the node did not answer in time: retry later
    └── Busy           503   every database read connection is taken and the line is
                             full or too slow: retry after `Retry-After` seconds
    InsecureBinding          configuration: the daemon refuses to start (not an HTTP answer)

Every `ApiError` becomes a JSON body `{"error": {"status", "code", "message",
"parameter"?}}` in the app's error middleware; nothing else reaches the client except a
generic 500 for bugs.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


class BadParameter(ApiError):
    """A query, path or body parameter that is malformed, out of range, or not known. A
    body field is named by its JSON pointer (`/targets/2`)."""

    status = 400
    code = "bad_parameter"

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["error"]["parameter"] = self.parameter
        return out


class BadRequest(ApiError):
    """The request as a whole is refused (a body where none is taken)."""

    status = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    """Well-formed, but the chain's state refuses it now; `parameter` names the field
    the conflict is about, when there is one."""

    status = 409
    code = "conflict"

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(f"{parameter}: {message}" if parameter else message)
        self.parameter = parameter

    def body(self) -> dict[str, Any]:
        out = super().body()
        if self.parameter is not None:
            out["error"]["parameter"] = self.parameter
        return out


class NodeFailed(ApiError):
    """The node refused the question or answered something malformed."""

    status = 502
    code = "node_error"


class NodeUnavailable(ApiError):
    """The node did not answer (in time): the same request may succeed later."""

    status = 503
    code = "node_unavailable"


class Busy(ApiError):
    """Too many requests wait for the database's read connections (`gate.ReadGate`):
    the same request may succeed in `retry_after` seconds."""

    status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InsecureBinding(ValueError):
    """The API would listen beyond loopback without a bearer token."""
