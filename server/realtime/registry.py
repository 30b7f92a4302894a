"""The one registry of realtime events.

Each domain declares its handlers in its own ``events.py`` with ``session_event``
(payload names a ``session_id``; authorised with the session's scope) or
``visit_event`` (payload names a ``visit_id``). The registry records the policy
action and the payload model of each, so the transport validates and authorises
every event the same way and the policy matrix test can walk them all.

``ephemeral`` events (typing, later media signalling and speaking levels) pass the
same authentication and policy checks but are never written to the session log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from server.access.guard import SessionScope, VisitScope
from server.access.policy import Action
from server.core.events import DomainEvent

if TYPE_CHECKING:
    from server.services import Services

# Names python-socketio uses for its own lifecycle (and "*", its catch-all handler's
# name): a client may never send them.
RESERVED = frozenset({"connect", "disconnect", "connect_error", "message", "*"})


class Link:
    """What a handler may do with its own socket (typed, transport-neutral)."""

    async def enter(self, room: str) -> None:
        raise NotImplementedError

    async def leave(self, room: str) -> None:
        raise NotImplementedError

    def remember_room(self, session_id: str, membership_id: str) -> None:
        raise NotImplementedError

    def forget_room(self, session_id: str) -> None:
        raise NotImplementedError


S = TypeVar("S", SessionScope, VisitScope)


@dataclass(frozen=True)
class Call(Generic[S]):
    """One authorised event: who, where, what."""

    sid: str
    conn: str  # this connection's id in presence events: "<process>:<sid>"
    scope: S
    payload: Any
    link: Link
    services: Services
    access_version: int | None = None  # the visit's access version the scope was decided at


@dataclass
class Reply:
    """A handler's answer: acknowledgement fields, and committed news to publish."""

    ack: dict[str, Any] = field(default_factory=dict)
    news: list[DomainEvent] = field(default_factory=list)


class Kind(StrEnum):
    SESSION = "session"
    VISIT = "visit"


Handler = Callable[[Call[Any]], Awaitable[Reply]]


@dataclass(frozen=True)
class EventSpec:
    name: str
    kind: Kind
    action: Action
    model: type[BaseModel]
    handler: Handler
    ephemeral: bool = False
    doc: str = ""


REGISTRY: dict[str, EventSpec] = {}


def _declare(
    kind: Kind, name: str, action: Action, model: type[BaseModel], ephemeral: bool
) -> Callable[[Callable[[Call[Any]], Awaitable[Reply]]], Callable[[Call[Any]], Awaitable[Reply]]]:
    if name in RESERVED or name in REGISTRY:
        raise ValueError(f"realtime event name {name!r} is reserved or taken")

    def register(handler: Callable[[Call[Any]], Awaitable[Reply]]) -> Callable[[Call[Any]], Awaitable[Reply]]:
        REGISTRY[name] = EventSpec(name, kind, action, model, handler, ephemeral, handler.__doc__ or "")
        return handler

    return register


def session_event(
    name: str, action: Action, model: type[BaseModel], *, ephemeral: bool = False
) -> Callable[[Callable[[Call[SessionScope]], Awaitable[Reply]]], Callable[[Call[SessionScope]], Awaitable[Reply]]]:
    return _declare(Kind.SESSION, name, action, model, ephemeral)


def visit_event(
    name: str, action: Action, model: type[BaseModel]
) -> Callable[[Callable[[Call[VisitScope]], Awaitable[Reply]]], Callable[[Call[VisitScope]], Awaitable[Reply]]]:
    return _declare(Kind.VISIT, name, action, model, False)


def load_all() -> dict[str, EventSpec]:
    """Import every domain's ``events.py`` (registration happens on import)."""
    from server.media import events as _media  # noqa: F401
    from server.room import events as _room  # noqa: F401
    from server.visits import events as _visits  # noqa: F401

    return REGISTRY


def session_events() -> dict[str, EventSpec]:
    return {n: s for n, s in load_all().items() if s.kind is Kind.SESSION}


def visit_events() -> dict[str, EventSpec]:
    return {n: s for n, s in load_all().items() if s.kind is Kind.VISIT}
