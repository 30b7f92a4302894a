"""Trust as the command-line client computes it (docs/evidence.md "Trust"): its own
device, devices verified by statements, devices pinned on first sight; a changed
fingerprint, or a new device replacing a verified one without a cross-signature, is a
warning and gets nothing until verified again."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from parley_client.encoding import b64u
from parley_client.errors import EvidenceError
from parley_client.keys import DevicePublic
from parley_client.statements import STATEMENT_KINDS, verify_statement


class Status(StrEnum):
    OWN = "own"
    VERIFIED = "verified"
    PINNED = "pinned"  # seen before with this fingerprint
    NEW = "new"  # first seen now, and pinned now
    CHANGED = "changed"  # warning: another fingerprint than the pinned one
    UNVOUCHED = "unvouched"  # warning: replaces a verified device with no cross-signature

    @property
    def may_receive(self) -> bool:
        return self not in (Status.CHANGED, Status.UNVOUCHED)


@dataclass(frozen=True)
class Statement:
    kind: str
    body: str
    signature: str


@dataclass
class Assessment:
    status: dict[str, Status]
    pins: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _verified(devices: Mapping[str, DevicePublic], statements: Iterable[Statement], me: str) -> set[str]:
    """Devices vouched for, to a fixed point: a verify statement by this device, or a
    cross-sign by a verified device of the same person, about the current fingerprint."""
    pending = list(statements)
    trusted = {me}
    verified: set[str] = set()
    changed = True
    while changed:
        changed = False
        for statement in list(pending):
            if statement.kind not in STATEMENT_KINDS:
                pending.remove(statement)
                continue
            try:
                signer = devices.get(_peek(statement.body, "by"))
                if signer is None:
                    continue
                if statement.kind == "verify" and signer.id not in trusted:
                    continue
                if statement.kind == "cross-sign" and signer.id not in trusted | verified:
                    continue
                body = verify_statement(signer.sig_alg, signer.sig_pub, statement.body, statement.signature)
            except EvidenceError:
                pending.remove(statement)
                continue
            pending.remove(statement)
            subject = devices.get(str(body.get("subject")))
            if (
                body.get("t") != STATEMENT_KINDS[statement.kind]
                or subject is None
                or body.get("by_fp") != b64u(signer.fingerprint)
                or body.get("subject_fp") != b64u(subject.fingerprint)
                or body.get("subject_person") != subject.person
                or (statement.kind == "cross-sign" and subject.person != signer.person)
            ):
                continue
            if subject.id not in verified:
                verified.add(subject.id)
                changed = True
    return verified


def _peek(text: str, field_name: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        return ""
    return str(value.get(field_name, "")) if isinstance(value, dict) else ""


def assess(devices: Iterable[DevicePublic], statements: Iterable[Statement], me: str,
           pins: Mapping[str, Any]) -> Assessment:
    """Each listed (non-revoked) device's status, and the pins to store afterwards."""
    listed = {d.id: d for d in devices}
    verified = _verified(listed, statements, me)
    new_pins: dict[str, Any] = {k: dict(v) for k, v in pins.items() if isinstance(v, dict)}
    gone_verified_people = {
        pin.get("person") for device_id, pin in new_pins.items() if pin.get("verified") and device_id not in listed
    }
    out = Assessment(status={}, pins=new_pins)
    for d in listed.values():
        fp = b64u(d.fingerprint)
        pin = new_pins.get(d.id)
        is_verified = d.id in verified
        if d.id == me:
            out.status[d.id] = Status.OWN
            new_pins[d.id] = {"fp": fp, "person": d.person, "verified": True}
        elif pin is not None and pin.get("fp") == fp:
            out.status[d.id] = Status.VERIFIED if is_verified or pin.get("verified") else Status.PINNED
            pin["verified"] = bool(pin.get("verified")) or is_verified
        elif is_verified:
            out.status[d.id] = Status.VERIFIED
            new_pins[d.id] = {"fp": fp, "person": d.person, "verified": True}
        elif pin is not None:
            out.status[d.id] = Status.CHANGED
            out.warnings.append(f"Device {d.id} now presents another key (fingerprint) than the one pinned: "
                                "nothing is shared with it until it is verified again.")
        elif d.person in gone_verified_people:
            out.status[d.id] = Status.UNVOUCHED
            out.warnings.append(f"Device {d.id} replaces a verified device of the same person without a "
                                "cross-signature: nothing is shared with it until it is verified.")
        else:
            out.status[d.id] = Status.NEW
            new_pins[d.id] = {"fp": fp, "person": d.person, "verified": False}
    return out
