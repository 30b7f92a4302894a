"""Database failures that mean "not now" rather than "broken".

A pool that has no free connection within its timeout, a PostgreSQL lock or
statement timeout, or a connection lost mid-request are answered ``unavailable``
with a ``retry_after``: the client retries, nothing was changed, and no traceback
is logged for an overload the server is shedding on purpose.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from server.core.errors import DomainError, unavailable

# asyncpg / PostgreSQL SQLSTATEs: lock_not_available, query_canceled (statement or
# lock timeout), idle_in_transaction_session_timeout, admin/crash shutdown, cannot connect.
_RETRYABLE_STATES = {"55P03", "57014", "25P03", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


def as_domain_error(exc: BaseException) -> DomainError | None:
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no free connection in time
        return unavailable(1.0)
    if isinstance(exc, TimeoutError):
        return unavailable(1.0)
    if isinstance(exc, sa_exc.DBAPIError):
        orig = exc.orig
        state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
        if state in _RETRYABLE_STATES or exc.connection_invalidated:
            return unavailable(2.0)
        if "database is locked" in str(orig):  # SQLite busy beyond its timeout
            return unavailable(1.0)
    return None
