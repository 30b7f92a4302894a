"""Socket.IO room names: one place, so emitter and handlers agree."""

from __future__ import annotations


def room_name(session_id: str) -> str:
    """Everyone admitted to a session's room."""
    return f"s:{session_id}"


def lobby_name(session_id: str, membership_id: str) -> str:
    """One member's sockets waiting in a session's lobby."""
    return f"w:{session_id}:{membership_id}"


def visit_room(visit_id: str) -> str:
    return f"v:{visit_id}"


def member_room(visit_id: str, membership_id: str) -> str:
    """One member's sockets watching a visit: news filtered to what they may see."""
    return f"v:{visit_id}:m:{membership_id}"


def person_room(person_id: str) -> str:
    """Every socket of one person (entered on connect): news about their own devices."""
    return f"p:{person_id}"
