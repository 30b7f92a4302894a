"""The services one process runs, built once by ``create_app`` and handed to the
transports (HTTP handlers through the app, realtime handlers through each ``Call``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.events import EventBus
from server.media.hub import MediaHub
from server.room.service import RoomService


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    rooms: RoomService
    media: MediaHub
