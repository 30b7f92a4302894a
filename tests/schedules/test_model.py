from datetime import date

import pytest

from schedules import DEFAULT_WORKING_HOURS, ProblemError, parse_problem
from tests.schedules.helpers import example


def test_example_parses_with_defaults():
    p = parse_problem(example())
    assert (p.grid_minutes, p.min_gap_minutes, p.night_start, p.night_end, p.night_weight) == (15, 15, 1320, 420, 3)
    vie, bog = p.participants
    assert vie.working_hours == {0: ((540, 1050),), 1: ((540, 720), (780, 1050))}  # other days: none
    assert bog.working_hours == DEFAULT_WORKING_HOURS
    assert bog.unavailable == () and bog.holidays == frozenset()
    assert vie.unavailable[0].start_min == vie.unavailable[0].end_min - 120
    assert p.sessions[1].after == "opening"


def test_defaults_for_optional_problem_fields():
    data = example()
    for key in ("grid_minutes", "min_gap_minutes", "night"):
        del data[key]
    data["participants"][1]["holidays"] = ["2027-03-29"]
    p = parse_problem(data)
    assert (p.grid_minutes, p.min_gap_minutes, p.night_start, p.night_end, p.night_weight) == (15, 15, 1320, 420, 3)
    assert p.participants[1].holidays == frozenset({date(2027, 3, 29)})


def _set(data, path, value):
    cur = data
    for k in path[:-1]:
        cur = cur[k]
    if value is KeyError:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value


@pytest.mark.parametrize("path, value, field, words", [
    (("participants", 1, "timezone"), "America/Bogata", "participants[1].timezone", "unknown time zone"),
    (("window", "end"), "2027-03-23T00:00:00Z", "window.end", "after window.start"),
    (("window", "start"), "2027-03-24T00:00:00", "window.start", "UTC offset"),
    (("window", "start"), "yesterday", "window.start", "ISO-8601"),
    (("sessions", 0, "participants", 1), "bog-2", "sessions[0].participants[1]", "unknown participant id 'bog-2'"),
    (("participants", 0, "delegation"), KeyError, "participants[0].delegation", "missing"),
    (("sessions", 1, "duration_minutes"), KeyError, "sessions[1].duration_minutes", "missing"),
    (("sessions", 1, "duration_minutes"), 0, "sessions[1].duration_minutes", "between"),
    (("sessions", 1, "duration_minutes"), "90", "sessions[1].duration_minutes", "whole number"),
    (("window",), KeyError, "window", "missing"),
    (("sessions", 1, "after"), "closing", "sessions[1].after", "unknown session id"),
    (("sessions", 0, "after"), "chapter-v", "sessions[0].after", "cycle"),
    (("sessions", 1, "id"), "opening", "sessions[1].id", "duplicate"),
    (("participants", 1, "id"), "vie-1", "participants[1].id", "duplicate"),
    (("grid_minutes",), 7, "grid_minutes", "divide"),
    (("night", "start"), "25:00", "night.start", "HH:MM"),
    (("participants", 0, "working_hours", "mon", 0), ["17:00", "09:00"], "participants[0].working_hours.mon[0]", "after start"),
    (("participants", 0, "working_hours", "funday"), [], "participants[0].working_hours.funday", "unknown weekday"),
    (("participants", 0, "unavailable", 0, "end"), "2027-03-25T11:00:00Z", "participants[0].unavailable[0].end", "after start"),
    (("participants", 1, "holidays"), ["29/03/2027"], "participants[1].holidays[0]", "YYYY-MM-DD"),
    (("sessions",), [], "sessions", "at least one"),
])
def test_bad_input_names_the_field(path, value, field, words):
    data = example()
    _set(data, path, value)
    with pytest.raises(ProblemError) as err:
        parse_problem(data)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")
    assert words in str(err.value)
    assert "\n" not in str(err.value)
