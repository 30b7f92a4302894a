"""HTTP handlers publish committed domain events here (never the realtime layer)."""

from __future__ import annotations

from aiohttp import web

from server.core.events import DomainEvent
from server.web.keys import BUS


async def publish(request: web.Request, *events: DomainEvent) -> None:
    """Call after the transaction committed."""
    await request.app[BUS].publish(*events)
