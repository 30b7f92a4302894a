"""Older versions of a document stay readable for whoever held their keys: the
documents listing gives every kept version in full (manifest, sealed metadata, shares,
the caller's own wrapped keys, its uploader), not only the current one."""

from __future__ import annotations

import pytest

from tests.evidence import crypto
from tests.evidence.conftest import Ev
from tests.evidence.crypto import b64u, unb64u

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_every_kept_version_is_listed_with_the_callers_keys_and_its_uploader(ev: Ev) -> None:
    expert = await ev.first("expert")
    first = await ev.upload("delegate", b"first text", to=("expert",))
    # A device that appears after the first version: it is keyed for the second only.
    tablet = await ev.device("expert", label="Tablet")
    second = await ev.upload("secretariat", b"second text", to=("expert", "delegate"), document=first.document)
    # A share of the older version is listed with it.
    holder = ev.devices["delegate"][0]
    body = crypto.share_body(first.version, first.manifest, holder, [tablet.recipient()])
    text = crypto.canonical(body)
    wrapped = b64u(crypto.wrap(first.sealed.key, tablet.enc_pub, ev.visit, first.version, tablet.id))
    async with ev.http("delegate") as http, http.post(f"/api/versions/{first.version}/shares", json={
        "body": text, "signature": b64u(holder.sign(text.encode())), "keys": [{"device": tablet.id, "wrapped": wrapped}],
    }) as r:
        assert r.status == 201, await r.text()

    listed = (await ev.documents("expert"))[first.document]
    assert listed["uploader"]["person"] == ev.person("delegate")  # the document's first uploader
    newest, older = listed["versions"]
    assert newest["id"] == second.version
    assert {k: newest[k] for k in listed["version"]} == listed["version"]  # the current version, as before
    assert newest["uploader"]["person"] == ev.person("secretariat")
    assert newest["uploader"]["name"] == "Secretariat Person"
    assert older["id"] == first.version and older["manifest"] == first.manifest
    assert older["uploader"] == {"person": ev.person("delegate"), "name": "Delegate Person", "delegation": "Colombia",
                                 "device": ev.devices["delegate"][0].id}
    assert older["completed_at"] and older["chunks"] == 1
    assert [s["body"] for s in older["shares"]] == [text] and newest["shares"] == []
    # Only the caller's own devices' keys, per version.
    assert sorted(k["device"] for k in older["keys"]) == sorted([expert.id, tablet.id])
    assert sorted(k["device"] for k in newest["keys"]) == sorted([expert.id, tablet.id])
    key = crypto.unwrap(unb64u(next(k for k in older["keys"] if k["device"] == expert.id)["wrapped"]),
                        expert, ev.visit, first.version)
    assert crypto.open_meta(key, first.version, unb64u(older["meta"]))["name"] == "ley-1474.pdf"
    async with ev.http("expert") as http, http.get(f"/api/versions/{first.version}/content") as r:
        assert r.status == 200
        assert crypto.open_chunks(key, first.version, [await r.read()]) == b"first text"

    # Someone entitled who never held the older version's key sees it listed, keyless, and may not read it.
    late = await ev.first("expert2")
    third = await ev.upload("delegate", b"third text", to=("expert", "expert2"), document=first.document)
    listed = (await ev.documents("expert2"))[first.document]
    assert [v["id"] for v in listed["versions"]] == [third.version, second.version, first.version]
    assert [[k["device"] for k in v["keys"]] for v in listed["versions"]] == [[late.id], [], []]
    async with ev.http("expert2") as http, http.get(f"/api/versions/{first.version}/content") as r:
        assert r.status == 403
