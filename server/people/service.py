"""Invitations, login sessions and secretariat accounts.

A person enters through a personal invitation link: a 256-bit token stored only as
a keyed hash, spent by an explicit POST ("Join"), which opens a server-side login
session. The cookie carries only that session's own random token.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service as audit
from server.core.clock import utcnow
from server.core.errors import DomainError, ErrorCode, invalid
from server.core.events import DomainEvent
from server.core.ids import new_token
from server.core.security import hash_password, token_hash, verify_password
from server.jobs.invitations import schedule_invitation_expiry
from server.people import logins, throttle
from server.people.logins import (
    Login,
    active_login,
    login_for_visit,
    primary_login,
    resolve_logins,
    valid_login_ids,
)
from server.people.models import Invitation, LoginSession, Membership, Person
from server.visits.models import Visit, VisitStatus

# The login functions the transports use, importable from here as ``people.<name>``.
__all__ = ["Login", "active_login", "login_for_visit", "primary_login", "resolve_logins", "valid_login_ids"]

PASSWORD_LOGIN_HOURS = 12
# Argon2id takes ~50 ms of CPU and 64 MiB: run off the event loop (other requests and
# /healthz stay fast), in a pool of its own sized to the CPUs, so a burst of logins
# neither starves the default executor nor allocates 64 MiB per waiting request.
_PASSWORD_POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="argon2")


class InvitationState(StrEnum):
    VALID = "valid"
    SPENT = "spent"
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class InvitationView:
    state: InvitationState
    invitation: Invitation | None = None
    person: Person | None = None
    membership: Membership | None = None
    visit: Visit | None = None


@dataclass(frozen=True)
class IssuedLogin:
    token: str
    login: LoginSession


async def issue_invitation(
    db: AsyncSession,
    secret_key: bytes,
    membership: Membership,
    *,
    days: int,
    actor_person_id: str | None,
) -> str:
    """Issue a fresh link for a membership; any earlier unspent link stops working."""
    now = utcnow()
    await db.execute(
        update(Invitation)
        .where(
            Invitation.membership_id == membership.id,
            Invitation.spent_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = new_token()
    invitation = Invitation(
        membership_id=membership.id,
        token_hash=token_hash(secret_key, token),
        expires_at=now + timedelta(days=days),
    )
    db.add(invitation)
    await db.flush()
    await schedule_invitation_expiry(db, invitation)
    await audit.record(
        db,
        "invitation.issued",
        actor_person_id=actor_person_id,
        visit_id=membership.visit_id,
        subject=membership.id,
        # Actor (who issued) and subject (whose link): the owner is shown this entry.
        data={
            "invitation": invitation.id,
            "person": membership.person_id,
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    return token


async def inspect_invitation(db: AsyncSession, secret_key: bytes, token: str) -> InvitationView:
    if not token or len(token) > 200:
        return InvitationView(InvitationState.UNKNOWN)
    row = (
        await db.execute(
            select(Invitation, Membership, Person, Visit)
            .join(Membership, Membership.id == Invitation.membership_id)
            .join(Person, Person.id == Membership.person_id)
            .join(Visit, Visit.id == Membership.visit_id)
            .where(Invitation.token_hash == token_hash(secret_key, token))
        )
    ).first()
    if row is None:
        return InvitationView(InvitationState.UNKNOWN)
    invitation, membership, person, visit = row
    if invitation.spent_at is not None:
        state = InvitationState.SPENT
    elif invitation.revoked_at is not None:
        state = InvitationState.REVOKED
    elif invitation.expires_at <= utcnow() or visit.status == VisitStatus.ARCHIVED:
        state = InvitationState.EXPIRED
    else:
        state = InvitationState.VALID
    return InvitationView(state, invitation, person, membership, visit)


async def spend_invitation(
    db: AsyncSession, secret_key: bytes, token: str, *, user_agent: str
) -> tuple[IssuedLogin, InvitationView]:
    """Spend a valid link once and open a login session lasting until the visit is archived."""
    view = await inspect_invitation(db, secret_key, token)
    if view.state is not InvitationState.VALID:
        raise DomainError(ErrorCode.GONE, f"This invitation link is {view.state}.")
    assert view.invitation and view.person and view.membership and view.visit
    now = utcnow()
    # Conditional update: of two concurrent "Join" presses only one spends the link.
    spent = await db.execute(
        update(Invitation)
        .where(Invitation.id == view.invitation.id, Invitation.spent_at.is_(None))
        .values(spent_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError(ErrorCode.GONE, "This invitation link is spent.")
    await audit.record(
        db,
        "invitation.spent",
        actor_person_id=view.person.id,
        visit_id=view.visit.id,
        subject=view.membership.id,
        data={"invitation": view.invitation.id},
    )
    issued = await open_login(
        db, secret_key, view.person, via="invitation", membership=view.membership, user_agent=user_agent
    )
    return issued, view


async def open_login(
    db: AsyncSession,
    secret_key: bytes,
    person: Person,
    *,
    via: str,
    membership: Membership | None = None,
    user_agent: str,
) -> IssuedLogin:
    """A login of the person: bound to ``membership`` (an invitation login grants only
    that visit), or spanning their visits (a password login, ``membership=None``)."""
    if (via == "invitation") != (membership is not None):
        raise ValueError("an invitation login needs its membership; a password login has none")
    token = new_token()
    visit_id = membership.visit_id if membership else None
    login = LoginSession(
        person_id=person.id,
        token_hash=token_hash(secret_key, token),
        via=via,
        visit_id=visit_id,
        membership_id=membership.id if membership else None,
        user_agent=user_agent[:300],
        expires_at=None if via == "invitation" else utcnow() + timedelta(hours=PASSWORD_LOGIN_HOURS),
    )
    db.add(login)
    await db.flush()
    await audit.record(
        db, "login", actor_person_id=person.id, visit_id=visit_id, subject=login.id, data={"via": via}
    )
    return IssuedLogin(token, login)


async def resolve_login(
    db: AsyncSession, secret_key: bytes, cookie_value: str | None
) -> tuple[Person, LoginSession] | None:
    """The browser's primary login (see ``logins.primary_login``), or None.

    Kept for callers that have not yet moved to ``resolve_logins`` and
    ``login_for_visit``; it does not say which visits the login grants.
    """
    return primary_login(await resolve_logins(db, secret_key, cookie_value))


async def active_person(db: AsyncSession, login_id: str) -> Person | None:
    """The person of a still-valid login session (see ``active_login``)."""
    found = await active_login(db, login_id)
    return found[0] if found else None


async def hash_password_off_loop(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_PASSWORD_POOL, hash_password, password)


async def verify_password_off_loop(stored: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_PASSWORD_POOL, verify_password, stored, password)


_dummy_hash: str | None = None


async def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = await hash_password_off_loop("parley-dummy-password-for-timing")
    return _dummy_hash


async def password_login(
    db: AsyncSession,
    secret_key: bytes,
    email: str,
    password: str,
    *,
    user_agent: str,
    address: str,
    policy: throttle.ThrottlePolicy,
) -> IssuedLogin:
    """Check a password, throttled per account and per ``address`` (``rate_limited``
    while blocked); a wrong one raises ``unauthenticated``. Commits its bookkeeping;
    the caller commits the returned login."""
    email = email.replace("\x00", "").strip().lower()  # PostgreSQL refuses NUL in text
    keys = throttle.attempt_keys(email, address)
    await throttle.admit(db, policy, keys)
    person = (await db.execute(select(Person).where(Person.email == email))).scalar_one_or_none()
    # Verify against a dummy hash when the account is unknown, so timing does not
    # reveal which addresses have accounts.
    stored = person.password_hash if person and person.password_hash else await _dummy()
    ok = await verify_password_off_loop(stored, password)
    if not ok or person is None or not person.password_hash:
        await throttle.failed(db, policy, keys, email=email, address=address)
        raise DomainError(ErrorCode.UNAUTHENTICATED, "Wrong e-mail address or password.")
    await throttle.succeeded(db, keys)
    return await open_login(db, secret_key, person, via="password", user_agent=user_agent)


async def create_admin(db: AsyncSession, email: str, password: str) -> Person:
    """Create a secretariat account, or set the password of the person with that e-mail."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 320:
        raise invalid("email: not an e-mail address.")
    if len(password) < 10:
        raise invalid("password: use at least 10 characters.")
    person = (await db.execute(select(Person).where(Person.email == email))).scalar_one_or_none()
    if person is None:
        person = Person(name=email.split("@")[0], email=email, timezone="Europe/Vienna")
        db.add(person)
    person.password_hash = await hash_password_off_loop(password)
    person.is_admin = True
    await db.flush()
    await audit.record(db, "admin.created", actor_person_id=person.id, subject=person.id)
    return person


async def ended_login_ids(db: AsyncSession, login_ids: set[str], *, since_epoch: float) -> set[str]:
    """Which of these logins were revoked, or expired, since ``since_epoch`` (a cheap
    query for the once-a-second sweep; the full check is ``valid_login_ids``)."""
    if not login_ids:
        return set()
    since = datetime.fromtimestamp(since_epoch, UTC)
    now = utcnow()
    rows = await db.execute(
        select(LoginSession.id).where(
            LoginSession.id.in_(login_ids),
            or_(
                LoginSession.revoked_at >= since,
                (LoginSession.expires_at >= since) & (LoginSession.expires_at <= now),
            ),
        )
    )
    return set(rows.scalars())


async def login_and_version(db: AsyncSession, login_id: str, visit_id: str) -> tuple[bool, int]:
    """One round trip for a socket's cached scope: is its login still valid (the rule in
    ``people/logins.py``), and what is the visit's access version now."""
    row = (
        await db.execute(
            select(
                LoginSession,
                select(Visit.status).where(Visit.id == LoginSession.visit_id).scalar_subquery(),
                select(Visit.access_version).where(Visit.id == visit_id).scalar_subquery(),
            ).where(LoginSession.id == login_id)
        )
    ).first()
    if row is None:
        return False, 0
    login, status, version = row
    return logins.is_valid(login, status, utcnow()), int(version or 0)


@dataclass(frozen=True)
class LoginsEnded(DomainEvent):
    """Logins were revoked or ended: their open sockets are cut (at once on this
    process; other processes' sweeps see it within a second)."""

    login_ids: frozenset[str]
