"""The `parley` console script, run as a new user would: from a temporary directory,
with the embedded defaults (state under ./var)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.config import Settings
from server.core.clock import utcnow
from server.db.session import make_engine, make_sessionmaker
from server.people import service as people
from tests.conftest import free_port, http_client, start_server

PARLEY = Path(sys.executable).with_name("parley")
ROLES = {"secretariat", "expert", "delegate", "interpreter", "stakeholder", "observer"}
ACCESS = {"open", "stakeholder", "closed"}
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def parley(cwd: Path, *args: str, stdin: str | None = None, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(env_extra)
    return subprocess.run(
        [str(PARLEY), *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def demo(cwd: Path) -> dict[str, Any]:
    done = parley(cwd, "demo", "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def parse_z(value: str) -> datetime:
    assert ISO_Z.match(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("newuser")
    return cwd, demo(cwd), demo(cwd)


def test_demo_json_shape(demo_runs: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    _, out, _ = demo_runs
    assert set(out) == {"visit_id", "base_url", "participants", "sessions", "booths"}
    assert isinstance(out["visit_id"], str) and re.fullmatch(r"[A-Za-z0-9_-]{22}", out["visit_id"])
    assert out["base_url"].startswith("http") and not out["base_url"].endswith("/")
    for p in out["participants"]:
        assert set(p) == {"name", "role", "delegation", "timezone", "invite_url"}, p
        assert p["name"] and p["role"] in ROLES
        assert p["invite_url"].startswith(f"{out['base_url']}/invite/")
        ZoneInfo(p["timezone"])  # a real IANA zone
    for s in out["sessions"]:
        assert set(s) == {"id", "title", "start_utc", "end_utc", "access"}, s
        assert s["access"] in ACCESS and s["title"]
        assert parse_z(s["start_utc"]) < parse_z(s["end_utc"])
    interpreters = {p["name"] for p in out["participants"] if p["role"] == "interpreter"}
    for b in out["booths"]:
        assert set(b) == {"id", "language", "language_name", "interpreters", "active"}, b
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", b["id"])
        assert 1 <= len(b["interpreters"]) <= 2 and set(b["interpreters"]) <= interpreters, b
        assert b["active"] in b["interpreters"], b


def test_demo_has_english_and_spanish_booths(demo_runs: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    _, out, _ = demo_runs
    by_language = {b["language"]: b for b in out["booths"]}
    assert {"en", "es"} <= set(by_language)
    assert by_language["en"]["language_name"] == "English"
    assert by_language["es"]["language_name"] == "Spanish"
    assert any(len(b["interpreters"]) == 2 for b in out["booths"]), "one booth has two interpreters"
    served = [name for b in out["booths"] for name in b["interpreters"]]
    assert len(served) == len(set(served)), "an interpreter serves in one booth"


def test_demo_is_realistic(demo_runs: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    _, out, _ = demo_runs
    participants, sessions = out["participants"], out["sessions"]
    roles = [p["role"] for p in participants]
    assert set(roles) == ROLES
    assert roles.count("interpreter") >= 2
    assert {s["access"] for s in sessions} == ACCESS

    zones = {p["timezone"] for p in participants}
    assert len(zones) >= 5, zones
    continents = {z.split("/")[0] for z in zones}
    assert len(continents & {"Europe", "Africa", "Asia", "America", "Australia", "Pacific"}) >= 3, continents
    assert any(p["role"] == "secretariat" and p["timezone"] == "Europe/Vienna" for p in participants)

    starts = [parse_z(s["start_utc"]) for s in sessions]
    ends = [parse_z(s["end_utc"]) for s in sessions]
    assert min(starts) > utcnow(), "the demo agenda lies in the future"
    assert len({d.date() for d in starts}) == 3, "a three-day agenda"
    first, last = min(starts), max(ends)
    changing = [z for z in zones if first.astimezone(ZoneInfo(z)).utcoffset() != last.astimezone(ZoneInfo(z)).utcoffset()]
    assert changing, f"no participant's zone changes its UTC offset between {first} and {last}"


def test_demo_again_reissues_links(demo_runs: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    cwd, first, second = demo_runs
    assert second["visit_id"] == first["visit_id"]
    assert len(second["participants"]) == len(first["participants"])
    assert len(second["sessions"]) == len(first["sessions"])
    assert [s["id"] for s in second["sessions"]] == [s["id"] for s in first["sessions"]]
    assert second["booths"] == first["booths"], "loading the demo again adds no booths"
    old = {p["invite_url"] for p in first["participants"]}
    new = {p["invite_url"] for p in second["participants"]}
    assert len(new) == len(second["participants"]) and not (old & new)

    async def states(urls: set[str]) -> set[str]:
        key = (cwd / "var" / "secret_key").read_text().strip().encode()
        engine = make_engine(f"sqlite+aiosqlite:///{cwd / 'var' / 'parley.db'}")
        try:
            async with make_sessionmaker(engine)() as db:
                return {
                    str((await people.inspect_invitation(db, key, url.rsplit("/", 1)[1])).state) for url in urls
                }
        finally:
            await engine.dispose()

    assert asyncio.run(states(old)) == {"revoked"}
    assert asyncio.run(states(new)) == {"valid"}


def test_state_lives_under_var(demo_runs: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    cwd, _, _ = demo_runs
    var = cwd / "var"
    assert (var / "parley.db").is_file()
    key = var / "secret_key"
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_text().strip()) >= 32
    assert sorted(p.name for p in cwd.iterdir()) == ["var"], "nothing written outside ./var"


async def test_admin_create_then_password_login(tmp_path: Path) -> None:
    up = parley(tmp_path, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    password = "correct horse battery staple"
    made = parley(tmp_path, "admin", "create", "--email", "chief@example.org", stdin=password + "\n")
    assert made.returncode == 0, made.stderr
    assert "chief@example.org" in made.stdout
    short = parley(tmp_path, "admin", "create", "--email", "short@example.org", stdin="short\n")
    assert short.returncode != 0 and "10 characters" in short.stderr and "Traceback" not in short.stderr

    var = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        var_dir=var, database_url=f"sqlite+aiosqlite:///{var / 'parley.db'}", redis_url=None,
        storage_dir=var / "storage", host="127.0.0.1", port=port, base_url=base, allowed_origins=(base,),
        secret_key=(var / "secret_key").read_text().strip().encode(),
    )
    live, runner = await start_server(settings)
    try:
        async with http_client(live, None) as http:
            async with http.post(
                "/login", data={"email": "chief@example.org", "password": "not the password"}, allow_redirects=False
            ) as r:
                assert r.status == 401
            async with http.post(
                "/login", data={"email": "chief@example.org", "password": password, "next": "/api/me"},
                allow_redirects=False,
            ) as r:
                assert r.status == 303, await r.text()
                cookie = r.cookies["parley_session"].value
        async with http_client(live, cookie) as http, http.get("/api/me") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()


def test_admin_create_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    done = parley(tmp_path, "admin", "create", "--email", "chief@example.org", stdin="long enough password\n")
    assert done.returncode != 0
    assert "parley db upgrade" in done.stderr


def test_demo_links_follow_the_port(tmp_path: Path) -> None:
    port = str(free_port())
    out = json.loads(parley(tmp_path, "demo", "--json", "--port", port).stdout)
    assert out["base_url"] == f"http://127.0.0.1:{port}"
    assert all(p["invite_url"].startswith(f"http://127.0.0.1:{port}/invite/") for p in out["participants"])


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _serve(cwd: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    # A permissive umask, as many shells and service managers have: Parley must not rely on it.
    return subprocess.Popen(
        [str(PARLEY), "serve", "--port", str(port)], cwd=cwd, env=env, umask=0o002,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )


async def _wait_healthy(port: int, proc: subprocess.Popen[str]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert proc.poll() is None, "parley serve exited"
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("parley serve did not become healthy")


async def test_state_is_private_to_the_owner(tmp_path: Path) -> None:
    """var/, the storage, the database with its -wal and -shm, and the secret key hold
    chat, names and e-mails: owner-only, whatever the umask, and fixed when found open."""
    port = free_port()
    proc = _serve(tmp_path, port)
    try:
        await _wait_healthy(port, proc)
        async with http_client_for(port) as http, http.get("/login") as r:
            assert r.status == 200
        var = tmp_path / "var"
        assert (var / "parley.db-wal").exists() and (var / "parley.db-shm").exists()
        modes = _modes(var)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert {"parley.db", "parley.db-wal", "parley.db-shm", "secret_key", "storage"} <= set(modes), modes
    for name, mode in modes.items():
        assert mode & 0o077 == 0, (name, oct(mode))
    assert modes["."] == 0o700 and modes["storage"] == 0o700 and modes["parley.db"] == 0o600

    # State left readable by an older version (or a careless copy) is closed on the next run.
    (var / "parley.db").chmod(0o644)
    (var / "secret_key").chmod(0o644)
    var.chmod(0o755)
    (var / "storage").chmod(0o755)
    up = subprocess.run([str(PARLEY), "db", "upgrade"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                        env={k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}, umask=0o002)
    assert up.returncode == 0, up.stderr
    for name, mode in _modes(var).items():
        assert mode & 0o077 == 0, (name, oct(mode))


def http_client_for(port: int) -> Any:
    import aiohttp

    return aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}")
