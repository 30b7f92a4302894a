"""Typed application state."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.config import Settings
from server.core.events import EventBus
from server.evidence.service import EvidenceRuntime
from server.jobs.runner import DueWorkRunner
from server.presence.lease import ProcessLease
from server.room.service import RoomService

if TYPE_CHECKING:
    from server.realtime.server import Realtime

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
ROOMS = web.AppKey("rooms", RoomService)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
REALTIME: web.AppKey[Realtime] = web.AppKey("realtime")
BUS = web.AppKey("bus", EventBus)
DUE_WORK = web.AppKey("due_work", DueWorkRunner)
LEASE = web.AppKey("lease", ProcessLease)
EVIDENCE = web.AppKey("evidence", EvidenceRuntime)
