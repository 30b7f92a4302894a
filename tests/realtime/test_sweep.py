"""A login revoked elsewhere (e.g. through another process) is swept from this one."""

from __future__ import annotations

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
    # Until the sweep, the open socket stays, but every event re-checks the login.
    ack = await expert.client.call("chat.send", {"session_id": sid, "text": "late", "idem": "z"}, timeout=10)
    assert ack["error"]["code"] == "unauthenticated", ack
    await peers.server.app[REALTIME].sweep()
    await eventually(lambda: not expert.client.connected, "swept socket disconnected", timeout=5)
    assert chair.client.connected
