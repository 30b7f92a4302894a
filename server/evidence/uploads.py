"""Uploads: a new version, its chunks (durable before they are acknowledged), its
wrapped keys, and completion against the signed manifest (docs/evidence.md)."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.access.guard import Actor, Lookup, VisitScope
from server.access.roles import Role
from server.agenda.models import AgendaItem, AgendaSession
from server.audit import service as audit
from server.core.clock import utcnow
from server.core.errors import conflict, forbidden, invalid, not_found, too_large
from server.core.events import DomainEvent
from server.evidence import formats
from server.evidence.blobs import BlobStore, Chunk
from server.evidence.checks import (
    MANIFEST_FIELDS,
    check_entitled,
    check_secretariat,
    hash_list,
    int_field,
    live_device_counts,
    recipient_devices,
    signed_body,
    str_field,
)
from server.evidence.formats import CHUNK_SIZE, WRAPPED_BYTES, b64u
from server.evidence.models import (
    Device,
    Document,
    DocumentVersion,
    VersionChunk,
    WrappedKey,
)
from server.evidence.service import (
    ChunkWrites,
    CompleteBody,
    EvidenceShared,
    KeyEntry,
    KeysBody,
    NewVersion,
    b64u_field,
    check_geometry,
    chunk_length,
    find_version,
    members,
    meta_field,
    session_of,
)
from server.people.models import Membership

INDEX = re.compile(r"[0-9]{1,9}")  # a chunk index in a path

async def own_upload(db: AsyncSession, actor: Actor, version_id: str) -> tuple[DocumentVersion, Document]:
    """A version the actor is uploading (someone else's upload does not exist for them)."""
    version, document = await find_version(db, actor.visit_id, version_id)
    if version.uploader_person_id != actor.person_id:
        raise not_found("Document version")
    return version, document


def open_upload(version: DocumentVersion) -> None:
    if version.complete:
        raise conflict("This version is complete; start a new version to change it.")


# ---- upload -------------------------------------------------------------------------------


async def create_version(
    db: AsyncSession, actor: Actor, body: NewVersion, *, max_bytes: int
) -> tuple[Document, DocumentVersion]:
    """A new document (or a new version of one): its id binds all its cryptography."""
    if body.size > max_bytes:
        raise too_large(f"size: a document version may have at most {max_bytes} bytes of ciphertext.")
    check_geometry(body.chunks, body.size)
    meta = meta_field(body.meta) if body.meta is not None else None
    if body.document is not None:
        document = await db.get(Document, body.document)
        if document is None or document.visit_id != actor.visit_id:
            raise not_found("Document")
        session = await session_of(db, document)
        if body.session not in (None, document.session_id) or body.item not in (None, document.item_id):
            raise invalid("session, item: a new version keeps its document's session and item.")
        await may_add_version(db, actor, document, session)
    else:
        if body.rekey:
            raise invalid("rekey: only for a new version of an existing document.")
        session, item_id = await placement(db, actor, body.session, body.item)
        document = Document(
            visit_id=actor.visit_id, session_id=session.id if session else None, item_id=item_id,
            articles=list(dict.fromkeys(a.strip() for a in body.articles)), uploader_person_id=actor.person_id,
            created_at=utcnow(),
        )
        db.add(document)
        await db.flush()
    version = DocumentVersion(
        document_id=document.id, uploader_person_id=actor.person_id, created_at=utcnow(), chunk_size=CHUNK_SIZE,
        chunks=body.chunks, size=body.size, meta=meta, rekey=body.rekey,
    )
    db.add(version)
    await db.flush()
    return document, version


async def placement(
    db: AsyncSession, actor: Actor, session_id: str | None, item_id: str | None
) -> tuple[AgendaSession | None, str | None]:
    session = None
    if item_id is not None:
        item = await db.get(AgendaItem, item_id)
        if item is None:
            raise not_found("Agenda item")
        if session_id is not None and item.session_id != session_id:
            raise invalid("item: not an item of that session.")
        session_id = item.session_id
    if session_id is not None:
        session = await db.get(AgendaSession, session_id)
        if session is None or session.visit_id != actor.visit_id or session.cancelled_at is not None:
            raise not_found("Session")
        me = (await members(db, actor.visit_id, session)).get(actor.person_id)
        if me is None or not me.sees_session:
            raise not_found("Session")
    return session, item_id


async def may_add_version(db: AsyncSession, actor: Actor, document: Document, session: AgendaSession | None) -> None:
    """The document's uploader, their delegation, or the secretariat add versions."""
    me = (await members(db, actor.visit_id, session)).get(actor.person_id)
    if me is None or not me.sees_session:
        raise not_found("Document")
    if actor.role == Role.SECRETARIAT or document.uploader_person_id == actor.person_id:
        return
    uploader = await db.execute(
        select(Membership.delegation_id).where(
            Membership.visit_id == document.visit_id, Membership.person_id == document.uploader_person_id
        )
    )
    if me.delegation_id is None or uploader.scalar_one_or_none() != me.delegation_id:
        raise forbidden("Only the uploader's delegation or the secretariat add versions of this document.")


def _chunk_params(match: Mapping[str, str]) -> dict[str, Any]:
    raw = match.get("index", "")
    return {"version_id": match["version_id"], "index": int(raw) if INDEX.fullmatch(raw) else -1}


# The guard's lookup for ``PUT /api/versions/{version_id}/chunks/{index}``: the version,
# its document's visit and the stored chunk's hash (None when there is none, or when
# the index is not a number: the handler refuses that index), with the membership
# check in the same query.
chunk_lookup = Lookup(
    select(DocumentVersion, Document.visit_id, VersionChunk.sha256)
    .join(Document, Document.id == DocumentVersion.document_id)
    .outerjoin(VersionChunk, (VersionChunk.version_id == DocumentVersion.id)
               & (VersionChunk.index == bindparam("index")))
    .where(DocumentVersion.id == bindparam("version_id")),
    Document.visit_id,
    _chunk_params,
)
_INSERT_CHUNK = insert(VersionChunk)


@dataclass(frozen=True)
class ChunkTarget:
    """Where a chunk goes, as the guard's lookup found it before its body was read."""

    version_id: str
    index: int
    size: int  # the version's ciphertext in all
    length: int  # what this chunk must be
    stored: bytes | None  # the hash of the chunk already stored, if one was
    read_at: float  # when that was read (``time.monotonic()``)


def chunk_target(scope: VisitScope, index: int) -> ChunkTarget:
    """Before reading a chunk's body, from the guard's lookup (``chunk_lookup``): the
    actor's own open upload, and an index inside it."""
    version, _, stored = scope.target
    if not isinstance(version, DocumentVersion) or version.uploader_person_id != scope.actor.person_id:
        raise not_found("Document version")
    open_upload(version)
    if index >= version.chunks:
        raise invalid(f"index: this version has {version.chunks} chunks (0 to {version.chunks - 1}).")
    return ChunkTarget(version.id, index, version.size, chunk_length(version, index), stored, scope.read_at)


@dataclass(frozen=True)
class StoredChunk:
    index: int
    sha256: bytes
    created: bool


def hash_and_write(store: BlobStore, target: ChunkTarget, data: Chunk, stored: bytes | None) -> bytes:
    """In a thread: the chunk's SHA-256, then its bytes in place, durable, unless other
    bytes are stored for it (the caller refuses those). The same bytes as stored are
    written again: harmless, and it repairs a slot that a writer in another process
    overwrote (docs/evidence.md, "Storage")."""
    digest = hashlib.sha256(data).digest()
    if stored is None or stored == digest:
        store.put_chunk(target.version_id, target.index, data, size=target.size)
    return digest


async def stored_hash(db: AsyncSession, version_id: str, index: int) -> bytes | None:
    found = await db.execute(
        select(VersionChunk.sha256).where(VersionChunk.version_id == version_id, VersionChunk.index == index)
    )
    return found.scalar_one_or_none()


async def record_chunk(sessions: async_sessionmaker[AsyncSession], target: ChunkTarget, digest: bytes) -> bool:
    """The chunk's row, in a transaction of its own once its bytes are on disk: True when
    this added it, False when the same chunk was already recorded; ``conflict`` when
    other bytes were."""
    async with sessions() as db:
        try:
            await db.execute(_INSERT_CHUNK, {"version_id": target.version_id, "index": target.index,
                                             "sha256": digest, "size": target.length})
            await db.commit()
            return True
        except IntegrityError:
            # Recorded meanwhile by a writer in another process (this one's lock keeps
            # its own writers apart).
            await db.rollback()
            if await stored_hash(db, target.version_id, target.index) != digest:
                raise conflict(f"Chunk {target.index} is already stored with other bytes.") from None
            return False


async def put_chunk(
    sessions: async_sessionmaker[AsyncSession], store: BlobStore, writes: ChunkWrites, target: ChunkTarget,
    data: Chunk,
) -> StoredChunk:
    """Store one chunk of ``target.length`` bytes: hash and write it (durable) in one
    thread, then commit its row in a short transaction of its own, so no database lock
    is held across the disk's flush. One writer per chunk at a time in this process;
    other bytes than a stored chunk's are refused (``conflict``) before they are written.

    A crash (or a failed commit) after the write leaves bytes without a row: the chunk
    is not received, and the client sends it again."""
    key = (target.version_id, target.index)
    async with writes.lock.hold(key, timeout=30.0, busy="This chunk is being stored; try again in a moment."):
        stored = target.stored
        if stored is None and writes.committed_since(key, target.read_at):
            async with sessions() as db:  # a writer here recorded it since the guard looked
                stored = await stored_hash(db, target.version_id, target.index)
        digest = await asyncio.to_thread(hash_and_write, store, target, data, stored)
        if stored is not None:
            if stored != digest:
                raise conflict(f"Chunk {target.index} is already stored with other bytes.")
            return StoredChunk(target.index, digest, False)
        try:
            created = await record_chunk(sessions, target, digest)
        finally:
            writes.committed(key)  # even when the commit's outcome is unknown
        return StoredChunk(target.index, digest, created)


async def upload_state(db: AsyncSession, actor: Actor, version_id: str) -> dict[str, Any]:
    version, _ = await own_upload(db, actor, version_id)
    chunks = (
        await db.execute(select(VersionChunk).where(VersionChunk.version_id == version.id).order_by(VersionChunk.index))
    ).scalars()
    keys = (
        await db.execute(select(WrappedKey.device_id).where(WrappedKey.version_id == version.id)
                         .order_by(WrappedKey.device_id))
    ).scalars()
    return {
        "document": version.document_id,
        "version": version.id,
        "chunk_size": version.chunk_size,
        "chunks_total": version.chunks,
        "size": version.size,
        "chunks": {str(c.index): b64u(c.sha256) for c in chunks},
        "keys": list(keys),
        "complete": version.complete,
    }


async def key_rows(db: AsyncSession, entries: Sequence[KeyEntry]) -> dict[str, tuple[Device, bytes]]:
    out: dict[str, tuple[Device, bytes]] = {}
    for entry in entries:
        if entry.device in out:
            raise invalid(f"keys: device {entry.device} is named twice.")
        wrapped = b64u_field(entry.wrapped, f"keys.{entry.device}.wrapped", length=WRAPPED_BYTES)
        device = await db.get(Device, entry.device)
        if device is None:
            raise not_found(f"Device {entry.device}")
        if device.revoked_at is not None:
            raise conflict(f"Device {entry.device} was revoked.")
        out[device.id] = (device, wrapped)
    return out


async def put_keys(db: AsyncSession, actor: Actor, version_id: str, body: KeysBody) -> list[str]:
    """Add or replace wrapped keys of an upload (who may receive is checked on completion)."""
    version, _ = await own_upload(db, actor, version_id)
    open_upload(version)
    rows = await key_rows(db, body.keys)
    existing = {
        k.device_id: k
        for k in (await db.execute(select(WrappedKey).where(WrappedKey.version_id == version.id))).scalars()
    }
    for device_id, (_, wrapped) in rows.items():
        if device_id in existing:
            existing[device_id].wrapped = wrapped
        else:
            db.add(WrappedKey(version_id=version.id, device_id=device_id, wrapped=wrapped, created_at=utcnow()))
    await db.flush()
    return sorted(set(existing) | set(rows))




@dataclass
class Completed:
    document: Document
    version: DocumentVersion
    events: list[DomainEvent]
    purge: list[str]  # versions whose ciphertext the transport deletes after the commit


async def complete(db: AsyncSession, actor: Actor, version_id: str, body: CompleteBody) -> Completed:
    """Check the signed manifest against everything stored, then publish the version."""
    version, document = await own_upload(db, actor, version_id)
    if version.complete:
        if version.manifest == body.manifest and b64u(version.signature or b"") == body.signature:
            return Completed(document, version, [], [])  # a retried completion
        raise conflict("This version is already complete.")
    signature = b64u_field(body.signature, "signature", length=64)
    m = signed_body(body.manifest, "manifest", MANIFEST_FIELDS, formats.MANIFEST_LABEL)
    for name, expected in (("visit", document.visit_id), ("document", document.id), ("version", version.id)):
        if m[name] != expected:
            raise invalid(f"manifest: {name} must be {expected}.")
    for name, expected_int in (("chunk_size", version.chunk_size), ("chunks", version.chunks), ("size", version.size)):
        if int_field(m[name], f"manifest: {name}") != expected_int:
            raise invalid(f"manifest: {name} must be {expected_int}, as this version was created.")
    hashes = hash_list(m["chunk_hashes"], version.chunks)
    stored = {
        c.index: c.sha256
        for c in (await db.execute(select(VersionChunk).where(VersionChunk.version_id == version.id))).scalars()
    }
    missing = [i for i in range(version.chunks) if i not in stored]
    if missing:
        raise conflict(f"Chunks not uploaded yet: {', '.join(map(str, missing[:20]))}.")
    for i, h in enumerate(hashes):
        if stored[i] != h:
            raise conflict(f"manifest: chunk_hashes[{i}] is not the hash of the stored chunk {i}.")
    meta = meta_field(body.meta) if body.meta is not None else version.meta
    if meta is None:
        raise invalid("meta: send the sealed metadata record with the completion.")
    if b64u_field(str_field(m["meta_hash"], "manifest: meta_hash"), "manifest: meta_hash", length=32) != formats.sha256(meta):
        raise conflict("manifest: meta_hash is not the hash of the stored metadata record.")
    b64u_field(str_field(m["commit"], "manifest: commit"), "manifest: commit", length=32)
    uploader = await db.get(Device, str_field(m["uploader"], "manifest: uploader"))
    if uploader is None or uploader.person_id != actor.person_id:
        raise forbidden("manifest: uploader must be one of your own devices.")
    if uploader.revoked_at is not None:
        raise conflict("manifest: the uploading device was revoked.")
    if m["uploader_fp"] != b64u(uploader.fingerprint):
        raise invalid("manifest: uploader_fp is not the uploading device's fingerprint.")
    recipients = await recipient_devices(db, m["recipients"], "manifest: recipients")
    if uploader.id not in {d.id for d in recipients}:
        raise invalid("manifest: recipients must hold the uploading device.")
    keyed = set((await db.execute(select(WrappedKey.device_id).where(WrappedKey.version_id == version.id))).scalars())
    named = {d.id for d in recipients}
    if named - keyed:
        raise conflict(f"manifest: no wrapped key for recipient {sorted(named - keyed)[0]}; send the keys first.")
    if keyed - named:
        raise conflict(f"Device {sorted(keyed - named)[0]} has a wrapped key but is not among the recipients.")
    session = await session_of(db, document)
    people = await members(db, document.visit_id, session)
    check_entitled(recipients, people, actor.role)
    check_secretariat(recipients, people, await live_device_counts(
        db, [p.person_id for p in people.values() if p.role == Role.SECRETARIAT]))
    if not formats.verify_signature(uploader.sig_alg, uploader.sig_pub, body.manifest.encode("ascii"), signature):
        raise invalid("signature: does not verify with the uploading device's key.")

    now = utcnow()
    version.meta = meta
    version.manifest = body.manifest
    version.signature = signature
    version.uploader_device_id = uploader.id
    version.completed_at = now
    if document.uploader_device_id is None:
        document.uploader_device_id = uploader.id
    older = list(
        (
            await db.execute(
                select(DocumentVersion).where(
                    DocumentVersion.document_id == document.id, DocumentVersion.id != version.id,
                    DocumentVersion.completed_at.is_not(None),
                )
            )
        ).scalars()
    )
    purge: list[str] = []
    for old in older:
        if old.replaced_at is None:
            old.replaced_at = now
        if version.rekey and old.purged_at is None:
            old.purged_at = now
            purge.append(old.id)
    if purge:
        await db.execute(delete(WrappedKey).where(WrappedKey.version_id.in_(purge)))
        await db.execute(delete(VersionChunk).where(VersionChunk.version_id.in_(purge)))
    await db.flush()
    await audit.record(
        db, "evidence.uploaded", actor_person_id=actor.person_id, visit_id=document.visit_id, subject=document.id,
        data={"version": version.id, "chunks": version.chunks, "size": version.size, "session": document.session_id,
              "uploader": uploader.id, "recipients": sorted(named), "rekey": version.rekey, "purged": purge},
    )
    audience = tuple(sorted({people[d.person_id].membership_id for d in recipients}))
    event = EvidenceShared(document.visit_id, document.id, version.id, document.session_id, audience)
    return Completed(document, version, [event], purge)
