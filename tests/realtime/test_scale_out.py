"""Two ``parley serve`` processes on one PostgreSQL database and one Redis serve one
visit: clients on either process see each other's events live, with one sequence."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from server.agenda.models import AgendaSession
from server.audit import service as audit
from server.config import Settings
from server.db.session import make_engine, make_sessionmaker
from tests.conftest import LiveServer, free_port
from tests.fixtures.databases import REDIS_URL, Templates, drop_pg_database
from tests.fixtures.world import World, build_world
from tests.realtime.live import Peer, Peers, converge, eventually

pytestmark = pytest.mark.postgres

PARLEY = Path(sys.executable).with_name("parley")
SECRET = "scale-out-test-secret-key"
START_TIMEOUT = 60.0


@dataclass
class Process:
    server: LiveServer
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _wait_healthy(processes: list[Process]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for process in processes:
        while True:
            if process.proc.poll() is not None:
                pytest.fail(f"parley serve exited with {process.proc.returncode}:\n{process.output()}")
            try:
                with urllib.request.urlopen(f"{process.server.url}/healthz", timeout=2) as r:
                    if r.status == 200 and json.load(r)["status"] == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"parley serve did not become healthy:\n{process.output()}")
            time.sleep(0.1)


def _stop(processes: list[Process]) -> None:
    for process in processes:
        if process.proc.poll() is None:
            process.proc.send_signal(signal.SIGINT)  # aiohttp's graceful shutdown
    for process in processes:
        try:
            process.proc.wait(15)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


@pytest.fixture(scope="module")
def cluster(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LiveServer]]:
    """Two server processes sharing a fresh PostgreSQL database and Redis (started once
    for this module; each test builds its own visit in that database)."""
    asyncio.run(_ping_redis())
    url, name = asyncio.run(templates.pg_copy())
    root = tmp_path_factory.mktemp("cluster")
    ports = [free_port(), free_port()]
    origins = [f"http://127.0.0.1:{p}" for p in ports]
    processes: list[Process] = []
    try:
        for n, port in enumerate(ports):
            workdir = root / f"p{n}"
            workdir.mkdir()
            env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")} | {
                "PARLEY_DATABASE_URL": url,
                "PARLEY_REDIS_URL": REDIS_URL,
                "PARLEY_SECRET_KEY": SECRET,
                "PARLEY_PORT": str(port),
                "PARLEY_ALLOWED_ORIGINS": ",".join(origins),
            }
            log = workdir / "serve.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [str(PARLEY), "serve"], cwd=workdir, env=env, stdout=out, stderr=out,
                    stdin=subprocess.DEVNULL,
                )
            settings = Settings(
                var_dir=workdir / "var", database_url=url, redis_url=REDIS_URL, storage_dir=workdir / "storage",
                host="127.0.0.1", port=port, base_url=origins[n], allowed_origins=(origins[n],),
                secret_key=SECRET.encode(),
            )
            processes.append(Process(LiveServer(settings, web.Application()), proc, log))
        _wait_healthy(processes)
        yield [p.server for p in processes]
    finally:
        _stop(processes)
        asyncio.run(drop_pg_database(name))
    for process in processes:
        assert "Traceback" not in process.output(), process.output()


async def _ping_redis() -> None:
    redis = aioredis.from_url(REDIS_URL)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


@pytest.fixture
async def spread(cluster: list[LiveServer]) -> AsyncIterator[tuple[Peers, list[LiveServer], World]]:
    """A fresh visit in the cluster's database, and a ``Peers`` for it."""
    engine = make_engine(cluster[0].settings.database_url)
    try:
        sessions = make_sessionmaker(engine, info=audit.session_info(cluster[0].settings))
        async with sessions() as db:
            world = await build_world(db, cluster[0].settings)
    finally:
        await engine.dispose()
    peers = Peers(cluster[0], world)
    yield peers, cluster, world
    await peers.close()


async def join_on(peers: Peers, key: str, server: LiveServer, session_id: str) -> Peer:
    peer = await peers.connect(key, server=server)
    ack = await peer.join(session_id)
    assert ack["ok"] and ack["status"] == "joined", ack
    return peer


async def test_clients_on_two_processes_share_one_room(spread: tuple[Peers, list[LiveServer], World]) -> None:
    peers, (a, b), world = spread
    sid = world.sessions["open"]
    chair = await join_on(peers, "secretariat", a, sid)
    near = await join_on(peers, "expert2", a, sid)
    far = await join_on(peers, "expert", b, sid)
    other = await join_on(peers, "delegate", b, sid)
    everyone = [chair, near, far, other]
    await converge(everyone)

    # A floor request made on B is heard live on A.
    ack = await far.send("floor.request")
    assert ack["ok"] and ack["position"] == 1, ack
    await chair.synced(ack["seq"])
    assert chair.live[-1]["seq"] == ack["seq"] and chair.live[-1]["type"] == "floor.request"
    assert chair.state.queue == [far.membership_id]
    ack = await near.send("floor.request")
    assert ack["ok"] and ack["position"] == 2, ack
    # Chat from A reaches B, and the chair on A gives the floor to the expert on B.
    said = await chair.send("chat.send", text="over to Kenya", idem="a1")
    assert said["ok"], said
    await other.synced(said["seq"])
    assert other.state.chat[-1]["text"] == "over to Kenya"
    given = await chair.send("floor.give", membership_id=far.membership_id)
    assert given["ok"], given
    await converge(everyone)
    assert far.state.floor and far.state.floor["membership_id"] == far.membership_id
    assert far.state.queue == [near.membership_id]

    # Both processes append at once: one gap-free sequence, everyone agrees.
    start = chair.state.seq

    async def talk(peer: Peer) -> list[int]:
        return [(await peer.send("chat.send", text=f"{peer.key} {i}", idem=f"{peer.key}-{i}"))["seq"] for i in range(5)]

    seqs = sorted(s for batch in await asyncio.gather(*(talk(p) for p in everyone)) for s in batch)
    assert seqs == list(range(start + 1, start + 21))
    await converge(everyone, fresh=await peers.connect("interpreter", server=b))
    for peer in everyone:
        assert peer.live_duplicates() == []


async def test_reconnecting_to_the_other_process_catches_up(spread: tuple[Peers, list[LiveServer], World]) -> None:
    peers, (a, b), world = spread
    sid = world.sessions["open"]
    chair = await join_on(peers, "secretariat", a, sid)
    away = await join_on(peers, "delegate", b, sid)
    await converge([chair, away])
    last = away.state.seq
    await away.client.disconnect()
    await eventually(lambda: away.membership_id not in chair.state.present, "leave from B seen on A")
    assert (await chair.send("chat.send", text="missed", idem="m1"))["ok"]

    back = await peers.connect("delegate", server=a)
    back.state = away.state
    ack = await back.join(sid, since=last)
    assert [e["seq"] for e in ack["events"]] == list(range(last + 1, ack["seq"] + 1))
    assert [e["type"] for e in ack["events"]] == ["leave", "chat", "join"]
    await converge([chair, back])


async def test_lobby_admission_crosses_processes(spread: tuple[Peers, list[LiveServer], World]) -> None:
    peers, (a, b), world = spread
    sid = world.sessions["closed"]
    engine = make_engine(peers.server.settings.database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            session = await db.get(AgendaSession, sid)
            assert session is not None
            session.requires_admission = True
            await db.commit()
    finally:
        await engine.dispose()
    chair = await join_on(peers, "secretariat", a, sid)
    delegate = await peers.connect("delegate", server=b)
    waiting = await delegate.join(sid)
    assert waiting["status"] == "waiting", waiting
    await chair.synced(waiting["seq"])
    assert list(chair.state.lobby) == [delegate.membership_id]
    assert (await chair.send("lobby.admit", membership_id=delegate.membership_id))["ok"]
    await eventually(lambda: bool(delegate.admissions), "admission delivered on B")
    assert delegate.admissions == [{"session_id": sid, "status": "admitted"}]
    assert (await delegate.join(sid))["status"] == "joined"
    await converge([chair, delegate])


