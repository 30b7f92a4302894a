"""`parley client` against a real Parley server, run as its users run it (a subprocess
with its own HOME and the passphrase in the environment): enrollment from an
invitation and from a one-time device link, uploads that print only ids, an upload
killed mid-way and resumed with the missing chunks only, a changed file starting
over, the size limit, listing and downloading under safe names, the secretariat
reading what a delegate uploaded, a revoked device and an ended login.

One server for the module; the tests build on each other in order (people enroll
before anyone uploads, so each upload's recipients include the others' devices)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import update

from server.core.clock import utcnow
from server.evidence import uploads as evidence_uploads
from server.people.models import LoginSession
from server.web.keys import SESSIONS
from tests.conftest import LiveServer, http_client, login
from tests.evidence import crypto
from tests.evidence.crypto import b64u
from tests.fixtures.databases import Templates
from tests.fixtures.world import World
from tests.parley_client.live import ID, AccessLog, Cli, access_log, live_server, new_cli

pytestmark = pytest.mark.asyncio(loop_scope="module")

MiB = 1024 * 1024
MAX_BYTES = 5 * MiB  # PARLEY_EVIDENCE_MAX_BYTES of this server


@dataclass
class Env:
    server: LiveServer
    world: World
    log: AccessLog
    tmp: Path
    cli: dict[str, Cli] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)  # browser-like logins, for what the CLI does not do
    docs: dict[str, str] = field(default_factory=dict)  # label -> document id
    data: dict[str, bytes] = field(default_factory=dict)

    @property
    def visit(self) -> str:
        return self.world.visit_id

    @property
    def closed(self) -> str:
        return self.world.sessions["closed"]

    def file(self, name: str, data: bytes) -> Path:
        path = self.tmp / "files" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        return path

    def http(self, cookie: str | None) -> aiohttp.ClientSession:
        return http_client(self.server, cookie)

    async def keys(self, cookie: str) -> dict[str, Any]:
        async with self.http(cookie) as http, http.get(f"/api/visits/{self.visit}/keys") as r:
            assert r.status == 200, await r.text()
            value: dict[str, Any] = await r.json()
            return value

    async def upload_state(self, cookie: str, version: str) -> dict[str, Any]:
        async with self.http(cookie) as http, http.get(f"/api/versions/{version}/upload") as r:
            assert r.status == 200, await r.text()
            value: dict[str, Any] = await r.json()
            return value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("cli-live")
    # The clients' homes and files apart from the server's directory (whose database
    # journal comes and goes), so a test can see every file a download created.
    (tmp / "server").mkdir()
    (tmp / "people").mkdir()
    with access_log() as log:
        async with live_server(templates, tmp / "server", evidence_max_bytes=MAX_BYTES) as (live, world):
            yield Env(live, world, log, tmp / "people")


@dataclass
class Gate:
    """Holds the server's answer to one chunk upload, so a test can kill the client
    while that chunk is in flight (chunks before it were acknowledged)."""

    index: int
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def gate_chunk(monkeypatch: pytest.MonkeyPatch, gate: Gate) -> None:
    original = evidence_uploads.put_chunk

    async def held(sessions: Any, store: Any, writes: Any, target: Any, data: Any) -> Any:
        if target.index == gate.index and not gate.release.is_set():
            gate.arrived.set()
            await gate.release.wait()
            raise web.HTTPServiceUnavailable(text="cut by the test")
        return await original(sessions, store, writes, target, data)

    monkeypatch.setattr(evidence_uploads, "put_chunk", held)


async def killed_mid_upload(cli: Cli, gate: Gate, *args: str) -> tuple[str, str]:
    """Starts an upload, kills the process (SIGKILL) while chunk ``gate.index`` is in
    flight; returns its stdout and stderr up to then."""
    process = await cli.start(*args)
    await asyncio.wait_for(gate.arrived.wait(), 30)
    process.kill()
    out, err = await process.communicate()
    assert process.returncode == -9
    gate.release.set()
    await asyncio.sleep(0.1)  # the held request ends
    return out.decode(), err.decode()


# ---- enrollment ----------------------------------------------------------------------------


async def test_enroll_from_an_invitation_link(env: Env) -> None:
    delegate = env.cli["delegate"] = new_cli(env.tmp, "delegate")
    result = await delegate.run("enroll", f"{env.server.url}/invite/{env.world.members['delegate'].invite_token}",
                                "--label", "Focal point laptop")
    assert result.code == 0, result.err
    enrolled = delegate.enrollment()
    assert enrolled["visit"] == env.visit and enrolled["person"] == env.world.members["delegate"].person_id
    env.cookies["delegate"] = enrolled["cookie"]
    listed = next(p for p in (await env.keys(enrolled["cookie"]))["people"] if p["person"] == enrolled["person"])
    (device,) = listed["devices"]
    assert device["id"] == enrolled["device"] and device["label"] == "Focal point laptop"
    assert result.out == device["safety_code"] + "\n"  # stdout: the safety code only
    # Keys and login stay in the config directory, private to the user.
    assert (delegate.config.stat().st_mode & 0o777) == 0o700
    assert (delegate.config / "client.json").stat().st_mode & 0o777 == 0o600
    assert "enc_priv" not in (delegate.config / "client.json").read_text()  # sealed, not in the clear
    # The invitation is spent: a second install cannot use it.
    again = await new_cli(env.tmp, "delegate-again").run(
        "enroll", f"{env.server.url}/invite/{env.world.members['delegate'].invite_token}")
    assert again.code == 1 and "spent, expired or unknown" in again.err and "Traceback" not in again.err


async def test_enroll_from_a_device_link_made_by_a_signed_in_session(env: Env) -> None:
    for key in ("secretariat", "expert"):
        cookie = env.cookies[key] = await login(env.server, env.world.members[key].invite_token)
        async with env.http(cookie) as http, http.post("/api/me/device-links") as r:
            assert r.status == 201, await r.text()
            url = (await r.json())["url"]
        assert url.startswith(f"{env.server.url}/api/device-links/")
        if key == "secretariat":
            # The server wants an allowed Origin on the spending POST (a refused one spends nothing).
            async with aiohttp.ClientSession() as bare, bare.post(url) as r:
                assert r.status == 403
        cli = env.cli[key] = new_cli(env.tmp, key)
        result = await cli.run("enroll", url)
        assert result.code == 0, result.err
        enrolled = cli.enrollment()
        # The device link's login tells the client its visit (that of the login that made it).
        assert enrolled["visit"] == env.visit and enrolled["person"] == env.world.members[key].person_id
        assert ID.fullmatch(enrolled["device"])
        spent = await new_cli(env.tmp, f"{key}-again").run("enroll", url)
        assert spent.code == 1 and "device link is spent, expired or unknown" in spent.err
    # A link the server never made is refused before anything is created.
    bad = await new_cli(env.tmp, "bad").run("enroll", f"{env.server.url}/device-links/x")
    assert bad.code == 2 and "add a device" in bad.err


# ---- upload, list, download ----------------------------------------------------------------


async def test_upload_prints_only_document_ids_and_list_shows_names(env: Env) -> None:
    delegate = env.cli["delegate"]
    env.data["law"] = "Ley 1474 de 2011 — Estatuto Anticorrupción".encode()
    env.data["stats"] = os.urandom(MiB + 17)
    law, stats = env.file("estatuto anticorrupción.txt", env.data["law"]), env.file("stats 2019.bin", env.data["stats"])
    result = await delegate.run("upload", "--session", env.closed, str(law), str(stats))
    assert result.code == 0, result.err
    ids = result.out.splitlines()
    assert len(ids) == 2 and all(ID.fullmatch(i) for i in ids), result.out
    env.docs["law"], env.docs["stats"] = ids
    assert "stats 2019.bin: 2/2 chunks" in result.err  # progress on stderr

    for key in ("delegate", "secretariat"):
        listed = await env.cli[key].run("list")
        assert listed.code == 0, listed.err
        assert f"{ids[0]}\testatuto anticorrupción.txt\n" in listed.out
        assert f"{ids[1]}\tstats 2019.bin\n" in listed.out
    by_session = await env.cli["secretariat"].run("list", "--session", env.world.sessions["open"])
    assert by_session.code == 0 and by_session.out == ""


async def test_an_upload_killed_midway_resumes_with_the_missing_chunks_only(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    delegate = env.cli["delegate"]
    data = env.data["cases"] = os.urandom(4 * MiB + 1000)  # 5 chunks
    path = env.file("case files.bin", data)
    gate = Gate(index=3)
    gate_chunk(monkeypatch, gate)
    start = env.log.mark()
    out, err = await killed_mid_upload(delegate, gate, "upload", "--session", env.closed, str(path))
    assert out == "" and "case files.bin: 3/5 chunks" in err and "4/5" not in err
    (version,) = {p.split("/")[3] for m, p, _ in env.log.entries[start:] if m == "PUT" and "/chunks/" in p}
    stored = await env.upload_state(env.cookies["delegate"], version)
    assert sorted(int(i) for i in stored["chunks"]) == [0, 1, 2] and stored["complete"] is False

    resumed_at = env.log.mark()
    result = await delegate.run("upload", "--session", env.closed, str(path))
    assert result.code == 0, result.err
    assert "resuming" in result.err
    assert env.log.chunk_puts(version, resumed_at) == [3, 4]  # only what the server lacked
    doc = result.out.strip()
    assert ID.fullmatch(doc)
    assert (await env.upload_state(env.cookies["delegate"], version))["complete"] is True
    assert not list((delegate.config / "uploads").iterdir())  # the resume state is gone
    env.docs["cases"] = doc

    # The secretariat, with its own client and key, gets the same bytes under the name.
    dest = env.tmp / "sec-downloads"
    dest.mkdir()
    got = await env.cli["secretariat"].run("download", doc, cwd=dest)
    assert got.code == 0, got.err
    assert got.out == f"{dest / 'case files.bin'}\n"
    assert hashlib.sha256((dest / "case files.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
    again = await env.cli["secretariat"].run("download", doc, cwd=dest)
    assert again.code == 2 and "already exists" in again.err  # never overwrites


async def test_a_file_changed_after_an_interruption_starts_over(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    delegate = env.cli["delegate"]
    first = os.urandom(2 * MiB + 10)
    path = env.file("draft.bin", first)
    gate = Gate(index=1)
    gate_chunk(monkeypatch, gate)
    start = env.log.mark()
    await killed_mid_upload(delegate, gate, "upload", "--session", env.closed, str(path))
    (old,) = {p.split("/")[3] for m, p, _ in env.log.entries[start:] if m == "PUT" and "/chunks/" in p}
    changed = os.urandom(len(first))  # same size, other bytes
    path.write_bytes(changed)
    again = env.log.mark()
    result = await delegate.run("upload", "--session", env.closed, str(path))
    assert result.code == 0, result.err
    assert "starting over" in result.err
    versions = {p.split("/")[3] for m, p, _ in env.log.entries[again:] if m == "PUT" and "/chunks/" in p}
    (new,) = versions - {old}
    assert env.log.chunk_puts(new, again) == [0, 1, 2]
    assert (await env.upload_state(env.cookies["delegate"], old))["complete"] is False
    out = env.tmp / "draft-check"
    out.mkdir()
    got = await env.cli["secretariat"].run("download", result.out.strip(), "--output", str(out))
    assert got.code == 0, got.err
    assert (out / "draft.bin").read_bytes() == changed


async def test_a_file_over_the_size_limit_is_refused_clearly(env: Env) -> None:
    big = env.tmp / "files" / "too big.bin"
    with big.open("wb") as f:
        f.truncate(MAX_BYTES + 1)
    start = env.log.mark()
    result = await env.cli["delegate"].run("upload", "--session", env.closed, str(big))
    assert result.code == 1 and result.out == ""
    assert "too big.bin is too large for this server" in result.err and "at most 5242880 bytes" in result.err
    assert "Traceback" not in result.err
    assert ("POST", f"/api/visits/{env.visit}/documents", 413) in env.log.entries[start:]
    assert not [e for e in env.log.entries[start:] if e[0] == "PUT"]


HOSTILE: dict[str, tuple[str, Callable[[str], bool]]] = {
    "traversal": ("../../etc/passwd", lambda n: n.endswith("etc_passwd") and not n.startswith(".")),
    "slash": ("a/b", lambda n: n == "a_b"),
    "nul": ("\x00", lambda n: n == "document"),
    "device": ("CON", lambda n: n == "_CON"),
    "empty": ("", lambda n: n == "document"),
    "long": ("x" * 400 + ".pdf", lambda n: n.endswith(".pdf") and len(n.encode()) <= 200),
}


async def test_hostile_names_are_saved_harmlessly(env: Env) -> None:
    """Documents whose sealed names were chosen by a hostile uploader (a second device
    of the delegate, driven here by hand) download under harmless names."""
    cookie = env.cookies["delegate"]
    uploader = crypto.DeviceKeys.new()
    async with env.http(cookie) as http, http.post("/api/devices", json=uploader.register_body("script")) as r:
        assert r.status == 201, await r.text()
        found = (await r.json())["device"]
    uploader.id, uploader.person = found["id"], found["person"]
    people = (await env.keys(cookie))["people"]
    wanted = {env.world.members[k].person_id for k in ("delegate", "secretariat")}
    devices = [d for p in people if p["person"] in wanted for d in p["devices"] if not d["revoked_at"]]
    made: dict[str, tuple[str, bytes]] = {}
    async with env.http(cookie) as http:
        for label, (name, _) in HOSTILE.items():
            data = f"evidence {label}".encode()
            async with http.post(f"/api/visits/{env.visit}/documents",
                                 json={"session": env.closed, "articles": [], "chunks": 1, "size": len(data) + 16}) as r:
                assert r.status == 201, await r.text()
                ids = await r.json()
            version = ids["version"]
            sealed = crypto.seal(version, data, {"name": name, "type": "text/plain", "size": len(data),
                                                 "description": ""})
            async with http.put(f"/api/versions/{version}/chunks/0", data=io.BytesIO(sealed.chunks[0])) as r:
                assert r.status == 201, await r.text()
            keys = [{"device": d["id"], "wrapped": b64u(crypto.wrap(sealed.key, crypto.unb64u(d["enc_pub"]), env.visit,
                                                                    version, d["id"]))} for d in devices]
            async with http.put(f"/api/versions/{version}/keys", json={"keys": keys}) as r:
                assert r.status == 200, await r.text()
            value = crypto.manifest(sealed, visit=env.visit, document=ids["document"], version=version,
                                    uploader=uploader, recipients=[
                                        {"device": d["id"], "fp": d["fingerprint"], "person": d["person"]}
                                        for d in devices])
            async with http.post(f"/api/versions/{version}/complete",
                                 json={**crypto.signed(value, uploader), "meta": b64u(sealed.meta)}) as r:
                assert r.status == 200, await r.text()
            made[label] = (ids["document"], data)

    secretariat = env.cli["secretariat"]
    listed = await secretariat.run("list", "--session", env.closed)
    assert listed.code == 0, listed.err
    lines = dict(line.split("\t") for line in listed.out.splitlines())
    before = sorted(p.name for p in env.tmp.iterdir())
    for label in HOSTILE:
        (env.tmp / f"hostile-{label}").mkdir()
    results = await asyncio.gather(*(secretariat.run("download", document, cwd=env.tmp / f"hostile-{label}")
                                     for label, (document, _) in made.items()))
    for (label, (document, data)), got in zip(made.items(), results, strict=True):
        _, harmless = HOSTILE[label]
        assert harmless(lines[document]), (label, lines[document])
        where = env.tmp / f"hostile-{label}"
        assert got.code == 0, (label, got.err)
        (saved,) = list(where.iterdir())
        assert saved.name == lines[document] and harmless(saved.name), (label, saved.name)
        assert got.out == f"{saved}\n" and saved.read_bytes() == data
    assert sorted(p.name for p in env.tmp.iterdir()) == sorted(before + [f"hostile-{k}" for k in HOSTILE])
    assert not (env.tmp / "etc").exists() and not (env.tmp.parent / "etc").exists()


# ---- revocation and ended logins -----------------------------------------------------------


async def test_a_revoked_device_gets_403_and_a_clear_error(env: Env) -> None:
    expert = env.cli["expert"]
    enrolled = expert.enrollment()
    # Before: the expert's client reads the delegate's upload (it was a recipient).
    where = env.tmp / "expert-before"
    where.mkdir()
    got = await expert.run("download", env.docs["law"], cwd=where)
    assert got.code == 0, got.err
    assert (where / "estatuto anticorrupción.txt").read_bytes() == env.data["law"]

    async with env.http(env.cookies["expert"]) as http, http.delete(f"/api/devices/{enrolled['device']}") as r:
        assert r.status == 204, await r.text()
    async with env.http(enrolled["cookie"]) as http:
        listed = (await (await http.get(f"/api/visits/{env.visit}/documents")).json())["documents"]
        version = next(d for d in listed if d["id"] == env.docs["law"])["version"]["id"]
        async with http.get(f"/api/versions/{version}/content") as r:
            assert r.status == 403
    after = env.tmp / "expert-after"
    after.mkdir()
    result = await expert.run("download", env.docs["law"], cwd=after)
    assert result.code == 1 and result.out == ""
    assert "This device was revoked" in result.err and "enroll" in result.err and "Traceback" not in result.err
    assert list(after.iterdir()) == []
    upload = await expert.run("upload", "--session", env.closed, str(env.file("note.txt", b"note")))
    assert upload.code == 1 and "This device was revoked" in upload.err


async def test_an_ended_or_expired_login_gives_a_clear_message(env: Env) -> None:
    # The secretariat signs the client's login out from their browser session.
    async with env.http(env.cookies["secretariat"]) as http:
        async with http.get("/api/me/logins") as r:
            logins = (await r.json())["logins"]
        (cli_login,) = [entry for entry in logins if entry["user_agent"] == "parley-client/1"]
        async with http.post(f"/api/me/logins/{cli_login['id']}/revoke") as r:
            assert r.status == 200, await r.text()
    result = await env.cli["secretariat"].run("list")
    assert result.code == 1 and result.out == ""
    assert "no longer accepts this machine's login" in result.err and "enroll again" in result.err.lower()

    # The delegate's client login expires.
    async with env.server.app[SESSIONS]() as db:
        await db.execute(update(LoginSession).where(
            LoginSession.person_id == env.world.members["delegate"].person_id,
            LoginSession.user_agent == "parley-client/1").values(expires_at=utcnow() - timedelta(minutes=1)))
        await db.commit()
    result = await env.cli["delegate"].run("download", env.docs["law"], cwd=env.tmp)
    assert result.code == 1 and "no longer accepts this machine's login" in result.err
    assert "Traceback" not in result.err
