"""The domain-event bus: side effects after commit go through one place.

Services return typed domain events (frozen dataclasses deriving ``DomainEvent``)
together with their results; they never call the transport. After the transaction
commits, the transport (an HTTP handler or a realtime dispatcher) publishes them on
the application's ``EventBus``, and the subscribers (today the realtime emitter,
later mail, minutes ...) turn them into Socket.IO emits or other effects.

A subscriber that fails is logged and does not stop the others: the change is
already committed, and clients that missed a broadcast catch up by sequence number.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("parley.events")


@dataclass(frozen=True)
class DomainEvent:
    """Base of every domain event."""


E = TypeVar("E", bound=DomainEvent)
Subscriber = Callable[[Any], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[type[DomainEvent], list[Subscriber]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        self._subscribers.setdefault(kind, []).append(handler)

    def subscribers(self, kind: type[DomainEvent]) -> list[Subscriber]:
        found: list[Subscriber] = []
        for klass in kind.__mro__:
            found.extend(self._subscribers.get(klass, []))
        return found

    async def publish(self, *events: DomainEvent) -> None:
        """Deliver committed events, in order, to every subscriber of their type."""
        for event in events:
            for handler in self.subscribers(type(event)):
                try:
                    await handler(event)
                except Exception:
                    log.exception("subscriber of %s failed", type(event).__name__)
