"""A killed server process's sockets leave their rooms: within the lease's lifetime on a
PostgreSQL + Redis deployment (seen live by clients of the surviving process), and
before the first client is served when the embedded process restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from server.audit import service as audit
from server.config import Settings
from server.db.session import make_engine, make_sessionmaker
from tests.conftest import LiveServer, free_port
from tests.fixtures.databases import REDIS_URL, Templates, drop_pg_database
from tests.fixtures.world import World, build_world
from tests.realtime.live import Peers, converge, eventually
from tests.realtime.test_scale_out import PARLEY, Process, _ping_redis, _stop, _wait_healthy

SECRET = "presence-crash-test-secret-key"
# Short leases so the test is quick; production uses 25 s renewed every 10 s.
LEASE_ENV = {
    "PARLEY_PRESENCE_LEASE_SECONDS": "2",
    "PARLEY_PRESENCE_RENEW_SECONDS": "0.5",
    "PARLEY_DUE_WORK_POLL_SECONDS": "0.2",
}


def spawn(workdir: Path, url: str, port: int, origins: list[str], extra: dict[str, str]) -> Process:
    workdir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")} | {
        "PARLEY_DATABASE_URL": url,
        "PARLEY_SECRET_KEY": SECRET,
        "PARLEY_PORT": str(port),
        "PARLEY_ALLOWED_ORIGINS": ",".join(origins),
        "PARLEY_VAR_DIR": str(workdir / "var"),
    } | extra
    log = workdir / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PARLEY), "serve"], cwd=workdir, env=env, stdout=out, stderr=out, stdin=subprocess.DEVNULL
        )
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        var_dir=workdir / "var", database_url=url, redis_url=extra.get("PARLEY_REDIS_URL"),
        storage_dir=workdir / "storage", host="127.0.0.1", port=port, base_url=base, allowed_origins=(base,),
        secret_key=SECRET.encode(),
    )
    return Process(LiveServer(settings, web.Application()), proc, log)


def kill(process: Process) -> None:
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait(10)


async def world_in(url: str, settings: Settings, extra_experts: int = 1) -> World:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine, info=audit.session_info(settings))() as db:
            return await build_world(db, settings, extra_experts=extra_experts)
    finally:
        await engine.dispose()


async def embedded_process(templates: Templates, tmp_path: Path, processes: list[Process]) -> tuple[str, int]:
    """One ``parley serve`` on the embedded defaults (a SQLite copy), healthy; returns
    its database URL and port."""
    url = await templates.sqlite_copy(tmp_path / "parley.db")
    port = free_port()
    processes.append(spawn(tmp_path / "embedded", url, port, [f"http://127.0.0.1:{port}"], {}))
    await asyncio.to_thread(_wait_healthy, processes)
    return url, port


@pytest.fixture
def pg_database(templates: Templates) -> Iterator[str]:
    url, name = asyncio.run(templates.pg_copy())
    yield url
    asyncio.run(drop_pg_database(name))


@pytest.fixture
async def processes() -> AsyncIterator[list[Process]]:
    made: list[Process] = []
    yield made
    await asyncio.to_thread(_stop, made)
    for process in made:
        assert "Traceback" not in process.output(), process.output()


@pytest.mark.postgres
async def test_a_killed_process_leaves_the_rooms_within_the_lease(
    pg_database: str, tmp_path: Path, processes: list[Process]
) -> None:
    await _ping_redis()
    ports = [free_port(), free_port()]
    origins = [f"http://127.0.0.1:{p}" for p in ports]
    for n, port in enumerate(ports):
        processes.append(
            spawn(tmp_path / f"p{n}", pg_database, port, origins, LEASE_ENV | {"PARLEY_REDIS_URL": REDIS_URL})
        )
    await asyncio.to_thread(_wait_healthy, processes)
    a, b = (p.server for p in processes)
    world = await world_in(pg_database, a.settings)
    peers = Peers(a, world)
    try:
        sid = world.sessions["open"]
        chair = await peers.connect("secretariat", server=a)
        assert (await chair.join(sid))["status"] == "joined"
        far = await peers.connect("expert", server=b)
        assert (await far.join(sid))["status"] == "joined"
        await converge([chair, far])
        assert far.membership_id in chair.state.present

        kill(processes[1])
        killed_at = time.monotonic()
        await eventually(lambda: far.membership_id not in chair.state.present, "the killed process's leave", 30)
        assert time.monotonic() - killed_at < 30
        leave = chair.live[-1]
        assert leave["type"] == "leave" and leave["membership_id"] == far.membership_id
        assert leave["payload"]["reason"] == "lost"
        # The survivor's own presence is untouched.
        assert chair.state.present == [chair.membership_id]
    finally:
        await peers.close()


async def test_the_embedded_process_restarted_after_a_crash_shows_no_stale_presence(
    templates: Templates, tmp_path: Path, processes: list[Process]
) -> None:
    url, port = await embedded_process(templates, tmp_path, processes)
    origins = [f"http://127.0.0.1:{port}"]
    server = processes[0].server
    world = await world_in(url, server.settings)
    peers = Peers(server, world)
    try:
        sid = world.sessions["open"]
        gone = await peers.connect("expert")
        assert (await gone.join(sid))["status"] == "joined"
        kill(processes[0])
        await gone.client.disconnect()

        processes.append(spawn(tmp_path / "embedded", url, port, origins, {}))
        await asyncio.to_thread(_wait_healthy, processes[1:])
        chair = await peers.connect("secretariat")
        ack = await chair.join(sid)
        assert ack["status"] == "joined", ack
        assert chair.state.present == [chair.membership_id]
        [leave] = [e for e in ack["events"] if e["type"] == "leave"]
        assert leave["membership_id"] == gone.membership_id and leave["payload"]["reason"] == "lost"
    finally:
        await peers.close()


async def test_a_graceful_stop_closes_every_socket_at_once_and_records_the_leaves(
    templates: Templates, tmp_path: Path, processes: list[Process]
) -> None:
    """SIGTERM with a room full: every client sees its connection close within a second
    (not after aiohttp's 10 s close handshake), the process is gone soon after, and the
    restarted server shows nobody present, each leave recorded with reason "stop"."""
    url, port = await embedded_process(templates, tmp_path, processes)
    origins = [f"http://127.0.0.1:{port}"]
    server = processes[0].server
    world = await world_in(url, server.settings, extra_experts=24)
    peers = Peers(server, world)
    sid = world.sessions["open"]
    keys = ["expert"] + [f"expert{n}" for n in range(2, 26)]
    try:
        joined = [await peers.joined(key, sid) for key in keys]
        closed_at: dict[str, float] = {}
        for peer in joined:
            peer.client.on("disconnect", lambda *_, key=peer.key: closed_at.setdefault(key, time.monotonic()))
        stopped = time.monotonic()
        processes[0].proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(processes[0].proc.wait, 10)
        exited = time.monotonic() - stopped
        await eventually(lambda: len(closed_at) == len(joined), "every client to see the close", 5)
        slowest = max(closed_at.values()) - stopped
        assert slowest < 1.5, slowest
        assert exited < 3.0, exited
        assert "Traceback" not in processes[0].output()

        processes.append(spawn(tmp_path / "embedded", url, port, origins, {}))
        await asyncio.to_thread(_wait_healthy, processes[1:])
        chair = await peers.connect("secretariat")
        ack = await chair.call("room.join", {"session_id": sid})
        assert ack["status"] == "joined", ack
        assert ack["state"]["present"] == [chair.membership_id]
    finally:
        await peers.close()
    stored = sqlite3.connect(url.removeprefix("sqlite+aiosqlite:///"))
    try:
        rows = stored.execute(
            "SELECT membership_id, json_extract(payload, '$.reason') FROM room_event "
            "WHERE session_id = ? AND type = 'leave'", (sid,)
        ).fetchall()
    finally:
        stored.close()
    reasons = dict(rows)
    assert {world.members[k].membership_id for k in keys} <= set(reasons), rows
    assert {reasons[world.members[k].membership_id] for k in keys} == {"stop"}, rows
