"""What the server refuses, with the one error shape and nothing stored: manifests that
do not match what was uploaded, recipients who may not receive, sizes over the limits,
hostile ids and indexes, bodies that are not JSON."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from server.access.roles import Access
from server.evidence.models import DocumentVersion
from tests.conftest import http_client
from tests.evidence import crypto
from tests.evidence.conftest import Ev
from tests.evidence.crypto import DeviceKeys, b64u
from tests.web.test_security import assert_error_shape, assert_no_leak

pytestmark = pytest.mark.asyncio(loop_scope="module")

Tamper = Callable[[dict[str, Any], "Staged"], None]


class Staged:
    """An upload with chunks and keys sent, ready to complete (or be refused)."""

    def __init__(self, ev: Ev, key: str, device: DeviceKeys, document: str, version: str,
                 sealed: crypto.Sealed, recipients: list[DeviceKeys]) -> None:
        self.ev, self.key, self.device = ev, key, device
        self.document, self.version, self.sealed, self.recipients = document, version, sealed, recipients

    def manifest(self) -> dict[str, Any]:
        return crypto.manifest(self.sealed, visit=self.ev.visit, document=self.document, version=self.version,
                               uploader=self.device, recipients=[d.recipient() for d in self.recipients])

    async def complete(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.ev.http(self.key) as http:
            async with http.post(f"/api/versions/{self.version}/complete", json=body) as r:
                text = await r.text()
                assert_no_leak(text)
                return r.status, await r.json()


async def stage(ev: Ev, key: str, recipients: list[DeviceKeys], *, session: str | None = None) -> Staged:
    device = await ev.first(key)
    plaintext = b"evidence " * 10
    extra = {"session": session} if session else {}
    document, version = await ev.start(key, len(plaintext) + 16, 1, **extra)
    sealed = crypto.seal(version, plaintext, {"name": "a.pdf", "type": "application/pdf", "size": 90,
                                              "description": ""})
    everyone = {device.id: device, **{d.id: d for d in recipients}}
    async with ev.http(key) as http:
        async with http.put(f"/api/versions/{version}/chunks/0", data=io.BytesIO(sealed.chunks[0])) as r:
            assert r.status == 201, await r.text()
        keys = [{"device": d.id, "wrapped": b64u(crypto.wrap(sealed.key, d.enc_pub, ev.visit, version, d.id))}
                for d in everyone.values()]
        async with http.put(f"/api/versions/{version}/keys", json={"keys": keys}) as r:
            assert r.status == 200, await r.text()
    return Staged(ev, key, device, document, version, sealed, list(everyone.values()))


def _set(name: str, value: Any) -> Tamper:
    def tamper(m: dict[str, Any], s: Staged) -> None:
        m[name] = value
    return tamper


def _flip_hash(m: dict[str, Any], s: Staged) -> None:
    m["chunk_hashes"] = [b64u(hashlib.sha256(b"other bytes").digest())]


def _meta_hash(m: dict[str, Any], s: Staged) -> None:
    m["meta_hash"] = b64u(hashlib.sha256(b"other meta").digest())


def _drop_recipient(m: dict[str, Any], s: Staged) -> None:
    m["recipients"] = [r for r in m["recipients"] if r["device"] == s.device.id]


def _unsorted(m: dict[str, Any], s: Staged) -> None:
    m["recipients"] = sorted(m["recipients"], key=lambda r: r["device"], reverse=True)


def _wrong_fp(m: dict[str, Any], s: Staged) -> None:
    m["recipients"] = [{**r, "fp": m["uploader_fp"]} if r["device"] != s.device.id else r for r in m["recipients"]]


def _extra_field(m: dict[str, Any], s: Staged) -> None:
    m["note"] = "hello"


MANIFEST_CASES: list[tuple[str, Tamper, int, str]] = [
    ("wrong chunk hash", _flip_hash, 409, "conflict"),
    ("wrong meta hash", _meta_hash, 409, "conflict"),
    ("wrong size", _set("size", 999), 400, "invalid"),
    ("wrong chunk count", _set("chunks", 2), 400, "invalid"),
    ("wrong chunk size", _set("chunk_size", 65536), 400, "invalid"),
    ("another visit", _set("visit", "Vvvvvvvvvvvvvvvvvvvvvv"), 400, "invalid"),
    ("another version", _set("version", "Vvvvvvvvvvvvvvvvvvvvvv"), 400, "invalid"),
    ("a key holder left out of the recipients", _drop_recipient, 409, "conflict"),
    ("recipients out of order", _unsorted, 400, "invalid"),
    ("a wrong recipient fingerprint", _wrong_fp, 400, "invalid"),
    ("an unknown field", _extra_field, 400, "invalid"),
    ("a wrong label", _set("t", "parley/manifest/v2"), 400, "invalid"),
    ("a float", _set("size", 1.5), 400, "invalid"),
]


@pytest.mark.parametrize(("why", "tamper", "status", "code"), MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
async def test_tampered_manifests_are_refused(ev: Ev, why: str, tamper: Tamper, status: int, code: str) -> None:
    staged = await stage(ev, "delegate", [await ev.first("secretariat"), await ev.first("expert")])
    value = staged.manifest()
    tamper(value, staged)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    body = {"manifest": text, "signature": b64u(staged.device.sign(text.encode())), "meta": b64u(staged.sealed.meta)}
    got, answer = await staged.complete(body)
    assert got == status, (why, answer)
    assert_error_shape(answer, code)
    await assert_not_complete(ev, staged.version)
    # The honest manifest still completes afterwards: nothing was half-done.
    got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                         "meta": b64u(staged.sealed.meta)})
    assert got == 200, answer


async def assert_not_complete(ev: Ev, version: str) -> None:
    async with ev.env.sessions() as db:
        row = (await db.execute(select(DocumentVersion).where(DocumentVersion.id == version))).scalar_one()
        assert row.completed_at is None and row.manifest is None


async def test_signatures_and_canonical_bytes(ev: Ev) -> None:
    staged = await stage(ev, "delegate", [await ev.first("secretariat")])
    meta = b64u(staged.sealed.meta)
    good = crypto.signed(staged.manifest(), staged.device)
    other = await ev.device("delegate", label="Second laptop")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "signature": b64u(other.sign(good["manifest"].encode())), "meta": meta}, 400, "invalid"),
        ({**good, "signature": b64u(bytes(64)), "meta": meta}, 400, "invalid"),
        ({**good, "manifest": good["manifest"].replace(",", ", ", 1), "meta": meta}, 400, "invalid"),
        ({**good, "manifest": " " + good["manifest"], "meta": meta}, 400, "invalid"),
        ({**good}, 400, "invalid"),  # no metadata record anywhere
        ({**good, "meta": b64u(b"tampered metadata record")}, 409, "conflict"),
    ]
    # Signed by a device of someone else (uploader must be the caller's).
    theirs = await ev.first("expert")
    forged = {**staged.manifest(), "uploader": theirs.id, "uploader_fp": theirs.fp}
    cases.append(({**crypto.signed(forged, theirs), "meta": meta}, 403, "forbidden"))
    for body, status, code in cases:
        got, answer = await staged.complete(body)
        assert got == status, (body.get("signature"), answer)
        assert_error_shape(answer, code)
    await assert_not_complete(ev, staged.version)
    got, _ = await staged.complete({**good, "meta": meta})
    assert got == 200
    got, _ = await staged.complete({**good, "meta": meta})
    assert got == 200  # a retried completion


async def test_who_may_receive(ev: Ev) -> None:
    # The secretariat must be among the recipients.
    expert = await ev.first("expert")
    await ev.first("secretariat")
    staged = await stage(ev, "delegate", [expert])
    got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                         "meta": b64u(staged.sealed.meta)})
    assert got == 400 and "secretariat" in answer["error"]["message"], answer
    # Interpreters, observers and stakeholders only by the secretariat's grant.
    for member in ("interpreter", "stakeholder", "observer"):
        staged = await stage(ev, "delegate", [await ev.first("secretariat"), await ev.first(member)])
        got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                             "meta": b64u(staged.sealed.meta)})
        assert got == 403, (member, answer)
        assert_error_shape(answer, "forbidden")
    # A stakeholder not invited to the stakeholder session, even by the secretariat.
    staged = await stage(ev, "secretariat", [await ev.first("stakeholder")], session=ev.session("closed"))
    got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                         "meta": b64u(staged.sealed.meta)})
    assert got == 403, answer
    # A stakeholder session the stakeholder is not invited to: not even the secretariat.
    uninvited = await ev.env.new_session(Access.STAKEHOLDER, invite_stakeholder=False)
    staged = await stage(ev, "secretariat", [await ev.first("stakeholder")], session=uninvited.id)
    got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                         "meta": b64u(staged.sealed.meta)})
    assert got == 403, answer
    # The session they are invited to: the secretariat grants, a delegate does not.
    for uploader, status in (("delegate", 403), ("secretariat", 200)):
        staged = await stage(ev, uploader, [await ev.first("secretariat"), await ev.first("stakeholder")],
                             session=ev.session("stakeholder"))
        got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                             "meta": b64u(staged.sealed.meta)})
        assert got == status, (uploader, answer)
    # Someone from another visit.
    outsider = DeviceKeys.new()
    async with http_client(ev.env.server, ev.env.outsider_cookie) as http:
        async with http.post("/api/devices", json=outsider.register_body()) as r:
            made = (await r.json())["device"]
    outsider.id, outsider.person = made["id"], made["person"]
    staged = await stage(ev, "delegate", [await ev.first("secretariat"), outsider])
    got, answer = await staged.complete({**crypto.signed(staged.manifest(), staged.device),
                                         "meta": b64u(staged.sealed.meta)})
    assert got == 403, answer


async def test_size_limits(ev: Ev) -> None:
    limit = ev.env.settings.evidence_max_bytes
    stride = crypto.CHUNK + 16
    async with ev.http("expert") as http:
        over = limit + 1
        n = -(-over // stride)
        async with http.post(f"/api/visits/{ev.visit}/documents",
                             json={"articles": [], "chunks": n, "size": over}) as r:
            assert r.status == 413
            assert_error_shape(await r.json(), "too_large")
        async with http.post(f"/api/visits/{ev.visit}/documents",
                             json={"articles": [], "chunks": 2, "size": 100}) as r:
            assert r.status == 400  # two chunks cannot be 100 bytes
    _, version = await ev.start("expert", stride + 20, 2)
    async with ev.http("expert") as http:
        async with http.put(f"/api/versions/{version}/chunks/0", data=io.BytesIO(b"x" * (stride + 1))) as r:
            assert r.status == 413
            assert_error_shape(await r.json(), "too_large")
        async with http.put(f"/api/versions/{version}/chunks/1", data=io.BytesIO(b"x" * 21)) as r:
            assert r.status == 400  # the last chunk is exactly what the size leaves
        async with http.get(f"/api/versions/{version}/upload") as r:
            assert (await r.json())["chunks"] == {}


HOSTILE_INDEXES = ["-1", "abc", "1e3", "99999999999", "0x1", "1.0", "%20", "%2E%2E"]


async def test_hostile_ids_and_indexes(ev: Ev) -> None:
    up = await ev.upload("delegate", b"x", to=("expert",))
    async with ev.http("expert") as http:
        for index in HOSTILE_INDEXES:
            async with http.get(f"/api/versions/{up.version}/chunks/{index}") as r:
                assert r.status in (400, 404), (index, r.status)
                assert_error_shape(await r.json())
        async with http.get(f"/api/versions/{up.version}/chunks/7") as r:
            assert r.status == 404
        for version in ["..", "..%2F..%2Fsecret_key", "%00", "a" * 65, "nope", "-" * 22]:
            for path in (f"/api/versions/{version}/content", f"/api/versions/{version}/chunks/0",
                         f"/api/documents/{version}/audit"):
                async with http.get(path) as r:
                    assert r.status in (400, 404), (path, r.status)
            async with http.delete(f"/api/devices/{version}") as r:
                assert r.status in (400, 404)
    async with ev.http("delegate") as http:
        _, version = await ev.start("delegate", 16, 1)
        for index in HOSTILE_INDEXES:
            async with http.put(f"/api/versions/{version}/chunks/{index}", data=io.BytesIO(b"y" * 16)) as r:
                assert r.status in (400, 404), (index, r.status)
        async with http.put(f"/api/versions/{version}/chunks/1", data=io.BytesIO(b"y" * 16)) as r:
            assert r.status == 400


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/devices", "POST"), ("/api/statements", "POST"), ("/api/visits/{visit}/documents", "POST")],
)
@pytest.mark.parametrize("raw", [b"\xff\xfe{", b"{not json", b"[1,2]", b'{"a": NaN}', b"[" * 100 + b"]" * 100, b""])
async def test_garbage_bodies(ev: Ev, path: str, method: str, raw: bytes) -> None:
    async with ev.http("delegate") as http:
        async with http.request(method, path.format(visit=ev.visit), data=raw,
                                headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, (raw, await r.text())
            text = await r.text()
            assert_no_leak(text)
            assert_error_shape(await r.json(), "invalid")


async def test_outsiders_cannot_tell_a_version_exists(ev: Ev) -> None:
    up = await ev.upload("delegate", b"x", to=("expert",))
    answers = []
    async with http_client(ev.env.server, ev.env.outsider_cookie) as http:
        for version in (up.version, "Zz" + up.version[2:]):
            async with http.get(f"/api/versions/{version}/content") as r:
                answers.append((r.status, await r.json()))
        async with http.get(f"/api/documents/{up.document}/audit") as r:
            answers.append((r.status, await r.json()))
    assert answers[0] == answers[1] == answers[2], answers
    assert answers[0][0] == 404
