"""One error vocabulary for HTTP routes and Socket.IO acknowledgements.

Services raise ``DomainError(code, message)``; the transport layers turn it into
``{"error": {"code", "message"}}`` with the HTTP status below. Codes are stable
and documented in docs/api.md.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "invalid"  # payload has wrong types, missing or oversized fields
    UNAUTHENTICATED = "unauthenticated"  # no (valid) login session
    FORBIDDEN = "forbidden"  # the policy denies this action to this actor
    NOT_FOUND = "not_found"  # unknown id, or an id the actor may not know about
    CONFLICT = "conflict"  # the state does not allow the action now
    GONE = "gone"  # spent, expired or revoked invitation
    WAITING = "waiting"  # in the lobby: admission pending
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"  # never carries details: those go to the server log


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.WAITING: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
}


class DomainError(Exception):
    """A failure a client can understand and act on."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.code]

    def as_payload(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": str(self.code), "message": self.message}}


def invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message)


def forbidden(message: str = "You may not do this.") -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def not_found(what: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"{what} not found.")


def conflict(message: str) -> DomainError:
    return DomainError(ErrorCode.CONFLICT, message)
