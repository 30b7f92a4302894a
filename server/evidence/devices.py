"""Devices, the statements they sign, recovery blobs and "add a device" links.

Devices belong to a person, not to a visit: a device registered through one visit's
login serves in all the person's visits. Device events (registration, revocation,
statements, recovery changes, device links) are audited in the chain of **every visit
the person is a member of**, so each visit's secretariat sees the devices that may
hold its documents' keys; a person in no visit (an administrator) goes to the global
chain. Functions flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.roles import Role
from server.audit import service as audit
from server.core.clock import iso_z, utcnow
from server.core.errors import DomainError, ErrorCode, conflict, forbidden, invalid, not_found
from server.core.events import DomainEvent
from server.core.ids import new_token
from server.core.security import token_hash
from server.evidence import formats
from server.evidence.formats import FormatError, b64u
from server.evidence.models import Device, DeviceLink, RecoveryBlob, Statement, WrappedKey
from server.people import logins as login_rules
from server.people.logins import Login
from server.people.models import LoginSession, Membership, Person
from server.visits.models import Visit

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
B64u = Annotated[str, StringConstraints(max_length=200_000, pattern=r"^[A-Za-z0-9_-]*$")]
DEVICE_LINK_MINUTES = 15
MAX_DEVICES_PER_PERSON = 50
PBKDF2_MIN_ITERATIONS = 600_000
MAX_RECOVERY_CIPHERTEXT = 16 * 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NewDevice(_Body):
    """``POST /api/devices``."""

    label: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
    sig_alg: Literal["Ed25519", "ES256"]
    sig_pub: B64u
    enc_pub: B64u


class NewStatement(_Body):
    """``POST /api/statements``."""

    kind: Literal["verify", "cross-sign"]
    body: Annotated[str, StringConstraints(min_length=2, max_length=4096)]
    signature: B64u


class Recovery(_Body):
    """``PUT /api/devices/{device}/recovery``: the sealed blob (docs/evidence.md)."""

    v: Literal[1]
    kdf: Literal["hkdf-sha256", "pbkdf2-sha256"]
    iterations: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    salt: B64u
    nonce: B64u
    ciphertext: B64u
    device: Id


@dataclass(frozen=True)
class DeviceRevoked(DomainEvent):
    """A device was revoked (committed): its person's sockets hear ``evidence.revoked``."""

    person_id: str
    device_id: str


# ---- reading ------------------------------------------------------------------------------


def device_json(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "person": device.person_id,
        "label": device.label,
        "sig_alg": device.sig_alg,
        "sig_pub": b64u(device.sig_pub),
        "enc_pub": b64u(device.enc_pub),
        "fingerprint": b64u(device.fingerprint),
        "safety_code": formats.safety_code(device.fingerprint),
        "created_at": iso_z(device.created_at),
        "revoked_at": iso_z(device.revoked_at) if device.revoked_at else None,
    }


def statement_json(statement: Statement) -> dict[str, Any]:
    return {
        "id": statement.id,
        "kind": statement.kind,
        "signer": statement.signer_device_id,
        "subject": statement.subject_device_id,
        "body": statement.body,
        "signature": b64u(statement.signature),
    }


async def devices_of(db: AsyncSession, person_ids: Sequence[str], *, live_only: bool = False) -> list[Device]:
    if not person_ids:
        return []
    query = select(Device).where(Device.person_id.in_(list(person_ids)))
    if live_only:
        query = query.where(Device.revoked_at.is_(None))
    return list((await db.execute(query.order_by(Device.created_at, Device.id))).scalars())


async def statements_about(db: AsyncSession, device_ids: Sequence[str]) -> list[Statement]:
    """Statements whose signer and subject are both among these devices."""
    ids = list(device_ids)
    if not ids:
        return []
    rows = await db.execute(
        select(Statement)
        .where(Statement.subject_device_id.in_(ids), Statement.signer_device_id.in_(ids))
        .order_by(Statement.created_at, Statement.id)
    )
    return list(rows.scalars())


# ---- auditing device events ---------------------------------------------------------------


async def audit_person_event(
    db: AsyncSession, action: str, *, person_id: str, actor_person_id: str | None, subject: str,
    data: dict[str, Any],
) -> None:
    """One entry in the chain of every visit the person belongs to (else the global one)."""
    visits = sorted(
        (await db.execute(select(Membership.visit_id).where(Membership.person_id == person_id))).scalars()
    )
    chains: list[str | None] = [*visits] if visits else [None]
    for visit_id in chains:
        await audit.record(db, action, actor_person_id=actor_person_id, visit_id=visit_id, subject=subject,
                           data={"person": person_id, **data})


# ---- devices ------------------------------------------------------------------------------


def _bytes(value: str, where: str, **kw: Any) -> bytes:
    try:
        return formats.from_b64u(value, **kw)
    except FormatError as exc:
        raise invalid(f"{where}: {exc}.") from None


async def create_device(db: AsyncSession, person: Person, body: NewDevice) -> Device:
    sig_pub = _bytes(body.sig_pub, "sig_pub", max_length=65)
    enc_pub = _bytes(body.enc_pub, "enc_pub", max_length=32)
    try:
        formats.check_device_keys(body.sig_alg, sig_pub, enc_pub)
    except FormatError as exc:
        raise invalid(str(exc) + ".") from None
    live = await devices_of(db, [person.id], live_only=True)
    if len(live) >= MAX_DEVICES_PER_PERSON:
        raise conflict(f"You have {len(live)} devices; revoke one you no longer use first.")
    if any(d.sig_pub == sig_pub or d.enc_pub == enc_pub for d in live):
        raise conflict("These keys are already registered as one of your devices.")
    device = Device(
        person_id=person.id, label=body.label.strip() or "Device", sig_alg=body.sig_alg, sig_pub=sig_pub,
        enc_pub=enc_pub, fingerprint=formats.fingerprint(person.id, body.sig_alg, sig_pub, enc_pub),
        created_at=utcnow(),
    )
    db.add(device)
    await db.flush()
    await audit_person_event(db, "device.created", person_id=person.id, actor_person_id=person.id,
                             subject=device.id, data={"fingerprint": b64u(device.fingerprint)})
    return device


async def _may_manage(db: AsyncSession, presented: Sequence[Login], device: Device) -> str:
    """The person acting on ``device``: its own person, or a secretariat member of a
    visit the device's person is in (through the login that grants that visit).
    Anyone else is told the device does not exist."""
    for person, _ in presented:
        if person.id == device.person_id:
            return person.id
    visits = (
        await db.execute(select(Membership.visit_id).where(Membership.person_id == device.person_id))
    ).scalars()
    for visit_id in visits:
        found = login_rules.login_for_visit(presented, visit_id)
        if found is None:
            continue
        role = (
            await db.execute(
                select(Membership.role).where(Membership.visit_id == visit_id, Membership.person_id == found[0].id)
            )
        ).scalar_one_or_none()
        if role == Role.SECRETARIAT:
            return found[0].id
    raise not_found("Device")


async def revoke_device(db: AsyncSession, presented: Sequence[Login], device_id: str) -> list[DomainEvent]:
    """Revoke a device: its wrapped keys and recovery blob are deleted at once."""
    device = await db.get(Device, device_id)
    if device is None:
        raise not_found("Device")
    actor = await _may_manage(db, presented, device)
    if device.revoked_at is not None:
        return []
    device.revoked_at = utcnow()
    removed = await db.execute(delete(WrappedKey).where(WrappedKey.device_id == device.id))
    await db.execute(delete(RecoveryBlob).where(RecoveryBlob.device_id == device.id))
    await db.flush()
    await audit_person_event(
        db, "device.revoked", person_id=device.person_id, actor_person_id=actor, subject=device.id,
        data={"fingerprint": b64u(device.fingerprint), "keys_deleted": int(removed.rowcount or 0)},  # type: ignore[attr-defined]
    )
    return [DeviceRevoked(device.person_id, device.id)]


async def own_device(db: AsyncSession, person_ids: set[str], device_id: str, *, live: bool = True) -> Device:
    device = await db.get(Device, device_id)
    if device is None or device.person_id not in person_ids:
        raise not_found("Device")
    if live and device.revoked_at is not None:
        raise conflict("This device was revoked.")
    return device


# ---- statements ---------------------------------------------------------------------------

_STATEMENT_FIELDS = {"t", "by", "by_fp", "subject", "subject_fp", "subject_person"}
_LABELS = {"verify": formats.VERIFY_LABEL, "cross-sign": formats.CROSS_SIGN_LABEL}


async def add_statement(db: AsyncSession, person_ids: set[str], body: NewStatement) -> tuple[Statement, bool]:
    """Check and store a signed statement; (statement, created). The same statement
    again returns the stored one."""
    try:
        value = formats.parse_canonical(body.body, max_bytes=4096)
    except FormatError as exc:
        raise invalid(f"body: {exc}.") from None
    if set(value) != _STATEMENT_FIELDS or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"body: must hold exactly {', '.join(sorted(_STATEMENT_FIELDS))}, all strings.")
    if value["t"] != _LABELS[body.kind]:
        raise invalid(f"body: t must be {_LABELS[body.kind]} for a {body.kind} statement.")
    signature = _bytes(body.signature, "signature", length=64)
    signer = await db.get(Device, value["by"])
    if signer is None or signer.person_id not in person_ids:
        raise forbidden("body: by must be one of your own devices.")
    if signer.revoked_at is not None:
        raise conflict("The signing device was revoked.")
    subject = await db.get(Device, value["subject"])
    if subject is None:
        raise not_found("Subject device")
    if value["by_fp"] != b64u(signer.fingerprint):
        raise invalid("body: by_fp is not the signing device's fingerprint.")
    if value["subject_fp"] != b64u(subject.fingerprint) or value["subject_person"] != subject.person_id:
        raise invalid("body: subject_fp and subject_person must be the subject device's.")
    if body.kind == "cross-sign" and subject.person_id != signer.person_id:
        raise invalid("body: a cross-sign statement is about a device of the same person.")
    if subject.id == signer.id:
        raise invalid("body: a device does not vouch for itself.")
    if not formats.verify_signature(signer.sig_alg, signer.sig_pub, body.body.encode("ascii"), signature):
        raise invalid("signature: does not verify with the signing device's key.")
    existing = (
        await db.execute(
            select(Statement).where(
                Statement.kind == body.kind, Statement.signer_device_id == signer.id,
                Statement.subject_device_id == subject.id,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    statement = Statement(kind=body.kind, signer_device_id=signer.id, subject_device_id=subject.id,
                          body=body.body, signature=signature, created_at=utcnow())
    db.add(statement)
    await db.flush()
    await audit_person_event(
        db, "device.statement", person_id=signer.person_id, actor_person_id=signer.person_id,
        subject=subject.id, data={"kind": body.kind, "signer": signer.id, "statement": statement.id},
    )
    return statement, True


# ---- recovery -----------------------------------------------------------------------------


async def put_recovery(db: AsyncSession, person_ids: set[str], device_id: str, body: Recovery) -> RecoveryBlob:
    device = await own_device(db, person_ids, device_id)
    if body.device != device.id:
        raise invalid("device: must be the device named in the path.")
    if body.kdf == "pbkdf2-sha256":
        if body.iterations is None or body.iterations < PBKDF2_MIN_ITERATIONS:
            raise invalid(f"iterations: PBKDF2 needs at least {PBKDF2_MIN_ITERATIONS} iterations.")
    elif body.iterations is not None:
        raise invalid("iterations: only for pbkdf2-sha256.")
    _bytes(body.salt, "salt", length=16)
    _bytes(body.nonce, "nonce", length=12)
    ciphertext = _bytes(body.ciphertext, "ciphertext", max_length=MAX_RECOVERY_CIPHERTEXT)
    if len(ciphertext) < 17:
        raise invalid("ciphertext: too short to be a sealed key set.")
    blob = body.model_dump(exclude_none=True)
    found = await db.get(RecoveryBlob, device.id)
    if found is None:
        found = RecoveryBlob(device_id=device.id, blob=blob, updated_at=utcnow())
        db.add(found)
    else:
        found.blob = blob
        found.updated_at = utcnow()
    await db.flush()
    await audit_person_event(db, "device.recovery_set", person_id=device.person_id,
                             actor_person_id=device.person_id, subject=device.id, data={"kdf": body.kdf})
    return found


async def get_recovery(db: AsyncSession, person_ids: set[str], device_id: str) -> dict[str, Any]:
    device = await own_device(db, person_ids, device_id, live=False)
    found = await db.get(RecoveryBlob, device.id)
    if found is None:
        raise not_found("Recovery blob")
    return dict(found.blob)


async def my_recovery(db: AsyncSession, person_id: str) -> list[dict[str, Any]]:
    rows = await db.execute(
        select(RecoveryBlob.blob)
        .join(Device, Device.id == RecoveryBlob.device_id)
        .where(Device.person_id == person_id, Device.revoked_at.is_(None))
        .order_by(Device.created_at, Device.id)
    )
    return [dict(blob) for blob in rows.scalars()]


# ---- device links -------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedLink:
    token: str
    expires_at: datetime


async def create_device_link(db: AsyncSession, secret_key: bytes, login: Login) -> IssuedLink:
    """A one-time link, valid for DEVICE_LINK_MINUTES, that opens a login like ``login``."""
    person, session = login
    token = new_token()
    now = utcnow()
    link = DeviceLink(token_hash=token_hash(secret_key, token), person_id=person.id, login_id=session.id,
                      created_at=now, expires_at=now + timedelta(minutes=DEVICE_LINK_MINUTES))
    db.add(link)
    await db.flush()
    await audit_person_event(db, "device_link.created", person_id=person.id, actor_person_id=person.id,
                             subject=link.id, data={"login": session.id, "expires_at": iso_z(link.expires_at)})
    return IssuedLink(token, link.expires_at)


@dataclass(frozen=True)
class SpentLink:
    token: str
    login: LoginSession


async def spend_device_link(db: AsyncSession, secret_key: bytes, token: str, *, user_agent: str) -> SpentLink:
    """Spend a link once: a new login of its person with the scope of the login that
    made it (its visit and membership; a password login's expiry, never later).
    ``gone`` for an unknown, spent or expired link or an ended login."""
    gone = DomainError(ErrorCode.GONE, "This device link is spent, expired or unknown.")
    if not token or len(token) > 200:
        raise gone
    link = (
        await db.execute(select(DeviceLink).where(DeviceLink.token_hash == token_hash(secret_key, token)))
    ).scalar_one_or_none()
    now = utcnow()
    if link is None or link.spent_at is not None or link.expires_at <= now:
        raise gone
    row = (
        await db.execute(
            select(LoginSession, Visit.status)
            .outerjoin(Visit, Visit.id == LoginSession.visit_id)
            .where(LoginSession.id == link.login_id)
        )
    ).first()
    if row is None or not login_rules.is_valid(row[0], row[1], now):
        raise gone
    creator: LoginSession = row[0]
    spent = await db.execute(
        update(DeviceLink).where(DeviceLink.id == link.id, DeviceLink.spent_at.is_(None)).values(spent_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise gone
    new_token_value = new_token()
    login = LoginSession(
        person_id=link.person_id, token_hash=token_hash(secret_key, new_token_value), via=creator.via,
        visit_id=creator.visit_id, membership_id=creator.membership_id, user_agent=user_agent[:300],
        created_at=now, last_seen_at=now, expires_at=creator.expires_at,
    )
    db.add(login)
    await db.flush()
    await audit.record(db, "login", actor_person_id=link.person_id, visit_id=creator.visit_id, subject=login.id,
                       data={"via": creator.via, "device_link": link.id})
    return SpentLink(new_token_value, login)
