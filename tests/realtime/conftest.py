"""Fixtures for the live-room tests: a ``Peers`` factory bound to the test's server,
and a check that the server logged no errors while a test ran."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import Peers


@pytest.fixture
async def peers(server: LiveServer, world: World) -> AsyncIterator[Peers]:
    made = Peers(server, world)
    yield made
    await made.close()


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Bad input must be answered, not crash a handler: nothing logged at ERROR (engineio
    logs refused origins at ERROR by design, so it is not checked)."""
    yield
    errors = [
        f"{r.name}: {r.getMessage()}"
        for phase in ("setup", "call")
        for r in caplog.get_records(phase)  # type: ignore[arg-type]
        if r.levelno >= logging.ERROR and r.name.startswith(("parley", "socketio", "asyncio"))
    ]
    assert errors == []
