"""Interpretation booths of a visit: one per language, staffed by one or two of the
visit's interpreters, exactly one of whom is active (on the microphone) at a time.

Who serves in which booth will decide who may publish a booth's audio, so every change
to the interpreters is an access fact: it raises the visit's access version
(``facts.bump``) in the same transaction. Every change is audited. Functions flush;
the caller commits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from babel import Locale
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.roles import Role
from server.audit import service as audit
from server.booths.models import Booth, BoothInterpreter
from server.core.errors import DomainError, ErrorCode, conflict, invalid, not_found
from server.core.events import DomainEvent
from server.people.models import Membership, Person

MAX_INTERPRETERS = 2
# language[-script][-region]: the part of BCP 47 a booth needs ("en", "pt-BR", "zh-Hans").
_TAG = re.compile(r"^(?P<lang>[A-Za-z]{2,3})(?:-(?P<script>[A-Za-z]{4}))?(?:-(?P<region>[A-Za-z]{2}|[0-9]{3}))?$")
_ENGLISH = Locale("en")

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=35)]


class BoothCreate(BaseModel):
    """``POST /api/visits/{visit_id}/booths``: a language and up to two interpreters."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    language: Tag
    interpreters: Annotated[list[Id], Field(max_length=MAX_INTERPRETERS)] = []


class BoothChange(BaseModel):
    """``PATCH .../booths/{booth_id}``: any of language, interpreters (1 or 2) and active."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    language: Tag | None = None
    interpreters: Annotated[list[Id], Field(min_length=1, max_length=MAX_INTERPRETERS)] | None = None
    active: Id | None = None


def language_tag(raw: str) -> tuple[str, str]:
    """A BCP 47 tag, normalised (``pt-br`` -> ``pt-BR``), and its English name;
    ``invalid`` for anything else or a language nobody knows."""
    match = _TAG.match(raw.strip().replace("_", "-"))
    if match is None:
        raise invalid(f"language: {raw[:40]!r} is not a language tag such as 'en', 'es' or 'pt-BR'.")
    lang = match["lang"].lower()
    script = match["script"].title() if match["script"] else None
    region = match["region"].upper() if match["region"] else None
    name = _ENGLISH.languages.get(lang)
    extras = [_ENGLISH.scripts.get(script) if script else None, _ENGLISH.territories.get(region) if region else None]
    if name is None or (script and extras[0] is None) or (region and extras[1] is None):
        raise invalid(f"language: {raw[:40]!r} names no known language, script or region.")
    tag = "-".join(part for part in (lang, script, region) if part)
    details = ", ".join(e for e in extras if e)
    return tag, f"{name} ({details})" if details else name


def language_name(tag: str) -> str:
    return language_tag(tag)[1]


@dataclass(frozen=True)
class BoothsChanged(DomainEvent):
    """A visit's booths or their interpreters changed (published after the commit):
    the rooms' audio follows (who may publish into a booth, who is forwarded)."""

    visit_id: str


@dataclass(frozen=True)
class InterpreterView:
    membership_id: str
    name: str
    active: bool


@dataclass(frozen=True)
class BoothView:
    id: str
    visit_id: str
    language: str
    language_name: str
    interpreters: list[InterpreterView]

    @property
    def active(self) -> InterpreterView | None:
        return next((i for i in self.interpreters if i.active), None)

    def as_json(self) -> dict[str, Any]:
        active = self.active
        return {
            "id": self.id,
            "language": self.language,
            "language_name": self.language_name,
            "interpreters": [{"membership_id": i.membership_id, "name": i.name, "active": i.active}
                             for i in self.interpreters],
            "active": active.membership_id if active else None,
        }


# ---- reading ---------------------------------------------------------------------------------


async def _views(db: AsyncSession, booths: Sequence[Booth]) -> list[BoothView]:
    ids = [b.id for b in booths]
    staff: dict[str, list[tuple[str, str]]] = {b: [] for b in ids}
    if ids:
        rows = await db.execute(
            select(BoothInterpreter.booth_id, BoothInterpreter.membership_id, Person.name)
            .join(Membership, Membership.id == BoothInterpreter.membership_id)
            .join(Person, Person.id == Membership.person_id)
            .where(BoothInterpreter.booth_id.in_(ids))
            .order_by(BoothInterpreter.booth_id, BoothInterpreter.position)
        )
        for booth_id, membership_id, name in rows.all():
            staff[booth_id].append((membership_id, name))
    return [
        BoothView(
            b.id, b.visit_id, b.language, language_name(b.language),
            [InterpreterView(m, name, m == b.active_membership_id) for m, name in staff[b.id]],
        )
        for b in booths
    ]


async def list_booths(db: AsyncSession, visit_id: str) -> list[BoothView]:
    """The visit's booths by language, each with its interpreters in order."""
    booths = (await db.execute(select(Booth).where(Booth.visit_id == visit_id).order_by(Booth.language))).scalars()
    return await _views(db, list(booths))


async def _booth(db: AsyncSession, visit_id: str, booth_id: str) -> Booth:
    booth = await db.get(Booth, booth_id)
    if booth is None or booth.visit_id != visit_id:
        raise not_found("Booth")
    return booth


async def booth_view(db: AsyncSession, visit_id: str, booth_id: str) -> BoothView:
    return (await _views(db, [await _booth(db, visit_id, booth_id)]))[0]


async def _staff(db: AsyncSession, booth_id: str) -> list[str]:
    rows = await db.execute(
        select(BoothInterpreter.membership_id)
        .where(BoothInterpreter.booth_id == booth_id)
        .order_by(BoothInterpreter.position)
    )
    return list(rows.scalars())


# ---- rules -----------------------------------------------------------------------------------


async def _free_language(db: AsyncSession, visit_id: str, tag: str, booth_id: str | None = None) -> None:
    taken = (
        await db.execute(select(Booth.id).where(Booth.visit_id == visit_id, Booth.language == tag))
    ).scalar_one_or_none()
    if taken is not None and taken != booth_id:
        raise conflict(f"language: this visit already has a booth for {tag}.")


async def _check_interpreters(
    db: AsyncSession, visit_id: str, membership_ids: Sequence[str], booth_id: str | None
) -> None:
    """At most two distinct interpreters of this visit, none serving in another booth."""
    if len(membership_ids) > MAX_INTERPRETERS:
        raise invalid(f"interpreters: a booth has at most {MAX_INTERPRETERS} interpreters.")
    if len(set(membership_ids)) != len(membership_ids):
        raise invalid("interpreters: the same participant is named twice.")
    for membership_id in membership_ids:
        membership = await db.get(Membership, membership_id)
        if membership is None or membership.visit_id != visit_id:
            raise not_found("Participant")
        if membership.role != Role.INTERPRETER:
            raise invalid("interpreters: only the visit's interpreters can serve in a booth.")
    if membership_ids:
        elsewhere = (
            await db.execute(
                select(BoothInterpreter.membership_id).where(
                    BoothInterpreter.membership_id.in_(list(membership_ids)),
                    BoothInterpreter.booth_id != (booth_id or ""),
                )
            )
        ).first()
        if elsewhere is not None:
            raise conflict("interpreters: an interpreter already serves in another booth of this visit.")


async def _staff_booth(db: AsyncSession, booth: Booth, membership_ids: Sequence[str]) -> None:
    """Replace the booth's interpreters (in order). The active one stays active if they
    remain; otherwise the first becomes active."""
    await db.execute(delete(BoothInterpreter).where(BoothInterpreter.booth_id == booth.id))
    await db.flush()
    for position, membership_id in enumerate(membership_ids, start=1):
        db.add(BoothInterpreter(booth_id=booth.id, membership_id=membership_id, position=position))
    if booth.active_membership_id not in membership_ids:
        booth.active_membership_id = membership_ids[0] if membership_ids else None


# ---- changes ---------------------------------------------------------------------------------


async def create_booth(
    db: AsyncSession, visit_id: str, language: str, interpreters: Sequence[str] = (), *,
    actor_person_id: str | None,
) -> BoothView:
    """A new booth (a language not yet served), with up to two interpreters; the first is active."""
    tag, _ = language_tag(language)
    await _free_language(db, visit_id, tag)
    await _check_interpreters(db, visit_id, interpreters, None)
    booth = Booth(visit_id=visit_id, language=tag)
    db.add(booth)
    await db.flush()
    await _staff_booth(db, booth, interpreters)
    await db.flush()
    await audit.record(
        db, "booth.created", actor_person_id=actor_person_id, visit_id=visit_id, subject=booth.id,
        data={"language": tag, "interpreters": list(interpreters), "active": booth.active_membership_id},
    )
    await facts.bump(db, visit_id)
    await db.flush()
    return await booth_view(db, visit_id, booth.id)


async def change_booth(
    db: AsyncSession, visit_id: str, booth_id: str, changes: BoothChange, *, actor_person_id: str | None
) -> BoothView:
    """Change the language, the interpreters (1 or 2) and/or who is active (one of the
    booth's interpreters, after the change)."""
    booth = await _booth(db, visit_id, booth_id)
    record: dict[str, Any] = {}
    if changes.language is not None:
        tag, _ = language_tag(changes.language)
        if tag != booth.language:
            await _free_language(db, visit_id, tag, booth.id)
            record["language"] = {"from": booth.language, "to": tag}
            booth.language = tag
    staff = await _staff(db, booth.id)
    if changes.interpreters is not None and list(changes.interpreters) != staff:
        await _check_interpreters(db, visit_id, changes.interpreters, booth.id)
        record["interpreters"] = {"from": staff, "to": list(changes.interpreters)}
        await _staff_booth(db, booth, changes.interpreters)
        staff = list(changes.interpreters)
    before = booth.active_membership_id
    if changes.active is not None:
        if changes.active not in staff:
            raise invalid("active: must be one of the booth's interpreters.")
        booth.active_membership_id = changes.active
    if booth.active_membership_id != before:
        record["active"] = {"from": before, "to": booth.active_membership_id}
    if record:
        await db.flush()
        await audit.record(
            db, "booth.changed", actor_person_id=actor_person_id, visit_id=visit_id, subject=booth.id, data=record
        )
        if "interpreters" in record or "active" in record:
            await facts.bump(db, visit_id)
    await db.flush()
    return await booth_view(db, visit_id, booth.id)


async def change_language(
    db: AsyncSession, visit_id: str, booth_id: str, language: str, *, actor_person_id: str | None
) -> BoothView:
    return await change_booth(db, visit_id, booth_id, BoothChange(language=language), actor_person_id=actor_person_id)


async def assign_interpreters(
    db: AsyncSession, visit_id: str, booth_id: str, interpreters: Sequence[str], *, actor_person_id: str | None
) -> BoothView:
    """Staff the booth with one or two interpreters, in order."""
    if not 1 <= len(interpreters) <= MAX_INTERPRETERS:
        raise invalid(f"interpreters: name one or {MAX_INTERPRETERS} interpreters.")
    return await change_booth(
        db, visit_id, booth_id, BoothChange(interpreters=list(interpreters)), actor_person_id=actor_person_id
    )


async def hand_over(
    db: AsyncSession, visit_id: str, booth_id: str, *, actor_person_id: str | None,
    expected_active: str | None = None,
) -> BoothView:
    """The other interpreter of the booth takes over (``conflict`` with fewer than two).
    ``expected_active``: only if this interpreter is the active one (``forbidden``)."""
    booth = await _booth(db, visit_id, booth_id)
    if expected_active is not None and booth.active_membership_id != expected_active:
        raise DomainError(ErrorCode.FORBIDDEN, "Only the booth's active interpreter hands over.")
    staff = await _staff(db, booth.id)
    if len(staff) < 2:
        raise conflict("This booth has only one interpreter: there is nobody to hand over to.")
    before = booth.active_membership_id
    booth.active_membership_id = next(m for m in staff if m != before)
    await db.flush()
    await audit.record(
        db, "booth.handed_over", actor_person_id=actor_person_id, visit_id=visit_id, subject=booth.id,
        data={"from": before, "to": booth.active_membership_id},
    )
    await facts.bump(db, visit_id)
    await db.flush()
    return await booth_view(db, visit_id, booth.id)


async def remove_booth(db: AsyncSession, visit_id: str, booth_id: str, *, actor_person_id: str | None) -> None:
    booth = await _booth(db, visit_id, booth_id)
    staff = await _staff(db, booth.id)
    await db.execute(delete(BoothInterpreter).where(BoothInterpreter.booth_id == booth.id))
    await db.delete(booth)
    await db.flush()
    await audit.record(
        db, "booth.removed", actor_person_id=actor_person_id, visit_id=visit_id, subject=booth_id,
        data={"language": booth.language, "interpreters": staff},
    )
    await facts.bump(db, visit_id)
    await db.flush()
