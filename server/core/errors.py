"""One error vocabulary for HTTP routes and Socket.IO acknowledgements.

Services raise ``DomainError(code, message)``; the transport layers turn it into
``{"error": {"code", "message"}}`` with the HTTP status below. Codes are stable
and documented in docs/api.md.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID = "invalid"  # payload has wrong types, missing or oversized fields
    UNAUTHENTICATED = "unauthenticated"  # no (valid) login session
    FORBIDDEN = "forbidden"  # the policy denies this action to this actor
    NOT_FOUND = "not_found"  # unknown id, or an id the actor may not know about
    CONFLICT = "conflict"  # the state does not allow the action now
    GONE = "gone"  # spent, expired or revoked invitation
    TOO_LARGE = "too_large"  # a body or an upload over its configured size
    WAITING = "waiting"  # in the lobby: admission pending
    RATE_LIMITED = "rate_limited"  # a limit for this actor or address: retry after ``retry_after`` s
    UNAVAILABLE = "unavailable"  # the server is overloaded or cannot reach a dependency: retry later
    INTERNAL = "internal"  # never carries details: those go to the server log


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.WAITING: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class DomainError(Exception):
    """A failure a client can understand and act on."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # Seconds until a retry may succeed ("not now" errors: rate_limited, unavailable).
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    @property
    def retry_after_header(self) -> str | None:
        """The HTTP ``Retry-After`` value (whole seconds, at least 1), if any."""
        if self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))

    def as_payload(self) -> dict[str, dict[str, Any]]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.retry_after is not None:
            body["retry_after"] = max(1, math.ceil(self.retry_after))
        return {"error": body}


def invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message)


def forbidden(message: str = "You may not do this.") -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def not_found(what: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"{what} not found.")


def conflict(message: str) -> DomainError:
    return DomainError(ErrorCode.CONFLICT, message)


def too_large(message: str) -> DomainError:
    return DomainError(ErrorCode.TOO_LARGE, message)


def rate_limited(retry_after: float, message: str = "Too many requests; try again shortly.") -> DomainError:
    return DomainError(ErrorCode.RATE_LIMITED, message, retry_after=retry_after)


def unavailable(retry_after: float = 1.0, message: str = "The server is busy; try again shortly.") -> DomainError:
    return DomainError(ErrorCode.UNAVAILABLE, message, retry_after=retry_after)


class AccessMoved(DomainError):
    """Who may do what in the visit changed while a command waited: decide again."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.CONFLICT, "The rules of this session changed; try again.")
