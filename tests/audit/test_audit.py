"""The audit log: logins, invitations issued and spent, admissions and role changes are
recorded in the visit's chain; edited or deleted rows are detected by
``server.audit.verify.verify``; the visit's log is readable over HTTP."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import delete, update

from server.audit.chain import GENESIS, chain_for
from server.audit.models import AuditEntry
from tests.audit.helpers import check, entries
from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World, build_world


async def test_invitations_logins_and_admissions_are_recorded(
    server: LiveServer, sessions: Any, settings: Any
) -> None:
    async with sessions() as db:
        world = await build_world(db, settings, requires_admission=True)
    issued = {e.subject for e in await entries(sessions, "invitation.issued")}
    assert {m.membership_id for m in world.members.values()} <= issued

    expert = world.members["expert"]
    sec_cookie = await login(server, world.members["secretariat"].invite_token)
    expert_cookie = await login(server, expert.invite_token)
    spent = [e for e in await entries(sessions, "invitation.spent") if e.subject == expert.membership_id]
    assert len(spent) == 1 and spent[0].actor_person_id == expert.person_id
    logins = [e for e in await entries(sessions, "login") if e.actor_person_id == expert.person_id]
    assert len(logins) == 1 and logins[0].data == {"via": "invitation"} and logins[0].visit_id == world.visit_id
    assert logins[0].chain == chain_for(world.visit_id)

    # The expert waits in the lobby of a session requiring admission; the chair admits.
    session_id = world.sessions["closed"]
    waiting = await socket_client(server, expert_cookie)
    chair = await socket_client(server, sec_cookie)
    try:
        ack = await waiting.call("room.join", {"session_id": session_id}, timeout=10)
        assert ack["ok"] and ack["status"] == "waiting", ack
        ack = await chair.call("room.join", {"session_id": session_id}, timeout=10)
        assert ack["ok"] and ack["status"] == "joined", ack
        ack = await chair.call(
            "lobby.admit", {"session_id": session_id, "membership_id": expert.membership_id}, timeout=10
        )
        assert ack["ok"], ack
    finally:
        await waiting.disconnect()
        await chair.disconnect()
    [admitted] = await entries(sessions, "admission.granted")
    assert admitted.subject == expert.membership_id
    assert admitted.data == {"session": session_id}
    assert admitted.actor_person_id == world.members["secretariat"].person_id
    assert admitted.visit_id == world.visit_id

    # A re-issued link is recorded with who issued it.
    async with http_client(server, sec_cookie) as http:
        async with http.post(
            f"/api/visits/{world.visit_id}/participants/{expert.membership_id}/invitation"
        ) as r:
            assert r.status == 201
    last_issue = (await entries(sessions, "invitation.issued"))[-1]
    assert last_issue.subject == expert.membership_id
    assert last_issue.actor_person_id == world.members["secretariat"].person_id

    # The secretariat reads the visit's log, newest first, numbered within its chain.
    async with http_client(server, sec_cookie) as http:
        async with http.get(f"/api/visits/{world.visit_id}/audit") as r:
            assert r.status == 200
            listed = (await r.json())["entries"]
    assert {"invitation.issued", "invitation.spent", "login", "admission.granted"} <= {e["action"] for e in listed}
    assert {e["chain"] for e in listed} == {chain_for(world.visit_id)}
    assert [e["seq"] for e in listed] == sorted((e["seq"] for e in listed), reverse=True)
    assert listed[-1]["seq"] == 1
    assert set(listed[0]) == {"chain", "seq", "at", "action", "actor", "subject", "data", "hash"}
    result = await check(sessions, settings)
    assert result.ok, result
    assert result.entries == len(await entries(sessions))


async def test_role_change_is_recorded(server: LiveServer, world: World, sessions: Any, settings: Any) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    target = world.members["expert2"]
    async with http_client(server, sec) as http:
        async with http.patch(
            f"/api/visits/{world.visit_id}/participants/{target.membership_id}", json={"role": "observer"}
        ) as r:
            assert r.status == 200, await r.text()
    [changed] = await entries(sessions, "role.changed")
    assert changed.subject == target.membership_id
    assert changed.data == {"from": "expert", "to": "observer"}
    assert (await check(sessions, settings)).ok


async def test_access_and_chair_changes_are_recorded(
    server: LiveServer, world: World, sessions: Any, settings: Any
) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    observer = await login(server, world.members["observer"].invite_token)
    session_id = world.sessions["open"]
    async with http_client(server, observer) as http, http.get(f"/api/sessions/{session_id}") as r:
        assert r.status == 200
    chair = world.members["expert"].membership_id
    async with http_client(server, sec) as http:
        async with http.patch(f"/api/sessions/{session_id}", json={"access": "closed", "chair_membership_id": chair}) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
    assert body["access"] == "closed" and body["chairs"] == [chair]
    [changed] = await entries(sessions, "session.changed")
    assert changed.subject == session_id
    assert changed.data == {"access": {"from": "open", "to": "closed"}, "chair": chair}
    assert changed.actor_person_id == world.members["secretariat"].person_id
    # The change takes effect at once: a closed session admits no observer.
    async with http_client(server, observer) as http, http.get(f"/api/sessions/{session_id}") as r:
        assert r.status == 404
    assert (await check(sessions, settings)).ok


async def visit_chain(server: LiveServer, world: World, sessions: Any, settings: Any) -> list[AuditEntry]:
    for key in ("expert", "delegate", "observer"):
        await login(server, world.members[key].invite_token)
    rows = await entries(sessions, chain=chain_for(world.visit_id))
    assert len(rows) >= 10
    assert (await check(sessions, settings)).ok
    return rows


async def test_edits_and_gaps_are_detected(server: LiveServer, world: World, sessions: Any, settings: Any) -> None:
    rows = await visit_chain(server, world, sessions, settings)
    assert rows[0].seq == 1 and rows[0].prev_hash == GENESIS
    for earlier, later in itertools.pairwise(rows):
        assert later.seq == earlier.seq + 1 and later.prev_hash == earlier.hash
    victim = rows[len(rows) // 2]
    key = (victim.chain, victim.seq)
    original = {c: getattr(victim, c) for c in ("data", "actor_person_id", "hash")}

    async def restore() -> None:
        async with sessions() as db:
            await db.execute(
                update(AuditEntry).where(AuditEntry.chain == key[0], AuditEntry.seq == key[1]).values(**original)
            )
            await db.commit()
        assert (await check(sessions, settings)).ok

    # An edited row.
    async with sessions() as db:
        await db.execute(
            update(AuditEntry).where(AuditEntry.chain == key[0], AuditEntry.seq == key[1]).values(data={"x": 1})
        )
        await db.commit()
    result = await check(sessions, settings)
    [problem] = result.problems
    assert (problem.chain, problem.seq) == key and "altered" in problem.reason

    await restore()
    # A deleted middle row.
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.chain == key[0], AuditEntry.seq == key[1]))
        await db.commit()
    result = await check(sessions, settings)
    [problem] = result.problems
    assert (problem.chain, problem.seq) == (key[0], key[1] + 1)
    assert f"entry {key[1]} missing" in problem.reason
