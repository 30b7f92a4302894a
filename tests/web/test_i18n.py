"""Pages speak the participant's language (gettext) and say so in ``lang``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from server.people.models import Person
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World


async def test_pages_follow_the_participants_language(server: LiveServer, world: World, sessions: Any) -> None:
    delegate = world.members["delegate"]
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == delegate.person_id).values(languages=["es", "en"]))
        await db.commit()
    async with http_client(server, None) as http, http.get(f"/invite/{delegate.invite_token}") as r:
        page = await r.text()
    assert '<html lang="es"' in page
    assert ">Unirse</button>" in page

    cookie = await login(server, delegate.invite_token)
    async with http_client(server, cookie) as http, http.get(f"/sessions/{world.sessions['open']}") as r:
        room = await r.text()
    assert '<html lang="es"' in room
    assert "Pedir la palabra" in room and "Mensaje" in room

    # Someone without a catalogued language gets the source language.
    expert = world.members["expert"]
    async with http_client(server, None) as http, http.get(f"/invite/{expert.invite_token}") as r:
        page = await r.text()
    assert '<html lang="en"' in page and ">Join</button>" in page
