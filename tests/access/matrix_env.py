"""A shared, logged-in world for the generated policy matrix.

Building a visit, starting a server and logging everyone in once per module keeps
the few hundred matrix cases fast; every case that changes a room gets a fresh
agenda session of the access level under test, so cases never see each other's
state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.access.roles import Access
from server.agenda.models import AgendaItem, AgendaSession, SessionInvitee, SessionRole, SessionRoleName
from server.audit import service as audit
from server.config import Settings
from server.core.clock import utcnow
from server.db.session import make_engine, make_sessionmaker
from server.people import service as people
from server.people.models import Membership, Person
from tests.conftest import LiveServer, free_port, login, start_server
from tests.fixtures.databases import Templates, drop_pg_database
from tests.fixtures.world import World, build_world


@dataclass
class FreshSession:
    id: str
    access: Access
    items: list[str]


@dataclass
class MatrixEnv:
    backend: str
    settings: Settings
    server: LiveServer
    sessions: async_sessionmaker[AsyncSession]
    world: World
    other: World  # a second visit: its members are outsiders to ``world``
    cookies: dict[str, str] = field(default_factory=dict)  # member key -> login cookie
    outsider_cookie: str = ""

    async def new_session(
        self, access: Access, *, requires_admission: bool = False, invite_stakeholder: bool = True,
        chair: str | None = None,
    ) -> FreshSession:
        """An agenda session shaped like tests/fixtures/world.py's: two items, and the
        world's stakeholder invited when it is a stakeholder session. ``chair`` names a
        member key as the session's chair (otherwise the secretariat chairs)."""
        async with self.sessions() as db:
            start = utcnow() + timedelta(days=7)
            s = AgendaSession(
                visit_id=self.world.visit_id, title=f"{access} matrix session", start_utc=start,
                end_utc=start + timedelta(hours=2), access=access, requires_admission=requires_admission,
            )
            db.add(s)
            await db.flush()
            items = [AgendaItem(session_id=s.id, position=i, title=f"Item {i}") for i in (1, 2)]
            db.add_all(items)
            if chair is not None:
                db.add(SessionRole(session_id=s.id, membership_id=self.world.members[chair].membership_id,
                                   role=SessionRoleName.CHAIR))
            if access == Access.STAKEHOLDER and invite_stakeholder:
                db.add(SessionInvitee(session_id=s.id, membership_id=self.world.members["stakeholder"].membership_id))
            await db.flush()
            ids = [i.id for i in items]
            await db.commit()
            return FreshSession(s.id, access, ids)

    async def new_login(self, key: str) -> str:
        """A second login session of a member (to be revoked without logging them out)."""
        member = self.world.members[key]
        async with self.sessions() as db:
            person = await db.get(Person, member.person_id)
            membership = await db.get(Membership, member.membership_id)
            assert person is not None and membership is not None
            issued = await people.open_login(
                db, self.settings.secret_key, person, via="invitation",
                membership=membership, user_agent="matrix",
            )
            await db.commit()
            return issued.login.id


def make_settings(db_url: str, tmp: Path) -> Settings:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return Settings(
        var_dir=tmp / "var", database_url=db_url, redis_url=None, storage_dir=tmp / "storage",
        host="127.0.0.1", port=port, base_url=base, allowed_origins=(base,),
        secret_key=b"matrix-secret-" + uuid.uuid4().hex.encode(),
    )


@asynccontextmanager
async def matrix_env(backend: str, templates: Templates, tmp: Path) -> AsyncIterator[MatrixEnv]:
    pg_name = None
    if backend == "sqlite":
        url = await templates.sqlite_copy(tmp / "matrix.db")
    else:
        url, pg_name = await templates.pg_copy()
    settings = make_settings(url, tmp)
    engine = make_engine(url)
    runner: web.AppRunner | None = None
    try:
        sessions = make_sessionmaker(engine, info=audit.session_info(settings))
        async with sessions() as db:
            world = await build_world(db, settings, extra_experts=1, extra_interpreters=1)
        async with sessions() as db:
            other = await build_world(db, settings, extra_experts=0)
        live, runner = await start_server(settings)
        env = MatrixEnv(backend, settings, live, sessions, world, other)
        for key, member in world.members.items():
            env.cookies[key] = await login(live, member.invite_token)
        env.outsider_cookie = await login(live, other.members["secretariat"].invite_token)
        yield env
    finally:
        if runner is not None:
            await runner.cleanup()
        await engine.dispose()
        if pg_name is not None:
            await drop_pg_database(pg_name)


def new_idem() -> str:
    return uuid.uuid4().hex


async def call(client: Any, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call(event, payload, timeout=10)
    assert isinstance(ack, dict), (event, ack)
    return ack
