"""Parley's scheduling engine: fair, optimal session slots across time zones.

A pure Python package (no imports from ``server``) built on :mod:`zoneinfo` with the
pinned ``tzdata`` package as its only zone source.  See docs/scheduling.md.

    >>> from schedules import parse_problem, solve
    >>> result = solve(parse_problem(json_data), alternatives=3)
    >>> result.to_json()
"""

from .model import DEFAULT_WORKING_HOURS, Interval, Participant, Problem, ProblemError, Session, parse_problem
from .solver import PlacedSession, Result, Schedule, solve

__all__ = [
    "DEFAULT_WORKING_HOURS",
    "Interval",
    "Participant",
    "PlacedSession",
    "Problem",
    "ProblemError",
    "Result",
    "Schedule",
    "Session",
    "parse_problem",
    "solve",
]
