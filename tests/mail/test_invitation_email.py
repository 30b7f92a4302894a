"""Session invitation e-mails: the text in the recipient's zone and language (across a
DST change), the preview page, and sending: off by default (409), on against an SMTP sink."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import formataddr
from typing import Any

import pytest
from sqlalchemy import select, update

from server.audit.models import AuditEntry
from server.config import Settings
from server.core.times import local
from server.mail.service import when_text
from server.people.models import Person
from tests.calendars.helpers import add_session
from tests.conftest import LiveServer, free_port, http_client, login, settings_for, start_server
from tests.fixtures.world import World, build_world
from tests.mail.sink import SmtpSink
from tests.web.test_security import assert_error_shape, assert_no_leak, blocked_by_csp

DST_START = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # Vienna 01:30 CET
DST_END = datetime(2027, 3, 28, 2, 0, tzinfo=UTC)  # Vienna 04:00 CEST
SENDER = "UNODC Secretariat <secretariat@example.org>"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    s = await SmtpSink().start()
    yield s
    await s.stop()


@pytest.fixture
async def mail_server(settings: Settings, sink: SmtpSink) -> AsyncIterator[LiveServer]:
    """A Parley server with sending on, talking to the sink."""
    live, runner = await start_server(
        settings_for(settings, smtp_host=sink.host, smtp_port=sink.port, smtp_security="none", smtp_from=SENDER)
    )
    yield live
    await runner.cleanup()


async def dst_session(sessions: Any, world: World) -> str:
    return await add_session(sessions, world, title="Chapter V: asset recovery", start=DST_START, end=DST_END,
                             items=["Opening", "Article 52"])


async def email_for(server: LiveServer, cookie: str, session_id: str, membership_id: str | None) -> Any:
    query = f"?membership_id={membership_id}" if membership_id else ""
    async with http_client(server, cookie) as http:
        async with http.get(f"/api/sessions/{session_id}/invitation-email{query}") as r:
            return r.status, await r.json()


async def person_email(sessions: Any, person_id: str) -> str:
    async with sessions() as db:
        person = await db.get(Person, person_id)
        return formataddr((person.name, person.email))


async def test_time_in_each_recipients_zone_across_dst(server: LiveServer, world: World, sessions: Any) -> None:
    sid = await dst_session(sessions, world)
    cookie = await login(server, world.members["secretariat"].invite_token)

    status, vienna = await email_for(server, cookie, sid, world.members["secretariat"].membership_id)
    assert status == 200, vienna
    assert set(vienna) >= {"to", "subject", "body"}
    assert vienna["to"] == await person_email(sessions, world.members["secretariat"].person_id)
    assert vienna["subject"] == "Invitation: Chapter V: asset recovery, Mar 28, 2027 01:30 CET"
    body = vienna["body"]
    # The clocks change during the session: both ends say which time they are in.
    assert "Your time (Europe/Vienna): Sunday, March 28, 2027, 01:30 CET (UTC+01:00) – 04:00 CEST (UTC+02:00)" in body
    assert "UTC: Sunday, March 28, 2027, 00:30–02:00 UTC" in body
    assert f"{server.url}/sessions/{sid}" in body
    assert f"{server.url}/visits/{world.visit_id}/calendar.ics" in body
    assert f"{server.url}/visits/{world.visit_id}/calendar" in body
    assert "1. Opening" in body and "2. Article 52" in body
    assert body.startswith("Dear Secretariat Person,")

    _, bogota = await email_for(server, cookie, sid, world.members["delegate"].membership_id)
    # Bogota has no DST and no letters for its zone: the offset stands in for them.
    assert "Your time (America/Bogota): Saturday, March 27, 2027, 19:30–21:00 UTC-05:00" in bogota["body"]
    assert "UTC: Sunday, March 28, 2027, 00:30–02:00 UTC" in bogota["body"]
    assert bogota["subject"].endswith("Mar 27, 2027 19:30 UTC-05:00")

    _, nairobi = await email_for(server, cookie, sid, world.members["expert"].membership_id)
    assert "Sunday, March 28, 2027, 03:30–05:00 EAT (UTC+03:00)" in nairobi["body"]

    # Without a recipient, the text is composed for the caller.
    _, mine = await email_for(server, cookie, sid, None)
    assert mine == vienna


async def test_in_the_recipients_language(server: LiveServer, world: World, sessions: Any) -> None:
    sid = await dst_session(sessions, world)
    delegate = world.members["delegate"]
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == delegate.person_id).values(languages=["es", "en"]))
        await db.commit()
    cookie = await login(server, world.members["secretariat"].invite_token)
    _, email = await email_for(server, cookie, sid, delegate.membership_id)
    assert email["language"] == "es"
    assert "sábado, 27 de marzo de 2027, 19:30–21:00 UTC-05:00" in email["body"]


async def test_who_may_be_invited(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    closed = world.sessions["closed"]
    status, body = await email_for(server, cookie, closed, world.members["observer"].membership_id)
    assert status == 409, body
    assert_error_shape(body, "conflict")
    status, body = await email_for(server, cookie, closed, "x" * 22)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await email_for(server, cookie, closed, "not.an.id")
    assert status == 400 and body["error"]["code"] == "invalid"
    async with sessions() as db:
        other = await build_world(db, server.settings, extra_experts=0)
    status, body = await email_for(server, cookie, closed, other.members["expert"].membership_id)
    assert status == 404, "a member of another visit is nobody here"
    status, body = await email_for(server, cookie, world.sessions["stakeholder"], world.members["stakeholder"].membership_id)
    assert status == 200, "the invited stakeholder"


async def test_preview_page(server: LiveServer, world: World, sessions: Any) -> None:
    sid = await dst_session(sessions, world)
    stakeholder_session = world.sessions["stakeholder"]
    cookie = await login(server, world.members["secretariat"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.get(f"/sessions/{stakeholder_session}/invitation-email") as r:
            assert r.status == 200
            picker = await r.text()
        assert 'name="membership_id"' in picker and 'id="mail-preview"' not in picker
        assert world.members["stakeholder"].membership_id in picker, "the invited stakeholder may be chosen"
        assert world.members["observer"].membership_id not in picker, "an observer may not attend"

        delegate = world.members["delegate"].membership_id
        async with http.get(f"/sessions/{sid}/invitation-email?membership_id={delegate}") as r:
            assert r.status == 200
            page = await r.text()
    assert 'id="mail-preview"' in page
    assert "Invitation: Chapter V: asset recovery, Mar 27, 2027 19:30 UTC-05:00" in page
    assert "Saturday, March 27, 2027, 19:30–21:00 UTC-05:00" in page
    assert f'value="{delegate}" selected' in page
    assert "Delegate Person &lt;delegate-" in page, "the address is escaped"
    assert 'id="mail-off"' in page and "<script" not in page, "sending is off: no send button"
    assert not blocked_by_csp(page)


async def test_sending_is_off_by_default(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    target = world.members["expert"].membership_id
    async with http_client(server, cookie) as http:
        url = f"/api/sessions/{world.sessions['open']}/invitation-email/send"
        async with http.post(url, json={"membership_id": target}) as r:
            assert r.status == 409
            body = await r.json()
        assert_error_shape(body, "conflict")
        assert body["error"]["message"].startswith("E-mail sending is off")
        async with http.post(url, json={"membership_id": target, "dry_run": True}) as r:
            assert r.status == 200
            dry = await r.json()
        assert dry["sent"] is False and dry["sending"] is False and "Your time (Africa/Nairobi)" in dry["body"]
        for bad in ({}, {"membership_id": 5}, {"membership_id": target, "extra": 1}, {"membership_id": "a/b"}):
            async with http.post(url, json=bad) as r:
                assert r.status == 400, bad
                assert_error_shape(await r.json(), "invalid")
    async with sessions() as db:
        sent = (await db.execute(select(AuditEntry).where(AuditEntry.action == "invitation_email.sent"))).all()
    assert not sent


async def test_sending_through_smtp(mail_server: LiveServer, sink: SmtpSink, world: World, sessions: Any) -> None:
    sid = await dst_session(sessions, world)
    secretariat = world.members["secretariat"]
    cookie = await login(mail_server, secretariat.invite_token)
    target = world.members["interpreter"]  # Europe/Madrid: 01:30 CET -> 04:00 CEST too
    async with http_client(mail_server, cookie) as http:
        async with http.get(f"/api/sessions/{sid}/invitation-email?membership_id={target.membership_id}") as r:
            preview = await r.json()
        async with http.post(f"/api/sessions/{sid}/invitation-email/send",
                             json={"membership_id": target.membership_id, "dry_run": True}) as r:
            assert r.status == 200 and (await r.json())["sending"] is True
        assert not sink.received, "a dry run sends nothing"
        async with http.post(f"/api/sessions/{sid}/invitation-email/send",
                             json={"membership_id": target.membership_id}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        async with http.get(f"/sessions/{sid}/invitation-email?membership_id={target.membership_id}") as r:
            page = await r.text()
    assert answer["sent"] is True and answer["message_id"].startswith("<")
    assert len(sink.received) == 1
    got = sink.received[0]
    async with sessions() as db:
        person = await db.get(Person, target.person_id)
    assert got.rcpt_to == [person.email]
    assert got.mail_from == "secretariat@example.org"
    message = got.message
    assert message["To"] == formataddr((person.name, person.email)) == preview["to"]
    assert message["Subject"] == preview["subject"] == answer["subject"]
    assert message["From"] == SENDER
    assert message["Message-ID"] == answer["message_id"]
    text = message.get_content().replace("\r\n", "\n")  # SMTP lines end in CRLF
    assert text == preview["body"]
    assert "Saturday, March 27, 2027" not in text
    assert "Sunday, March 28, 2027, 01:30 CET (UTC+01:00) – 04:00 CEST (UTC+02:00)" in text

    async with sessions() as db:
        entries = list((await db.execute(
            select(AuditEntry).where(AuditEntry.action == "invitation_email.sent"))).scalars())
    assert len(entries) == 1
    assert entries[0].subject == target.membership_id and entries[0].actor_person_id == secretariat.person_id
    assert entries[0].data == {"session": sid, "message_id": answer["message_id"]}

    # With sending on, the preview page offers the button (an external module: CSP-safe).
    assert 'id="mail-send"' in page and 'src="/static/js/invitation_email.js"' in page
    assert not blocked_by_csp(page)


async def test_unreachable_mail_server(settings: Settings, world: World, sessions: Any) -> None:
    live, runner = await start_server(settings_for(settings, smtp_host="127.0.0.1", smtp_port=free_port(),
                                                   smtp_security="none"))
    try:
        cookie = await login(live, world.members["secretariat"].invite_token)
        async with http_client(live, cookie) as http:
            async with http.post(f"/api/sessions/{world.sessions['open']}/invitation-email/send",
                                 json={"membership_id": world.members["expert"].membership_id}) as r:
                assert r.status == 500
                text = await r.text()
    finally:
        await runner.cleanup()
    assert_error_shape(json.loads(text), "internal")
    assert_no_leak(text)
    assert "127.0.0.1" not in text


def test_when_text_labels() -> None:
    """Zones without letters show their offset; a session past midnight names both days."""
    start = datetime(2027, 3, 28, 17, 0, tzinfo=UTC)
    kathmandu = when_text(local(start, "Asia/Kathmandu"), local(start + timedelta(hours=2), "Asia/Kathmandu"), "en")
    assert kathmandu == "Sunday, March 28, 2027, 22:45 UTC+05:45 – Monday, March 29, 2027, 00:45 UTC+05:45"
    sydney = when_text(local(start, "Australia/Sydney"), local(start + timedelta(hours=1), "Australia/Sydney"), "en")
    assert sydney == "Monday, March 29, 2027, 04:00–05:00 AEDT (UTC+11:00)"
    # Sydney leaves DST on 2027-04-04 at 16:00 UTC (03:00 AEDT -> 02:00 AEST).
    fall = datetime(2027, 4, 3, 15, 30, tzinfo=UTC)
    back = when_text(local(fall, "Australia/Sydney"), local(fall + timedelta(hours=1), "Australia/Sydney"), "en")
    assert back == "Sunday, April 4, 2027, 02:30 AEDT (UTC+11:00) – 02:30 AEST (UTC+10:00)"
