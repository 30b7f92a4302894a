"""A visit with three interpreters (``interpreter``, ``interpreter2``, ``interpreter3``)."""

from __future__ import annotations

from typing import Any

import pytest

from server.config import Settings
from tests.fixtures.world import World, build_world


@pytest.fixture
async def world(sessions: Any, settings: Settings) -> World:
    async with sessions() as db:
        return await build_world(db, settings, extra_interpreters=2)
