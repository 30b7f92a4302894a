"""The evidence room's HTTP API (docs/evidence.md, "Protocol"; docs/api.md, "Evidence").

* Devices, statements, recovery and device links: person routes (``DEVICES_MANAGE``);
  the service decides whose device it is.
* Documents: visit routes; ``/api/versions/{version_id}/...`` and
  ``/api/documents/{document_id}/...`` are guarded in the visit the version or document
  belongs to (``visit_of``), so an outsider is told it does not exist.

A chunk's body is read into one reused buffer of exactly the chunk's length (more than
``chunk_size + 16`` bytes: 413; any other length: 400), hashed and written in place in
the version's file in one thread, and only then recorded (``uploads.put_chunk``); a
download of a whole version is a plain file response with ``Range``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from server.access.guard import PersonScope, VisitScope
from server.access.policy import Action
from server.core.clock import iso_z
from server.core.errors import invalid, not_found, too_large
from server.core.ids import is_id
from server.evidence import devices, reading, sharing, uploads
from server.evidence import service as evidence
from server.evidence.formats import CHUNK_STRIDE, b64u
from server.people.logins import INVITATION, primary_login
from server.web.auth import cookie_tokens, current_logins, set_login_cookie
from server.web.bodies import read_json, validated
from server.web.bus import publish
from server.web.keys import EVIDENCE, SESSIONS, SETTINGS
from server.web.routing import RouteTable

routes = RouteTable()



def _index(request: web.Request) -> int:
    raw = request.match_info["index"]
    if uploads.INDEX.fullmatch(raw) is None:
        raise invalid("index: a chunk index is a whole number from 0.")
    return int(raw)


def _persons(scope: PersonScope) -> set[str]:
    return {person.id for person, _ in scope.logins}


async def _read_chunk(request: web.Request, into: bytearray, length: int, index: int) -> memoryview:
    """The raw body, which must be ``length`` bytes, read into ``into`` (no other copy):
    413 ``too_large`` beyond ``CHUNK_STRIDE`` bytes, as soon as seen; 400 for any other
    length (at once when the request declares it)."""
    def too_long() -> Exception:
        return too_large(f"body: a chunk is at most {CHUNK_STRIDE} bytes.")

    def wrong() -> Exception:
        return invalid(f"body: chunk {index} must be {length} bytes of ciphertext.")

    declared = request.content_length
    if declared is not None and declared > CHUNK_STRIDE:
        raise too_long()
    if declared is not None and declared != length:
        raise wrong()
    view = memoryview(into)[:length]
    filled = 0
    while piece := await request.content.readany():
        end = filled + len(piece)
        if end > length:  # only a body without a declared length gets here
            while end <= CHUNK_STRIDE and (piece := await request.content.readany()):
                end += len(piece)
            raise too_long() if end > CHUNK_STRIDE else wrong()
        view[filled:end] = piece
        filled = end
    if filled != length:
        raise wrong()
    return view


# ---- devices ------------------------------------------------------------------------------


@routes.post("/api/devices", action=Action.DEVICES_MANAGE)
async def create_device(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    """Register a device of the signed-in person: ``{label, sig_alg, sig_pub, enc_pub}``."""
    body = validated(devices.NewDevice, await read_json(request))
    request.app[EVIDENCE].limits.devices.take(scope.person.id)
    async with request.app[SESSIONS]() as db:
        device = await devices.create_device(db, scope.person, body)
        await db.commit()
        return web.json_response({"device": devices.device_json(device)}, status=201)


@routes.route("DELETE", "/api/devices/{device_id}", action=Action.DEVICES_MANAGE)
async def revoke_device(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        events = await devices.revoke_device(db, scope.logins, request.match_info["device_id"])
        await db.commit()
    await publish(request, *events)
    return web.Response(status=204)


@routes.route("PUT", "/api/devices/{device_id}/recovery", action=Action.DEVICES_MANAGE)
async def put_recovery(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    body = validated(devices.Recovery, await read_json(request))
    async with request.app[SESSIONS]() as db:
        blob = await devices.put_recovery(db, _persons(scope), request.match_info["device_id"], body)
        await db.commit()
        return web.json_response(blob.blob)


@routes.get("/api/devices/{device_id}/recovery", action=Action.DEVICES_MANAGE)
async def get_recovery(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        return web.json_response(await devices.get_recovery(db, _persons(scope), request.match_info["device_id"]))


@routes.get("/api/me/recovery", action=Action.DEVICES_MANAGE)
async def my_recovery(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        return web.json_response({"blobs": await devices.my_recovery(db, scope.person.id)})


@routes.post("/api/statements", action=Action.DEVICES_MANAGE)
async def add_statement(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    """``{kind, body, signature}``: 201 with the stored statement (200 if it was already)."""
    body = validated(devices.NewStatement, await read_json(request))
    request.app[EVIDENCE].limits.statements.take(scope.person.id)
    async with request.app[SESSIONS]() as db:
        statement, created = await devices.add_statement(db, _persons(scope), body)
        await db.commit()
        return web.json_response({"statement": devices.statement_json(statement)}, status=201 if created else 200)


@routes.post("/api/me/device-links", action=Action.DEVICES_MANAGE)
async def create_device_link(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    """A one-time link for ``parley client enroll``, with the scope of this login."""
    login = primary_login(scope.logins)
    assert login is not None  # the guard let a signed-in request through
    request.app[EVIDENCE].limits.links.take(scope.person.id)
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        issued = await devices.create_device_link(db, settings.secret_key, login)
        await db.commit()
    return web.json_response(
        {"url": f"{settings.base_url}/api/device-links/{issued.token}", "expires_at": iso_z(issued.expires_at)},
        status=201,
    )


@routes.post("/api/device-links/{token}", action=None)
async def spend_device_link(request: web.Request, _: Any) -> web.StreamResponse:
    """Anyone holding the link (it is the credential): 204 with the new login's cookie;
    410 ``gone`` for a spent, expired or unknown link. Needs an allowed ``Origin``."""
    settings = request.app[SETTINGS]
    held = await current_logins(request)
    async with request.app[SESSIONS]() as db:
        spent = await devices.spend_device_link(
            db, settings.secret_key, request.match_info["token"], user_agent=request.headers.get("User-Agent", "")
        )
        await db.commit()
    keep = [f for f in held if not (f[1].via == INVITATION and f[1].visit_id == spent.login.visit_id
                                    and spent.login.visit_id is not None)]
    response = web.Response(status=204)
    set_login_cookie(request, response, [*cookie_tokens(request, keep), spent.token])
    return response


# ---- keys and documents of a visit -----------------------------------------------------------


@routes.get("/api/visits/{visit_id}/keys", action=Action.EVIDENCE_VIEW)
async def visit_keys(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        return web.json_response(await reading.visit_keys(db, scope.actor))


@routes.post("/api/visits/{visit_id}/documents", action=Action.EVIDENCE_UPLOAD)
async def create_version(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Start a document (or a new version of one): 201 ``{document, version, chunk_size}``."""
    body = validated(evidence.NewVersion, await read_json(request))
    runtime = request.app[EVIDENCE]
    runtime.limits.versions.take(scope.actor.person_id)
    async with request.app[SESSIONS]() as db:
        document, version = await uploads.create_version(db, scope.actor, body, max_bytes=runtime.max_bytes)
        await db.commit()
        return web.json_response(
            {"document": document.id, "version": version.id, "chunk_size": version.chunk_size}, status=201
        )


@routes.get("/api/visits/{visit_id}/documents", action=Action.EVIDENCE_VIEW)
async def list_documents(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    session = request.query.get("session")
    if session is not None and not is_id(session):
        raise not_found("Session")
    async with request.app[SESSIONS]() as db:
        return web.json_response({"documents": await reading.list_documents(db, scope.actor, session)})


@routes.get("/api/visits/{visit_id}/pending", action=Action.EVIDENCE_VIEW)
async def pending(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        return web.json_response({"pending": await sharing.pending(db, scope.actor)})


# ---- one version --------------------------------------------------------------------------

_VERSION = evidence.visit_of_version


@routes.route("PUT", "/api/versions/{version_id}/chunks/{index}", action=Action.EVIDENCE_UPLOAD,
              visit_of=uploads.chunk_lookup)
async def put_chunk(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Raw ciphertext of one chunk: 201 ``{index, sha256}`` once on disk; the same bytes
    again 200; other bytes 409. The guard's one lookup (``uploads.chunk_lookup``) found
    the version and any stored chunk; nothing else is read before the body."""
    target = uploads.chunk_target(scope, _index(request))
    runtime = request.app[EVIDENCE]
    buffer = runtime.buffers.take()
    try:
        data = await _read_chunk(request, buffer, target.length, target.index)
        stored = await uploads.put_chunk(request.app[SESSIONS], runtime.store, runtime.writes, target, data)
    except asyncio.CancelledError:
        raise  # a thread may still be reading the buffer: it is not reused
    except BaseException:
        runtime.buffers.give(buffer)
        raise
    runtime.buffers.give(buffer)
    return web.json_response({"index": stored.index, "sha256": b64u(stored.sha256)},
                             status=201 if stored.created else 200)


@routes.get("/api/versions/{version_id}/upload", action=Action.EVIDENCE_UPLOAD, visit_of=_VERSION)
async def upload_state(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        return web.json_response(await uploads.upload_state(db, scope.actor, request.match_info["version_id"]))


@routes.route("PUT", "/api/versions/{version_id}/keys", action=Action.EVIDENCE_UPLOAD, visit_of=_VERSION)
async def put_keys(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    body = validated(evidence.KeysBody, await read_json(request))
    async with request.app[SESSIONS]() as db:
        keys = await uploads.put_keys(db, scope.actor, request.match_info["version_id"], body)
        await db.commit()
    return web.json_response({"keys": keys})


@routes.post("/api/versions/{version_id}/complete", action=Action.EVIDENCE_UPLOAD, visit_of=_VERSION)
async def complete(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    body = validated(evidence.CompleteBody, await read_json(request))
    async with request.app[SESSIONS]() as db:
        done = await uploads.complete(db, scope.actor, request.match_info["version_id"], body)
        await db.commit()
    store = request.app[EVIDENCE].store
    for version_id in done.purge:  # after the commit: a failed commit keeps the old ciphertext
        await asyncio.to_thread(store.delete, version_id)
    await publish(request, *done.events)
    return web.json_response({"document": done.document.id, "version": done.version.id})


@routes.get("/api/versions/{version_id}/content", action=Action.EVIDENCE_VIEW, visit_of=_VERSION)
async def content(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The ciphertext of every chunk in order (``Range`` supported); audited."""
    async with request.app[SESSIONS]() as db:
        found = await reading.open_download(
            db, scope.actor, request.match_info["version_id"], range_header=request.headers.get("Range")
        )
        await db.commit()
    store = request.app[EVIDENCE].store
    path = await asyncio.to_thread(store.local_path, found.version.id)
    if path is None:
        raise not_found("Document content")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


@routes.get("/api/versions/{version_id}/chunks/{index}", action=Action.EVIDENCE_VIEW, visit_of=_VERSION)
async def get_chunk(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    index = _index(request)
    runtime = request.app[EVIDENCE]
    version_id = request.match_info["version_id"]
    async with request.app[SESSIONS]() as db:
        found = await reading.open_download(db, scope.actor, version_id, chunk=index, audit_it=False)
        if runtime.audit_chunk_due(scope.actor.person_id, version_id):
            await reading.record_download(db, scope.actor, found, chunk=index)
            await db.commit()
    version = found.version
    data = await asyncio.to_thread(
        runtime.store.read, version.id, evidence.chunk_offset(version, index), evidence.chunk_length(version, index)
    )
    return web.Response(body=data, content_type="application/octet-stream")


@routes.post("/api/versions/{version_id}/shares", action=Action.EVIDENCE_SHARE, visit_of=_VERSION)
async def share(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    body = validated(evidence.ShareBody, await read_json(request))
    async with request.app[SESSIONS]() as db:
        events = await sharing.share(db, scope.actor, request.match_info["version_id"], body)
        await db.commit()
    await publish(request, *events)
    return web.json_response({"version": request.match_info["version_id"]}, status=201)


@routes.get("/api/documents/{document_id}/audit", action=Action.EVIDENCE_AUDIT, visit_of=evidence.visit_of_document)
async def document_audit(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        entries = await reading.document_audit(db, scope.actor, request.match_info["document_id"])
    return web.json_response({"entries": entries})
