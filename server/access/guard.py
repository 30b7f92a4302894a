"""Resolve who the actor is in a visit or session, and ask the policy.

Transport layers call ``visit_scope_for`` / ``session_scope_for`` with the logins the
client presented and the action their route or event names. Only a login that grants
the visit counts (an invitation login grants its own visit alone); without one, as
for a person who is not a member, the answer is ``not_found`` (ids are not confirmed
to outsiders); a member the policy denies gets ``forbidden``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from server.access import facts
from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.agenda.models import AgendaSession
from server.core.errors import forbidden, not_found
from server.people.logins import Login, login_for_visit
from server.people.models import Membership, Person
from server.visits.models import Delegation, Visit


@dataclass(frozen=True)
class Actor:
    person_id: str
    name: str
    timezone: str
    membership_id: str
    role: Role
    delegation: str | None
    visit_id: str
    language: str | None = None  # their first language (the floor language when they speak)

    def public(self) -> dict[str, str | None]:
        return {
            "membership_id": self.membership_id,
            "name": self.name,
            "role": str(self.role),
            "delegation": self.delegation,
            "language": self.language,
        }


def _actor(person: Person, membership: Membership, delegation: str | None) -> Actor:
    return Actor(
        person_id=person.id,
        name=person.name,
        timezone=person.timezone,
        membership_id=membership.id,
        role=Role(membership.role),
        delegation=delegation,
        visit_id=membership.visit_id,
        language=person.languages[0] if person.languages else None,
    )


@dataclass(frozen=True)
class PersonScope:
    """Pages about the person themselves: ``person`` speaks for the browser (its
    password login, else its newest login); ``logins`` are all it presented, and such
    pages show only what those grant."""

    person: Person
    logins: list[Login]


@dataclass(frozen=True)
class VisitScope:
    actor: Actor
    visit: Visit
    # Routes guarded with a ``Lookup`` (a path that names something inside a visit, not
    # the visit): the columns the lookup selected, and when (``time.monotonic()``, taken
    # just before the query) they were read.
    target: tuple[Any, ...] = ()
    read_at: float = 0.0


@dataclass(frozen=True)
class Lookup:
    """How to find the thing a route is about when its path names no visit (a document
    version, a document): ``query`` selects it (any columns the route wants, at most
    one row), with bound parameters (``bindparam``) that ``params`` takes from the
    path's parameters, and ``visit`` is the column holding the id of the visit it
    belongs to. One per route, made once: the guard joins it with the visit and the
    memberships once too (``statement``), so SQLAlchemy's statement cache finds it
    without walking a new statement on every request. ``persons`` is the guard's
    parameter name."""

    query: Select[*tuple[Any, ...]]
    visit: ColumnElement[str] | QueryableAttribute[str]
    params: Callable[[Mapping[str, str]], dict[str, Any]]

    @cached_property
    def width(self) -> int:
        return len(self.query.column_descriptions)

    @cached_property
    def statement(self) -> Select[*tuple[Any, ...]]:
        return (
            self.query.add_columns(Visit, Membership, Delegation.name)
            .join(Visit, Visit.id == self.visit)
            .outerjoin(
                Membership,
                (Membership.visit_id == Visit.id) & Membership.person_id.in_(bindparam("persons", expanding=True)),
            )
            .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
        )


@dataclass(frozen=True)
class SessionScope:
    actor: Actor
    visit: Visit
    session: AgendaSession
    is_chair: bool
    is_invited: bool


async def actor_in_visit(db: AsyncSession, person: Person, visit_id: str) -> tuple[Actor, Visit]:
    if not isinstance(visit_id, str) or len(visit_id) > 64:
        raise not_found("Visit")
    row = (
        await db.execute(
            select(Membership, Visit, Delegation.name)
            .join(Visit, Visit.id == Membership.visit_id)
            .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
            .where(Membership.visit_id == visit_id, Membership.person_id == person.id)
        )
    ).first()
    if row is None:
        raise not_found("Visit")
    membership, visit, delegation = row
    actor = _actor(person, membership, delegation)
    return actor, visit


async def visit_scope_for(db: AsyncSession, logins: Sequence[Login], visit_id: str, action: Action) -> VisitScope:
    """The scope in a visit, as the login granting that visit (``not_found`` without one)."""
    found = login_for_visit(logins, visit_id) if isinstance(visit_id, str) else None
    if found is None:
        raise not_found("Visit")
    return await visit_scope(db, found[0], visit_id, action)


async def scope_of_lookup(
    db: AsyncSession, logins: Sequence[Login], lookup: Lookup, match: Mapping[str, str], action: Action
) -> VisitScope:
    """The scope in the visit of what ``lookup`` finds for the path's parameters
    ``match``, as the login granting that visit, with the lookup's columns as
    ``target``. One round trip: the lookup joined with the visit and the memberships of
    every person the logins speak for (the login that grants the visit, so its person,
    is only known once the visit is). Nothing found, no login granting the visit, or no
    membership in it: ``not_found``; a member the policy denies: ``forbidden`` (as
    ``visit_scope_for``)."""
    persons = sorted({person.id for person, _ in logins})
    width = lookup.width
    read_at = time.monotonic()
    rows = (await db.execute(lookup.statement, {**lookup.params(match), "persons": persons})).all()
    if not rows:
        raise not_found("Visit")
    visit: Visit = rows[0][width]
    found = login_for_visit(logins, visit.id)
    if found is None:
        raise not_found("Visit")
    person = found[0]
    for row in rows:
        membership: Membership | None = row[width + 1]
        if membership is not None and membership.person_id == person.id:
            actor = _actor(person, membership, row[width + 2])
            if not decide(action, actor.role):
                raise forbidden()
            return VisitScope(actor, visit, tuple(row[:width]), read_at)
    raise not_found("Visit")


async def session_scope_for(
    db: AsyncSession, logins: Sequence[Login], session_id: str, action: Action
) -> SessionScope:
    """The scope in a session, as the login granting the session's visit.

    With a single login no extra query is needed: an invitation login restricts the
    session query to its visit. With several, the session's visit is looked up first.
    """
    if not isinstance(session_id, str) or len(session_id) > 64 or not logins:
        raise not_found("Session")
    if len(logins) == 1:
        person, login = logins[0]
        return await session_scope(db, person, session_id, action, visit_id=login.visit_id)
    visit_id = (
        await db.execute(select(AgendaSession.visit_id).where(AgendaSession.id == session_id))
    ).scalar_one_or_none()
    found = login_for_visit(logins, visit_id) if visit_id else None
    if found is None:
        raise not_found("Session")
    return await session_scope(db, found[0], session_id, action, visit_id=found[1].visit_id)


async def visit_scope(db: AsyncSession, person: Person, visit_id: str, action: Action) -> VisitScope:
    actor, visit = await actor_in_visit(db, person, visit_id)
    if not decide(action, actor.role):
        raise forbidden()
    return VisitScope(actor, visit)


async def session_scope(
    db: AsyncSession, person: Person, session_id: str, action: Action, *, visit_id: str | None = None
) -> SessionScope:
    """The actor's scope in a session, authorised for ``action``."""
    scope = await resolve_session(db, person, session_id, visit_id=visit_id)
    authorize(scope, action)
    return scope


def may(scope: SessionScope, action: Action) -> bool:
    """The policy's answer for this scope (pure: no database)."""
    return decide(
        action, scope.actor.role, Access(scope.session.access),
        is_chair=scope.is_chair, is_invited=scope.is_invited,
    )


def controls(scope: SessionScope) -> dict[str, bool]:
    """Which room controls to offer: the same answers on the page and in every join."""
    return {
        "speak": may(scope, Action.FLOOR_REQUEST),
        "chat": may(scope, Action.CHAT_SEND),
        "chair": may(scope, Action.FLOOR_CHAIR),
    }


def authorize(scope: SessionScope, action: Action) -> None:
    """Ask the policy (pure: no database). ``forbidden`` when it says no."""
    if not may(scope, action):
        raise forbidden()


async def resolve_session(
    db: AsyncSession, person: Person, session_id: str, *, visit_id: str | None = None
) -> SessionScope:
    """Who the person is in a session they may see (else ``not_found``). Two round
    trips: the session with the actor's membership, visit and delegation; then its
    named chairs (and the invitee list, only for stakeholders). ``visit_id``: the
    session must be in that visit (the one an invitation login grants). The realtime
    layer caches the result per socket (checked against the visit's access version)."""
    if not isinstance(session_id, str) or len(session_id) > 64:
        raise not_found("Session")
    query = (
        select(AgendaSession, Membership, Visit, Delegation.name)
        .join(Visit, Visit.id == AgendaSession.visit_id)
        .join(
            Membership,
            (Membership.visit_id == AgendaSession.visit_id) & (Membership.person_id == person.id),
        )
        .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
        .where(AgendaSession.id == session_id, AgendaSession.cancelled_at.is_(None))
    )
    if visit_id is not None:
        query = query.where(AgendaSession.visit_id == visit_id)
    row = (await db.execute(query)).first()
    if row is None:
        raise not_found("Session")
    session, membership, visit, delegation = row
    actor = _actor(person, membership, delegation)
    named = (await facts.named_chairs(db, [session.id])).get(session.id, set())
    # The session's named chairs; when it names none, the secretariat chairs.
    is_chair = actor.membership_id in named if named else actor.role == Role.SECRETARIAT
    is_invited = (
        actor.role == Role.STAKEHOLDER
        and actor.membership_id in (await facts.invitees(db, [session.id]))[session.id]
    )
    access = Access(session.access)
    # Someone who may not even see the session is told it does not exist.
    if not decide(Action.SESSION_VIEW, actor.role, access, is_chair=is_chair, is_invited=is_invited):
        raise not_found("Session")
    return SessionScope(actor, visit, session, is_chair, is_invited)
