"""Reconnect storm: a server restart with 1,000 clients in live rooms.

    .venv/bin/python bench/reconnect_storm.py [--rooms 4] [--per-room 250] [--client-procs 2]
                                              [--scenarios kill,term] [--repeat 1] [--json out.json]

One ``parley serve`` on the embedded defaults (SQLite in a temporary directory, one
process, no Redis). The database is loaded with ``--rooms`` visits of ``--per-room``
experts each (tests.fixtures.world.build_world), and every client logs in by spending
its own invitation link over HTTP, as in room_broadcast.py. Each visit's open session
is one room: the default 4 x 250 = 1,000 clients is four meetings on the same day, each
close to the ~300 participants a large meeting reaches.

All clients connect and join (a cold start without back-off: the run's baseline),
then, for each scenario:

* ``kill``: the server is killed with SIGKILL and started again on the same database
  and port; ``term``: it is stopped with SIGTERM (graceful: its sockets are closed
  and their leaves recorded) and started again;
* every client notices the lost connection and reconnects as the browser does
  (socket.io-client's back-off: ``--backoff-base`` s, doubled each failed attempt,
  +-``--jitter`` randomisation, capped at ``--backoff-max``), then sends ``room.join``
  with ``since`` = the last seq it applied, applies the events (or the state) in the
  acknowledgement, holds live events that arrive meanwhile, fills gaps with
  ``room.sync`` and follows ``room.beacon``, like client_web/js/room.js;
* one writer per room (a member of that room) posts a chat message every
  1/``--writer-rate`` s, from a few seconds before the stop, through the outage and
  after; each message has an idempotency key and is sent again with the same key
  until it is acknowledged. The writer reconnects every ``--writer-retry`` s;
* measured: the time from the restarted server's first /healthz answer to the last
  client being caught up, i.e. its applied seq equal to its room's last committed seq
  read from the database (polled every ``--poll`` s); per-client catch-up times
  (p50/p99/max) split into the back-off wait (until its first successful connect after
  /healthz) and the server's part (connect to caught up); join time-outs and errors;
  chat messages acknowledged vs stored vs received by every client of the room (lost,
  duplicated); the server's CPU during the storm; how long the stop and the start-up
  took.

Everything stays on 127.0.0.1 and every subprocess is stopped on the way out. See
bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import room_broadcast as rb
from sio_client import RawSioClient, SioError

ROOT = Path(__file__).resolve().parents[1]
CONNECT_CONCURRENCY = 25
ACK_TIMEOUT = 8.0  # client_web/js/room.js ACK_TIMEOUT_MS
JOIN_ACK_TIMEOUT = 30.0  # client_web/js/room_connection.js JOIN_ACK_TIMEOUT_MS
GAP_GRACE = 0.3  # room.js GAP_GRACE_MS
CONNECT_TIMEOUT = 20.0  # socket.io-client's default
TARGET_SECONDS = 10.0


def now() -> float:
    return time.time()


# ---- the client worker (a subprocess) ---------------------------------------------------


@dataclass
class Phase:
    """What one client went through in one scenario (times are time.time())."""

    down_at: float | None = None
    attempts: list[float] = field(default_factory=list)
    refused: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    connected_at: float | None = None
    join_sent_at: float | None = None
    join_ack_at: float | None = None
    ack_seq: int | None = None
    ack_kind: str | None = None  # "events" or "state"
    ack_events: int = 0
    ack_bytes: int = 0
    caught_at: float | None = None
    join_timeouts: int = 0
    join_errors: list[str] = field(default_factory=list)
    syncs: int = 0
    history_pages: int = 0
    joins_sent: int = 0
    gaps: int = 0  # live events that arrived ahead of a missing one (out of order)


class Member:
    """One participant: its connection, its applied seq and the chat it has seen."""

    def __init__(self, w: StormWorker, index: int, room: int, session_id: str, cookie: str, writer: bool) -> None:
        self.w, self.index, self.room, self.session_id, self.cookie = w, index, room, session_id, cookie
        self.writer = writer
        self.client: RawSioClient | None = None
        self.seq: int | None = None
        self.pending: dict[int, tuple[str, str | None]] = {}  # seq -> (type, chat key)
        self.catching = False
        self.joined = asyncio.Event()
        self.chats: dict[str, int] = {}  # chat key -> seq
        self.chat_dups = 0
        self.phase = Phase()
        self.gap_task: asyncio.Task[None] | None = None
        self.life: asyncio.Task[None] | None = None
        self.join_task: asyncio.Task[bool] | None = None
        # Writer state
        self.acked: dict[str, dict[str, Any]] = {}
        self.created: dict[str, float] = {}
        self.send_errors: Counter[str] = Counter()
        self.send_attempts = 0

    # -- receiving --

    def on_raw(self, event: str, text: str) -> None:
        if event == "room.event":
            # '42["room.event",{"session_id":"..","seq":N,"type":"..",...}]', found without decoding JSON.
            at = text.index('"seq":') + 6
            seq = int(text[at:text.index(",", at)])
            t = text.index('"type":"', at) + 8
            kind = text[t:text.index('"', t)]
            key = None
            if kind == "chat":
                k = text.index('"text":"', t) + 8
                key = text[k:text.index('"', k)]
            self.on_event(seq, kind, key)
        elif event == "room.beacon":
            at = text.index('"seq":') + 6
            seq = int(text[at:text.rindex("}")])
            if self.seq is not None and seq > self.seq and not self.catching:
                self.schedule_gap_check(0.0)

    def on_event(self, seq: int, kind: str, key: str | None) -> None:
        if self.seq is None or seq <= self.seq:
            return
        if seq > self.seq + 1 and not self.catching and self.joined.is_set() and self.seq + 1 not in self.pending:
            self.phase.gaps += 1
        self.pending[seq] = (kind, key)
        if not self.catching:
            self.drain()

    def apply_chat(self, key: str, seq: int) -> None:
        if key in self.chats and self.chats[key] != seq:
            self.chat_dups += 1
        self.chats[key] = seq

    def drain(self) -> None:
        if self.seq is None:
            return
        while self.seq + 1 in self.pending:
            _kind, key = self.pending.pop(self.seq + 1)
            self.seq += 1
            if key is not None and key.startswith("storm-"):
                self.apply_chat(key, self.seq)
        for s in [s for s in self.pending if s <= self.seq]:
            del self.pending[s]
        p = self.phase
        if p.ack_seq is not None and p.caught_at is None and self.seq >= p.ack_seq:
            p.caught_at = now()
        if self.pending:
            self.schedule_gap_check(GAP_GRACE)

    def schedule_gap_check(self, delay: float) -> None:
        if self.gap_task is None or self.gap_task.done():
            self.gap_task = asyncio.create_task(self.gap_check(delay))

    async def gap_check(self, delay: float) -> None:
        await asyncio.sleep(delay)
        c = self.client
        if c is None or self.catching or not self.joined.is_set() or self.seq is None:
            return
        self.catching = True
        self.phase.syncs += 1
        try:
            ack = await c.call("room.sync", {"session_id": self.session_id, "since": self.seq}, timeout=ACK_TIMEOUT)
        except (TimeoutError, SioError):
            return
        finally:
            self.catching = False
        if isinstance(ack, dict) and "error" not in ack:
            await self.absorb(c, ack)
        else:
            self.drain()

    async def absorb(self, c: RawSioClient, ack: dict[str, Any]) -> None:
        """Apply a join or sync acknowledgement: the events after ``since``, or the state."""
        state = ack.get("state")
        if state is not None and (self.seq is None or state["seq"] >= self.seq):
            old = self.seq
            self.seq = state["seq"]
            self.phase.ack_kind = "state"
            window = [m for m in state.get("chat", []) if m["text"].startswith("storm-")]
            for m in window:
                if old is None or m["seq"] > old:
                    self.apply_chat(m["text"], m["seq"])
            # Past the state's chat window: page back with chat.history, as someone
            # scrolling up would, to the last message this client had.
            first = state["chat"][0]["seq"] if state.get("chat") else self.seq + 1
            more = bool(state.get("chat_more"))
            while old is not None and more and first > old + 1:
                page = await c.call("chat.history", {"session_id": self.session_id, "before": first, "limit": 100},
                                    timeout=ACK_TIMEOUT)
                self.phase.history_pages += 1
                if not isinstance(page, dict) or "error" in page or not page.get("messages"):
                    break
                for m in page["messages"]:
                    if m["seq"] > old and m["text"].startswith("storm-"):
                        self.apply_chat(m["text"], m["seq"])
                first, more = page["messages"][0]["seq"], bool(page.get("more"))
        elif "events" in ack:
            if self.seq is None:
                self.seq = 0
            self.phase.ack_kind = self.phase.ack_kind or "events"
            for e in ack["events"]:
                if e["seq"] > self.seq:
                    key = (e.get("payload") or {}).get("text") if e["type"] == "chat" else None
                    self.pending[e["seq"]] = (e["type"], key)
        self.drain()

    # -- connecting and joining --

    async def connect_once(self) -> RawSioClient:
        c = RawSioClient(self.w.http, self.on_raw)
        await c.connect(self.w.url, {"Cookie": f"parley_session={self.cookie}", "Origin": self.w.origin},
                        timeout=CONNECT_TIMEOUT)
        self.client = c
        return c

    async def join(self, c: RawSioClient, *, retry: bool = True) -> bool:
        """room.join (with ``since`` once this client has a seq) until it is answered."""
        while self.client is c and not c.closed.is_set():
            payload: dict[str, Any] = {"session_id": self.session_id}
            if self.seq is not None:
                payload["since"] = self.seq
            self.catching = True
            p = self.phase
            p.join_sent_at = now()
            p.joins_sent += 1
            try:
                fut = await c.emit("room.join", payload)
                ack = await asyncio.wait_for(fut, self.w.join_timeout)
            except TimeoutError:
                self.catching = False
                p.join_timeouts += 1
                if not retry:
                    raise
                await asyncio.sleep(1.0)  # room.js: setTimeout(join, 1000)
                continue
            except SioError:
                self.catching = False
                return False
            self.catching = False
            if not isinstance(ack, dict) or "error" in ack or ack.get("status") != "joined":
                code = ack["error"]["code"] if isinstance(ack, dict) and "error" in ack else repr(ack)[:80]
                p.join_errors.append(str(code))
                if not retry:
                    raise RuntimeError(f"room.join failed: {ack}")
                if code == "unavailable":
                    # room_connection.js: join again after retry_after x (1 + random).
                    retry_after = float(ack["error"].get("retry_after") or 1.0)
                    await asyncio.sleep(retry_after * (1 + random.random()))
                    continue
                # room.js shows any other error and does not join again until the next
                # reconnect; this client asks again after a second (counted).
                await asyncio.sleep(1.0)
                continue
            p.join_ack_at = now()
            p.ack_seq = int(ack["seq"])
            p.ack_events = len(ack.get("events") or [])
            p.ack_bytes = c.last_ack_bytes
            await self.absorb(c, ack)
            self.joined.set()
            return True
        return False

    async def run(self) -> None:
        """Stay connected: on a lost connection, back off, reconnect and join again."""
        while not self.w.stopping:
            c = self.client
            if c is None:
                return
            await c.closed.wait()
            if self.w.stopping:
                return
            self.joined.clear()
            self.client = None
            self.phase.down_at = now()
            attempt = 0
            while not self.w.stopping:
                await asyncio.sleep(self.w.delay(attempt, self.writer))
                self.phase.attempts.append(now())
                try:
                    c = await self.connect_once()
                    break
                except (aiohttp.ClientConnectorError, ConnectionRefusedError):
                    self.phase.refused += 1
                except Exception as exc:
                    name = type(exc).__name__
                    self.phase.connect_errors[name] = self.phase.connect_errors.get(name, 0) + 1
                attempt += 1
            if self.w.stopping:
                return
            self.phase.connected_at = now()
            self.join_task = asyncio.create_task(self.join(c))

    # -- writing (one member per room) --

    async def deliver(self, key: str) -> None:
        """Send one chat message with its idempotency key until it is acknowledged."""
        self.created[key] = now()
        payload = {"session_id": self.session_id, "text": f"storm-{key}", "idem": key}
        while True:
            await self.joined.wait()
            c = self.client
            if c is None:
                await asyncio.sleep(0.05)
                continue
            self.send_attempts += 1
            try:
                ack = await c.call("chat.send", payload, timeout=ACK_TIMEOUT)
            except TimeoutError:
                self.send_errors["timeout"] += 1
                continue
            except SioError:
                self.send_errors["disconnected"] += 1
                await asyncio.sleep(0.05)
                continue
            if isinstance(ack, dict) and ack.get("ok"):
                self.acked[key] = {"seq": ack.get("seq"), "dup": bool(ack.get("duplicate")), "at": now()}
                return
            code = ack["error"]["code"] if isinstance(ack, dict) and "error" in ack else "bad-ack"
            self.send_errors[str(code)] += 1
            retry_after = (ack.get("error") or {}).get("retry_after") if isinstance(ack, dict) else None
            await asyncio.sleep(float(retry_after or 0.2))


class StormWorker:
    """Runs in a worker subprocess: holds some of the clients and answers commands."""

    def __init__(self) -> None:
        self.members: list[Member] = []
        self.http: aiohttp.ClientSession | None = None
        self.url = self.origin = ""
        self.stopping = False
        self.backoff = (1.0, 2.0, 0.5, 30.0)
        self.writer_retry = 0.25
        self.join_timeout = JOIN_ACK_TIMEOUT
        self.writing = False
        self.write_tasks: list[asyncio.Task[None]] = []
        self.deliveries: set[asyncio.Task[None]] = set()

    def delay(self, attempt: int, writer: bool) -> float:
        if writer:
            return self.writer_retry
        base, factor, jitter, cap = self.backoff
        ms = base * factor**attempt
        # socket.io-client's Backoff.duration(): ms +- rand * jitter * ms, then the cap.
        rand = random.random()
        deviation = rand * jitter * ms
        ms = ms - deviation if int(rand * 10) & 1 == 0 else ms + deviation
        return min(ms, cap)

    async def op_connect(self, url: str, clients: list[list[Any]], backoff: list[float],
                         writer_retry: float, join_timeout: float) -> dict[str, Any]:
        self.url, self.origin = url, url
        self.backoff = (backoff[0], backoff[1], backoff[2], backoff[3])
        self.writer_retry = writer_retry
        self.join_timeout = join_timeout
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                          cookie_jar=aiohttp.DummyCookieJar())
        self.members = [Member(self, int(i), int(r), s, c, bool(wr)) for i, r, s, c, wr in clients]
        t0 = now()
        await rb.gather_limited(len(self.members), CONNECT_CONCURRENCY, lambda k: self.members[k].connect_once())
        t1 = now()

        async def join(m: Member) -> None:
            assert m.client is not None
            await m.join(m.client, retry=False)

        await rb.gather_limited(len(self.members), CONNECT_CONCURRENCY, lambda k: join(self.members[k]))
        for m in self.members:
            m.life = asyncio.create_task(m.run())
        return {"connected_s": t1 - t0, "joined_s": now() - t1,
                "ack_bytes": [m.phase.ack_bytes for m in self.members]}

    async def op_arm(self) -> dict[str, Any]:
        for m in self.members:
            m.phase = Phase()
        return {}

    async def op_status(self) -> dict[str, Any]:
        return {"seq": [[m.index, m.seq if m.joined.is_set() else None] for m in self.members]}

    async def op_write_start(self, phase: str, rate: float) -> dict[str, Any]:
        self.writing = True
        for m in self.members:
            if m.writer:
                self.write_tasks.append(asyncio.create_task(self._write(m, phase, rate)))
        return {}

    async def _write(self, m: Member, phase: str, rate: float) -> None:
        t0 = time.perf_counter()
        k = 0
        while self.writing:
            delay = t0 + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.writing:
                break
            task = asyncio.create_task(m.deliver(f"{phase}-r{m.room}-{k}"))
            self.deliveries.add(task)
            task.add_done_callback(self.deliveries.discard)
            k += 1

    async def op_write_stop(self, timeout: float) -> dict[str, Any]:
        self.writing = False
        await asyncio.gather(*self.write_tasks, return_exceptions=True)
        self.write_tasks = []
        pending = list(self.deliveries)
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return {"unacked": sum(1 for t in pending if not t.done())}

    async def op_collect(self) -> dict[str, Any]:
        out = []
        for m in self.members:
            p = m.phase
            out.append({
                "index": m.index, "room": m.room, "writer": m.writer, "seq": m.seq,
                "phase": {k: v for k, v in p.__dict__.items()},
            })
        writers = [{"room": m.room, "acked": m.acked, "created": m.created, "errors": dict(m.send_errors),
                    "attempts": m.send_attempts} for m in self.members if m.writer]
        for m in self.members:
            if m.writer:
                m.acked, m.created, m.send_errors, m.send_attempts = {}, {}, Counter(), 0
        return {"clients": out, "writers": writers}

    async def op_verify(self, stored: dict[str, list[str]]) -> dict[str, Any]:
        """Each client's chat against what its room stored: missing, extra, duplicates."""
        bad = []
        for m in self.members:
            want = set(stored.get(str(m.room), []))
            have = set(m.chats)
            missing, extra = len(want - have), len(have - want)
            if missing or extra or m.chat_dups:
                bad.append({"index": m.index, "missing": missing, "extra": extra, "dups": m.chat_dups})
        return {"bad": bad, "checked": len(self.members)}

    async def op_close(self) -> dict[str, Any]:
        self.stopping = True
        for m in self.members:
            if m.life is not None:
                m.life.cancel()
        for t in list(self.deliveries):
            t.cancel()
        await asyncio.gather(*(m.client.close() for m in self.members if m.client is not None),
                             return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        return {}


async def worker_main() -> None:
    """A client worker of this benchmark (room_broadcast's command loop)."""
    await rb.serve_worker(StormWorker(), read_limit=2**26)


class StormWorkerProcess(rb.WorkerProcess):
    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
            start_new_session=True,
        )
        rb.register_child(self.proc.pid)
        self.ps = psutil.Process(self.proc.pid)
        self.reader = asyncio.create_task(self._read())


# ---- the orchestrator ----------------------------------------------------------------------


class Server(rb.ServerProcess):
    """``parley serve``; start() records when the process was spawned and when /healthz
    first answered (polled every 20 ms)."""

    spawned_at = 0.0
    healthy_at = 0.0

    async def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.spawned_at = now()
        self.popen = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        rb.register_child(self.popen.pid)
        self.ps = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            self.healthy_at = now()
                            return
                await asyncio.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer /healthz in {timeout}s:\n{self.log_tail()}")

    async def halt(self, sig: int, timeout: float = 30.0) -> float:
        """Send ``sig`` and wait for the process to exit; returns the seconds it took."""
        assert self.popen is not None
        t0 = now()
        self.popen.send_signal(sig)
        while self.popen.poll() is None:
            if now() - t0 > timeout:
                self.popen.kill()
            await asyncio.sleep(0.01)
        rb.forget_child(self.popen.pid)
        return now() - t0


class Db:
    """Reads the server's SQLite database (WAL: readers never block its writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    async def latest(self, session_ids: list[str]) -> dict[str, int]:
        marks = ",".join("?" * len(session_ids))
        rows = await asyncio.to_thread(
            self._q, f"SELECT session_id, max(seq) FROM room_event WHERE session_id IN ({marks}) GROUP BY session_id",
            tuple(session_ids))
        found = {s: int(q) for s, q in rows}
        return {s: found.get(s, 0) for s in session_ids}

    async def chats(self, session_ids: list[str]) -> dict[str, list[tuple[str, str | None]]]:
        """Stored storm chat per session: (text, idempotency key)."""
        marks = ",".join("?" * len(session_ids))
        rows = await asyncio.to_thread(
            self._q, f"SELECT session_id, payload, idempotency_key FROM room_event WHERE type = 'chat' "
                     f"AND session_id IN ({marks})", tuple(session_ids))
        out: dict[str, list[tuple[str, str | None]]] = {s: [] for s in session_ids}
        for s, payload, key in rows:
            text = json.loads(payload).get("text", "")
            if text.startswith("storm-"):
                out[s].append((text, key))
        return out


async def load(tmp: Path, rooms: int, per_room: int, secret: str) -> tuple[list[str], list[list[str]]]:
    """Migrate a fresh SQLite database; one visit of ``per_room`` experts per room."""
    var = tmp / "var"
    return await rb.load_rooms(f"sqlite+aiosqlite:///{var / 'parley.db'}", var, secret, rooms, per_room)


async def login(http: aiohttp.ClientSession, url: str, token: str, tries: int = 6) -> str:
    """room_broadcast's login (spend the invitation over HTTP), again after a 503 ("the
    server is busy": others' load on a shared machine) or a connection error."""
    for attempt in range(tries):
        try:
            return await rb.login(http, url, token)
        except (RuntimeError, aiohttp.ClientError) as exc:
            if attempt == tries - 1 or (isinstance(exc, RuntimeError) and " 503" not in str(exc)):
                raise
            await asyncio.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def pct(values: list[float], q: float) -> float | None:
    return rb.percentile(sorted(values), q)


def spread(values: list[float], total: int | None = None) -> dict[str, Any]:
    """p50/p99/max of ``values``; with ``total``, the missing ones (clients that never got
    there) count as infinitely late, and a percentile that falls on one is None."""
    v = sorted(values) + [float("inf")] * max(0, (total or 0) - len(values))

    def clean(x: float | None) -> float | None:
        return None if x is None or x == float("inf") else x

    return {"n": len(values), "of": total if total is not None else len(values),
            "p50": clean(rb.percentile(v, 50)), "p99": clean(rb.percentile(v, 99)), "max": clean(v[-1] if v else None)}


async def call_all(workers: list[StormWorkerProcess], op: str, **args: Any) -> list[Any]:
    return list(await asyncio.gather(*(w.call(op, **args) for w in workers)))


async def statuses(workers: list[StormWorkerProcess]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for r in await call_all(workers, "status"):
        for i, seq in r["seq"]:
            out[int(i)] = seq
    return out


async def scenario(kind: str, label: str, server: Server, workers: list[StormWorkerProcess], db: Db,
                   sessions: list[str], room_of: dict[int, int], args: argparse.Namespace) -> tuple[Server, dict[str, Any]]:
    n = len(room_of)
    await call_all(workers, "arm")
    await call_all(workers, "write_start", phase=label, rate=args.writer_rate)
    await asyncio.sleep(args.steady)

    machine = rb.SystemMeter()
    machine.start()
    own = [rb.CpuMeter(psutil.Process())] + [rb.CpuMeter(w.ps) for w in workers if w.ps is not None]
    for m in own:
        m.start()
    stopped_at = now()
    halt_s = await server.halt(signal.SIGKILL if kind == "kill" else signal.SIGTERM)
    exited_at = now()
    restarted = Server(f"parley-{label}", server.argv, server.cwd, server.env, server.url)
    await restarted.start()
    healthy = restarted.healthy_at
    assert restarted.ps is not None
    storm_cpu = rb.CpuMeter(restarted.ps)
    storm_cpu.start()
    profiler = None
    if args.profile:
        # py-spy on the restarted server for the storm (raw folded stacks, for flame graphs).
        out = Path(f"{args.profile}-{label}.txt").resolve()
        profiler = subprocess.Popen(
            [args.py_spy, "record", "-p", str(restarted.ps.pid), "-d", str(int(args.profile_seconds)), "-r", "200",
             "-f", "raw", "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        rb.register_child(profiler.pid)
    startup_cpu = rb.cpu_seconds(restarted.ps)

    # Poll: the rooms' last committed seq, then every client's applied seq.
    caught_db: dict[int, float] = {}
    all_at: float | None = None
    deadline = healthy + args.timeout
    while now() < deadline:
        latest = await db.latest(sessions)
        seqs = await statuses(workers)
        t = now()
        for i, seq in seqs.items():
            if i not in caught_db and seq is not None and seq >= latest[sessions[room_of[i]]]:
                caught_db[i] = t
        if len(caught_db) == n:
            all_at = t
            break
        await asyncio.sleep(args.poll)
    storm_cpu_s, storm_cpu_src = storm_cpu.stop()
    if profiler is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            profiler.wait(timeout=args.profile_seconds + 10)
        rb.forget_child(profiler.pid)
    storm_window = (all_at or now()) - healthy

    await asyncio.sleep(args.after)
    stop = await call_all(workers, "write_stop", timeout=30.0)
    unacked = sum(r["unacked"] for r in stop)
    # Quiet: every client at its room's final seq (beacons and syncs included).
    final_ok = False
    quiet_deadline = now() + 15.0
    while now() < quiet_deadline:
        latest = await db.latest(sessions)
        seqs = await statuses(workers)
        if all(seqs[i] == latest[sessions[room_of[i]]] for i in seqs):
            final_ok = True
            break
        await asyncio.sleep(0.2)
    busy = machine.stop()
    own_readings = [m.stop()[0] for m in own]
    own_cpu = sum(own_readings)
    workers_cpu = sum(own_readings[1:])
    collected = await call_all(workers, "collect")
    stored = await db.chats(sessions)
    verify = await call_all(workers, "verify",
                            stored={str(r): [t for t, _ in stored[s]] for r, s in enumerate(sessions)})
    window = now() - stopped_at
    server_cpu_total = rb.cpu_seconds(restarted.ps)
    others = max(0.0, busy - own_cpu - server_cpu_total)

    clients = [c for r in collected for c in r["clients"]]
    writers = [wr for r in collected for wr in r["writers"]]
    readers = [c for c in clients if not c["writer"]]

    def rel(t: float | None) -> float | None:
        return None if t is None else t - healthy

    catch_ack = [rel(c["phase"]["caught_at"]) for c in readers if c["phase"]["caught_at"] is not None]
    catch_db = [caught_db[c["index"]] - healthy for c in readers if c["index"] in caught_db]
    connect_after = [rel(c["phase"]["connected_at"]) for c in readers if c["phase"]["connected_at"] is not None]
    server_part = [c["phase"]["caught_at"] - c["phase"]["connected_at"] for c in readers
                   if c["phase"]["caught_at"] is not None and c["phase"]["connected_at"] is not None]
    join_rtt = [c["phase"]["join_ack_at"] - c["phase"]["join_sent_at"] for c in readers
                if c["phase"]["join_ack_at"] is not None and c["phase"]["join_sent_at"] is not None]
    early = sum(1 for c in readers if c["phase"]["connected_at"] is not None and c["phase"]["connected_at"] < healthy)
    # The back-off floor: the first connect attempt each client made at or after /healthz.
    floor = []
    for c in readers:
        after = [a for a in c["phase"]["attempts"] if a >= healthy - 0.05]
        if after:
            floor.append(after[0] - healthy)
    join_errors = Counter(e for c in clients for e in c["phase"]["join_errors"])
    connect_errors: Counter[str] = Counter()
    for c in clients:
        connect_errors.update(c["phase"]["connect_errors"])
    ack_kinds = Counter(c["phase"]["ack_kind"] for c in readers)

    # Chat: acknowledged vs stored vs received.
    acked = {k: v for wr in writers for k, v in wr["acked"].items()}
    created = {k: v for wr in writers for k, v in wr["created"].items()}
    send_errors: Counter[str] = Counter()
    for wr in writers:
        send_errors.update(wr["errors"])
    stored_texts = [t for s in sessions for t, _ in stored[s]]
    stored_phase = [t for t in stored_texts if t.startswith(f"storm-{label}-")]
    stored_counts = Counter(stored_phase)
    lost = [k for k in acked if stored_counts.get(f"storm-{k}", 0) == 0]
    duplicated = sum(c - 1 for c in stored_counts.values() if c > 1)
    bad_clients = [b for r in verify for b in r["bad"]]
    during_outage = sum(1 for t in created.values() if stopped_at <= t < healthy)
    last_all = max(catch_db) if len(catch_db) == len(readers) else None

    result = {
        "scenario": kind,
        "label": label,
        "clients": n,
        "rooms": len(sessions),
        "stop_to_exit_s": round(halt_s, 3),
        "exit_to_healthz_s": round(healthy - exited_at, 3),
        "startup_cpu_s": round(startup_cpu, 2),
        "all_caught_up_db_s": round(all_at - healthy, 3) if all_at is not None else None,
        # What the participants live through: from the stop to the last client caught up.
        "stop_to_all_caught_up_s": round(all_at - stopped_at, 3) if all_at is not None else None,
        "clients_saw_close_s": spread([c["phase"]["down_at"] - stopped_at for c in clients
                                       if c["phase"]["down_at"] is not None], len(clients)),
        "readers_caught_up_db_s": round(last_all, 3) if last_all is not None else None,
        "timeout_s": args.timeout,
        "target_met": all_at is not None and all_at - healthy <= TARGET_SECONDS,
        "catch_up_db_s": spread(catch_db, len(readers)),
        "catch_up_ack_s": spread([x for x in catch_ack if x is not None], len(readers)),
        "backoff_floor_s": spread(floor),
        "connected_after_healthz_s": spread([x for x in connect_after if x is not None], len(readers)),
        "connect_to_caught_up_s": spread(server_part),
        "join_round_trip_s": spread(join_rtt),
        "connected_before_healthz": early,
        "connect_attempts_refused": sum(c["phase"]["refused"] for c in clients),
        "connect_errors": dict(connect_errors),
        "join_timeouts": sum(c["phase"]["join_timeouts"] for c in clients),
        "join_errors": dict(join_errors),
        "ack_kinds": {str(k): v for k, v in ack_kinds.items()},
        "ack_events": spread([float(c["phase"]["ack_events"]) for c in readers]),
        "ack_kib": spread([c["phase"]["ack_bytes"] / 1024 for c in readers if c["phase"]["ack_bytes"]]),
        "syncs": sum(c["phase"]["syncs"] for c in clients),
        "joins_sent": sum(c["phase"]["joins_sent"] for c in clients),
        "gaps": sum(c["phase"]["gaps"] for c in clients),
        "client_procs_cores": round(workers_cpu / window, 2),
        "history_pages": sum(c["phase"]["history_pages"] for c in clients),
        "server_cpu_storm_s": round(storm_cpu_s, 2),
        "server_cpu_storm_source": storm_cpu_src,
        "server_cores_storm": round(storm_cpu_s / storm_window, 2) if storm_window > 0 else None,
        "server_cpu_ms_per_rejoin": round(storm_cpu_s / n * 1e3, 2),
        "other_processes_cores": round(others / window, 2),
        "chat": {
            "created": len(created), "created_during_outage": during_outage, "acked": len(acked),
            "acked_as_duplicate": sum(1 for v in acked.values() if v["dup"]), "unacked_at_end": unacked,
            "stored": len(stored_phase), "stored_distinct": len(stored_counts), "lost": len(lost),
            "duplicated_in_log": duplicated, "send_attempts": sum(wr["attempts"] for wr in writers),
            "send_errors": dict(send_errors),
            "clients_missing_or_extra": len(bad_clients), "bad_clients_sample": bad_clients[:5],
        },
        "final_seq_matches_db": final_ok,
    }
    return restarted, result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rb.cancel_on_signals()

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="parley-storm-"))
    port = rb.free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(48)
    # The writer catches up on a backlog after the outage: lift its chat limit.
    env = rb.embedded_env(tmp, port, secret, chat_rate=max(10.0, 4 * args.writer_rate))
    argv = [*shlex.split(args.parley), "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = Server("parley", argv, tmp, env, url)
    workers = [StormWorkerProcess(i) for i in range(args.client_procs)]
    n = args.rooms * args.per_room
    results: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        sessions, tokens = await load(tmp, args.rooms, args.per_room, secret)
        setup["load_s"] = round(time.perf_counter() - t0, 1)
        db = Db(tmp / "var" / "parley.db")
        await asyncio.gather(server.start(), *(w.start() for w in workers))
        t0 = time.perf_counter()
        flat = [(r, tok) for r in range(args.rooms) for tok in tokens[r]]
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookies = await rb.gather_limited(len(flat), 8, lambda i: login(http, url, flat[i][1]))
        setup["logins_s"] = round(time.perf_counter() - t0, 1)
        room_of = {i: flat[i][0] for i in range(n)}
        writer_of = {r: r * args.per_room for r in range(args.rooms)}  # the first member of each room
        k = len(workers)
        backoff = [args.backoff_base, 2.0, args.jitter, args.backoff_max]
        assert server.ps is not None
        cold = rb.CpuMeter(server.ps)
        cold.start()
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(
            w.call("connect", url=url, backoff=backoff, writer_retry=args.writer_retry,
                   join_timeout=args.join_timeout, clients=[
                [i, room_of[i], sessions[room_of[i]], cookies[i], writer_of[room_of[i]] == i]
                for i in range(w.number, n, k)])
            for w in workers))
        cold_s = time.perf_counter() - t0
        cold_cpu, _ = cold.stop()
        setup["cold_join"] = {
            "clients": n, "wall_s": round(cold_s, 2), "server_cpu_s": round(cold_cpu, 2),
            "server_cpu_ms_per_join": round(cold_cpu / n * 1e3, 2),
            "connect_s": [round(r["connected_s"], 2) for r in replies],
            "join_s": [round(r["joined_s"], 2) for r in replies],
            "ack_kib": spread([b / 1024 for r in replies for b in r["ack_bytes"]]),
        }
        print(f"setup: load {setup['load_s']} s, logins {setup['logins_s']} s, cold connect+join of {n} "
              f"{cold_s:.1f} s", file=sys.stderr, flush=True)
        for rep in range(args.repeat):
            for kind in args.scenarios:
                rb.check_interrupted()
                label = f"{kind}{rep + 1}"
                print(f"scenario {label} ...", file=sys.stderr, flush=True)
                server, result = await scenario(kind, label, server, workers, db, sessions, room_of, args)
                results.append(result)
                print(f"  {label}: all caught up {result['all_caught_up_db_s']} s after /healthz", file=sys.stderr,
                      flush=True)
        log_text = "\n".join(p.read_text(errors="replace") for p in sorted(tmp.glob("parley*.log")))
        setup["server_log_warnings"] = sum(1 for line in log_text.splitlines() if " WARNING " in line)
        setup["server_log_errors"] = sum(1 for line in log_text.splitlines() if " ERROR " in line)
        setup["server_log_tail_warnings"] = [line for line in log_text.splitlines()
                                             if " WARNING " in line or " ERROR " in line][-8:]
        lines = log_text.splitlines()
        first = next((k for k, line in enumerate(lines) if " ERROR " in line), None)
        setup["server_log_first_error"] = lines[first:first + 25] if first is not None else []
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        server.stop()
        if args.keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": rb.machine(),
        "params": {"rooms": args.rooms, "per_room": args.per_room, "client_procs": args.client_procs,
                   "writer_rate": args.writer_rate, "backoff_base": args.backoff_base, "jitter": args.jitter,
                   "backoff_max": args.backoff_max, "writer_retry": args.writer_retry, "poll": args.poll,
                   "join_timeout": args.join_timeout},
        "setup": setup,
        "scenarios": results,
        "total_s": round(time.perf_counter() - started, 1),
    }


def f(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def s3(d: dict[str, Any]) -> str:
    def g(v: float | None) -> str:
        # None where clients never got there (counted as infinitely late).
        return "inf" if v is None and d.get("n", 0) < d.get("of", 0) else f(v)

    return f"{g(d['p50'])} / {g(d['p99'])} / {g(d['max'])}"


def report(result: dict[str, Any]) -> str:
    p, st, rows = result["params"], result["setup"], result["scenarios"]
    out = [
        f"Reconnect storm: {p['rooms'] * p['per_room']} clients = {p['rooms']} rooms x {p['per_room']} "
        f"(one visit each), {p['client_procs']} client processes; one writer per room at "
        f"{p['writer_rate']:g} msg/s; back-off {p['backoff_base']:g} s x2^n +-{p['jitter'] * 100:.0f} % "
        f"(cap {p['backoff_max']:g} s), writer retry {p['writer_retry']:g} s",
        f"{result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), {result['date']}",
        "",
        f"baseline, cold start (no restart, no back-off): {st['cold_join']['clients']} connect+join in "
        f"{st['cold_join']['wall_s']} s, server CPU {st['cold_join']['server_cpu_s']} s "
        f"({st['cold_join']['server_cpu_ms_per_join']} ms per join), join ack (state) p50 "
        f"{f(st['cold_join']['ack_kib']['p50'], '.0f')} KiB, max {f(st['cold_join']['ack_kib']['max'], '.0f')} KiB",
        f"client room.join ack time-out {p['join_timeout']:g} s (then joined again, as room.js does)",
        "",
    ]
    width = max(14, *(len(s3(r["catch_up_db_s"])) + 2 for r in rows))
    head = f"{'':<48}" + "".join(f"{r['label']:>{width}}" for r in rows)
    out.append(head)
    out.append("-" * len(head))

    def line(name: str, get: Any) -> None:
        out.append(f"{name:<48}" + "".join(f"{get(r):>{width}}" for r in rows))

    line("stop signal -> process exited (s)", lambda r: f(r["stop_to_exit_s"]))
    line("stop signal -> clients see the close p50/max (s)",
         lambda r: f"{f(r['clients_saw_close_s']['p50'])} / {f(r['clients_saw_close_s']['max'])}")
    line("exited -> /healthz answers (s)", lambda r: f(r["exit_to_healthz_s"]))
    line("/healthz -> ALL caught up, DB-checked (s)",
         lambda r: f(r["all_caught_up_db_s"]) if r["all_caught_up_db_s"] is not None else f"> {r['timeout_s']:g}")
    line(f"  target <= {TARGET_SECONDS:g} s", lambda r: "met" if r["target_met"] else "NOT met")
    line("stop signal -> ALL caught up (users' outage, s)",
         lambda r: f(r["stop_to_all_caught_up_s"]) if r["stop_to_all_caught_up_s"] is not None else "-")
    out.append("per client, after /healthz (p50 / p99 / max, s):")
    line("  clients caught up within the time-out", lambda r: f"{r['catch_up_db_s']['n']}/{r['catch_up_db_s']['of']}")
    line("  caught up (seq = room's committed seq, DB)", lambda r: s3(r["catch_up_db_s"]))
    line("  caught up (seq >= join ack's seq)", lambda r: s3(r["catch_up_ack_s"]))
    line("  back-off floor: first attempt after /healthz", lambda r: s3(r["backoff_floor_s"]))
    line("  connected", lambda r: s3(r["connected_after_healthz_s"]))
    line("  server part: connected -> caught up", lambda r: s3(r["connect_to_caught_up_s"]))
    line("  room.join round trip", lambda r: s3(r["join_round_trip_s"]))
    line("connect attempts refused (server down)", lambda r: str(r["connect_attempts_refused"]))
    line("other connect errors", lambda r: str(sum(r["connect_errors"].values())))
    line("join time-outs / join errors", lambda r: f"{r['join_timeouts']} / {sum(r['join_errors'].values())}")
    line("join acks with events / with state", lambda r: f"{r['ack_kinds'].get('events', 0)} / "
                                                          f"{r['ack_kinds'].get('state', 0)}")
    line("events per join ack p50 / max", lambda r: f"{f(r['ack_events']['p50'], '.0f')} / "
                                                     f"{f(r['ack_events']['max'], '.0f')}")
    line("join ack size p50 / max (KiB)", lambda r: f"{f(r['ack_kib']['p50'], '.0f')} / "
                                                      f"{f(r['ack_kib']['max'], '.0f')}")
    line("room.join sent (incl. resends after time-out)", lambda r: str(r["joins_sent"]))
    line("live events out of order (gaps seen)", lambda r: str(r["gaps"]))
    line("room.sync calls / chat.history pages", lambda r: f"{r['syncs']} / {r['history_pages']}")
    line("server CPU in the storm (s)", lambda r: f(r["server_cpu_storm_s"]))
    line("  cores (CPU / storm duration)", lambda r: f(r["server_cores_storm"]))
    line("  ms per rejoin (ratio to cold join)", lambda r: f"{f(r['server_cpu_ms_per_rejoin'], '.1f')} "
         f"({f(r['server_cpu_ms_per_rejoin'] / st['cold_join']['server_cpu_ms_per_join'], '.1f')}x)")
    line("server start-up CPU (s)", lambda r: f(r["startup_cpu_s"]))
    line("client processes' CPU (cores)", lambda r: f(r["client_procs_cores"]))
    line("other processes' CPU (cores)", lambda r: f(r["other_processes_cores"]))
    out.append("chat (writers):")
    line("  created / during the outage", lambda r: f"{r['chat']['created']} / {r['chat']['created_during_outage']}")
    line("  acknowledged (of which replays)", lambda r: f"{r['chat']['acked']} ({r['chat']['acked_as_duplicate']})")
    line("  stored / distinct", lambda r: f"{r['chat']['stored']} / {r['chat']['stored_distinct']}")
    line("  lost / duplicated in log", lambda r: f"{r['chat']['lost']} / {r['chat']['duplicated_in_log']}")
    line("  clients missing or extra messages", lambda r: str(r["chat"]["clients_missing_or_extra"]))
    line("  send attempts / errors", lambda r: f"{r['chat']['send_attempts']} / {sum(r['chat']['send_errors'].values())}")
    line("every client at the DB's final seq", lambda r: "yes" if r["final_seq_matches_db"] else "NO")
    errs = {k for r in rows for k in r["join_errors"]}
    if errs:
        out.append("join errors by code: " + "; ".join(f"{r['label']}: {r['join_errors']}" for r in rows))
    cerrs = {k for r in rows for k in r["connect_errors"]}
    if cerrs:
        out.append("connect errors: " + "; ".join(f"{r['label']}: {r['connect_errors']}" for r in rows))
    serrs = {k for r in rows for k in r["chat"]["send_errors"]}
    if serrs:
        out.append("chat.send errors (retried): " + "; ".join(f"{r['label']}: {r['chat']['send_errors']}" for r in rows))
    out.append(f"server log: {st.get('server_log_warnings', 0)} warnings, {st.get('server_log_errors', 0)} errors")
    for line_ in st.get("server_log_tail_warnings", []):
        out.append("  " + line_[:200])
    if st.get("server_log_first_error"):
        out.append("first server error:")
        out.extend("  " + line_[:200] for line_ in st["server_log_first_error"])
    out.append(f"setup: load {st['load_s']} s, logins {st['logins_s']} s; total {result['total_s']} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    rb.raise_nofile_limit()
    parser = argparse.ArgumentParser(description="Parley reconnect storm after a server restart.")
    parser.add_argument("--rooms", type=int, default=4, help="rooms (one visit each; default 4)")
    parser.add_argument("--per-room", type=int, default=250, help="clients per room (default 250)")
    parser.add_argument("--client-procs", type=int, default=2, help="client worker processes (default 2)")
    parser.add_argument("--scenarios", default="kill,term", help="kill (SIGKILL) and/or term (SIGTERM), in order")
    parser.add_argument("--repeat", type=int, default=1, help="run the scenarios this many times (default 1)")
    parser.add_argument("--writer-rate", type=float, default=2.0, help="chat messages per second per room (default 2)")
    parser.add_argument("--writer-retry", type=float, default=0.25, help="writer's reconnect interval (s)")
    parser.add_argument("--backoff-base", type=float, default=1.0, help="first reconnect delay (s, default 1)")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="reconnect delay cap (s, default 30)")
    parser.add_argument("--jitter", type=float, default=0.5, help="randomisation factor (default 0.5)")
    parser.add_argument("--join-timeout", type=float, default=JOIN_ACK_TIMEOUT,
                        help=f"room.join ack time-out before joining again (s, default {JOIN_ACK_TIMEOUT:g} as room.js)")
    parser.add_argument("--steady", type=float, default=2.0, help="writing before the stop (s)")
    parser.add_argument("--after", type=float, default=2.0, help="writing after all caught up (s)")
    parser.add_argument("--poll", type=float, default=0.1, help="database/client poll interval (s)")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up waiting for catch-up after (s)")
    parser.add_argument("--profile", help="py-spy the restarted server during each storm into PREFIX-<scenario>.txt")
    parser.add_argument("--profile-seconds", type=float, default=20.0, help="py-spy duration (s, default 20)")
    parser.add_argument("--py-spy", default=os.environ.get("PY_SPY", "py-spy"), help="py-spy executable")
    parser.add_argument("--parley", default=str(rb.PARLEY),
                        help="command that runs Parley's CLI (default: this venv's parley), e.g. a wrapper that times it")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker_main())
        return 0
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not args.scenarios or any(s not in ("kill", "term") for s in args.scenarios):
        parser.error("--scenarios: kill and/or term")
    if args.rooms < 1 or args.per_room < 2 or args.client_procs < 1 or args.writer_rate <= 0:
        parser.error("--rooms, --per-room (>= 2), --client-procs and --writer-rate must be positive")
    result = rb.run_main(run(args))
    if result is None:
        return 130
    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    ok = all(r["chat"]["lost"] == 0 and r["chat"]["duplicated_in_log"] == 0 and r["final_seq_matches_db"]
             and r["chat"]["clients_missing_or_extra"] == 0 for r in result["scenarios"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
