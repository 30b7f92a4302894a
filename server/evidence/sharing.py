"""Late recipients: a holder's signed share, and what is pending for whom."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import Actor
from server.audit import service as audit
from server.core.clock import utcnow
from server.core.errors import conflict, forbidden, invalid, not_found
from server.core.events import DomainEvent
from server.evidence import formats
from server.evidence.checks import (
    SHARE_FIELDS,
    check_entitled,
    recipient_devices,
    signed_body,
    str_field,
)
from server.evidence.formats import b64u
from server.evidence.models import (
    Device,
    Document,
    DocumentVersion,
    Share,
    WrappedKey,
)
from server.evidence.service import (
    EvidenceShared,
    Member,
    ShareBody,
    b64u_field,
    find_version,
    held_keys,
    live_devices,
    members,
    session_of,
)
from server.evidence.uploads import key_rows


async def share(db: AsyncSession, actor: Actor, version_id: str, body: ShareBody) -> list[DomainEvent]:
    """A holder's signed share: wrapped keys for recipients entitled (or granted)."""
    version, document = await find_version(db, actor.visit_id, version_id)
    session = await session_of(db, document)
    people = await members(db, document.visit_id, session)
    me = people.get(actor.person_id)
    if not version.complete or version.purged_at is not None or me is None or not me.sees_session:
        raise not_found("Document version")
    mine = await live_devices(db, actor.person_id)
    held = {k.device_id for k in (await held_keys(db, actor.person_id, [version.id]))[version.id]}
    if not held:
        raise forbidden("Only a holder of this version's key can share it.")
    signature = b64u_field(body.signature, "signature", length=64)
    s = signed_body(body.body, "body", SHARE_FIELDS, formats.SHARE_LABEL)
    if s["version"] != version.id:
        raise invalid(f"body: version must be {version.id}.")
    assert version.manifest is not None
    if s["manifest_hash"] != b64u(formats.sha256(version.manifest.encode("ascii"))):
        raise invalid("body: manifest_hash is not the hash of this version's manifest.")
    signer = mine.get(str_field(s["by"], "body: by"))
    if signer is None:
        raise forbidden("body: by must be one of your own devices.")
    if signer.id not in held:
        raise forbidden("body: the signing device holds no key to this version.")
    if s["by_fp"] != b64u(signer.fingerprint):
        raise invalid("body: by_fp is not the signing device's fingerprint.")
    recipients = await recipient_devices(db, s["recipients"], "body: recipients")
    keys = await key_rows(db, body.keys)
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
    check_entitled(recipients, people, actor.role)
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
            cache[document.session_id] = await members(db, actor.visit_id, await session_of(db, document))
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
