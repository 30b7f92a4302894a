"""A login revoked elsewhere (e.g. through another process) is swept from this one."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import update

from server.core.clock import utcnow
from server.people.models import LoginSession
from server.web.keys import REALTIME
from tests.fixtures.world import World
from tests.realtime.live import Peers, eventually


async def test_sweep_disconnects_sockets_of_logins_revoked_elsewhere(
    peers: Peers, world: World, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    # Revoked straight in the database: this process's HTTP handler never saw it.
    async with sessions() as db:
        await db.execute(
            update(LoginSession)
            .where(LoginSession.person_id == world.members["expert"].person_id)
            .values(revoked_at=utcnow())
        )
        await db.commit()
    # The background sweep (every second) cuts the socket; no message has to arrive.
    started = time.monotonic()
    await eventually(lambda: not expert.client.connected, "swept socket disconnected", timeout=5)
    assert time.monotonic() - started < 3
    assert chair.client.connected
    assert peers.server.app[REALTIME].sockets.keys() == {chair.client.get_sid()}
