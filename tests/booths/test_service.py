"""Booth rules: language tags, one booth per language, one or two interpreters of this
visit each serving in one booth, hand-over; every change audited and raising the
visit's access version."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.access import facts
from server.audit.models import AuditEntry
from server.booths import service as booths
from server.booths.models import Booth, BoothInterpreter
from server.core.errors import DomainError
from tests.fixtures.world import World, build_world


def ids(world: World, *keys: str) -> list[str]:
    return [world.members[k].membership_id for k in keys]


def actor(world: World) -> str:
    return world.members["secretariat"].person_id


async def expect(code: str, work: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        await work
    assert caught.value.code == code, caught.value.message
    return caught.value


@pytest.mark.parametrize(
    ("raw", "tag", "name"),
    [("en", "en", "English"), ("ES", "es", "Spanish"), ("fr", "fr", "French"), ("ar", "ar", "Arabic"),
     ("zh", "zh", "Chinese"), ("ru", "ru", "Russian"), ("pt-br", "pt-BR", "Portuguese (Brazil)"),
     ("pt_BR", "pt-BR", "Portuguese (Brazil)"), ("zh-hans", "zh-Hans", "Chinese (Simplified Han)")],
)
def test_language_tags_are_normalised_and_named(raw: str, tag: str, name: str) -> None:
    got_tag, got_name = booths.language_tag(raw)
    assert got_tag == tag
    assert got_name == name or (tag == "zh-Hans" and got_name.startswith("Chinese ("))


@pytest.mark.parametrize("raw", ["", "english", "e", "xx", "en-AA", "en-Xxxx", "en US", "en-US-x-private", "ñ", "en\x00"])
def test_bad_language_tags_are_refused(raw: str) -> None:
    with pytest.raises(DomainError) as caught:
        booths.language_tag(raw)
    assert caught.value.code == "invalid"


async def test_create_list_and_one_booth_per_language(sessions: Any, world: World) -> None:
    async with sessions() as db:
        before = await facts.version(db, world.visit_id)
        es = await booths.create_booth(db, world.visit_id, "es", ids(world, "interpreter", "interpreter2"),
                                       actor_person_id=actor(world))
        en = await booths.create_booth(db, world.visit_id, "EN", ids(world, "interpreter3"), actor_person_id=actor(world))
        await db.commit()
        assert await facts.version(db, world.visit_id) > before
    assert es.language == "es" and es.language_name == "Spanish"
    assert [i.membership_id for i in es.interpreters] == ids(world, "interpreter", "interpreter2")
    assert es.active is not None and es.active.membership_id == world.members["interpreter"].membership_id
    assert en.language == "en" and en.active is not None
    async with sessions() as db:
        listed = await booths.list_booths(db, world.visit_id)
        assert [b.language for b in listed] == ["en", "es"]
        assert listed[1].as_json() == es.as_json()
        await expect("conflict", booths.create_booth(db, world.visit_id, "es", [], actor_person_id=actor(world)))


async def test_interpreters_rules(sessions: Any, world: World, settings: Any) -> None:
    async with sessions() as db:
        other = await build_world(db, settings, extra_experts=0)
    async with sessions() as db:
        v = world.visit_id
        # at most two
        await expect("invalid", booths.create_booth(
            db, v, "fr", ids(world, "interpreter", "interpreter2", "interpreter3"), actor_person_id=actor(world)))
        # the same one twice
        await expect("invalid", booths.create_booth(
            db, v, "fr", ids(world, "interpreter", "interpreter"), actor_person_id=actor(world)))
        # only interpreters
        await expect("invalid", booths.create_booth(db, v, "fr", ids(world, "expert"), actor_person_id=actor(world)))
        # only this visit's
        await expect("not_found", booths.create_booth(
            db, v, "fr", [other.members["interpreter"].membership_id], actor_person_id=actor(world)))
        booth = await booths.create_booth(db, v, "fr", ids(world, "interpreter"), actor_person_id=actor(world))
        # one booth per interpreter
        await expect("conflict", booths.create_booth(db, v, "ar", ids(world, "interpreter"), actor_person_id=actor(world)))
        # assigning: one or two
        await expect("invalid", booths.assign_interpreters(db, v, booth.id, [], actor_person_id=actor(world)))
        changed = await booths.assign_interpreters(db, v, booth.id, ids(world, "interpreter2", "interpreter"),
                                                   actor_person_id=actor(world))
        # the active interpreter stays active when they remain
        assert changed.active is not None and changed.active.membership_id == ids(world, "interpreter")[0]
        assert [i.membership_id for i in changed.interpreters] == ids(world, "interpreter2", "interpreter")
        changed = await booths.assign_interpreters(db, v, booth.id, ids(world, "interpreter3"),
                                                   actor_person_id=actor(world))
        assert changed.active is not None and changed.active.membership_id == ids(world, "interpreter3")[0]
        await db.commit()
        rows = (await db.execute(select(BoothInterpreter))).scalars().all()
        assert [(r.membership_id, r.position) for r in rows] == [(ids(world, "interpreter3")[0], 1)]


async def test_hand_over_flips_the_active_interpreter(sessions: Any, world: World) -> None:
    async with sessions() as db:
        v = world.visit_id
        one = await booths.create_booth(db, v, "ru", ids(world, "interpreter3"), actor_person_id=actor(world))
        two = await booths.create_booth(db, v, "ar", ids(world, "interpreter", "interpreter2"),
                                        actor_person_id=actor(world))
        await db.commit()
        version = await facts.version(db, v)
        err = await expect("conflict", booths.hand_over(db, v, one.id, actor_person_id=actor(world)))
        assert "only one interpreter" in err.message
        first = await booths.hand_over(db, v, two.id, actor_person_id=actor(world))
        assert first.active is not None and first.active.membership_id == ids(world, "interpreter2")[0]
        back = await booths.hand_over(db, v, two.id, actor_person_id=actor(world))
        assert back.active is not None and back.active.membership_id == ids(world, "interpreter")[0]
        assert sum(i.active for i in back.interpreters) == 1
        await db.commit()
        assert await facts.version(db, v) == version + 2
        entries = (await db.execute(
            select(AuditEntry).where(AuditEntry.action == "booth.handed_over").order_by(AuditEntry.seq)
        )).scalars().all()
        assert [(e.subject, e.data["to"], e.actor_person_id) for e in entries] == [
            (two.id, ids(world, "interpreter2")[0], actor(world)), (two.id, ids(world, "interpreter")[0], actor(world))]


async def test_change_language_active_and_remove(sessions: Any, world: World) -> None:
    async with sessions() as db:
        v = world.visit_id
        booth = await booths.create_booth(db, v, "fr", ids(world, "interpreter", "interpreter2"),
                                          actor_person_id=actor(world))
        await booths.create_booth(db, v, "es", [], actor_person_id=actor(world))
        await expect("conflict", booths.change_language(db, v, booth.id, "ES", actor_person_id=actor(world)))
        await expect("invalid", booths.change_language(db, v, booth.id, "klingon", actor_person_id=actor(world)))
        changed = await booths.change_language(db, v, booth.id, "pt-br", actor_person_id=actor(world))
        assert changed.language == "pt-BR" and changed.language_name == "Portuguese (Brazil)"
        await expect("invalid", booths.change_booth(
            db, v, booth.id, booths.BoothChange(active=world.members["interpreter3"].membership_id),
            actor_person_id=actor(world)))
        changed = await booths.change_booth(
            db, v, booth.id, booths.BoothChange(active=world.members["interpreter2"].membership_id),
            actor_person_id=actor(world))
        assert changed.active is not None and changed.active.membership_id == ids(world, "interpreter2")[0]
        await expect("not_found", booths.hand_over(db, v, "nosuchbooth", actor_person_id=actor(world)))
        await booths.remove_booth(db, v, booth.id, actor_person_id=actor(world))
        await db.commit()
        assert [b.language for b in await booths.list_booths(db, v)] == ["es"]
        assert (await db.execute(select(BoothInterpreter))).first() is None
        actions = list((await db.execute(
            select(AuditEntry.action).where(AuditEntry.subject == booth.id).order_by(AuditEntry.seq)
        )).scalars())
        assert actions == ["booth.created", "booth.changed", "booth.changed", "booth.removed"]
        # the interpreters are free again
        again = await booths.create_booth(db, v, "fr", ids(world, "interpreter"), actor_person_id=actor(world))
        assert again.active is not None


async def test_a_booth_of_another_visit_is_not_found(sessions: Any, world: World, settings: Any) -> None:
    async with sessions() as db:
        other = await build_world(db, settings, extra_experts=0)
    async with sessions() as db:
        booth = await booths.create_booth(db, other.visit_id, "en", [], actor_person_id=None)
        await db.commit()
        for work in (
            booths.hand_over(db, world.visit_id, booth.id, actor_person_id=actor(world)),
            booths.remove_booth(db, world.visit_id, booth.id, actor_person_id=actor(world)),
            booths.change_language(db, world.visit_id, booth.id, "fr", actor_person_id=actor(world)),
        ):
            await expect("not_found", work)
        assert await db.get(Booth, booth.id) is not None
