"""What the server can check in signed manifests and shares without any key: their
canonical form, fields and ids, the recipients and who may receive (docs/evidence.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.roles import Role
from server.core.errors import conflict, forbidden, invalid
from server.evidence import formats
from server.evidence.formats import FormatError, b64u
from server.evidence.models import (
    Device,
)
from server.evidence.service import (
    MAX_KEYS,
    Member,
)

# ---- signed documents: manifests and shares --------------------------------------------------

MANIFEST_FIELDS = {"t", "visit", "document", "version", "chunk_size", "chunks", "size", "chunk_hashes",
                    "meta_hash", "commit", "uploader", "uploader_fp", "recipients"}
SHARE_FIELDS = {"t", "version", "manifest_hash", "by", "by_fp", "recipients"}
RECIPIENT_FIELDS = {"device", "fp", "person"}


def signed_body(text: str, where: str, fields: set[str], label: str) -> dict[str, Any]:
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


def str_field(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{where}: must be a string.")
    return value


def int_field(value: Any, where: str) -> int:
    if not isinstance(value, int):
        raise invalid(f"{where}: must be an integer.")
    return value


async def recipient_devices(db: AsyncSession, raw: Any, where: str) -> list[Device]:
    """The recipients list: sorted by device, no repeats, each a live device of the
    person named, with its current fingerprint."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_KEYS:
        raise invalid(f"{where}: must list 1 to {MAX_KEYS} recipients.")
    devices: list[Device] = []
    for n, entry in enumerate(raw):
        if not isinstance(entry, dict) or set(entry) != RECIPIENT_FIELDS:
            raise invalid(f"{where}[{n}]: must hold exactly device, fp and person.")
        device = await db.get(Device, str_field(entry["device"], f"{where}[{n}].device"))
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


def check_entitled(recipients: Iterable[Device], people: dict[str, Member], granted_by: Role) -> None:
    for device in recipients:
        member = people.get(device.person_id)
        if member is None:
            raise forbidden(f"recipients: device {device.id} belongs to someone who is not in this visit.")
        if not member.may_receive(granted_by):
            raise forbidden(f"recipients: {member.name} ({member.role}) may not receive this document.")


def check_secretariat(recipients: Sequence[Device], people: dict[str, Member], live_by_person: dict[str, int]) -> None:
    """Each secretariat member with a live device has one among the recipients."""
    named = {d.person_id for d in recipients}
    for member in people.values():
        if member.role == Role.SECRETARIAT and live_by_person.get(member.person_id) and member.person_id not in named:
            raise invalid(f"recipients: the secretariat ({member.name}) must be among the recipients.")


async def live_device_counts(db: AsyncSession, person_ids: Iterable[str]) -> dict[str, int]:
    ids = list(person_ids)
    if not ids:
        return {}
    rows = await db.execute(
        select(Device.person_id, func.count()).where(Device.person_id.in_(ids), Device.revoked_at.is_(None))
        .group_by(Device.person_id)
    )
    return {p: int(n) for p, n in rows.all()}


def hash_list(raw: Any, n: int) -> list[bytes]:
    if not isinstance(raw, list) or len(raw) != n:
        raise invalid(f"manifest: chunk_hashes must list {n} hashes.")
    out = []
    for i, h in enumerate(raw):
        try:
            out.append(formats.from_b64u(h, length=32))
        except FormatError as exc:
            raise invalid(f"manifest: chunk_hashes[{i}]: {exc}.") from None
    return out
