"""How the policy matrix calls the evidence routes (merged into test_policy_matrix).

The evidence routes are decided by the policy and then by the data (holding a key,
being the uploader), so each placeholder prepares what an allowed caller needs:

* ``{device_id}``: a fresh device of the caller (with a recovery blob);
* ``{version_id}``: for the upload routes, an upload the caller started (the
  secretariat's when the caller may not upload); for ``complete``, one with its chunk
  and keys sent; for downloads and shares, a complete version the secretariat uploaded
  for its own devices and the caller's;
* ``{document_id}``: a document the caller started (the secretariat's for the others).

Bodies that must be signed by the caller's device are built by ``KEYED_BODIES`` after
the placeholders, from what they prepared.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from server.access.policy import Action, decide
from server.access.roles import Role
from server.evidence import formats
from server.evidence.models import Device, RecoveryBlob
from server.people.models import Membership
from tests.conftest import http_client
from tests.evidence import crypto
from tests.evidence.crypto import DeviceKeys, b64u

Body = Callable[[Any, Any], Any]
# (env, actor key, session, method, path) -> value for a placeholder
RoutePlaceholder = Callable[[Any, str, Any, str, str], Awaitable[str]]
# (env, actor key, session) -> body, after the placeholders were filled
KeyedBody = Callable[[Any, str, Any], Awaitable[Any]]

_state: dict[tuple[int, str], dict[str, Any]] = {}


def _mine(env: Any, key: str) -> dict[str, Any]:
    return _state.setdefault((id(env), key), {})


def _no_body(env: Any, session: Any) -> None:
    return None


def _new_device_body(env: Any, session: Any) -> dict[str, str]:
    return DeviceKeys.new().register_body("Matrix laptop")


def _new_document_body(env: Any, session: Any) -> dict[str, Any]:
    return {"articles": ["5"], "chunks": 1, "size": 16}


def _chunk_body(env: Any, session: Any) -> bytes:
    return b"c" * 16


async def _device(env: Any, key: str, *, blob: bool = False) -> DeviceKeys:
    """A new device of the member, written straight to the database."""
    keys = DeviceKeys.new()
    keys.person = env.world.members[key].person_id
    async with env.sessions() as db:
        row = Device(person_id=keys.person, label="Matrix device", sig_alg=keys.sig_alg, sig_pub=keys.sig_pub,
                     enc_pub=keys.enc_pub, fingerprint=formats.fingerprint(keys.person, keys.sig_alg, keys.sig_pub,
                                                                           keys.enc_pub))
        db.add(row)
        await db.flush()
        keys.id = row.id
        if blob:
            db.add(RecoveryBlob(device_id=row.id, blob=_blob(row.id)))
        await db.commit()
    return keys


def _blob(device_id: str) -> dict[str, Any]:
    return {"v": 1, "kdf": "hkdf-sha256", "salt": b64u(b"s" * 16), "nonce": b64u(b"n" * 12),
            "ciphertext": b64u(b"c" * 64), "device": device_id}


async def _own(env: Any, key: str) -> DeviceKeys:
    state = _mine(env, key)
    if "device" not in state:
        state["device"] = await _device(env, key)
    device: DeviceKeys = state["device"]
    return device


async def _secretariat_devices(env: Any) -> list[dict[str, Any]]:
    """Every live device of the visit's secretariat (their public keys suffice to wrap)."""
    async with env.sessions() as db:
        rows = await db.execute(
            select(Device).join(Membership, Membership.person_id == Device.person_id).where(
                Membership.visit_id == env.world.visit_id, Membership.role == Role.SECRETARIAT,
                Device.revoked_at.is_(None))
        )
        return [{"id": d.id, "person": d.person_id, "enc_pub": d.enc_pub, "fp": b64u(d.fingerprint)}
                for d in rows.scalars()]


async def _upload(env: Any, uploader_key: str, *, extra: list[DeviceKeys], complete: bool) -> dict[str, Any]:
    """Start, send the chunk and the keys, and (if asked) complete an upload as a member."""
    uploader = await _own(env, uploader_key)
    recipients = {d["id"]: d for d in await _secretariat_devices(env)}
    for d in [uploader, *extra]:
        recipients[d.id] = {"id": d.id, "person": d.person, "enc_pub": d.enc_pub, "fp": d.fp}
    plaintext = b"matrix evidence"
    async with http_client(env.server, env.cookies[uploader_key]) as http:
        async with http.post(f"/api/visits/{env.world.visit_id}/documents",
                             json={"articles": [], "chunks": 1, "size": len(plaintext) + 16}) as r:
            assert r.status == 201, await r.text()
            made = await r.json()
        version, document = made["version"], made["document"]
        sealed = crypto.seal(version, plaintext, {"name": "m", "type": "t", "size": 15, "description": ""})
        async with http.put(f"/api/versions/{version}/chunks/0", data=io.BytesIO(sealed.chunks[0])) as r:
            assert r.status == 201, await r.text()
        keys = [{"device": d["id"], "wrapped": b64u(crypto.wrap(sealed.key, d["enc_pub"], env.world.visit_id,
                                                                 version, d["id"]))} for d in recipients.values()]
        async with http.put(f"/api/versions/{version}/keys", json={"keys": keys}) as r:
            assert r.status == 200, await r.text()
        value = crypto.manifest(sealed, visit=env.world.visit_id, document=document, version=version,
                                uploader=uploader, recipients=[{"device": d["id"], "fp": d["fp"],
                                                                "person": d["person"]}
                                                               for d in recipients.values()])
        body = {**crypto.signed(value, uploader), "meta": b64u(sealed.meta)}
        if complete:
            async with http.post(f"/api/versions/{version}/complete", json=body) as r:
                assert r.status == 200, await r.text()
    return {"version": version, "document": document, "complete_body": body, "key": sealed.key,
            "manifest": body["manifest"]}


def _may_upload(env: Any, key: str) -> bool:
    return decide(Action.EVIDENCE_UPLOAD, env.world.members[key].role)


async def _start(env: Any, key: str) -> dict[str, Any]:
    owner = key if _may_upload(env, key) else "secretariat"
    async with http_client(env.server, env.cookies[owner]) as http:
        async with http.post(f"/api/visits/{env.world.visit_id}/documents", json=_new_document_body(env, None)) as r:
            assert r.status == 201, await r.text()
            made: dict[str, Any] = await r.json()
            return made


async def _version_id(env: Any, key: str, session: Any, method: str, path: str) -> str:
    state = _mine(env, key)
    if path.endswith("/complete"):
        owner = key if _may_upload(env, key) else "secretariat"
        staged = await _upload(env, owner, extra=[], complete=False)
        state["complete_body"] = staged["complete_body"]
        return str(staged["version"])
    if path.endswith(("/content", "/shares")) or (path.endswith("/chunks/{index}") and method == "GET"):
        mine = await _own(env, key)
        staged = await _upload(env, "secretariat", extra=[mine], complete=True)
        if path.endswith("/shares"):
            target = await _device(env, "secretariat")  # a late device of the secretariat: entitled
            body = crypto.share_body(staged["version"], staged["manifest"], mine, [target.recipient()])
            text = crypto.canonical(body)
            wrapped = crypto.wrap(staged["key"], target.enc_pub, env.world.visit_id, staged["version"], target.id)
            state["share_body"] = {"body": text, "signature": b64u(mine.sign(text.encode())),
                                   "keys": [{"device": target.id, "wrapped": b64u(wrapped)}]}
        return str(staged["version"])
    return str((await _start(env, key))["version"])


async def _document_id(env: Any, key: str, session: Any, method: str, path: str) -> str:
    return str((await _start(env, key))["document"])


async def _device_id(env: Any, key: str, session: Any, method: str, path: str) -> str:
    device = await _device(env, key, blob=True)
    _mine(env, key)["recovery_device"] = device.id
    return device.id


async def _index(env: Any, key: str, session: Any, method: str, path: str) -> str:
    return "0"


async def _recovery_body(env: Any, key: str, session: Any) -> dict[str, Any]:
    return _blob(_mine(env, key).get("recovery_device", "none"))


async def _statement_body(env: Any, key: str, session: Any) -> dict[str, str]:
    signer = await _own(env, key)
    subject = await _device(env, key)
    return crypto.statement("cross-sign", signer, {"id": subject.id, "fingerprint": subject.fp,
                                                   "person": subject.person})


async def _keys_body(env: Any, key: str, session: Any) -> dict[str, Any]:
    mine = await _own(env, key)
    return {"keys": [{"device": mine.id, "wrapped": b64u(bytes(80))}]}


async def _complete_body(env: Any, key: str, session: Any) -> Any:
    return _mine(env, key).get("complete_body")


async def _share_body(env: Any, key: str, session: Any) -> Any:
    return _mine(env, key).get("share_body")


# (method, path) -> body builder (env, session) -> JSON body, raw bytes, or None
ROUTE_CALLS: dict[tuple[str, str], Body] = {
    ("POST", "/api/devices"): _new_device_body,
    ("DELETE", "/api/devices/{device_id}"): _no_body,
    ("PUT", "/api/devices/{device_id}/recovery"): _no_body,  # KEYED_BODIES
    ("GET", "/api/devices/{device_id}/recovery"): _no_body,
    ("GET", "/api/me/recovery"): _no_body,
    ("POST", "/api/statements"): _no_body,  # KEYED_BODIES
    ("POST", "/api/me/device-links"): _no_body,
    ("GET", "/api/visits/{visit_id}/keys"): _no_body,
    ("POST", "/api/visits/{visit_id}/documents"): _new_document_body,
    ("GET", "/api/visits/{visit_id}/documents"): _no_body,
    ("GET", "/api/visits/{visit_id}/pending"): _no_body,
    ("PUT", "/api/versions/{version_id}/chunks/{index}"): _chunk_body,
    ("GET", "/api/versions/{version_id}/upload"): _no_body,
    ("PUT", "/api/versions/{version_id}/keys"): _no_body,  # KEYED_BODIES
    ("POST", "/api/versions/{version_id}/complete"): _no_body,  # KEYED_BODIES
    ("GET", "/api/versions/{version_id}/content"): _no_body,
    ("GET", "/api/versions/{version_id}/chunks/{index}"): _no_body,
    ("POST", "/api/versions/{version_id}/shares"): _no_body,  # KEYED_BODIES
    ("GET", "/api/documents/{document_id}/audit"): _no_body,
    ("GET", "/visits/{visit_id}/evidence"): _no_body,  # the evidence room's page
}
KEYED_BODIES: dict[tuple[str, str], KeyedBody] = {
    ("PUT", "/api/devices/{device_id}/recovery"): _recovery_body,
    ("POST", "/api/statements"): _statement_body,
    ("PUT", "/api/versions/{version_id}/keys"): _keys_body,
    ("POST", "/api/versions/{version_id}/complete"): _complete_body,
    ("POST", "/api/versions/{version_id}/shares"): _share_body,
}
# (method, path) of routes with action=None (they check what they need themselves)
PUBLIC_ROUTES: set[tuple[str, str]] = {("POST", "/api/device-links/{token}")}
ROUTE_PLACEHOLDERS: dict[str, RoutePlaceholder] = {
    "version_id": _version_id,
    "document_id": _document_id,
    "device_id": _device_id,
    "index": _index,
}
