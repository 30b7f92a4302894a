"""Devices: registration (fingerprints and safety codes as docs/evidence.md computes
them), the visit's key listing, signed statements, recovery blobs, device links,
revocation (403 and ``evidence.revoked``), and the flood limits."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from server.core.ratelimit import TokenBucket
from server.web.keys import EVIDENCE
from tests.conftest import socket_client
from tests.evidence import crypto
from tests.evidence.conftest import Ev
from tests.evidence.crypto import DeviceKeys, b64u
from tests.web.test_security import assert_error_shape

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("sig_alg", ["Ed25519", "ES256"])
async def test_register_and_list_keys(ev: Ev, sig_alg: str) -> None:
    keys = DeviceKeys.new(sig_alg)
    async with ev.http("expert") as http:
        async with http.post("/api/devices", json=keys.register_body("Nairobi laptop")) as r:
            assert r.status == 201, await r.text()
            device = (await r.json())["device"]
        keys.id, keys.person = device["id"], device["person"]
        assert device["person"] == ev.person("expert") and device["sig_alg"] == sig_alg
        assert device["fingerprint"] == keys.fp  # computed independently, from the document
        assert device["safety_code"] == crypto.safety_code(keys.fingerprint())
        assert device["revoked_at"] is None
        async with http.get(f"/api/visits/{ev.visit}/keys") as r:
            listed = await r.json()
    people = {p["person"]: p for p in listed["people"]}
    assert set(people) == {m.person_id for m in ev.env.world.members.values()}
    assert keys.id in [d["id"] for d in people[ev.person("expert")]["devices"]]
    assert people[ev.person("expert")]["role"] == "expert"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"sig_pub": b64u(b"\x01" * 31)}, 400),
        ({"enc_pub": b64u(bytes(32))}, 400),
        ({"sig_alg": "RS256"}, 400),
        ({"sig_pub": "not base64!"}, 400),
        ({"sig_pub": "AA="}, 400),
        ({"label": ""}, 400),
        ({"extra": 1}, 400),
    ],
)
async def test_bad_device_bodies(ev: Ev, change: dict[str, Any], status: int) -> None:
    body = {**DeviceKeys.new().register_body(), **change}
    async with ev.http("observer") as http, http.post("/api/devices", json=body) as r:
        assert r.status == status
        assert_error_shape(await r.json(), "invalid")


async def test_statements(ev: Ev) -> None:
    mine = await ev.device("delegate")
    second = await ev.device("delegate", "ES256", "Office desktop")
    theirs = await ev.first("expert")
    subject = {"id": theirs.id, "fingerprint": theirs.fp, "person": theirs.person}
    async with ev.http("delegate") as http:
        async with http.post("/api/statements", json=crypto.statement("verify", mine, subject)) as r:
            assert r.status == 201, await r.text()
            made = (await r.json())["statement"]
        async with http.post("/api/statements", json=crypto.statement("verify", mine, subject)) as r:
            assert r.status == 200 and (await r.json())["statement"]["id"] == made["id"]
        own = {"id": second.id, "fingerprint": second.fp, "person": second.person}
        async with http.post("/api/statements", json=crypto.statement("cross-sign", mine, own)) as r:
            assert r.status == 201, await r.text()

        refused: list[tuple[dict[str, Any], int, str]] = []
        forged = crypto.statement("verify", second, subject)
        forged["signature"] = crypto.statement("verify", mine, subject)["signature"]  # the other key's
        refused.append((forged, 400, "invalid"))
        # Cross-signing someone else's device.
        refused.append((crypto.statement("cross-sign", mine, subject), 400, "invalid"))
        # Signed by a device that is not the caller's.
        refused.append((crypto.statement("verify", theirs, {"id": mine.id, "fingerprint": mine.fp,
                                                             "person": mine.person}), 403, "forbidden"))
        # A wrong fingerprint for the subject.
        refused.append((crypto.statement("verify", mine, {**subject, "fingerprint": mine.fp}), 400, "invalid"))
        # Not canonical: the same object with a space.
        spaced = crypto.statement("verify", mine, subject)
        spaced["body"] = spaced["body"].replace(",", ", ", 1)
        spaced["signature"] = b64u(mine.sign(spaced["body"].encode()))
        refused.append((spaced, 400, "invalid"))
        # The kind and the label disagree.
        wrong = crypto.statement("verify", mine, subject)
        wrong["kind"] = "cross-sign"
        refused.append((wrong, 400, "invalid"))
        for body, status, code in refused:
            async with http.post("/api/statements", json=body) as r:
                assert r.status == status, (body, await r.text())
                assert_error_shape(await r.json(), code)
    async with ev.http("expert") as http, http.get(f"/api/visits/{ev.visit}/keys") as r:
        statements = (await r.json())["statements"]
    assert {s["kind"] for s in statements if s["signer"] == mine.id} == {"verify", "cross-sign"}


async def test_recovery_blobs(ev: Ev) -> None:
    device = await ev.device("secretariat", label="Vienna laptop")
    blob = {"v": 1, "kdf": "hkdf-sha256", "salt": b64u(b"s" * 16), "nonce": b64u(b"n" * 12),
            "ciphertext": b64u(b"c" * 200), "device": device.id}
    async with ev.http("secretariat") as http:
        async with http.get(f"/api/devices/{device.id}/recovery") as r:
            assert r.status == 404
        async with http.put(f"/api/devices/{device.id}/recovery", json=blob) as r:
            assert r.status == 200, await r.text()
        async with http.get(f"/api/devices/{device.id}/recovery") as r:
            assert await r.json() == blob
        async with http.get("/api/me/recovery") as r:
            assert blob in (await r.json())["blobs"]
        weak = {**blob, "kdf": "pbkdf2-sha256", "iterations": 1000}
        async with http.put(f"/api/devices/{device.id}/recovery", json=weak) as r:
            assert r.status == 400
        async with http.put(f"/api/devices/{device.id}/recovery", json={**blob, "salt": b64u(b"s" * 8)}) as r:
            assert r.status == 400
    # Someone else's device does not exist for them.
    async with ev.http("expert") as http:
        async with http.get(f"/api/devices/{device.id}/recovery") as r:
            assert r.status == 404
        async with http.put(f"/api/devices/{device.id}/recovery", json=blob) as r:
            assert r.status == 404


async def test_device_link_opens_a_login_with_the_same_scope(ev: Ev) -> None:
    async with ev.http("interpreter") as http, http.post("/api/me/device-links") as r:
        assert r.status == 201, await r.text()
        link = await r.json()
    url = link["url"]
    assert url.startswith(ev.env.server.url + "/api/device-links/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as fresh:
        async with fresh.post(url) as r:
            assert r.status == 403  # no Origin: refused like every other POST
        async with fresh.post(url, headers={"Origin": ev.env.server.origin}) as r:
            assert r.status == 204, await r.text()
            cookie = r.cookies["parley_session"].value
        async with fresh.post(url, headers={"Origin": ev.env.server.origin}) as r:
            assert r.status == 410
            assert_error_shape(await r.json(), "gone")
    async with aiohttp.ClientSession(base_url=ev.env.server.url, cookies={"parley_session": cookie}) as enrolled:
        async with enrolled.get("/api/me") as r:
            assert r.status == 200
        async with enrolled.get(f"/api/visits/{ev.visit}/keys") as r:
            assert r.status == 200
        other = ev.env.other.visit_id
        async with enrolled.get(f"/api/visits/{other}/keys") as r:
            assert r.status == 404  # the invitation login's scope: its visit only
    async with aiohttp.ClientSession(base_url=ev.env.server.url, headers={"Origin": ev.env.server.origin}) as anyone:
        async with anyone.post("/api/device-links/" + "x" * 43) as r:
            assert r.status == 410


async def test_revocation_cuts_downloads_and_tells_the_sockets(ev: Ev) -> None:
    phone = await ev.device("expert2", label="Phone")
    up = await ev.upload("delegate", b"for expert2", to=("expert2",))
    async with ev.http("expert2") as http, http.get(f"/api/versions/{up.version}/content") as r:
        assert r.status == 200
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    client = await socket_client(ev.env.server, ev.env.cookies["expert2"])
    client.on("evidence.revoked", heard.put_nowait)
    try:
        # Someone else (not the secretariat) cannot revoke it: it does not exist for them.
        async with ev.http("expert") as http, http.delete(f"/api/devices/{phone.id}") as r:
            assert r.status == 404
        async with ev.http("expert2") as http, http.delete(f"/api/devices/{phone.id}") as r:
            assert r.status == 204
        ev.forget("expert2", phone)
        assert await asyncio.wait_for(heard.get(), 5) == {"device": phone.id}
    finally:
        await client.disconnect()
    async with ev.http("expert2") as http:
        async with http.get(f"/api/versions/{up.version}/content") as r:
            assert r.status == 403
            assert_error_shape(await r.json(), "forbidden")
        async with http.get(f"/api/versions/{up.version}/chunks/0") as r:
            assert r.status == 403
        async with http.get(f"/api/visits/{ev.visit}/keys") as r:
            listed = {d["id"]: d for p in (await r.json())["people"] for d in p["devices"]}
    assert listed[phone.id]["revoked_at"] is not None
    # The secretariat of a visit the person is in may revoke their devices too.
    laptop = await ev.device("expert2", label="Laptop")
    async with ev.http("secretariat") as http, http.delete(f"/api/devices/{laptop.id}") as r:
        assert r.status == 204
    ev.forget("expert2", laptop)
    # A revoked device signs nothing more.
    async with ev.http("expert2") as http:
        other = await ev.first("expert")
        body = crypto.statement("verify", phone, {"id": other.id, "fingerprint": other.fp, "person": other.person})
        async with http.post("/api/statements", json=body) as r:
            assert r.status == 409


async def test_flood_limits(ev: Ev) -> None:
    runtime = ev.env.server.app[EVIDENCE]
    saved = runtime.limits.devices
    runtime.limits.devices = TokenBucket(1 / 60, 2)
    try:
        statuses = []
        for _ in range(3):
            async with ev.http("observer") as http:
                async with http.post("/api/devices", json=DeviceKeys.new().register_body()) as r:
                    statuses.append(r.status)
                    if r.status == 429:
                        body = await r.json()
                        assert body["error"]["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
        assert statuses == [201, 201, 429]
    finally:
        runtime.limits.devices = saved
