"""Fixtures for the live-room tests: a ``Peers`` factory bound to the test's server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import Peers


@pytest.fixture
async def peers(server: LiveServer, world: World) -> AsyncIterator[Peers]:
    made = Peers(server, world)
    yield made
    await made.close()
