"""Builders shared by the scheduling tests."""

from __future__ import annotations

import copy
from typing import Any

from schedules import Result, parse_problem, solve
from schedules.model import Problem

EXAMPLE: dict[str, Any] = {
    "window": {"start": "2027-03-24T00:00:00Z", "end": "2027-04-02T00:00:00Z"},
    "grid_minutes": 15, "min_gap_minutes": 15,
    "night": {"start": "22:00", "end": "07:00", "weight": 3},
    "participants": [
        {"id": "vie-1", "delegation": "Secretariat", "timezone": "Europe/Vienna",
         "working_hours": {"mon": [["09:00", "17:30"]], "tue": [["09:00", "12:00"], ["13:00", "17:30"]]},
         "unavailable": [{"start": "2027-03-25T12:00:00Z", "end": "2027-03-25T14:00:00Z"}]},
        {"id": "bog-1", "delegation": "Colombia", "timezone": "America/Bogota"}],
    "sessions": [
        {"id": "opening", "duration_minutes": 120, "participants": ["vie-1", "bog-1"]},
        {"id": "chapter-v", "duration_minutes": 90, "participants": ["vie-1", "bog-1"], "after": "opening"}],
}


def example() -> dict[str, Any]:
    return copy.deepcopy(EXAMPLE)


def problem(window: tuple[str, str], participants: list[dict[str, Any]], sessions: list[dict[str, Any]],
            **extra: Any) -> Problem:
    data: dict[str, Any] = {"window": {"start": window[0], "end": window[1]},
                            "participants": participants, "sessions": sessions}
    data.update(extra)
    return parse_problem(data)


def keys(result: Result) -> list[tuple[int, int, tuple[int, ...]]]:
    """Ranking keys (total, largest delegation burden, starts) of the best schedule and
    the alternatives, starts as UTC epoch minutes."""
    out = []
    if result.sessions:
        assert result.total_cost is not None
        out.append((result.total_cost, max(result.delegation_burden.values(), default=0),
                    tuple(s.start for s in result.sessions)))
    for alt in result.alternatives:
        out.append((alt.total_cost, max(alt.delegation_burden.values(), default=0),
                    tuple(s.start for s in alt.sessions)))
    return out


def utc(text: str) -> int:
    from datetime import datetime

    from schedules.model import epoch_minutes

    return epoch_minutes(datetime.fromisoformat(text.replace("Z", "+00:00")))


__all__ = ["EXAMPLE", "example", "keys", "problem", "solve", "utc"]
