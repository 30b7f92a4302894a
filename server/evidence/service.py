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

This module holds what the others share: request bodies, the runtime, the geometry of
chunks, who is who in a document's session and the lookups of versions and keys.
``uploads`` (a version from creation to completion), ``checks`` (signed manifests and
shares, as far as a server can check them), ``sharing`` (late recipients) and
``reading`` (downloads, listings, a document's audit trail, the visit's keys) build on it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.guard import Lookup
from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.agenda.models import AgendaSession
from server.core.errors import invalid, not_found
from server.core.events import DomainEvent
from server.core.locks import KeyedLock
from server.core.ratelimit import TokenBucket
from server.evidence import formats
from server.evidence.blobs import BlobStore
from server.evidence.devices import B64u, Id
from server.evidence.formats import CHUNK_SIZE, CHUNK_STRIDE, FormatError
from server.evidence.models import (
    Device,
    Document,
    DocumentVersion,
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


class ChunkWrites:
    """Who writes which chunk in this process: one writer per (version, index) at a time
    (``lock``), and when each chunk's row was last committed here, for ``remember``
    seconds.

    A chunk's bytes are written before its row is committed, so a writer must know,
    holding the lock, whether a row appeared since the guard read it (it must then not
    overwrite the stored bytes). ``committed_since`` answers without a query when no
    commit of that chunk was recorded after the read; a read older than ``remember``
    seconds (a very slow body) cannot be vouched for and needs a fresh look."""

    def __init__(self, remember: float = 60.0) -> None:
        self.lock = KeyedLock("chunk")
        self.remember = remember
        self._committed: OrderedDict[tuple[str, int], float] = OrderedDict()

    def committed(self, key: tuple[str, int]) -> None:
        """A row for ``key`` was (or may have been) committed just now."""
        now = time.monotonic()
        self._committed[key] = now
        self._committed.move_to_end(key)
        self._forget(now)

    def committed_since(self, key: tuple[str, int], since: float) -> bool:
        """Whether a row for ``key`` may have been committed after ``since``."""
        now = time.monotonic()
        self._forget(now)
        if since <= now - self.remember:
            return True
        at = self._committed.get(key)
        return at is not None and at >= since

    def _forget(self, now: float) -> None:
        while self._committed:
            key, at = next(iter(self._committed.items()))
            if at > now - self.remember:
                break
            del self._committed[key]

    def __len__(self) -> int:
        return len(self._committed)


class Buffers:
    """Reusable chunk buffers (``CHUNK_STRIDE`` bytes each): a request body is read into
    one, so its memory is not faulted in afresh for every chunk. At most ``keep`` idle
    buffers are kept; more are made as needed and dropped when given back."""

    def __init__(self, keep: int = 8, size: int = CHUNK_STRIDE) -> None:
        self.keep = keep
        self.size = size
        self._idle: list[bytearray] = []

    def take(self) -> bytearray:
        return self._idle.pop() if self._idle else bytearray(self.size)

    def give(self, buffer: bytearray) -> None:
        if len(self._idle) < self.keep and len(buffer) == self.size:
            self._idle.append(buffer)


@dataclass
class EvidenceRuntime:
    """What one process needs for evidence: the blob store, the size limit, the limits,
    when each (person, version) chunk download was last audited, the chunk writers and
    the body buffers."""

    store: BlobStore
    max_bytes: int
    limits: Limits = field(default_factory=Limits)
    chunk_audits: dict[tuple[str, str], float] = field(default_factory=dict)
    writes: ChunkWrites = field(default_factory=ChunkWrites)
    buffers: Buffers = field(default_factory=Buffers)

    def audit_chunk_due(self, person_id: str, version_id: str) -> bool:
        now = time.monotonic()
        key = (person_id, version_id)
        if now - self.chunk_audits.get(key, -CHUNK_AUDIT_SECONDS) < CHUNK_AUDIT_SECONDS:
            return False
        if len(self.chunk_audits) > 10_000:
            self.chunk_audits = {k: t for k, t in self.chunk_audits.items() if now - t < CHUNK_AUDIT_SECONDS}
        self.chunk_audits[key] = now
        return True


def b64u_field(value: str, where: str, **kw: Any) -> bytes:
    try:
        return formats.from_b64u(value, **kw)
    except FormatError as exc:
        raise invalid(f"{where}: {exc}.") from None


def meta_field(value: str) -> bytes:
    meta = b64u_field(value, "meta", max_length=MAX_META_BYTES)
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


def check_geometry(chunks: int, size: int) -> None:
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


async def session_of(db: AsyncSession, document: Document) -> AgendaSession | None:
    return await db.get(AgendaSession, document.session_id) if document.session_id else None


async def live_devices(db: AsyncSession, person_id: str) -> dict[str, Device]:
    rows = await db.execute(select(Device).where(Device.person_id == person_id, Device.revoked_at.is_(None)))
    return {d.id: d for d in rows.scalars()}


async def held_keys(db: AsyncSession, person_id: str, version_ids: Sequence[str]) -> dict[str, list[WrappedKey]]:
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


# The guard's lookups for ``/api/versions/{version_id}/...`` and
# ``/api/documents/{document_id}/...`` routes.
visit_of_version = Lookup(
    select(Document.visit_id)
    .join(DocumentVersion, DocumentVersion.document_id == Document.id)
    .where(DocumentVersion.id == bindparam("version_id")),
    Document.visit_id,
    lambda match: {"version_id": match["version_id"]},
)
visit_of_document = Lookup(
    select(Document.visit_id).where(Document.id == bindparam("document_id")),
    Document.visit_id,
    lambda match: {"document_id": match["document_id"]},
)


async def find_version(db: AsyncSession, visit_id: str, version_id: str) -> tuple[DocumentVersion, Document]:
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
