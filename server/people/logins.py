"""Login sessions: what a browser's cookie resolves to, and what each login grants.

A login opened by an invitation is bound to that invitation's membership: it grants
that one visit and nothing in the person's other visits (a secretariat that re-issues
and spends someone's link must not reach that person's other visits). Only a
credential the person set up themselves, a password, spans all their visits.

One browser may hold several logins (one per visit it joined, and at most one
password login): the cookie carries their tokens joined by ``.`` (tokens are
``token_urlsafe``, so ``.`` never occurs inside one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service as audit
from server.core.clock import utcnow
from server.core.errors import not_found
from server.core.security import token_hash
from server.people.models import LoginSession, Person
from server.visits.models import Visit, VisitStatus

Login = tuple[Person, LoginSession]

PASSWORD = "password"
INVITATION = "invitation"
# Bounds the cookie (each token is 43 characters) and the work one request can cause.
MAX_COOKIE_TOKENS = 12
_MAX_TOKEN_CHARS = 200
_LAST_SEEN_GRANULARITY = timedelta(minutes=5)


# Made once (SQLAlchemy caches its compiled form by the statement; a statement built
# anew on every request would be walked anew to find it).
_LOGINS = (
    select(LoginSession, Person, Visit.status)
    .join(Person, Person.id == LoginSession.person_id)
    .outerjoin(Visit, Visit.id == LoginSession.visit_id)
    .where(LoginSession.token_hash.in_(bindparam("hashes", expanding=True)))
)


def split_cookie(value: str | None) -> list[str]:
    """The tokens of a cookie value, in order, without duplicates; the newest last."""
    if not value:
        return []
    tokens: list[str] = []
    for token in value.split("."):
        if token and len(token) <= _MAX_TOKEN_CHARS and token not in tokens:
            tokens.append(token)
    return tokens[-MAX_COOKIE_TOKENS:]


def join_cookie(tokens: Sequence[str]) -> str:
    return ".".join(list(dict.fromkeys(tokens))[-MAX_COOKIE_TOKENS:])


def is_valid(login: LoginSession, visit_status: str | None, now: datetime) -> bool:
    """Not revoked or expired, its visit not archived, an invitation login still bound."""
    if login.revoked_at is not None or (login.expires_at is not None and login.expires_at <= now):
        return False
    if login.visit_id is not None and visit_status in (None, VisitStatus.ARCHIVED):
        return False
    return not (login.via == INVITATION and login.membership_id is None)


async def resolve_logins(db: AsyncSession, secret_key: bytes, cookie_value: str | None) -> list[Login]:
    """The valid logins a cookie carries, in cookie order (one round trip).

    Unknown, revoked, expired and archived-visit tokens are left out, so a caller that
    rewrites the cookie from this list keeps it bounded.
    """
    tokens = split_cookie(cookie_value)
    if not tokens:
        return []
    hashes = {token_hash(secret_key, token): n for n, token in enumerate(tokens)}
    rows = (await db.execute(_LOGINS, {"hashes": list(hashes)})).all()
    now = utcnow()
    found = sorted(
        (
            (hashes[login.token_hash], person, login)
            for login, person, status in rows
            if is_valid(login, status, now)
        ),
        key=lambda item: item[0],
    )
    stale = False
    for _, _, login in found:
        if now - login.last_seen_at > _LAST_SEEN_GRANULARITY:
            login.last_seen_at = now
            stale = True
    if stale:
        await db.commit()
    return [(person, login) for _, person, login in found]


def token_index(secret_key: bytes, cookie_value: str | None) -> dict[str, str]:
    """Token hash -> token for a cookie, to rebuild it from resolved logins."""
    return {token_hash(secret_key, token): token for token in split_cookie(cookie_value)}


def grants_visit(login: LoginSession, visit_id: str) -> bool:
    """Whether a login may be used in this visit (membership is still checked by the
    access guard: a password login grants only the visits its person belongs to)."""
    if login.via == PASSWORD:
        return True
    return login.visit_id == visit_id and login.membership_id is not None


def login_for_visit(logins: Sequence[Login], visit_id: str) -> Login | None:
    """The login that grants this visit: the invitation login bound to it, else a
    password login. Pure: the caller has resolved (and so validated) the logins."""
    bound = [found for found in logins if found[1].via == INVITATION and grants_visit(found[1], visit_id)]
    if bound:
        return bound[-1]
    spanning = [found for found in logins if found[1].via == PASSWORD]
    return spanning[-1] if spanning else None


def primary_login(logins: Sequence[Login]) -> Login | None:
    """The login that speaks for the browser on pages about the person (``/api/me``):
    a password login if there is one, else the most recently added."""
    spanning = [found for found in logins if found[1].via == PASSWORD]
    if spanning:
        return spanning[-1]
    return logins[-1] if logins else None


async def active_login(db: AsyncSession, login_id: str) -> Login | None:
    """A login by id if it is still valid: for re-checking a socket's login on each
    realtime event (a login can be revoked or its visit archived at any time)."""
    if not isinstance(login_id, str) or len(login_id) > 64:
        return None
    row = (
        await db.execute(
            select(LoginSession, Person, Visit.status)
            .join(Person, Person.id == LoginSession.person_id)
            .outerjoin(Visit, Visit.id == LoginSession.visit_id)
            .where(LoginSession.id == login_id)
        )
    ).first()
    if row is None:
        return None
    login, person, status = row
    if not is_valid(login, status, utcnow()):
        return None
    return person, login


async def valid_login_ids(db: AsyncSession, login_ids: set[str]) -> set[str]:
    """Which of these login sessions are still valid (not revoked, expired or archived)."""
    if not login_ids:
        return set()
    rows = await db.execute(
        select(LoginSession, Visit.status)
        .outerjoin(Visit, Visit.id == LoginSession.visit_id)
        .where(LoginSession.id.in_(login_ids))
    )
    now = utcnow()
    return {
        login.id
        for login, status in rows.all()
        if is_valid(login, status, now)
    }


async def visible_logins(db: AsyncSession, presented: Sequence[Login]) -> list[LoginSession]:
    """The open logins the presented ones may see and end: a password login sees all
    of its person's logins; an invitation login only its person's logins in its visit."""
    conditions = []
    for person, login in presented:
        if login.via == PASSWORD:
            conditions.append(LoginSession.person_id == person.id)
        elif login.visit_id is not None:
            conditions.append(
                (LoginSession.person_id == person.id)
                & (LoginSession.via == INVITATION)
                & (LoginSession.visit_id == login.visit_id)
            )
    if not conditions:
        return []
    rows = await db.execute(
        select(LoginSession)
        .where(or_(*conditions), LoginSession.revoked_at.is_(None))
        .order_by(LoginSession.created_at.desc())
    )
    now = utcnow()
    return [s for s in rows.scalars() if s.expires_at is None or s.expires_at > now]


async def revoke_visible_login(db: AsyncSession, presented: Sequence[Login], login_id: str) -> None:
    """End a login the presented ones may see; any other id is ``not_found``."""
    target = next((s for s in await visible_logins(db, presented) if s.id == login_id), None)
    if target is None:
        raise not_found("Login session")
    await end_login(db, target.person_id, target)


async def end_login(db: AsyncSession, actor_person_id: str, login: LoginSession) -> None:
    if login.revoked_at is None:
        login.revoked_at = utcnow()
        await audit.record(
            db, "logout", actor_person_id=actor_person_id, visit_id=login.visit_id, subject=login.id
        )
