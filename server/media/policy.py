"""Who may publish audio where, and whose audio is forwarded: decided by the server.

Channels are ``"floor"`` (the person who has the floor, and the chairs) and one per
booth, named by the booth's language tag. The rules (issue "Audio, video and
simultaneous interpretation"):

* the floor publishes: whoever has been given the floor, whatever their role;
* the session's chairs may always speak on the floor;
* a chair may unmute a participant whom the policy lets take the floor;
* an interpreter publishes only into their own booth's channel, and only the booth's
  active interpreter is forwarded (the standby may be connected, not forwarded, so a
  hand-over only switches forwarding);
* observers never publish, and everyone else publishes nothing.

These functions are pure: the transport gathers the facts (the room's state, the
session scope's policy answers, the visit's booths), asks here, and tells the media
engine what to forward. A refusal is ``forbidden``; an unknown channel ``invalid``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.access.roles import Role
from server.core.errors import DomainError, ErrorCode, invalid

FLOOR = "floor"


@dataclass(frozen=True)
class Asker:
    """What the policy needs to know of someone who wants to publish."""

    membership_id: str
    role: Role
    may_speak: bool  # the policy lets them take the floor in this session
    is_chair: bool  # they chair this session (and the policy lets chairs chair)


@dataclass(frozen=True)
class BoothSeats:
    language: str  # the booth's channel
    interpreters: tuple[str, ...]
    active: str | None


@dataclass(frozen=True)
class Floor:
    """The room's floor facts: who holds it, and whom a chair unmuted."""

    holder: str | None = None
    unmuted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Grant:
    channel: str
    forwarded: bool  # False: connected but not heard (a booth's standby)


def _forbidden(message: str) -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def channels(booths: Sequence[BoothSeats]) -> list[str]:
    """What a listener may choose: the floor, then each booth's language."""
    return [FLOOR, *(b.language for b in booths)]


def grant(asker: Asker, channel: str, floor: Floor, booths: Sequence[BoothSeats]) -> Grant:
    """May ``asker`` publish into ``channel``? A ``Grant`` (forwarded or not), or
    ``forbidden`` with the reason; ``invalid`` for a channel that does not exist."""
    if asker.role is Role.OBSERVER:
        raise _forbidden("Observers listen; they do not speak.")
    if channel == FLOOR:
        if asker.role is Role.INTERPRETER:
            raise _forbidden("Interpreters speak into their booth's channel, not on the floor.")
        if floor.holder == asker.membership_id or asker.is_chair:
            return Grant(FLOOR, True)
        if asker.membership_id in floor.unmuted and asker.may_speak:
            return Grant(FLOOR, True)
        raise _forbidden("You do not have the floor.")
    booth = next((b for b in booths if b.language == channel), None)
    if booth is None:
        raise invalid(f"channel: no channel {channel[:40]!r} in this visit.")
    if asker.membership_id not in booth.interpreters:
        raise _forbidden("Only this booth's interpreters speak into its channel.")
    return Grant(channel, booth.active == asker.membership_id)


def forwarded(
    publishers: Iterable[tuple[Asker, str]], floor: Floor, booths: Sequence[BoothSeats]
) -> set[tuple[str, str]]:
    """Of the connected publishers (asker, channel), the (membership, channel) pairs whose
    audio must be forwarded now. Run after every change of the floor, of the chairs or
    of the booths: whoever drops out of it is cut at the engine at once (ending the floor
    is the mute)."""
    out: set[tuple[str, str]] = set()
    for asker, channel in publishers:
        try:
            found = grant(asker, channel, floor, booths)
        except DomainError:
            continue
        if found.forwarded:
            out.add((asker.membership_id, channel))
    return out
