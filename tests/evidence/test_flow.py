"""The whole path of a document, on SQLite and PostgreSQL: upload, list, download
(whole, by Range, by chunk) and decrypt with the test client; resumption; a new
version and a re-key; the audit trail; what the server stores is only ciphertext."""

from __future__ import annotations

import hashlib
import io
import json
import os

import pytest
from sqlalchemy import select, text

from server.audit.models import AuditEntry
from server.evidence.models import DocumentVersion, VersionChunk, WrappedKey
from tests.evidence import crypto
from tests.evidence.conftest import Ev
from tests.evidence.crypto import b64u, unb64u

pytestmark = pytest.mark.asyncio(loop_scope="module")

CANARY = b"CANARY-7f3c-plaintext-never-on-the-server"
META_CANARY = "CANARY-name-of-the-secret-file.pdf"


async def test_upload_list_download_and_decrypt(ev_both: Ev) -> None:
    ev = ev_both
    plaintext = os.urandom(crypto.CHUNK + 1000) + CANARY  # two chunks, the last one short
    up = await ev.upload("delegate", plaintext, to=("expert",),
                         meta={"name": META_CANARY, "type": "application/pdf", "size": len(plaintext),
                               "description": "Statistics on confiscation"})
    listed = (await ev.documents("expert"))[up.document]
    assert listed["uploader"]["person"] == ev.person("delegate")
    assert listed["uploader"]["delegation"] == "Colombia"
    assert listed["articles"] == ["5", "52.1"] and listed["session"] is None
    version = listed["version"]
    assert version["id"] == up.version and version["chunks"] == 2 and version["size"] == up.sealed.size
    assert version["manifest"] == up.manifest
    expert = ev.devices["expert"][0]
    assert [k["device"] for k in version["keys"]] == [expert.id]  # only the caller's own devices

    # The reader's checks: signature, own entry, commitment, hashes, metadata.
    manifest = json.loads(version["manifest"])
    assert crypto.canonical(manifest) == version["manifest"]
    key = crypto.unwrap(unb64u(version["keys"][0]["wrapped"]), expert, ev.visit, up.version)
    assert crypto.commitment(key, up.version) == unb64u(manifest["commit"])
    assert crypto.open_meta(key, up.version, unb64u(version["meta"]))["name"] == META_CANARY

    async with ev.http("expert") as http:
        async with http.get(f"/api/versions/{up.version}/content") as r:
            assert r.status == 200 and r.content_type == "application/octet-stream"
            body = await r.read()
        assert body == b"".join(up.sealed.chunks)
        chunks = [body[: crypto.CHUNK + 16], body[crypto.CHUNK + 16:]]
        assert [b64u(hashlib.sha256(c).digest()) for c in chunks] == manifest["chunk_hashes"]
        assert crypto.open_chunks(key, up.version, chunks) == plaintext

        async with http.get(f"/api/versions/{up.version}/content", headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206 and await r.read() == body[100:200]
        async with http.get(f"/api/versions/{up.version}/content", headers={"Range": f"bytes={len(body) - 10}-"}) as r:
            assert r.status == 206 and await r.read() == body[-10:]
        async with http.get(f"/api/versions/{up.version}/chunks/1") as r:
            assert r.status == 200 and await r.read() == chunks[1]
        async with http.get(f"/api/versions/{up.version}/chunks/2") as r:
            assert r.status == 404

    # The uploader's resumption view, and the completed upload refusing more chunks.
    async with ev.http("delegate") as http:
        async with http.get(f"/api/versions/{up.version}/upload") as r:
            state = await r.json()
        assert state["complete"] is True and state["chunks"] == {
            "0": manifest["chunk_hashes"][0], "1": manifest["chunk_hashes"][1]}
        async with http.put(f"/api/versions/{up.version}/chunks/0", data=io.BytesIO(up.sealed.chunks[0])) as r:
            assert r.status == 409

    # The server keeps ciphertext only: the stored file is exactly what was uploaded, and
    # neither the plaintext canary nor the file name appears in the database or on disk.
    stored = (ev.env.settings.evidence_dir / up.version[:2] / f"{up.version}.bin").read_bytes()
    assert stored == b"".join(up.sealed.chunks)
    assert (ev.env.settings.evidence_dir / up.version[:2] / f"{up.version}.bin").stat().st_mode & 0o777 == 0o600
    await assert_absent(ev, [CANARY, META_CANARY.encode()])

    async with ev.http("delegate") as http, http.get(f"/api/documents/{up.document}/audit") as r:
        assert r.status == 200, await r.text()
        entries = (await r.json())["entries"]
    actions = [e["action"] for e in entries]
    assert actions[0] == "evidence.uploaded" and "evidence.downloaded" in actions
    assert entries[0]["actor"]["name"] == "Delegate Person"


async def assert_absent(ev: Ev, needles: list[bytes]) -> None:
    for path in ev.env.settings.evidence_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(n in data for n in needles), path
    async with ev.env.sessions() as db:
        if ev.env.backend == "sqlite":
            db_file = ev.env.settings.database_url.split("///", 1)[1]
            await db.execute(text("PRAGMA wal_checkpoint(FULL)"))
            with open(db_file, "rb") as handle:
                data = handle.read()
            assert not any(n in data for n in needles)
        tables = ["document", "document_version", "version_chunk", "wrapped_key", "document_share", "audit_entry",
                  "device", "device_statement"]
        for table in tables:
            rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
            dump = repr(rows).encode()
            assert not any(n in dump for n in needles), table


async def test_resumed_upload_and_chunk_conflicts(ev_both: Ev) -> None:
    ev = ev_both
    device = await ev.first("expert")
    plaintext = os.urandom(2 * crypto.CHUNK + 5)
    n = crypto.chunk_count(len(plaintext))
    document, version = await ev.start("expert", len(plaintext) + 16 * n, n)
    sealed = crypto.seal(version, plaintext, {"name": "x", "type": "t", "size": 1, "description": ""})
    async with ev.http("expert") as http:
        async with http.put(f"/api/versions/{version}/chunks/2", data=io.BytesIO(sealed.chunks[2])) as r:
            assert r.status == 201 and (await r.json())["sha256"] == b64u(hashlib.sha256(sealed.chunks[2]).digest())
        async with http.put(f"/api/versions/{version}/chunks/2", data=io.BytesIO(sealed.chunks[2])) as r:
            assert r.status == 200  # the same bytes again
        other = bytes([sealed.chunks[2][0] ^ 1]) + sealed.chunks[2][1:]
        async with http.put(f"/api/versions/{version}/chunks/2", data=io.BytesIO(other)) as r:
            assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"
        async with http.put(f"/api/versions/{version}/chunks/0", data=io.BytesIO(sealed.chunks[0][:-1])) as r:
            assert r.status == 400  # a chunk but the last fills its slot
        async with http.get(f"/api/versions/{version}/upload") as r:
            state = await r.json()
        assert state["chunks"] == {"2": b64u(hashlib.sha256(sealed.chunks[2]).digest())}
        assert state["keys"] == [] and state["complete"] is False
        # Completing early names what is missing.
        value = crypto.manifest(sealed, visit=ev.visit, document=document, version=version, uploader=device,
                                recipients=[device.recipient()])
        async with http.post(f"/api/versions/{version}/complete",
                             json={**crypto.signed(value, device), "meta": b64u(sealed.meta)}) as r:
            assert r.status == 409 and "0, 1" in (await r.json())["error"]["message"]
        # Someone else's upload does not exist for them.
    async with ev.http("secretariat") as http, http.get(f"/api/versions/{version}/upload") as r:
        assert r.status == 404


async def test_new_version_and_rekey(ev_both: Ev) -> None:
    ev = ev_both
    first = await ev.upload("delegate", b"first text", to=("expert",))
    second = await ev.upload("delegate", b"second text", to=("expert",), document=first.document)
    listed = (await ev.documents("expert"))[first.document]
    assert listed["version"]["id"] == second.version
    assert [v["id"] for v in listed["versions"]] == [second.version, first.version]
    async with ev.http("expert") as http, http.get(f"/api/versions/{first.version}/content") as r:
        assert r.status == 200  # replaced, still readable

    third = await ev.upload("delegate", b"second text", to=("expert",), document=first.document, rekey=True)
    listed = (await ev.documents("expert"))[first.document]
    assert [v["id"] for v in listed["versions"]] == [third.version]
    async with ev.env.sessions() as db:
        for old in (first.version, second.version):
            row = await db.get(DocumentVersion, old)
            assert row is not None and row.replaced_at is not None and row.purged_at is not None
            assert not (await db.execute(select(WrappedKey).where(WrappedKey.version_id == old))).all()
            assert not (await db.execute(select(VersionChunk).where(VersionChunk.version_id == old))).all()
        uploaded = (await db.execute(select(AuditEntry).where(
            AuditEntry.action == "evidence.uploaded", AuditEntry.subject == first.document)
            .order_by(AuditEntry.seq))).scalars().all()
    assert set(uploaded[-1].data["purged"]) == {first.version, second.version}
    for old in (first.version, second.version):
        assert not (ev.env.settings.evidence_dir / old[:2] / f"{old}.bin").exists()
        async with ev.http("expert") as http, http.get(f"/api/versions/{old}/content") as r:
            assert r.status == 404
