"""The audit log: logins, invitations issued and spent, admissions and role changes are
recorded in an append-only hash chain; editing or deleting a row is detected, by
``server.audit.service.verify`` and by `parley audit verify`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, text, update

from server.audit import service as audit
from server.audit.models import AuditEntry
from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World, build_world

PARLEY = Path(sys.executable).with_name("parley")


async def entries(sessions: Any, action: str | None = None) -> list[AuditEntry]:
    async with sessions() as db:
        query = select(AuditEntry).order_by(AuditEntry.seq)
        if action:
            query = query.where(AuditEntry.action == action)
        return list((await db.execute(query)).scalars())


async def verify(sessions: Any) -> audit.VerifyResult:
    async with sessions() as db:
        return await audit.verify(db)


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

    # The secretariat reads the visit's log; the chain is intact.
    async with http_client(server, sec_cookie) as http:
        async with http.get(f"/api/visits/{world.visit_id}/audit") as r:
            assert r.status == 200
            actions = {e["action"] for e in (await r.json())["entries"]}
    assert {"invitation.issued", "invitation.spent", "login", "admission.granted"} <= actions
    result = await verify(sessions)
    assert result.ok, result
    assert result.entries == len(await entries(sessions))


async def test_role_change_is_recorded(server: LiveServer, world: World, sessions: Any) -> None:
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
    assert (await verify(sessions)).ok


async def test_access_and_chair_changes_are_recorded(server: LiveServer, world: World, sessions: Any) -> None:
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
    assert (await verify(sessions)).ok


async def _chain(server: LiveServer, world: World, sessions: Any) -> list[AuditEntry]:
    for key in ("expert", "delegate", "observer"):
        await login(server, world.members[key].invite_token)
    rows = await entries(sessions)
    assert len(rows) >= 10
    assert (await verify(sessions)).ok
    return rows


async def test_tampering_is_detected(server: LiveServer, world: World, sessions: Any) -> None:
    rows = await _chain(server, world, sessions)
    assert rows[0].prev_hash == audit.GENESIS
    for earlier, later in zip(rows, rows[1:], strict=False):
        assert later.seq == earlier.seq + 1 and later.prev_hash == earlier.hash
    victim = rows[len(rows) // 2]
    original = {c: getattr(victim, c) for c in ("data", "actor_person_id", "hash")}

    async def restore() -> None:
        async with sessions() as db:
            await db.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(**original))
            await db.commit()
        assert (await verify(sessions)).ok

    # An edited row.
    async with sessions() as db:
        await db.execute(update(AuditEntry).where(AuditEntry.seq == victim.seq).values(data={"tampered": True}))
        await db.commit()
    result = await verify(sessions)
    assert not result.ok and result.broken_at == victim.seq and "altered" in result.reason
    await restore()

    # An edited row whose own hash was recomputed: the next link no longer holds.
    async with sessions() as db:
        row = await db.get(AuditEntry, victim.seq)
        assert row is not None
        row.actor_person_id = "someone-else"
        row.hash = audit._digest(row.prev_hash, row)
        await db.commit()
    result = await verify(sessions)
    assert not result.ok and result.broken_at == victim.seq + 1 and "link" in result.reason
    await restore()

    # A deleted middle row.
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == victim.seq))
        await db.commit()
    result = await verify(sessions)
    assert not result.ok and result.broken_at == victim.seq + 1 and "missing" in result.reason


async def test_deleting_an_end_of_the_chain(server: LiveServer, world: World, sessions: Any) -> None:
    rows = await _chain(server, world, sessions)
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == rows[-1].seq))
        await db.commit()
    # Truncating the tail leaves a shorter, still consistent chain: verify reports how
    # many entries it checked, so the count is the evidence.
    result = await verify(sessions)
    assert result.ok and result.entries == len(rows) - 1
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.seq == rows[0].seq))
        await db.commit()
    result = await verify(sessions)
    assert not result.ok and result.broken_at == 2


def parley_audit_verify(settings: Any, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update({"PARLEY_DATABASE_URL": settings.database_url, "PARLEY_VAR_DIR": str(tmp_path / "cli-var")})
    return subprocess.run(
        [str(PARLEY), "audit", "verify"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_audit_verify(
    server: LiveServer, world: World, sessions: Any, settings: Any, tmp_path: Path
) -> None:
    rows = await _chain(server, world, sessions)
    ok = parley_audit_verify(settings, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(rows)} entries" in ok.stdout

    victim = rows[3]
    async with sessions() as db:
        # Raw SQL, as someone with database access would do it.
        await db.execute(text("UPDATE audit_entry SET action = 'nothing.to.see' WHERE seq = :s"), {"s": victim.seq})
        await db.commit()
    broken = parley_audit_verify(settings, tmp_path)
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert "BROKEN" in broken.stderr and str(victim.seq) in broken.stderr
    assert "Traceback" not in broken.stderr
