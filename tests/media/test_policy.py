"""Who may publish where (server/media/policy.py): the floor, the chairs, a chair's
unmute, the booths' interpreters (active forwarded, standby not), observers never, and
everyone else refused with a reason."""

from __future__ import annotations

import pytest

from server.access.roles import Role
from server.core.errors import DomainError, ErrorCode
from server.media.policy import FLOOR, Asker, BoothSeats, Floor, Grant, channels, forwarded, grant

BOOTHS = (
    BoothSeats("en", ("int-en",), "int-en"),
    BoothSeats("es", ("int-es-1", "int-es-2"), "int-es-1"),
)


def asker(mid: str, role: Role, *, speak: bool = True, chair: bool = False) -> Asker:
    return Asker(mid, role, may_speak=speak, is_chair=chair)


def refused(code: ErrorCode, who: Asker, channel: str, floor: Floor = Floor()) -> str:
    with pytest.raises(DomainError) as err:
        grant(who, channel, floor, BOOTHS)
    assert err.value.code is code
    assert err.value.message
    return err.value.message


def test_the_floor_holder_publishes_whatever_their_role() -> None:
    for role in (Role.DELEGATE, Role.EXPERT, Role.STAKEHOLDER, Role.SECRETARIAT):
        who = asker("m1", role)
        assert grant(who, FLOOR, Floor(holder="m1"), BOOTHS) == Grant(FLOOR, True)
        refused(ErrorCode.FORBIDDEN, who, FLOOR, Floor(holder="someone else"))


def test_chairs_may_always_speak_and_may_unmute_those_who_may_take_the_floor() -> None:
    assert grant(asker("chair", Role.SECRETARIAT, chair=True), FLOOR, Floor(), BOOTHS) == Grant(FLOOR, True)
    unmuted = Floor(unmuted=frozenset({"e1", "k1"}))
    assert grant(asker("e1", Role.EXPERT), FLOOR, unmuted, BOOTHS) == Grant(FLOOR, True)
    # Unmuted, but the policy does not let them take the floor (a closed session's stakeholder).
    refused(ErrorCode.FORBIDDEN, asker("k1", Role.STAKEHOLDER, speak=False), FLOOR, unmuted)
    refused(ErrorCode.FORBIDDEN, asker("e2", Role.EXPERT), FLOOR, unmuted)


def test_observers_never_publish_even_holding_the_floor_or_unmuted() -> None:
    observer = asker("o1", Role.OBSERVER, speak=False)
    for channel in (FLOOR, "en"):
        refused(ErrorCode.FORBIDDEN, observer, channel, Floor(holder="o1", unmuted=frozenset({"o1"})))


def test_interpreters_publish_only_into_their_own_booth_and_only_the_active_one_is_forwarded() -> None:
    assert grant(asker("int-es-1", Role.INTERPRETER), "es", Floor(), BOOTHS) == Grant("es", True)
    assert grant(asker("int-es-2", Role.INTERPRETER), "es", Floor(), BOOTHS) == Grant("es", False)
    refused(ErrorCode.FORBIDDEN, asker("int-es-1", Role.INTERPRETER), "en")
    refused(ErrorCode.FORBIDDEN, asker("int-en", Role.INTERPRETER), FLOOR, Floor(holder="int-en"))
    refused(ErrorCode.FORBIDDEN, asker("d1", Role.DELEGATE), "es", Floor(holder="d1"))
    assert "no channel" in refused(ErrorCode.INVALID, asker("int-en", Role.INTERPRETER), "fr")


def test_forwarding_follows_the_floor_and_the_hand_over() -> None:
    delegate = asker("d1", Role.DELEGATE)
    chair = asker("chair", Role.SECRETARIAT, chair=True)
    first, second = asker("int-es-1", Role.INTERPRETER), asker("int-es-2", Role.INTERPRETER)
    connected = [(delegate, FLOOR), (chair, FLOOR), (first, "es"), (second, "es")]
    with_floor = forwarded(connected, Floor(holder="d1"), BOOTHS)
    assert with_floor == {("d1", FLOOR), ("chair", FLOOR), ("int-es-1", "es")}
    # Ending the floor is the mute: the delegate drops out, nobody else changes.
    assert forwarded(connected, Floor(), BOOTHS) == with_floor - {("d1", FLOOR)}
    handed = (BOOTHS[0], BoothSeats("es", ("int-es-1", "int-es-2"), "int-es-2"))
    assert forwarded(connected, Floor(holder="d1"), handed) == {("d1", FLOOR), ("chair", FLOOR), ("int-es-2", "es")}


def test_listeners_choose_the_floor_or_a_booth() -> None:
    assert channels(BOOTHS) == ["floor", "en", "es"]
    assert channels(()) == ["floor"]
