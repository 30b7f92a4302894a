import itertools

import pytest

from schedules import parse_problem, solve
from schedules.prices import CostModel
from schedules.reference import brute_force, slot_burdens
from tests.schedules.helpers import example, keys, problem, utc


def person(pid, zone, deleg=None, **kw):
    return {"id": pid, "delegation": deleg or pid.upper(), "timezone": zone, **kw}


# ---------------------------------------------------------------- the issue's example

def test_issue_example():
    r = solve(parse_problem(example()), alternatives=2)
    assert r.proven_optimal and r.infeasible is None
    opening, chapter = r.sessions
    # Monday 29 March (after Vienna's DST change) Vienna works 07:00-15:30 UTC and
    # Bogota 14:00-22:00 UTC: 90 minutes overlap, so a 120-minute opening costs 30,
    # shared fairly (15 + 15); on Tuesday the 90-minute chapter V fits exactly.
    assert (opening.id, opening.start, opening.end) == ("opening", utc("2027-03-29T13:45:00Z"), utc("2027-03-29T15:45:00Z"))
    assert opening.cost == 30 and opening.burden == {"vie-1": 15, "bog-1": 15}
    assert (chapter.start, chapter.cost) == (utc("2027-03-30T14:00:00Z"), 0)
    assert r.total_cost == 30 and r.delegation_burden == {"Secretariat": 15, "Colombia": 15}
    assert opening.local["bog-1"] == {"timezone": "America/Bogota", "start": "2027-03-29T08:45:00-05:00",
                                      "end": "2027-03-29T10:45:00-05:00"}
    assert opening.local["vie-1"]["start"] == "2027-03-29T15:45:00+02:00"
    assert "Colombia delegation: 08:45-10:45, 15 minutes before working hours (Mon 29 Mar, America/Bogota)" \
        in opening.explanation
    assert "Secretariat: 15:45-17:45, 15 minutes after working hours (Mon 29 Mar, Europe/Vienna)" in opening.explanation
    assert chapter.explanation == ["Within working hours: Secretariat, Colombia"]
    # alternatives: next-best whole schedules, distinct, in ranking order
    assert keys(r) == brute_force(parse_problem(example()), limit=3)
    assert [a.total_cost for a in r.alternatives] == [30, 30]
    assert r.alternatives[0].delegation_burden == {"Secretariat": 0, "Colombia": 30}


def test_example_result_serialises():
    out = solve(parse_problem(example()), alternatives=1).to_json()
    assert set(out) >= {"sessions", "total_cost", "delegation_burden", "proven_optimal", "alternatives"}
    assert "infeasible" not in out
    s = out["sessions"][0]
    assert set(s) == {"id", "start_utc", "end_utc", "cost", "burden", "local", "explanation"}
    assert s["start_utc"] == "2027-03-29T13:45:00Z"
    alt = out["alternatives"][0]
    assert set(alt) == {"sessions", "total_cost", "delegation_burden"}
    assert set(alt["sessions"][0]) == {"id", "start_utc", "end_utc", "cost", "burden"}


# ---------------------------------------------------------------- the cost model

CASES = [
    # zone, slot start (UTC), minutes, expected burden with default working hours and night 22-07 x3
    ("Europe/Vienna", "2027-03-26T06:00:00Z", 120, 120),   # Fri 07:00-09:00 CET: 120 before work
    ("Europe/Vienna", "2027-03-29T06:00:00Z", 120, 60),    # Mon 08:00-10:00 CEST: 60 before work
    ("Europe/Vienna", "2027-03-28T00:30:00Z", 120, 360),   # Sun 01:30 CET .. 04:30 CEST: all night
    ("America/Santiago", "2027-04-02T12:00:00Z", 60, 0),   # Fri 09:00-10:00 -03
    ("America/Santiago", "2027-04-05T12:00:00Z", 60, 60),  # Mon 08:00-09:00 -04 after the change
    ("Australia/Sydney", "2027-04-01T22:00:00Z", 60, 0),   # Fri 09:00-10:00 AEDT
    ("Australia/Sydney", "2027-04-04T22:00:00Z", 60, 60),  # Mon 08:00-09:00 AEST
    ("Asia/Kolkata", "2027-03-24T03:00:00Z", 60, 30),      # Wed 08:30-09:30 IST
    ("Asia/Kathmandu", "2027-03-24T03:00:00Z", 60, 15),    # Wed 08:45-09:45 NPT
    ("Asia/Kathmandu", "2027-03-24T11:00:00Z", 60, 45),    # Wed 16:45-17:45: 45 after work
    ("Asia/Kathmandu", "2027-03-24T16:00:00Z", 60, 150),   # Wed 21:45-22:45: 15 + 45 x 3
]


@pytest.mark.parametrize("zone, start, minutes, expected", CASES)
@pytest.mark.parametrize("odd_grid", [False, True])
def test_burden_across_dst_and_fractional_offsets(zone, start, minutes, expected, odd_grid):
    # odd_grid: a 7-minute session forces per-minute prices instead of 15-minute blocks
    sessions = [{"id": "s", "duration_minutes": minutes, "participants": ["x"]}]
    if odd_grid:
        sessions.append({"id": "t", "duration_minutes": 7, "participants": ["x"]})
    p = problem(("2027-03-20T00:00:00Z", "2027-04-10T00:00:00Z"), [person("x", zone)], sessions)
    cm = CostModel(p)
    assert cm.unit == (1 if odd_grid else 15)
    s = utc(start)
    assert cm.burden("x", s, s + minutes) == expected
    assert slot_burdens(p, ("x",), s, minutes)["x"] == expected  # the naive reference agrees


def test_vienna_single_session_moves_with_dst():
    # Vienna only, window Friday 26 16:00Z .. Monday 29 March 16:00Z: best is Monday 07:00Z (09:00 CEST)
    p = problem(("2027-03-26T16:00:00Z", "2027-03-29T16:00:00Z"), [person("v", "Europe/Vienna")],
                [{"id": "s", "duration_minutes": 60, "participants": ["v"]}])
    r = solve(p)
    assert r.sessions[0].start == utc("2027-03-29T07:00:00Z") and r.total_cost == 0


def test_holidays_and_missing_days_have_no_working_hours():
    p = problem(("2027-03-27T00:00:00Z", "2027-03-30T00:00:00Z"),
                [person("a", "UTC", "A", holidays=["2027-03-29"])],
                [{"id": "s", "duration_minutes": 60, "participants": ["a"]}], night={"start": "00:00", "end": "00:00"})
    cm = CostModel(p)
    assert cm.burden("a", utc("2027-03-29T10:00:00Z"), utc("2027-03-29T11:00:00Z")) == 60  # Monday holiday
    r = solve(p)
    assert r.total_cost == 60
    assert r.sessions[0].explanation == ["A delegation: 00:00-01:00, 60 minutes on Saturday, a day without "
                                         "working hours (Sat 27 Mar, UTC)"]
    p2 = problem(("2027-03-29T10:00:00Z", "2027-03-29T11:00:00Z"),
                 [person("a", "UTC", "A", holidays=["2027-03-29"])],
                 [{"id": "s", "duration_minutes": 60, "participants": ["a"]}])
    assert "60 minutes on a public holiday" in solve(p2).sessions[0].explanation[0]


def test_night_explanation_and_weight():
    p = problem(("2027-03-24T15:00:00Z", "2027-03-24T16:00:00Z"),
                [person("jkt", "Asia/Jakarta", "Indonesia"), person("vie", "Europe/Vienna", "Secretariat")],
                [{"id": "s", "duration_minutes": 60, "participants": ["jkt", "vie"]}])
    r = solve(p)
    assert r.sessions[0].burden == {"jkt": 180, "vie": 0}
    assert r.sessions[0].explanation == [
        "Indonesia delegation: 22:00-23:00, 60 minutes at night (counted 3 times) (Wed 24 Mar, Asia/Jakarta)",
        "Within working hours: Secretariat"]


def test_fairness_breaks_ties_then_earliest_start():
    # a 3-hour session between Vienna (CET: works 08:00-16:00 UTC) and Bogota (works
    # 14:00-22:00 UTC) on Wednesday 24 March: their working hours overlap 14:00-16:00 UTC,
    # so every start from 13:00 to 14:00 UTC costs 60 minutes, split differently
    p = problem(("2027-03-24T00:00:00Z", "2027-03-25T00:00:00Z"),
                [person("v", "Europe/Vienna", "Secretariat"), person("b", "America/Bogota", "Colombia")],
                [{"id": "s", "duration_minutes": 180, "participants": ["v", "b"]}])
    r = solve(p, alternatives=20)
    assert r.total_cost == 60
    assert r.sessions[0].burden == {"v": 30, "b": 30}
    assert r.sessions[0].start == utc("2027-03-24T13:30:00Z")
    tied = [a for a in r.alternatives if a.total_cost == 60]
    assert [max(a.delegation_burden.values()) for a in tied] == [45, 45, 60, 60]
    assert tied[0].sessions[0].start < tied[1].sessions[0].start


def test_gap_applies_only_between_sessions_sharing_a_participant():
    people = [person("a", "UTC"), person("b", "UTC"), person("c", "UTC")]
    window = ("2027-03-24T09:00:00Z", "2027-03-24T11:15:00Z")
    shared = problem(window, people, [{"id": "x", "duration_minutes": 60, "participants": ["a", "b"]},
                                      {"id": "y", "duration_minutes": 60, "participants": ["b", "c"]}],
                     min_gap_minutes=15)
    r = solve(shared)
    assert [s.start for s in r.sessions] == [utc("2027-03-24T09:00:00Z"), utc("2027-03-24T10:15:00Z")]
    apart = problem(window, people, [{"id": "x", "duration_minutes": 60, "participants": ["a"]},
                                     {"id": "y", "duration_minutes": 75, "participants": ["c"]}],
                    min_gap_minutes=15)
    r = solve(apart)  # no shared participant: back to back, never overlapping
    assert [s.start for s in r.sessions] == [utc("2027-03-24T09:00:00Z"), utc("2027-03-24T10:00:00Z")]


def test_unavailable_slots_are_avoided():
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T12:00:00Z"),
                [person("a", "UTC", unavailable=[{"start": "2027-03-24T08:10:00Z", "end": "2027-03-24T09:20:00Z"}])],
                [{"id": "s", "duration_minutes": 30, "participants": ["a"]}])
    assert solve(p).sessions[0].start == utc("2027-03-24T09:30:00Z")


def test_chain_respects_after_and_gap():
    people = [person("v", "Europe/Vienna"), person("n", "Africa/Nairobi")]
    sessions = [{"id": f"s{k}", "duration_minutes": 90, "participants": ["v", "n"],
                 **({"after": f"s{k - 1}"} if k else {})} for k in range(5)]
    p = problem(("2027-03-22T00:00:00Z", "2027-03-27T00:00:00Z"), people, sessions)
    r = solve(p)
    assert r.method.startswith("dynamic programming (chain)") and r.proven_optimal
    starts = [s.start for s in r.sessions]
    assert all(b >= a + 90 + 15 for a, b in itertools.pairwise(starts))
    assert r.total_cost == 0


def test_chain_in_reverse_input_order():
    people = [person("v", "Europe/Vienna"), person("n", "Africa/Nairobi")]
    sessions = [{"id": "last", "duration_minutes": 60, "participants": ["v"], "after": "first"},
                {"id": "first", "duration_minutes": 60, "participants": ["n"]}]
    p = problem(("2027-03-24T06:00:00Z", "2027-03-24T12:00:00Z"), people, sessions)
    r = solve(p, alternatives=3)
    assert keys(r) == brute_force(p, limit=4)
    assert r.sessions[1].end + 15 <= r.sessions[0].start


# ---------------------------------------------------------------- infeasibility

def test_participant_unavailable_everywhere():
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T12:00:00Z"),
                [person("x", "UTC"),
                 person("y", "UTC", unavailable=[{"start": "2027-03-24T07:00:00Z", "end": "2027-03-24T13:00:00Z"}])],
                [{"id": "opening", "duration_minutes": 60, "participants": ["x", "y"]}])
    r = solve(p, alternatives=2)
    assert r.sessions == [] and r.alternatives == [] and r.total_cost is None
    assert r.infeasible == ["session 'opening': participant 'y' is unavailable in every slot of the window"]
    assert r.to_json()["infeasible"] == r.infeasible


def test_unavailable_times_together_leave_no_slot():
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T10:00:00Z"),
                [person("x", "UTC", unavailable=[{"start": "2027-03-24T08:00:00Z", "end": "2027-03-24T09:00:00Z"}]),
                 person("y", "UTC", unavailable=[{"start": "2027-03-24T09:00:00Z", "end": "2027-03-24T10:00:00Z"}])],
                [{"id": "s", "duration_minutes": 30, "participants": ["x", "y"]}])
    (msg,) = solve(p).infeasible
    assert msg.startswith("session 's': the unavailable times of participants 'x', 'y' together leave no slot")


def test_window_too_short_for_a_session_and_for_the_chain():
    people = [person("x", "UTC")]
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T09:00:00Z"), people,
                [{"id": "long", "duration_minutes": 90, "participants": ["x"]}])
    assert solve(p).infeasible == ["session 'long': 90 minutes do not fit in the window (60 minutes from its first grid point)"]
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T10:00:00Z"), people,
                [{"id": "a", "duration_minutes": 60, "participants": ["x"]},
                 {"id": "b", "duration_minutes": 60, "participants": ["x"], "after": "a"}])
    (msg,) = solve(p).infeasible
    assert msg.startswith("window too short for the chain 'a' → 'b': it needs 135 minutes")


def test_window_too_short_for_all_sessions():
    people = [person("x", "UTC"), person("y", "UTC")]
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T10:00:00Z"), people,
                [{"id": "a", "duration_minutes": 60, "participants": ["x"]},
                 {"id": "b", "duration_minutes": 45, "participants": ["y"]},
                 {"id": "c", "duration_minutes": 45, "participants": ["y"]}])
    assert solve(p).infeasible[0].startswith("window too short for all 3 sessions")


# ---------------------------------------------------------------- solver paths

def _agenda(n, window=("2027-03-24T06:00:00Z", "2027-03-24T18:00:00Z")):
    people = [person("v", "Europe/Vienna", "Secretariat"), person("k", "Asia/Kathmandu", "Nepal"),
              person("s", "America/Santiago", "Chile")]
    sessions = [{"id": f"u{k}", "duration_minutes": [60, 90, 30, 120, 45][k % 5],
                 "participants": [["v", "k"], ["v", "s"], ["k", "s"], ["v", "k", "s"], ["s"]][k % 5]}
                for k in range(n)]
    return problem(window, people, sessions, grid_minutes=60)


def test_four_unordered_sessions_are_exact():
    p = _agenda(4)
    r = solve(p, alternatives=4)
    assert r.method == "dynamic programming over 24 session orders" and r.proven_optimal
    assert keys(r) == brute_force(p, limit=5)


def test_larger_agenda_uses_cp_sat_and_says_whether_proven():
    p = _agenda(5, ("2027-03-24T06:00:00Z", "2027-03-24T15:00:00Z"))
    r = solve(p, alternatives=1, max_orders=24)
    assert r.method == "CP-SAT (OR-Tools)"
    assert r.proven_optimal is True
    assert keys(r) == brute_force(p, limit=2)


def test_short_sessions_with_a_long_gap_use_the_solver():
    # gap (30) longer than the grid (15): a short session in between no longer implies
    # the gap between its neighbours, so the DP over consecutive pairs is not exact
    people = [person("a", "UTC"), person("b", "UTC")]
    p = problem(("2027-03-24T08:00:00Z", "2027-03-24T10:00:00Z"), people,
                [{"id": "x", "duration_minutes": 30, "participants": ["a"]},
                 {"id": "y", "duration_minutes": 15, "participants": ["b"]},
                 {"id": "z", "duration_minutes": 30, "participants": ["a"]}],
                min_gap_minutes=30, night={"weight": 1})
    r = solve(p, alternatives=2)
    assert r.method == "CP-SAT (OR-Tools)" and r.proven_optimal
    assert keys(r) == brute_force(p, limit=3)


def test_alternatives_are_distinct_and_ranked():
    p = _agenda(3)
    r = solve(p, alternatives=6)
    ks = keys(r)
    assert len(ks) == 7 and len(set(k[2] for k in ks)) == 7
    assert ks == sorted(ks)
