import json
import subprocess
import sys
from pathlib import Path

import pytest

from schedules.cli import main
from tests.schedules.helpers import example

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path, data, name="problem.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_suggest_prints_the_result(tmp_path, capsys):
    code, out, err = run(capsys, ["suggest", write(tmp_path, example()), "--alternatives", "2"])
    assert (code, err) == (0, "")
    res = json.loads(out)
    assert [s["id"] for s in res["sessions"]] == ["opening", "chapter-v"]
    assert res["sessions"][0]["start_utc"] == "2027-03-29T13:45:00Z"
    assert res["sessions"][0]["burden"] == {"vie-1": 15, "bog-1": 15}
    assert res["sessions"][0]["local"]["bog-1"]["start"] == "2027-03-29T08:45:00-05:00"
    assert res["sessions"][0]["explanation"]
    assert res["total_cost"] == 30 and res["delegation_burden"] == {"Secretariat": 15, "Colombia": 15}
    assert res["proven_optimal"] is True
    assert len(res["alternatives"]) == 2
    assert all({"sessions", "total_cost"} <= set(a) for a in res["alternatives"])
    assert "infeasible" not in res


def test_alternatives_default_and_zero(tmp_path, capsys):
    path = write(tmp_path, example())
    assert len(json.loads(run(capsys, ["suggest", path])[1])["alternatives"]) == 3
    assert json.loads(run(capsys, ["suggest", path, "--alternatives", "0"])[1])["alternatives"] == []


def test_infeasible_is_exit_status_zero(tmp_path, capsys):
    data = example()
    data["participants"][1]["unavailable"] = [{"start": "2027-03-01T00:00:00Z", "end": "2027-05-01T00:00:00Z"}]
    code, out, err = run(capsys, ["suggest", write(tmp_path, data)])
    assert (code, err) == (0, "")
    res = json.loads(out)
    assert res["sessions"] == [] and res["alternatives"] == []
    assert res["infeasible"] == [
        "session 'opening': participant 'bog-1' is unavailable in every slot of the window",
        "session 'chapter-v': participant 'bog-1' is unavailable in every slot of the window"]


def _broken(change):
    data = example()
    change(data)
    return data


@pytest.mark.parametrize("data, field", [
    (_broken(lambda d: d["participants"][0].update(timezone="Europe/Viena")), "participants[0].timezone: unknown time zone"),
    (_broken(lambda d: d["window"].update(end="2027-03-01T00:00:00Z")), "window.end: must be after window.start"),
    (_broken(lambda d: d["sessions"][1]["participants"].append("jkt-9")), "sessions[1].participants[2]: unknown participant id 'jkt-9'"),
    (_broken(lambda d: d["sessions"][0].pop("duration_minutes")), "sessions[0].duration_minutes: missing"),
    (_broken(lambda d: d.pop("participants")), "participants: missing"),
    ('{"window": {"start": "2027-03-24T00:00:00Z",', "malformed JSON at line 1"),
    ("[1, 2]", "problem: must be an object"),
])
def test_bad_input_is_one_line_naming_the_field_and_exit_2(tmp_path, capsys, data, field):
    code, out, err = run(capsys, ["suggest", write(tmp_path, data)])
    assert code == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1
    assert field in err


def test_missing_file_and_bad_arguments(tmp_path, capsys):
    code, _, err = run(capsys, ["suggest", str(tmp_path / "nope.json")])
    assert code == 2 and "nope.json: cannot read the file" in err and err.count("\n") == 1
    code, _, err = run(capsys, ["suggest", write(tmp_path, example()), "--alternatives", "x"])
    assert code == 2 and err.count("\n") == 1 and "--alternatives" in err
    code, _, err = run(capsys, ["suggest", write(tmp_path, example()), "--alternatives", "-1"])
    assert code == 2 and err.strip() == "--alternatives: must not be negative"
    code, _, err = run(capsys, [])
    assert code == 2 and err.count("\n") == 1


def test_python_dash_m(tmp_path):
    path = write(tmp_path, example())
    proc = subprocess.run([sys.executable, "-m", "schedules", "suggest", path, "--alternatives", "1", "--compact"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total_cost"] == 30
    bad = write(tmp_path, "{", "bad.json")
    proc = subprocess.run([sys.executable, "-m", "schedules", "suggest", bad], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == "" and "malformed JSON" in proc.stderr
