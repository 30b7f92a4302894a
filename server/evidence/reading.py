"""Reading: downloads (audited), the document listing, a document's audit trail and
the visit's keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import Actor
from server.access.policy import Action, decide
from server.access.roles import Role
from server.agenda.models import AgendaSession
from server.audit import service as audit
from server.audit.models import AuditEntry
from server.core.clock import iso_z
from server.core.errors import forbidden, not_found
from server.evidence.devices import device_json, devices_of, statement_json, statements_about
from server.evidence.formats import b64u
from server.evidence.models import (
    Device,
    Document,
    DocumentVersion,
    Share,
    WrappedKey,
)
from server.evidence.service import (
    Member,
    find_version,
    held_keys,
    members,
    session_of,
)
from server.people.models import Membership, Person
from server.visits.models import Delegation

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
    version, document = await find_version(db, actor.visit_id, version_id)
    session = await session_of(db, document)
    me = (await members(db, document.visit_id, session)).get(actor.person_id)
    if me is None or not me.sees_session or not version.complete:
        raise not_found("Document version")
    if version.purged_at is not None:
        raise not_found("Document version")
    if not (await held_keys(db, actor.person_id, [version.id]))[version.id]:
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


def version_json(version: DocumentVersion, shares: list[Share], keys: list[WrappedKey]) -> dict[str, Any]:
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
    held = await held_keys(db, actor.person_id, [v.id for vs in versions.values() for v in vs])
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
    uploaders = await uploader_cards(
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
            "version": version_json(current, shares[current.id], held[current.id]),
            # Every kept version in full, newest first: an older one opens for whoever
            # holds a key to it (``keys``: the caller's own live devices only).
            "versions": [
                {**version_json(v, shares[v.id], held[v.id]),
                 "uploader": {**card(v.uploader_person_id), "device": v.uploader_device_id}}
                for v in vs
            ],
        })
    return out


async def uploader_cards(db: AsyncSession, visit_id: str, person_ids: set[str]) -> dict[str, dict[str, Any]]:
    if not person_ids:
        return {}
    rows = await db.execute(
        select(Person.id, Person.name, Delegation.name)
        .join(Membership, and_(Membership.person_id == Person.id, Membership.visit_id == visit_id), isouter=True)
        .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
        .where(Person.id.in_(person_ids))
    )
    return {pid: {"person": pid, "name": name, "delegation": delegation} for pid, name, delegation in rows.all()}




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
