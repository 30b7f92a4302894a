"""Throttling of password attempts, per account and per address, across processes.

Each key ("account:<e-mail>", "address:<ip or IPv6 /64>") has one database row, so
every server process behind the load balancer counts the same attempts. An attempt
is counted *before* the password is checked: parallel guesses cannot slip through
while earlier ones are still being verified. Past ``after`` attempts, each further
one blocks the key for a delay that doubles up to a cap; a blocked key is refused
without spending Argon2 time. A success clears the account's count (and takes the
attempt back from the address). A key idle for a whole window is forgotten.

The audit log records at most one failure per key per window; the failures in
between are counted in the row and reported with the next entry, so guessing at
unknown addresses cannot grow the audit table without bound.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service as audit
from server.core.clock import utcnow
from server.core.errors import rate_limited
from server.people.models import LoginThrottle

_PRUNE_EVERY_SECONDS = 60.0
_last_prune = -math.inf


@dataclass(frozen=True)
class ThrottlePolicy:
    account_after: int = 5
    address_after: int = 20  # higher: one office behind one address shares it
    base_seconds: float = 1.0
    max_seconds: float = 900.0
    window_seconds: float = 86400.0

    def delay(self, failures: int, after: int) -> float:
        """Seconds a key is blocked after its ``failures``-th counted attempt."""
        if failures <= after:
            return 0.0
        return float(min(self.max_seconds, self.base_seconds * 2 ** min(failures - after - 1, 40)))


@dataclass(frozen=True)
class AttemptKeys:
    account: str
    address: str

    def all(self) -> tuple[str, str]:
        return (self.account, self.address)


def attempt_keys(email: str, address: str) -> AttemptKeys:
    return AttemptKeys(f"account:{email[:320]}", f"address:{address_key(address)}")


def address_key(address: str) -> str:
    """An IPv4 address, or the /64 network of an IPv6 one (one host can use a whole /64)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _after(policy: ThrottlePolicy, keys: AttemptKeys, key: str) -> int:
    return policy.account_after if key == keys.account else policy.address_after


async def _locked_rows(db: AsyncSession, keys: AttemptKeys, now: datetime) -> dict[str, LoginThrottle]:
    """The keys' rows, created if missing and locked until the caller commits.

    The insert comes first: on SQLite it takes the write lock, so two attempts cannot
    both read the same count; on PostgreSQL ``FOR UPDATE`` does that per row.
    """
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    for key in sorted(keys.all()):  # one lock order, so two attempts never deadlock
        await db.execute(
            dialect.insert(LoginThrottle)
            .values(key=key, failures=0, last_failure_at=now, unaudited=0)
            .on_conflict_do_nothing(index_elements=["key"])
        )
    rows = (
        await db.execute(
            select(LoginThrottle).where(LoginThrottle.key.in_(keys.all())).with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalars()
    return {row.key: row for row in rows}


async def admit(db: AsyncSession, policy: ThrottlePolicy, keys: AttemptKeys) -> None:
    """Count an attempt, or raise ``rate_limited`` (nothing counted) while blocked.

    Commits, so the count is visible to other processes before the password is checked.
    """
    now = utcnow()
    await _prune(db, policy, now)
    rows = await _locked_rows(db, keys, now)
    window = timedelta(seconds=policy.window_seconds)
    waits = [
        (row.blocked_until - now).total_seconds()
        for row in rows.values()
        if row.blocked_until is not None and row.blocked_until > now
    ]
    if waits:
        await db.rollback()
        raise rate_limited(
            max(waits), "Too many failed sign-ins from here or for this account. Please wait and try again."
        )
    for key, row in rows.items():
        if now - row.last_failure_at > window:
            row.failures = 0  # idle for a whole window: start over
        row.failures += 1
        row.last_failure_at = now
        wait = policy.delay(row.failures, _after(policy, keys, key))
        row.blocked_until = now + timedelta(seconds=wait) if wait else None
    await db.commit()


async def failed(
    db: AsyncSession, policy: ThrottlePolicy, keys: AttemptKeys, *, email: str, address: str
) -> None:
    """Audit a failed attempt, unless each key already has an entry in this window."""
    now = utcnow()
    rows = await _locked_rows(db, keys, now)
    window = timedelta(seconds=policy.window_seconds)
    if any(row.audited_at is None or now - row.audited_at >= window for row in rows.values()):
        await audit.record(
            db,
            "login.failed",
            data={
                "email": email[:320],
                "address": address[:64],
                # Failures of these keys since their previous entries, not audited one by one.
                "unaudited": {key.split(":", 1)[0]: row.unaudited for key, row in rows.items()},
            },
        )
        for row in rows.values():
            row.audited_at = now
            row.unaudited = 0
    else:
        for row in rows.values():
            row.unaudited += 1
    await db.commit()


async def succeeded(db: AsyncSession, keys: AttemptKeys) -> None:
    """Clear the account's count; give the address its attempt back. In the caller's
    transaction (committed with the new login)."""
    await db.execute(delete(LoginThrottle).where(LoginThrottle.key == keys.account))
    row = await db.get(LoginThrottle, keys.address, with_for_update=True, populate_existing=True)
    if row is not None and row.failures > 0:
        row.failures -= 1


async def _prune(db: AsyncSession, policy: ThrottlePolicy, now: datetime) -> None:
    """Drop rows idle for a whole window and no longer blocked (at most once a minute
    per process; any process may do it)."""
    global _last_prune
    if time.monotonic() - _last_prune < _PRUNE_EVERY_SECONDS:
        return
    _last_prune = time.monotonic()
    cutoff = now - timedelta(seconds=policy.window_seconds)
    await db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < cutoff,
            (LoginThrottle.blocked_until.is_(None)) | (LoginThrottle.blocked_until < now),
        )
    )
