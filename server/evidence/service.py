"""The evidence room: documents as ciphertext, their keys, shares and downloads.

The server never sees a document's content, name or key (docs/evidence.md): it
stores ciphertext chunks and their hashes, the sealed metadata, wrapped keys and
signed manifests and shares, and it checks everything it can check without a key:
sizes, hashes, ids, fingerprints, signatures, and **who may receive a document**:

* the secretariat, the reviewing experts and the delegation of the State under review
  (``Action.EVIDENCE_RECEIVE``), as far as the document's session admits them;
* interpreters, observers and stakeholders only when the secretariat grants it
  (``Action.EVIDENCE_GRANT``): a share signed by a secretariat member's device, or an
  upload by the secretariat that names them; never for a session they may not see.

Every upload names the secretariat among its recipients. Functions flush; the
transport commits, then deletes purged ciphertext and publishes the events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.guard import Actor
from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.agenda.models import AgendaItem, AgendaSession
from server.audit import service as audit
from server.audit.models import AuditEntry
from server.core.clock import iso_z, utcnow
from server.core.errors import conflict, forbidden, invalid, not_found, too_large
from server.core.events import DomainEvent
from server.core.ratelimit import TokenBucket
from server.evidence import formats
from server.evidence.blobs import BlobStore
from server.evidence.devices import B64u, Id, device_json, devices_of, statement_json, statements_about
from server.evidence.formats import CHUNK_SIZE, CHUNK_STRIDE, WRAPPED_BYTES, FormatError, b64u
from server.evidence.models import (
    Device,
    Document,
    DocumentVersion,
    Share,
    VersionChunk,
    WrappedKey,
)
from server.people.models import Membership, Person
from server.visits.models import Delegation

MAX_META_BYTES = 64 * 1024
MAX_KEYS = 1000
MAX_ARTICLES = 50
# A person's repeated chunk downloads of one version are audited once per this window
# (per process); every /content request is audited.
CHUNK_AUDIT_SECONDS = 600.0

Article = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 .,()/_-]+$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NewVersion(_Body):
    """``POST /api/visits/{visit}/documents``."""

    document: Id | None = None
    session: Id | None = None
    item: Id | None = None
    articles: Annotated[list[Article], Field(max_length=MAX_ARTICLES)] = []
    chunks: Annotated[int, Field(ge=1)]
    size: Annotated[int, Field(ge=0)]
    # The sealed metadata binds the version id, which this call issues: it normally
    # comes with ``complete``; one sent here is kept unless ``complete`` brings another.
    meta: B64u | None = None
    rekey: bool = False


class KeyEntry(_Body):
    device: Id
    wrapped: B64u


class KeysBody(_Body):
    """``PUT /api/versions/{version}/keys``."""

    keys: Annotated[list[KeyEntry], Field(min_length=1, max_length=MAX_KEYS)]


class CompleteBody(_Body):
    """``POST /api/versions/{version}/complete``."""

    manifest: Annotated[str, StringConstraints(min_length=2, max_length=8 * 1024 * 1024)]
    signature: B64u
    meta: B64u | None = None  # the sealed metadata record (required unless sent on creation)


class ShareBody(_Body):
    """``POST /api/versions/{version}/shares``."""

    body: Annotated[str, StringConstraints(min_length=2, max_length=512 * 1024)]
    signature: B64u
    keys: Annotated[list[KeyEntry], Field(min_length=1, max_length=MAX_KEYS)]


@dataclass(frozen=True)
class EvidenceShared(DomainEvent):
    """A version completed or a share added recipients (committed): each recipient's
    sockets watching the visit hear ``evidence.shared``."""

    visit_id: str
    document_id: str
    version_id: str
    session_id: str | None
    membership_ids: tuple[str, ...]


@dataclass
class Limits:
    """Per-process rate limits (docs/api.md, "Evidence")."""

    devices: TokenBucket = field(default_factory=lambda: TokenBucket(
        1 / 60, 10, message="Too many new devices; try again in a minute."))
    statements: TokenBucket = field(default_factory=lambda: TokenBucket(
        1.0, 30, message="Too many statements; try again shortly."))
    links: TokenBucket = field(default_factory=lambda: TokenBucket(
        1 / 60, 5, message="Too many device links; try again in a minute."))
    versions: TokenBucket = field(default_factory=lambda: TokenBucket(
        1.0, 60, message="Too many uploads started; try again shortly."))


@dataclass
class EvidenceRuntime:
    """What one process needs for evidence: the blob store, the size limit, the limits,
    and when each (person, version) chunk download was last audited."""

    store: BlobStore
    max_bytes: int
    limits: Limits = field(default_factory=Limits)
    chunk_audits: dict[tuple[str, str], float] = field(default_factory=dict)

    def audit_chunk_due(self, person_id: str, version_id: str) -> bool:
        now = time.monotonic()
        key = (person_id, version_id)
        if now - self.chunk_audits.get(key, -CHUNK_AUDIT_SECONDS) < CHUNK_AUDIT_SECONDS:
            return False
        if len(self.chunk_audits) > 10_000:
            self.chunk_audits = {k: t for k, t in self.chunk_audits.items() if now - t < CHUNK_AUDIT_SECONDS}
        self.chunk_audits[key] = now
        return True


def _bytes(value: str, where: str, **kw: Any) -> bytes:
    try:
        return formats.from_b64u(value, **kw)
    except FormatError as exc:
        raise invalid(f"{where}: {exc}.") from None


def _meta(value: str) -> bytes:
    meta = _bytes(value, "meta", max_length=MAX_META_BYTES)
    if len(meta) < formats.TAG_BYTES:
        raise invalid("meta: too short to be a sealed record.")
    return meta


# ---- geometry ---------------------------------------------------------------------------------


def chunk_length(version: DocumentVersion, index: int) -> int:
    """Ciphertext bytes chunk ``index`` must have: a full slot, or what is left for the last."""
    if index < version.chunks - 1:
        return version.chunk_size + formats.TAG_BYTES
    return version.size - (version.chunks - 1) * (version.chunk_size + formats.TAG_BYTES)


def chunk_offset(version: DocumentVersion, index: int) -> int:
    return index * (version.chunk_size + formats.TAG_BYTES)


def _check_geometry(chunks: int, size: int) -> None:
    # Every chunk but the last is a full slot; the last holds at least its 16-byte tag.
    low = (chunks - 1) * CHUNK_STRIDE + formats.TAG_BYTES
    high = chunks * CHUNK_STRIDE
    if not low <= size <= high:
        raise invalid(
            f"size: {chunks} chunks of {CHUNK_SIZE} bytes (+16 each) make between {low} and {high} "
            "bytes of ciphertext."
        )


# ---- who is who ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    person_id: str
    membership_id: str
    name: str
    role: Role
    delegation_id: str | None
    delegation: str | None
    sees_session: bool

    @property
    def receives(self) -> bool:
        """Entitled without a grant (the session permitting)."""
        return self.sees_session and decide(Action.EVIDENCE_RECEIVE, self.role)

    def may_receive(self, granted_by: Role) -> bool:
        """Entitled, or granted by someone the policy lets grant."""
        return self.receives or (self.sees_session and decide(Action.EVIDENCE_GRANT, granted_by))


async def members(db: AsyncSession, visit_id: str, session: AgendaSession | None) -> dict[str, Member]:
    """The visit's members by person, each with whether the document's session admits them."""
    rows = (
        await db.execute(
            select(Membership, Person.name, Delegation.name)
            .join(Person, Person.id == Membership.person_id)
            .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
            .where(Membership.visit_id == visit_id)
        )
    ).all()
    invited: set[str] = set()
    if session is not None and session.access == Access.STAKEHOLDER:
        invited = (await facts.invitees(db, [session.id]))[session.id]
    found = {}
    for membership, name, delegation in rows:
        role = Role(membership.role)
        sees = session is None or decide(
            Action.SESSION_VIEW, role, Access(session.access), is_invited=membership.id in invited
        )
        found[membership.person_id] = Member(membership.person_id, membership.id, name, role,
                                             membership.delegation_id, delegation, sees)
    return found


async def _session_of(db: AsyncSession, document: Document) -> AgendaSession | None:
    return await db.get(AgendaSession, document.session_id) if document.session_id else None


async def _live_devices(db: AsyncSession, person_id: str) -> dict[str, Device]:
    rows = await db.execute(select(Device).where(Device.person_id == person_id, Device.revoked_at.is_(None)))
    return {d.id: d for d in rows.scalars()}


async def _held(db: AsyncSession, person_id: str, version_ids: Sequence[str]) -> dict[str, list[WrappedKey]]:
    """The wrapped keys this person's live devices hold, by version."""
    out: dict[str, list[WrappedKey]] = {v: [] for v in version_ids}
    if not version_ids:
        return out
    rows = await db.execute(
        select(WrappedKey)
        .join(Device, Device.id == WrappedKey.device_id)
        .where(WrappedKey.version_id.in_(list(version_ids)), Device.person_id == person_id,
               Device.revoked_at.is_(None))
        .order_by(WrappedKey.device_id)
    )
    for key in rows.scalars():
        out[key.version_id].append(key)
    return out


async def visit_of_version(db: AsyncSession, match: Mapping[str, str]) -> str | None:
    """The guard's lookup for ``/api/versions/{version_id}/...`` routes."""
    found = (
        await db.execute(
            select(Document.visit_id)
            .join(DocumentVersion, DocumentVersion.document_id == Document.id)
            .where(DocumentVersion.id == match["version_id"])
        )
    ).scalar_one_or_none()
    return str(found) if found is not None else None


async def visit_of_document(db: AsyncSession, match: Mapping[str, str]) -> str | None:
    found = (
        await db.execute(select(Document.visit_id).where(Document.id == match["document_id"]))
    ).scalar_one_or_none()
    return str(found) if found is not None else None


async def _version(db: AsyncSession, visit_id: str, version_id: str) -> tuple[DocumentVersion, Document]:
    row = (
        await db.execute(
            select(DocumentVersion, Document)
            .join(Document, Document.id == DocumentVersion.document_id)
            .where(DocumentVersion.id == version_id, Document.visit_id == visit_id)
        )
    ).first()
    if row is None:
        raise not_found("Document version")
    return row[0], row[1]


async def _uploading(db: AsyncSession, actor: Actor, version_id: str) -> tuple[DocumentVersion, Document]:
    """A version the actor is uploading (someone else's upload does not exist for them)."""
    version, document = await _version(db, actor.visit_id, version_id)
    if version.uploader_person_id != actor.person_id:
        raise not_found("Document version")
    return version, document


def _open_upload(version: DocumentVersion) -> None:
    if version.complete:
        raise conflict("This version is complete; start a new version to change it.")


# ---- upload -------------------------------------------------------------------------------


async def create_version(
    db: AsyncSession, actor: Actor, body: NewVersion, *, max_bytes: int
) -> tuple[Document, DocumentVersion]:
    """A new document (or a new version of one): its id binds all its cryptography."""
    if body.size > max_bytes:
        raise too_large(f"size: a document version may have at most {max_bytes} bytes of ciphertext.")
    _check_geometry(body.chunks, body.size)
    meta = _meta(body.meta) if body.meta is not None else None
    if body.document is not None:
        document = await db.get(Document, body.document)
        if document is None or document.visit_id != actor.visit_id:
            raise not_found("Document")
        session = await _session_of(db, document)
        if body.session not in (None, document.session_id) or body.item not in (None, document.item_id):
            raise invalid("session, item: a new version keeps its document's session and item.")
        await _may_add_version(db, actor, document, session)
    else:
        if body.rekey:
            raise invalid("rekey: only for a new version of an existing document.")
        session, item_id = await _placement(db, actor, body.session, body.item)
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


async def _placement(
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


async def _may_add_version(db: AsyncSession, actor: Actor, document: Document, session: AgendaSession | None) -> None:
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


async def upload_target(db: AsyncSession, actor: Actor, version_id: str, index: int) -> int:
    """Before reading a chunk's body: the bytes chunk ``index`` must have."""
    version, _ = await _uploading(db, actor, version_id)
    _open_upload(version)
    if index >= version.chunks:
        raise invalid(f"index: this version has {version.chunks} chunks (0 to {version.chunks - 1}).")
    return chunk_length(version, index)


@dataclass(frozen=True)
class StoredChunk:
    index: int
    sha256: bytes
    created: bool


async def put_chunk(
    db: AsyncSession, store: BlobStore, actor: Actor, version_id: str, index: int, data: bytes
) -> StoredChunk:
    """Store one chunk: its row first (flushed, so a racing different write conflicts),
    then its bytes, durable on disk before this returns; the caller commits."""
    version, _ = await _uploading(db, actor, version_id)
    _open_upload(version)
    if index >= version.chunks:
        raise invalid(f"index: this version has {version.chunks} chunks (0 to {version.chunks - 1}).")
    if len(data) != chunk_length(version, index):
        raise invalid(f"body: chunk {index} must be {chunk_length(version, index)} bytes of ciphertext.")
    digest = formats.sha256(data)
    stored = await db.get(VersionChunk, (version.id, index))
    if stored is not None:
        if stored.sha256 != digest:
            raise conflict(f"Chunk {index} is already stored with other bytes.")
        return StoredChunk(index, digest, False)
    db.add(VersionChunk(version_id=version.id, index=index, sha256=digest, size=len(data)))
    try:
        await db.flush()
    except IntegrityError:
        # The same chunk arrived concurrently and its writer committed first.
        await db.rollback()
        stored = await db.get(VersionChunk, (version.id, index))
        if stored is None or stored.sha256 != digest:
            raise conflict(f"Chunk {index} is already stored with other bytes.") from None
        return StoredChunk(index, digest, False)
    await asyncio.to_thread(store.put_chunk, version.id, index, data, size=version.size)
    return StoredChunk(index, digest, True)


async def upload_state(db: AsyncSession, actor: Actor, version_id: str) -> dict[str, Any]:
    version, _ = await _uploading(db, actor, version_id)
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


async def _key_rows(db: AsyncSession, entries: Sequence[KeyEntry]) -> dict[str, tuple[Device, bytes]]:
    out: dict[str, tuple[Device, bytes]] = {}
    for entry in entries:
        if entry.device in out:
            raise invalid(f"keys: device {entry.device} is named twice.")
        wrapped = _bytes(entry.wrapped, f"keys.{entry.device}.wrapped", length=WRAPPED_BYTES)
        device = await db.get(Device, entry.device)
        if device is None:
            raise not_found(f"Device {entry.device}")
        if device.revoked_at is not None:
            raise conflict(f"Device {entry.device} was revoked.")
        out[device.id] = (device, wrapped)
    return out


async def put_keys(db: AsyncSession, actor: Actor, version_id: str, body: KeysBody) -> list[str]:
    """Add or replace wrapped keys of an upload (who may receive is checked on completion)."""
    version, _ = await _uploading(db, actor, version_id)
    _open_upload(version)
    rows = await _key_rows(db, body.keys)
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


# ---- signed documents: manifests and shares --------------------------------------------------

_MANIFEST_FIELDS = {"t", "visit", "document", "version", "chunk_size", "chunks", "size", "chunk_hashes",
                    "meta_hash", "commit", "uploader", "uploader_fp", "recipients"}
_SHARE_FIELDS = {"t", "version", "manifest_hash", "by", "by_fp", "recipients"}
_RECIPIENT_FIELDS = {"device", "fp", "person"}


def _signed(text: str, where: str, fields: set[str], label: str) -> dict[str, Any]:
    try:
        value = formats.parse_canonical(text, max_bytes=8 * 1024 * 1024)
    except FormatError as exc:
        raise invalid(f"{where}: {exc}.") from None
    if set(value) != fields:
        missing, extra = sorted(fields - set(value)), sorted(set(value) - fields)
        raise invalid(f"{where}: fields missing {missing}, unexpected {extra}.")
    if value["t"] != label:
        raise invalid(f"{where}: t must be {label}.")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where}: must be a string.")
    return value


def _int(value: Any, where: str) -> int:
    if not isinstance(value, int):
        raise invalid(f"{where}: must be an integer.")
    return value


async def _recipients(db: AsyncSession, raw: Any, where: str) -> list[Device]:
    """The recipients list: sorted by device, no repeats, each a live device of the
    person named, with its current fingerprint."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_KEYS:
        raise invalid(f"{where}: must list 1 to {MAX_KEYS} recipients.")
    devices: list[Device] = []
    for n, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != _RECIPIENT_FIELDS:
            raise invalid(f"{where}[{n}]: must hold exactly device, fp and person.")
        device = await db.get(Device, _str(entry["device"], f"{where}[{n}].device"))
        if device is None:
            raise invalid(f"{where}[{n}]: no device {entry['device']!r}.")
        if device.revoked_at is not None:
            raise conflict(f"{where}[{n}]: device {device.id} was revoked.")
        if entry["person"] != device.person_id or entry["fp"] != b64u(device.fingerprint):
            raise invalid(f"{where}[{n}]: person and fp must be device {device.id}'s.")
        devices.append(device)
    ids = [d.id for d in devices]
    if ids != sorted(set(ids)):
        raise invalid(f"{where}: must be sorted by device, each device once.")
    return devices


def _check_entitled(recipients: Iterable[Device], people: dict[str, Member], granted_by: Role) -> None:
    for device in recipients:
        member = people.get(device.person_id)
        if member is None:
            raise forbidden(f"recipients: device {device.id} belongs to someone who is not in this visit.")
        if not member.may_receive(granted_by):
            raise forbidden(f"recipients: {member.name} ({member.role}) may not receive this document.")


def _check_secretariat(recipients: Sequence[Device], people: dict[str, Member], live_by_person: dict[str, int]) -> None:
    """Each secretariat member with a live device has one among the recipients."""
    named = {d.person_id for d in recipients}
    for member in people.values():
        if member.role == Role.SECRETARIAT and live_by_person.get(member.person_id) and member.person_id not in named:
            raise invalid(f"recipients: the secretariat ({member.name}) must be among the recipients.")


async def _live_device_counts(db: AsyncSession, person_ids: Iterable[str]) -> dict[str, int]:
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await db.execute(
        select(Device.person_id, func.count()).where(Device.person_id.in_(ids), Device.revoked_at.is_(None))
        .group_by(Device.person_id)
    )
    return {p: int(n) for p, n in rows.all()}


def _hash_list(raw: Any, n: int) -> list[bytes]:
    if not isinstance(raw, list) or len(raw) != n:
        raise invalid(f"manifest: chunk_hashes must list {n} hashes.")
    out = []
    for i, h in enumerate(raw):
        try:
            out.append(formats.from_b64u(h, length=32))
        except FormatError as exc:
            raise invalid(f"manifest: chunk_hashes[{i}]: {exc}.") from None
    return out


@dataclass
class Completed:
    document: Document
    version: DocumentVersion
    events: list[DomainEvent]
    purge: list[str]  # versions whose ciphertext the transport deletes after the commit


async def complete(db: AsyncSession, actor: Actor, version_id: str, body: CompleteBody) -> Completed:
    """Check the signed manifest against everything stored, then publish the version."""
    version, document = await _uploading(db, actor, version_id)
    if version.complete:
        if version.manifest == body.manifest and b64u(version.signature or b"") == body.signature:
            return Completed(document, version, [], [])  # a retried completion
        raise conflict("This version is already complete.")
    signature = _bytes(body.signature, "signature", length=64)
    m = _signed(body.manifest, "manifest", _MANIFEST_FIELDS, formats.MANIFEST_LABEL)
    for name, expected in (("visit", document.visit_id), ("document", document.id), ("version", version.id)):
        if m[name] != expected:
            raise invalid(f"manifest: {name} must be {expected}.")
    for name, expected_int in (("chunk_size", version.chunk_size), ("chunks", version.chunks), ("size", version.size)):
        if _int(m[name], f"manifest: {name}") != expected_int:
            raise invalid(f"manifest: {name} must be {expected_int}, as this version was created.")
    hashes = _hash_list(m["chunk_hashes"], version.chunks)
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
    meta = _meta(body.meta) if body.meta is not None else version.meta
    if meta is None:
        raise invalid("meta: send the sealed metadata record with the completion.")
    if _bytes(_str(m["meta_hash"], "manifest: meta_hash"), "manifest: meta_hash", length=32) != formats.sha256(meta):
        raise conflict("manifest: meta_hash is not the hash of the stored metadata record.")
    _bytes(_str(m["commit"], "manifest: commit"), "manifest: commit", length=32)
    uploader = await db.get(Device, _str(m["uploader"], "manifest: uploader"))
    if uploader is None or uploader.person_id != actor.person_id:
        raise forbidden("manifest: uploader must be one of your own devices.")
    if uploader.revoked_at is not None:
        raise conflict("manifest: the uploading device was revoked.")
    if m["uploader_fp"] != b64u(uploader.fingerprint):
        raise invalid("manifest: uploader_fp is not the uploading device's fingerprint.")
    recipients = await _recipients(db, m["recipients"], "manifest: recipients")
    if uploader.id not in {d.id for d in recipients}:
        raise invalid("manifest: recipients must hold the uploading device.")
    keyed = set((await db.execute(select(WrappedKey.device_id).where(WrappedKey.version_id == version.id))).scalars())
    named = {d.id for d in recipients}
    if named - keyed:
        raise conflict(f"manifest: no wrapped key for recipient {sorted(named - keyed)[0]}; send the keys first.")
    if keyed - named:
        raise conflict(f"Device {sorted(keyed - named)[0]} has a wrapped key but is not among the recipients.")
    session = await _session_of(db, document)
    people = await members(db, document.visit_id, session)
    _check_entitled(recipients, people, actor.role)
    _check_secretariat(recipients, people, await _live_device_counts(
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


async def share(db: AsyncSession, actor: Actor, version_id: str, body: ShareBody) -> list[DomainEvent]:
    """A holder's signed share: wrapped keys for recipients entitled (or granted)."""
    version, document = await _version(db, actor.visit_id, version_id)
    session = await _session_of(db, document)
    people = await members(db, document.visit_id, session)
    me = people.get(actor.person_id)
    if not version.complete or version.purged_at is not None or me is None or not me.sees_session:
        raise not_found("Document version")
    mine = await _live_devices(db, actor.person_id)
    held = {k.device_id for k in (await _held(db, actor.person_id, [version.id]))[version.id]}
    if not held:
        raise forbidden("Only a holder of this version's key can share it.")
    signature = _bytes(body.signature, "signature", length=64)
    s = _signed(body.body, "body", _SHARE_FIELDS, formats.SHARE_LABEL)
    if s["version"] != version.id:
        raise invalid(f"body: version must be {version.id}.")
    assert version.manifest is not None
    if s["manifest_hash"] != b64u(formats.sha256(version.manifest.encode("ascii"))):
        raise invalid("body: manifest_hash is not the hash of this version's manifest.")
    signer = mine.get(_str(s["by"], "body: by"))
    if signer is None:
        raise forbidden("body: by must be one of your own devices.")
    if signer.id not in held:
        raise forbidden("body: the signing device holds no key to this version.")
    if s["by_fp"] != b64u(signer.fingerprint):
        raise invalid("body: by_fp is not the signing device's fingerprint.")
    recipients = await _recipients(db, s["recipients"], "body: recipients")
    keys = await _key_rows(db, body.keys)
    named = {d.id for d in recipients}
    if set(keys) != named:
        raise invalid("keys: must hold one wrapped key for each recipient, and no other.")
    already = set(
        (
            await db.execute(
                select(WrappedKey.device_id).where(WrappedKey.version_id == version.id, WrappedKey.device_id.in_(named))
            )
        ).scalars()
    )
    if already:
        raise conflict(f"Device {sorted(already)[0]} already holds a key to this version.")
    _check_entitled(recipients, people, actor.role)
    if not formats.verify_signature(signer.sig_alg, signer.sig_pub, body.body.encode("ascii"), signature):
        raise invalid("signature: does not verify with the signing device's key.")
    row = Share(version_id=version.id, signer_device_id=signer.id, body=body.body, signature=signature,
                created_at=utcnow())
    db.add(row)
    await db.flush()
    for device_id, (_, wrapped) in keys.items():
        db.add(WrappedKey(version_id=version.id, device_id=device_id, wrapped=wrapped, share_id=row.id,
                          created_at=utcnow()))
    await db.flush()
    await audit.record(
        db, "evidence.shared", actor_person_id=actor.person_id, visit_id=document.visit_id, subject=document.id,
        data={"version": version.id, "share": row.id, "by": signer.id, "recipients": sorted(named)},
    )
    audience = tuple(sorted({people[d.person_id].membership_id for d in recipients}))
    return [EvidenceShared(document.visit_id, document.id, version.id, document.session_id, audience)]


# ---- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    version: DocumentVersion
    document: Document


async def open_download(
    db: AsyncSession, actor: Actor, version_id: str, *, chunk: int | None = None, range_header: str | None = None,
    audit_it: bool = True,
) -> Download:
    """A complete version the actor holds a key to (a live device of theirs): else 404
    for whoever may not see it, 403 for a member of its session without a key. The
    download is audited in the caller's transaction."""
    version, document = await _version(db, actor.visit_id, version_id)
    session = await _session_of(db, document)
    me = (await members(db, document.visit_id, session)).get(actor.person_id)
    if me is None or not me.sees_session or not version.complete:
        raise not_found("Document version")
    if version.purged_at is not None:
        raise not_found("Document version")
    if not (await _held(db, actor.person_id, [version.id]))[version.id]:
        raise forbidden("None of your devices holds a key to this document version.")
    if chunk is not None and not 0 <= chunk < version.chunks:
        raise not_found("Chunk")
    found = Download(version, document)
    if audit_it:
        await record_download(db, actor, found, chunk=chunk, range_header=range_header)
    return found


async def record_download(
    db: AsyncSession, actor: Actor, found: Download, *, chunk: int | None = None, range_header: str | None = None
) -> None:
    data: dict[str, Any] = {"version": found.version.id}
    if chunk is not None:
        data["chunk"] = chunk
    if range_header:
        data["range"] = range_header[:100]
    await audit.record(db, "evidence.downloaded", actor_person_id=actor.person_id, visit_id=found.document.visit_id,
                       subject=found.document.id, data=data)


def _version_json(version: DocumentVersion, shares: list[Share], keys: list[WrappedKey]) -> dict[str, Any]:
    return {
        "id": version.id,
        "created_at": iso_z(version.created_at),
        "completed_at": iso_z(version.completed_at) if version.completed_at else None,
        "chunk_size": version.chunk_size,
        "chunks": version.chunks,
        "size": version.size,
        "meta": b64u(version.meta or b""),
        "manifest": version.manifest,
        "signature": b64u(version.signature or b""),
        "rekey": version.rekey,
        "shares": [{"body": s.body, "signature": b64u(s.signature)} for s in shares],
        "keys": [{"device": k.device_id, "wrapped": b64u(k.wrapped)} for k in keys],
    }


async def list_documents(db: AsyncSession, actor: Actor, session_filter: str | None) -> list[dict[str, Any]]:
    """The documents the actor may see: complete, in a session they may see, and either
    theirs to receive or one they hold a key to."""
    query = (
        select(Document, DocumentVersion)
        .join(DocumentVersion, DocumentVersion.document_id == Document.id)
        .where(Document.visit_id == actor.visit_id, DocumentVersion.completed_at.is_not(None),
               DocumentVersion.purged_at.is_(None))
        .order_by(Document.created_at, Document.id, DocumentVersion.completed_at.desc(), DocumentVersion.id)
    )
    if session_filter is not None:
        query = query.where(Document.session_id == session_filter)
    rows = (await db.execute(query)).all()
    versions: dict[str, list[DocumentVersion]] = {}
    documents: dict[str, Document] = {}
    for document, version in rows:
        documents[document.id] = document
        versions.setdefault(document.id, []).append(version)
    held = await _held(db, actor.person_id, [v.id for vs in versions.values() for v in vs])
    sessions = {
        s.id: s
        for s in (await db.execute(select(AgendaSession).where(
            AgendaSession.id.in_({d.session_id for d in documents.values() if d.session_id})))).scalars()
    }
    cache: dict[str | None, dict[str, Member]] = {}
    shown: list[tuple[Document, list[DocumentVersion]]] = []
    for doc_id, vs in versions.items():
        document = documents[doc_id]
        if document.session_id not in cache:
            cache[document.session_id] = await members(
                db, actor.visit_id, sessions.get(document.session_id) if document.session_id else None)
        me = cache[document.session_id].get(actor.person_id)
        if me is None or not me.sees_session:
            continue
        if me.receives or any(held[v.id] for v in vs):
            shown.append((document, vs))
    shown_ids = [v.id for _, vs in shown for v in vs]
    shares: dict[str, list[Share]] = {v: [] for v in shown_ids}
    if shown_ids:
        for s in (await db.execute(select(Share).where(Share.version_id.in_(shown_ids))
                                   .order_by(Share.created_at, Share.id))).scalars():
            shares[s.version_id].append(s)
    uploaders = await _uploader_cards(
        db, actor.visit_id, {d.uploader_person_id for d, _ in shown} | {v.uploader_person_id for _, vs in shown for v in vs})

    def card(person_id: str) -> dict[str, Any]:
        return uploaders.get(person_id, {"person": person_id, "name": None, "delegation": None})

    out = []
    for document, vs in shown:
        current = vs[0]
        out.append({
            "id": document.id,
            "session": document.session_id,
            "item": document.item_id,
            "articles": list(document.articles or []),
            "created_at": iso_z(document.created_at),
            "uploader": {**card(document.uploader_person_id), "device": document.uploader_device_id},
            "version": _version_json(current, shares[current.id], held[current.id]),
            # Every kept version in full, newest first: an older one opens for whoever
            # holds a key to it (``keys``: the caller's own live devices only).
            "versions": [
                {**_version_json(v, shares[v.id], held[v.id]),
                 "uploader": {**card(v.uploader_person_id), "device": v.uploader_device_id}}
                for v in vs
            ],
        })
    return out


async def _uploader_cards(db: AsyncSession, visit_id: str, person_ids: set[str]) -> dict[str, dict[str, Any]]:
    if not person_ids:
        return {}
    rows = await db.execute(
        select(Person.id, Person.name, Delegation.name)
        .join(Membership, and_(Membership.person_id == Person.id, Membership.visit_id == visit_id), isouter=True)
        .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
        .where(Person.id.in_(person_ids))
    )
    return {pid: {"person": pid, "name": name, "delegation": delegation} for pid, name, delegation in rows.all()}


async def pending(db: AsyncSession, actor: Actor) -> list[dict[str, Any]]:
    """For current versions the actor holds a key to: entitled live devices without one."""
    rows = (
        await db.execute(
            select(DocumentVersion, Document)
            .join(Document, Document.id == DocumentVersion.document_id)
            .join(WrappedKey, WrappedKey.version_id == DocumentVersion.id)
            .join(Device, Device.id == WrappedKey.device_id)
            .where(Document.visit_id == actor.visit_id, DocumentVersion.completed_at.is_not(None),
                   DocumentVersion.replaced_at.is_(None), DocumentVersion.purged_at.is_(None),
                   Device.person_id == actor.person_id, Device.revoked_at.is_(None))
            .order_by(Document.created_at, Document.id)
        )
    ).unique().all()
    seen: set[str] = set()
    cache: dict[str | None, dict[str, Member]] = {}
    out = []
    for version, document in rows:
        if version.id in seen:
            continue
        seen.add(version.id)
        if document.session_id not in cache:
            cache[document.session_id] = await members(db, actor.visit_id, await _session_of(db, document))
        people = cache[document.session_id]
        me = people.get(actor.person_id)
        if me is None or not me.sees_session:
            continue
        entitled = [p.person_id for p in people.values() if p.receives]
        keyed = set((await db.execute(select(WrappedKey.device_id).where(WrappedKey.version_id == version.id))).scalars())
        devices = (
            await db.execute(
                select(Device).where(Device.person_id.in_(entitled), Device.revoked_at.is_(None))
                .order_by(Device.id)
            )
        ).scalars()
        missing = [{"person": d.person_id, "device": d.id, "fp": b64u(d.fingerprint)} for d in devices
                   if d.id not in keyed]
        if missing:
            out.append({"version": version.id, "document": document.id, "recipients": missing})
    return out


async def document_audit(db: AsyncSession, actor: Actor, document_id: str) -> list[dict[str, Any]]:
    """The document's audit entries, oldest first, with the actors' names: for the
    secretariat, and for members of the uploader's delegation."""
    document = await db.get(Document, document_id)
    if document is None or document.visit_id != actor.visit_id:
        raise not_found("Document")
    if actor.role != Role.SECRETARIAT:
        delegations = dict(
            (
                await db.execute(
                    select(Membership.person_id, Membership.delegation_id).where(
                        Membership.visit_id == document.visit_id,
                        Membership.person_id.in_([actor.person_id, document.uploader_person_id]),
                    )
                )
            ).all()
        )
        mine = delegations.get(actor.person_id)
        if mine is None or mine != delegations.get(document.uploader_person_id):
            raise forbidden("Only the secretariat and the uploading delegation see a document's audit trail.")
    rows = await db.execute(
        select(AuditEntry, Person.name)
        .outerjoin(Person, Person.id == AuditEntry.actor_person_id)
        .where(AuditEntry.visit_id == document.visit_id, AuditEntry.subject == document.id)
        .order_by(AuditEntry.chain, AuditEntry.seq)
    )
    return [
        {"chain": e.chain, "seq": e.seq, "at": iso_z(e.at), "action": e.action,
         "actor": {"person": e.actor_person_id, "name": name}, "data": e.data, "hash": e.hash}
        for e, name in rows.all()
    ]


async def visit_keys(db: AsyncSession, actor: Actor) -> dict[str, Any]:
    """Every member's devices (revoked ones with ``revoked_at``) and the statements
    between them. Whoever may not see the participant list (stakeholders) sees
    themselves, the secretariat, and the signers of what they hold keys to."""
    rows = (
        await db.execute(
            select(Membership, Person.name, Delegation.name)
            .join(Person, Person.id == Membership.person_id)
            .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
            .where(Membership.visit_id == actor.visit_id)
            .order_by(Delegation.name, Person.name, Person.id)
        )
    ).all()
    if not decide(Action.PARTICIPANTS_VIEW, actor.role):
        signers = select(Device.person_id).where(
            Device.id.in_(
                select(DocumentVersion.uploader_device_id)
                .join(WrappedKey, WrappedKey.version_id == DocumentVersion.id)
                .join(Document, Document.id == DocumentVersion.document_id)
                .where(Document.visit_id == actor.visit_id, WrappedKey.device_id.in_(
                    select(Device.id).where(Device.person_id == actor.person_id, Device.revoked_at.is_(None))))
            ) | Device.id.in_(
                select(Share.signer_device_id)
                .join(WrappedKey, WrappedKey.version_id == Share.version_id)
                .where(WrappedKey.device_id.in_(
                    select(Device.id).where(Device.person_id == actor.person_id, Device.revoked_at.is_(None))))
            )
        )
        keep = {actor.person_id, *(await db.execute(signers)).scalars()}
        rows = [r for r in rows if r[0].person_id in keep or r[0].role == Role.SECRETARIAT]
    devices = await devices_of(db, [m.person_id for m, _, _ in rows])
    by_person: dict[str, list[dict[str, Any]]] = {}
    for device in devices:
        by_person.setdefault(device.person_id, []).append(device_json(device))
    statements = await statements_about(db, [d.id for d in devices])
    return {
        "people": [
            {"person": m.person_id, "name": name, "role": m.role, "delegation": delegation,
             "devices": by_person.get(m.person_id, [])}
            for m, name, delegation in rows
        ],
        "statements": [statement_json(s) for s in statements],
    }
