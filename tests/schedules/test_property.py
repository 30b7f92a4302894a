"""The engine against a brute-force search on small random instances.

Windows sit on daylight-saving changes in both hemispheres (Vienna in March, Santiago
and Sydney in April) and the zones include Asia/Kolkata (+05:30) and Asia/Kathmandu
(+05:45).  The brute force (schedules.reference) prices every minute with
``astimezone`` and tries every combination of grid starts; the engine must return the
same best schedule and the same K next-best ones, tie-breaks included.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schedules import parse_problem, solve
from schedules.reference import brute_force
from tests.schedules.helpers import keys

ZONES = ["Europe/Vienna", "America/Santiago", "Australia/Sydney", "Asia/Kolkata", "Asia/Kathmandu",
         "America/Bogota", "Asia/Jakarta"]
# UTC instants of the changes: Vienna 28 Mar 01:00, Sydney 3 Apr 16:00, Santiago 4 Apr 03:00 (2027)
ANCHORS = [datetime(2027, 3, 28, 1, tzinfo=UTC), datetime(2027, 4, 3, 16, tzinfo=UTC),
           datetime(2027, 4, 4, 3, tzinfo=UTC)]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

SETTINGS = dict(deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


@st.composite
def working_hours(draw) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None  # the default, Mon-Fri 09:00-17:00
    out = {}
    for day in draw(st.lists(st.sampled_from(DAYS), unique=True, max_size=7)):
        a = draw(st.integers(0, 80)) * 15
        b = draw(st.integers(a // 15 + 1, 96)) * 15
        spans = [[hhmm(a), hhmm(b)]]
        if b - a >= 120 and draw(st.booleans()):  # a lunch break
            mid = a + draw(st.integers(1, (b - a) // 15 - 2)) * 15
            spans = [[hhmm(a), hhmm(mid)], [hhmm(mid + 15), hhmm(b)]]
        out[day] = spans
    return out


@st.composite
def instances(draw, min_sessions: int, max_sessions: int) -> tuple[dict[str, Any], int]:
    anchor = draw(st.sampled_from(ANCHORS))
    n = draw(st.integers(min_sessions, max_sessions))
    grid = draw(st.sampled_from([30, 60] if n <= 2 else [60]))
    gap = draw(st.sampled_from([0, 15, 30]))
    durations = [draw(st.sampled_from([15, 30, 45, 60, 50] if n >= 3 else [15, 30, 45, 60, 90, 120, 50]))
                 for _ in range(n)]
    # keep the brute force small (fewer grid starts for more sessions), yet mostly feasible
    need = -(-(sum(durations) + gap * (n - 1)) // 60)
    top = {1: 30, 2: 20, 3: 12, 4: 9}[n] * 60 // grid if grid == 60 else {1: 15, 2: 10}[n]
    hours = draw(st.integers(min(need, top), max(need, top)))
    start = anchor - timedelta(minutes=draw(st.integers(0, hours * 60 // 15)) * 15)
    end = start + timedelta(hours=hours)
    n_people = draw(st.integers(1, 4))
    people = []
    for i in range(n_people):
        p: dict[str, Any] = {"id": f"p{i}", "delegation": draw(st.sampled_from(["A", "B", "C"])),
                             "timezone": draw(st.sampled_from(ZONES))}
        wh = draw(working_hours())
        if wh is not None:
            p["working_hours"] = wh
        if draw(st.integers(0, 3)) == 0:
            u0 = start + timedelta(minutes=draw(st.integers(0, hours * 60)))
            p["unavailable"] = [{"start": iso(u0), "end": iso(u0 + timedelta(minutes=draw(st.integers(1, 180))))}]
        if draw(st.integers(0, 4)) == 0:
            p["holidays"] = [draw(st.sampled_from(["2027-03-27", "2027-03-28", "2027-03-29",
                                                   "2027-04-03", "2027-04-04", "2027-04-05"]))]
        people.append(p)
    shape = draw(st.sampled_from(["unordered", "chain", "mixed"]))
    sessions = []
    for k in range(n):
        members = draw(st.lists(st.sampled_from([p["id"] for p in people]), min_size=1, unique=True))
        s: dict[str, Any] = {"id": f"s{k}", "participants": members, "duration_minutes": durations[k]}
        if k and (shape == "chain" or (shape == "mixed" and draw(st.booleans()))):
            s["after"] = f"s{draw(st.integers(0, k - 1))}" if shape == "mixed" else f"s{k - 1}"
        sessions.append(s)
    order = draw(st.permutations(range(n)))  # input order need not be chain order
    data = {"window": {"start": iso(start), "end": iso(end)}, "grid_minutes": grid, "min_gap_minutes": gap,
            "night": {"start": hhmm(draw(st.integers(18, 23)) * 60), "end": hhmm(draw(st.integers(4, 8)) * 60),
                      "weight": draw(st.integers(0, 4))},
            "participants": people, "sessions": [sessions[i] for i in order]}
    return data, draw(st.integers(0, 4))


def check(data: dict[str, Any], k: int, **solve_kw: Any) -> None:
    problem = parse_problem(data)
    expected = brute_force(problem, limit=k + 1)
    result = solve(problem, alternatives=k, **solve_kw)
    event(f"{len(problem.sessions)} sessions, {'feasible' if expected else 'infeasible'}, {result.method}")
    if len(expected) > 1 and expected[0][0] == expected[1][0]:
        event("tie on total cost")
    assert result.proven_optimal
    if not expected:
        assert result.sessions == [] and result.infeasible
        return
    assert result.infeasible is None
    assert keys(result) == expected
    for s in result.sessions:  # per-participant burdens add up to the session's cost
        assert sum(s.burden.values()) == s.cost


@settings(max_examples=100, **SETTINGS)
@given(instances(1, 2))
def test_one_or_two_sessions_match_brute_force(case):
    check(*case)


@settings(max_examples=120, **SETTINGS)
@given(instances(3, 4))
def test_chains_and_sets_of_three_or_four_match_brute_force(case):
    check(*case)


@settings(max_examples=12, **SETTINGS)
@given(instances(2, 4))
def test_cp_sat_path_matches_brute_force(case):
    data, k = case
    check(data, min(k, 1), max_orders=0)  # max_orders=0 forces the CP-SAT path for 2+ sessions
