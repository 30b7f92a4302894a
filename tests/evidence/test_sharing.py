"""Who sees which document, over HTTP and Socket.IO: a closed session's documents for
stakeholders and observers, late recipients (shares), grants only by the secretariat,
pending shares, the document's audit trail, and ``evidence.shared``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import socket_client
from tests.evidence import crypto
from tests.evidence.conftest import Ev, Uploaded
from tests.evidence.crypto import DeviceKeys, b64u, unb64u
from tests.web.test_security import assert_error_shape

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def share(ev: Ev, key: str, up: Uploaded, by: DeviceKeys, to: list[DeviceKeys],
                content_key: bytes | None = None) -> tuple[int, dict[str, Any]]:
    body = crypto.share_body(up.version, up.manifest, by, [d.recipient() for d in to])
    text = crypto.canonical(body)
    k = content_key or up.sealed.key
    keys = [{"device": d.id, "wrapped": b64u(crypto.wrap(k, d.enc_pub, ev.visit, up.version, d.id))} for d in to]
    async with ev.http(key) as http, http.post(
        f"/api/versions/{up.version}/shares",
        json={"body": text, "signature": b64u(by.sign(text.encode())), "keys": keys},
    ) as r:
        return r.status, await r.json()


async def test_closed_session_documents_stay_closed(ev: Ev) -> None:
    for key in ("stakeholder", "observer", "interpreter"):
        await ev.first(key)
    up = await ev.upload("delegate", b"closed-session evidence", to=("expert",), session=ev.session("closed"))
    assert (await ev.documents("expert"))[up.document]["session"] == ev.session("closed")
    assert up.document in await ev.documents("expert", session=ev.session("closed"))
    # Even the secretariat cannot grant it to those the session does not admit.
    sec = ev.devices["secretariat"][0]
    for key in ("stakeholder", "observer"):
        status, answer = await share(ev, "secretariat", up, sec, [ev.devices[key][0]])
        assert status == 403, answer
        async with ev.http(key) as http:
            async with http.get(f"/api/visits/{ev.visit}/documents") as r:
                assert r.status == 200 and up.document not in {d["id"] for d in (await r.json())["documents"]}
            for path in (f"/api/versions/{up.version}/content", f"/api/versions/{up.version}/chunks/0"):
                async with http.get(path) as r:
                    assert r.status in (403, 404), (key, path)
                    assert_error_shape(await r.json())
            async with http.get(f"/api/documents/{up.document}/audit") as r:
                assert r.status == 403
            async with http.get(f"/api/visits/{ev.visit}/pending") as r:
                assert up.version not in {p["version"] for p in (await r.json())["pending"]}
    # The stakeholder's key listing shows themselves and the secretariat only.
    async with ev.http("stakeholder") as http, http.get(f"/api/visits/{ev.visit}/keys") as r:
        people = {p["role"] for p in (await r.json())["people"]}
    assert people == {"stakeholder", "secretariat"}
    # An interpreter may be granted it (the session admits interpreters).
    status, answer = await share(ev, "secretariat", up, sec, [ev.devices["interpreter"][0]])
    assert status == 201, answer
    async with ev.http("interpreter") as http, http.get(f"/api/versions/{up.version}/content") as r:
        assert r.status == 200 and await r.read() == up.sealed.chunks[0]


async def test_late_recipients_and_grants(ev: Ev) -> None:
    up = await ev.upload("delegate", b"for the review team", to=("expert",))
    tablet = await ev.device("expert", label="Tablet")  # a new device after the upload
    holder = ev.devices["expert"][0]
    # Pending: the expert's new device has no key yet; the holder sees it.
    async with ev.http("expert") as http, http.get(f"/api/visits/{ev.visit}/pending") as r:
        pending = {p["version"]: p for p in (await r.json())["pending"]}
    assert tablet.id in {d["device"] for d in pending[up.version]["recipients"]}
    assert pending[up.version]["document"] == up.document
    # Someone holding no key cannot share it.
    status, answer = await share(ev, "expert2", up, await ev.first("expert2"), [tablet])
    assert status == 403, answer
    # A share signed by a device that is not the caller's.
    status, answer = await share(ev, "delegate", up, holder, [tablet])
    assert status == 403, answer
    # A share with a wrong manifest hash.
    body = crypto.share_body(up.version, up.manifest + " ", holder, [tablet.recipient()])
    text = crypto.canonical(body)
    async with ev.http("expert") as http, http.post(f"/api/versions/{up.version}/shares", json={
        "body": text, "signature": b64u(holder.sign(text.encode())),
        "keys": [{"device": tablet.id, "wrapped": b64u(bytes(80))}],
    }) as r:
        assert r.status == 400
    # The holder (an expert) shares with the entitled tablet...
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client = await socket_client(ev.env.server, ev.env.cookies["expert"])
    client.on("evidence.shared", heard.put_nowait)
    try:
        ack = await client.call("visit.watch", {"visit_id": ev.visit}, timeout=5)
        assert ack.get("ok"), ack
        status, answer = await share(ev, "expert", up, holder, [tablet])
        assert status == 201, answer
        news = await asyncio.wait_for(heard.get(), 5)
        assert news == {"visit": ev.visit, "document": up.document, "version": up.version, "session": None}
    finally:
        await client.disconnect()
    status, answer = await share(ev, "expert", up, holder, [tablet])
    assert status == 409, answer  # it holds a key already
    listed = (await ev.documents("expert"))[up.document]
    assert {k["device"] for k in listed["version"]["keys"]} == {holder.id, tablet.id}
    shared = listed["version"]["shares"][0]
    assert json.loads(shared["body"])["by"] == holder.id
    wrapped = next(k["wrapped"] for k in listed["version"]["keys"] if k["device"] == tablet.id)
    assert crypto.unwrap(unb64u(wrapped), tablet, ev.visit, up.version) == up.sealed.key
    # ... but only the secretariat grants an interpreter, observer or stakeholder.
    interpreter = await ev.first("interpreter")
    status, answer = await share(ev, "expert", up, holder, [interpreter])
    assert status == 403, answer
    status, answer = await share(ev, "secretariat", up, ev.devices["secretariat"][0], [interpreter])
    assert status == 201, answer
    assert up.document in await ev.documents("interpreter")
    # The document's audit trail: the secretariat and the uploading delegation only.
    async with ev.http("secretariat") as http, http.get(f"/api/documents/{up.document}/audit") as r:
        actions = [e["action"] for e in (await r.json())["entries"]]
    assert actions[:1] == ["evidence.uploaded"] and actions.count("evidence.shared") == 2
    async with ev.http("expert") as http, http.get(f"/api/documents/{up.document}/audit") as r:
        assert r.status == 403  # another delegation
    async with ev.http("delegate") as http, http.get(f"/api/documents/{up.document}/audit") as r:
        assert r.status == 200


async def test_stakeholder_session_documents(ev: Ev) -> None:
    stakeholder = await ev.first("stakeholder")
    up = await ev.upload("secretariat", b"shared with civil society", to=("expert", "stakeholder"),
                         session=ev.session("stakeholder"))
    listed = await ev.documents("stakeholder")
    assert up.document in listed and {k["device"] for k in listed[up.document]["version"]["keys"]} == {stakeholder.id}
    async with ev.http("stakeholder") as http, http.get(f"/api/versions/{up.version}/content") as r:
        assert r.status == 200
    assert up.document not in await ev.documents("observer")  # the session does not admit observers
