"""Room-broadcast benchmark: Parley's live room beside a bare aiohttp WebSocket server.

    .venv/bin/python bench/room_broadcast.py [--clients 50,300] [--rate 20] [--seconds 10]
                                             [--json results.json]

For each client count N, twice (Parley, then the baseline):

* the server runs as a subprocess on a free loopback port, in a temporary directory;
  Parley is ``parley serve`` on the embedded SQLite defaults, its database migrated and
  loaded beforehand by this script (one visit, N experts: one membership and one login
  per client, each logged in by spending its own invitation link over HTTP);
* N clients connect from this process (asyncio): python-socketio ``AsyncClient``s that
  join the visit's open session for Parley, aiohttp ``ws_connect`` for the baseline;
* client 0 sends ``--rate`` messages per second for ``--seconds`` (``chat.send`` for
  Parley, a text frame for the baseline, which relays it to every client); every
  message carries its index and ``time.time_ns()`` at sending, and every client,
  the sender included, records when it receives it;
* measured: server CPU (user + system, psutil) from the first send until the last
  delivery, per delivered message (one message received by one client) and per sent
  event; end-to-end latency p50/p99/max over every (message, client) pair; server
  RSS per connection ((RSS after N clients connected, and joined for Parley, minus
  RSS before they connected) / N); delivery completeness; this process's own CPU,
  to show whether the client side was the limit.

Everything stays on 127.0.0.1, the counts and durations are fixed, and every
subprocess is stopped on the way out. See bench/README.md for the latest figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import socketio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from server.config import Settings  # noqa: E402
from server.db import migrate  # noqa: E402
from server.db.session import make_engine, make_sessionmaker  # noqa: E402
from tests.fixtures.world import build_world  # noqa: E402

BIN = Path(sys.executable).parent
PARLEY = BIN / "parley"
BASELINE = Path(__file__).resolve().parent / "baseline_ws_server.py"
WARMUP_EVENTS = 5
CONNECT_CONCURRENCY = 25
DRAIN_SECONDS = 15.0


# ---- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def thread_runtimes_ns(pid: int) -> dict[int, int] | None:
    """Per-thread CPU time in nanoseconds from /proc/PID/task/*/schedstat (Linux), or None.

    psutil's user + system times come in clock ticks (10 ms); the scheduler's own
    count is exact, which matters for the baseline's small totals."""
    out: dict[int, int] = {}
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    except OSError:
        return None
    return out or None


class CpuMeter:
    """CPU seconds a process spends between ``start`` and ``stop``: from schedstat when
    every thread seen at the start is still alive at the stop, else from psutil."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc

    def start(self) -> None:
        self.ticks0 = cpu_seconds(self.proc)
        self.threads0 = thread_runtimes_ns(self.proc.pid)

    def stop(self) -> tuple[float, str]:
        ticks = cpu_seconds(self.proc) - self.ticks0
        threads1 = thread_runtimes_ns(self.proc.pid)
        if self.threads0 and threads1 and set(self.threads0) <= set(threads1):
            ns = sum(v - self.threads0.get(tid, 0) for tid, v in threads1.items())
            return ns / 1e9, "schedstat"
        return ticks, "psutil"


async def gather_limited(n: int, limit: int, make: Callable[[int], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return list(await asyncio.gather(*(one(i) for i in range(n))))


class ServerProcess:
    """A server subprocess with its log in the run's temporary directory."""

    def __init__(self, name: str, argv: list[str], cwd: Path, env: dict[str, str], url: str) -> None:
        self.name, self.argv, self.cwd, self.env, self.url = name, argv, cwd, env, url
        self.log_path = cwd / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None

    async def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self.ps = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz in {timeout}s:\n{self.log_tail()}")

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def meter(self) -> CpuMeter:
        assert self.ps is not None
        return CpuMeter(self.ps)

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ---- measurement --------------------------------------------------------------------------


class Recorder:
    """Receipts of the measured messages: one count per client, one latency per receipt."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.expected = 0
        self.received = [0] * clients
        self.total = 0
        self.latencies_ns: list[int] = []
        self.last_receipt_ns = 0
        self.complete = asyncio.Event()
        self.warm = [0] * clients
        self.warm_complete = asyncio.Event()
        self.acks_ok = 0
        self.acks_failed: list[Any] = []
        self.ack_ns: list[int] = []

    def text(self, index: int) -> str:
        return f"bench {index} {time.time_ns()}"

    def arm(self, events: int) -> None:
        self.expected = events * self.clients

    def on_text(self, client: int, text: str) -> None:
        now = time.time_ns()
        _, index, sent = text.split(" ", 2)
        if index.startswith("w"):
            self.warm[client] += 1
            if sum(self.warm) == WARMUP_EVENTS * self.clients:
                self.warm_complete.set()
            return
        self.latencies_ns.append(now - int(sent))
        self.received[client] += 1
        self.total += 1
        self.last_receipt_ns = now
        if self.expected and self.total >= self.expected:
            self.complete.set()


@dataclass
class Figures:
    server: str
    clients: int
    events_sent: int
    rate_target: float
    rate_achieved: float
    deliveries_expected: int
    deliveries: int
    complete: bool
    clients_missing_messages: int
    window_s: float
    server_cpu_s: float
    server_cpu_source: str
    server_cpu_util: float
    cpu_us_per_delivery: float | None
    cpu_ms_per_event: float | None
    latency_ms: dict[str, float | None]
    ack_ms: dict[str, float | None] | None
    rss_before_mib: float
    rss_connected_mib: float
    rss_joined_mib: float | None
    kib_per_connection: float
    kib_per_connection_connected_only: float
    client_proc_cpu_util: float
    setup_s: float
    notes: list[str] = field(default_factory=list)


def latency_summary(values_ns: Iterable[int]) -> dict[str, float | None]:
    ms = sorted(v / 1e6 for v in values_ns)
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": ms[-1] if ms else None,
        "mean": sum(ms) / len(ms) if ms else None,
    }


async def measured_window(
    server: ServerProcess,
    rec: Recorder,
    rate: float,
    seconds: float,
    send: Callable[[str], Awaitable[None]],
) -> dict[str, Any]:
    """Send at a steady rate, wait for every delivery (or the drain limit), read CPU."""
    events = int(round(rate * seconds))
    rec.arm(events)
    server_cpu, my_cpu = server.meter(), CpuMeter(psutil.Process())
    interval = 1.0 / rate
    server_cpu.start()
    my_cpu.start()
    t0 = time.perf_counter()
    for i in range(events):
        delay = t0 + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(rec.text(i))
    t_sent = time.perf_counter()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rec.complete.wait(), DRAIN_SECONDS)
    t1 = time.perf_counter()
    cpu, source = server_cpu.stop()
    mine, _ = my_cpu.stop()
    return {
        "events": events,
        "rate_achieved": (events - 1) / (t_sent - t0) if events > 1 else float(events),
        "window": t1 - t0,
        "server_cpu": cpu,
        "cpu_source": source,
        "client_cpu": mine,
    }


def figures(
    name: str, n: int, rate: float, rec: Recorder, win: dict[str, Any], rss: dict[str, int | None],
    setup_s: float, ack: dict[str, float | None] | None, notes: list[str],
) -> Figures:
    deliveries = rec.total
    cpu = win["server_cpu"]
    before = rss["before"] or 0
    joined = rss.get("joined")
    after = joined if joined is not None else rss["connected"] or 0
    return Figures(
        server=name,
        clients=n,
        events_sent=win["events"],
        rate_target=rate,
        rate_achieved=round(win["rate_achieved"], 2),
        deliveries_expected=rec.expected,
        deliveries=deliveries,
        complete=deliveries == rec.expected and all(c == win["events"] for c in rec.received),
        clients_missing_messages=sum(1 for c in rec.received if c < win["events"]),
        window_s=round(win["window"], 3),
        server_cpu_s=round(cpu, 4),
        server_cpu_source=win["cpu_source"],
        server_cpu_util=round(cpu / win["window"], 3),
        cpu_us_per_delivery=cpu / deliveries * 1e6 if deliveries else None,
        cpu_ms_per_event=cpu / win["events"] * 1e3 if win["events"] else None,
        latency_ms=latency_summary(rec.latencies_ns),
        ack_ms=ack,
        rss_before_mib=before / 2**20,
        rss_connected_mib=(rss["connected"] or 0) / 2**20,
        rss_joined_mib=joined / 2**20 if joined is not None else None,
        kib_per_connection=(after - before) / n / 1024,
        kib_per_connection_connected_only=((rss["connected"] or 0) - before) / n / 1024,
        client_proc_cpu_util=round(win["client_cpu"] / win["window"], 3),
        setup_s=round(setup_s, 2),
        notes=notes,
    )


async def settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)


# ---- Parley -------------------------------------------------------------------------------


async def load_parley(tmp: Path, n: int, secret: str) -> tuple[str, list[str]]:
    """Migrate a fresh SQLite database and load one visit with N experts.

    Returns the open session's id and the N invitation tokens (one membership each)."""
    var = tmp / "var"
    url = f"sqlite+aiosqlite:///{var / 'parley.db'}"
    await migrate.upgrade_async(url)
    settings = Settings(
        var_dir=var, database_url=url, redis_url=None, storage_dir=var / "storage",
        host="127.0.0.1", port=0, base_url="http://127.0.0.1", allowed_origins=(),
        secret_key=secret.encode(),
    )
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as db:
            world = await build_world(db, settings, extra_experts=n - 1)
    finally:
        await engine.dispose()
    keys = ["expert"] + [f"expert{i + 2}" for i in range(n - 1)]
    return world.sessions["open"], [world.members[k].invite_token for k in keys]


async def login(http: aiohttp.ClientSession, url: str, origin: str, token: str) -> str:
    """Spend an invitation as a browser does (GET the page, POST "Join"); return the cookie."""
    async with http.get(f"{url}/invite/{token}") as r:
        if r.status != 200:
            raise RuntimeError(f"invite page answered {r.status}: {await r.text()}")
    async with http.post(f"{url}/invite/{token}", headers={"Origin": origin}, allow_redirects=False) as r:
        if r.status != 303:
            raise RuntimeError(f"Join answered {r.status}: {await r.text()}")
        return r.cookies["parley_session"].value


async def run_parley(n: int, rate: float, seconds: float, keep: bool) -> Figures:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"parley-bench-{n}-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(48)
    session_id, tokens = await load_parley(tmp, n, secret)
    env = {
        **os.environ,
        "PARLEY_VAR_DIR": str(tmp / "var"),
        "PARLEY_SECRET_KEY": secret,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
    }
    for k in ("PARLEY_DATABASE_URL", "PARLEY_REDIS_URL", "PARLEY_BASE_URL", "PARLEY_ALLOWED_ORIGINS"):
        env.pop(k, None)
    server = ServerProcess("parley", [str(PARLEY), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           tmp, env, url)
    clients: list[socketio.AsyncClient] = []
    rec = Recorder(n)
    acks_pending: dict[int, int] = {}
    notes = [
        "one membership (expert) and one login per client, each from its own invitation link",
        "python-socketio AsyncClient, websocket transport, all in the benchmark process",
    ]
    try:
        await server.start()
        origin = url
        jar = aiohttp.DummyCookieJar()
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            cookies = await gather_limited(n, 8, lambda i: login(http, url, origin, tokens[i]))
        await settle(0.5)
        rss: dict[str, int | None] = {"before": server.rss()}

        def handler_for(i: int) -> Callable[[dict[str, Any]], None]:
            def on_event(ev: dict[str, Any]) -> None:
                if ev.get("type") == "chat":
                    rec.on_text(i, ev["payload"]["text"])

            return on_event

        async def connect(i: int) -> socketio.AsyncClient:
            c = socketio.AsyncClient(reconnection=False)
            c.on("room.event", handler_for(i))
            clients.append(c)
            await c.connect(
                url, headers={"Cookie": f"parley_session={cookies[i]}", "Origin": origin},
                transports=["websocket"], wait_timeout=30,
            )
            return c

        ordered = await gather_limited(n, CONNECT_CONCURRENCY, connect)
        await settle()
        rss["connected"] = server.rss()

        async def join(i: int) -> None:
            ack = await ordered[i].call("room.join", {"session_id": session_id}, timeout=120)
            if not ack.get("ok") or ack.get("status") != "joined":
                raise RuntimeError(f"join failed: {ack}")

        await gather_limited(n, CONNECT_CONCURRENCY, join)
        await settle()
        rss["joined"] = server.rss()

        sender = ordered[0]

        def on_ack(i: int) -> Callable[[dict[str, Any]], None]:
            def done(ack: dict[str, Any]) -> None:
                sent = acks_pending.pop(i, None)
                if ack.get("ok"):
                    rec.acks_ok += 1
                    if sent is not None:
                        rec.ack_ns.append(time.time_ns() - sent)
                else:
                    rec.acks_failed.append(ack)

            return done

        counter = {"i": 0}

        async def send(text: str) -> None:
            i = counter["i"] = counter["i"] + 1
            acks_pending[i] = time.time_ns()
            await sender.emit("chat.send", {"session_id": session_id, "text": text, "idem": f"m{i}"},
                              callback=on_ack(i))

        for w in range(WARMUP_EVENTS):
            await send(f"bench w{w} {time.time_ns()}")
        await asyncio.wait_for(rec.warm_complete.wait(), 30)
        rec.ack_ns.clear()
        await settle(0.5)
        win = await measured_window(server, rec, rate, seconds, send)
        if rec.acks_failed:
            notes.append(f"{len(rec.acks_failed)} chat.send acks failed, first: {rec.acks_failed[0]}")
        return figures("parley", n, rate, rec, win, rss, time.perf_counter() - started,
                       latency_summary(rec.ack_ns), notes)
    finally:
        # Stop the server first: disconnecting 300 clients one by one would make it
        # record and broadcast 300 leaves, which is not what is measured.
        server.stop()
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
        if keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- baseline -----------------------------------------------------------------------------


async def run_baseline(n: int, rate: float, seconds: float, keep: bool) -> Figures:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"baseline-bench-{n}-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess("baseline", [sys.executable, str(BASELINE), "--host", "127.0.0.1", "--port", str(port)],
                           tmp, dict(os.environ), url)
    rec = Recorder(n)
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    readers: list[asyncio.Task[None]] = []
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    notes = ["aiohttp ws_connect clients, all in the benchmark process; the server relays each text frame to all"]
    try:
        await server.start()
        await settle(0.5)
        rss: dict[str, int | None] = {"before": server.rss()}

        async def reader(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    rec.on_text(i, msg.data)

        async def connect(i: int) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(f"{url}/ws", headers={"Origin": url}, max_msg_size=64 * 1024)
            sockets.append(ws)
            readers.append(asyncio.create_task(reader(i, ws)))
            return ws

        ordered = await gather_limited(n, CONNECT_CONCURRENCY, connect)
        await settle()
        rss["connected"] = server.rss()
        sender = ordered[0]

        async def send(text: str) -> None:
            await sender.send_str(text)

        for w in range(WARMUP_EVENTS):
            await send(f"bench w{w} {time.time_ns()}")
        await asyncio.wait_for(rec.warm_complete.wait(), 30)
        await settle(0.5)
        win = await measured_window(server, rec, rate, seconds, send)
        return figures("baseline", n, rate, rec, win, rss, time.perf_counter() - started, None, notes)
    finally:
        server.stop()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await http.close()
        if keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- report -------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(p: Figures, b: Figures) -> dict[str, float | None]:
    return {
        "cpu_per_delivery": ratio(p.cpu_us_per_delivery, b.cpu_us_per_delivery),
        "latency_p50": ratio(p.latency_ms["p50"], b.latency_ms["p50"]),
        "latency_p99": ratio(p.latency_ms["p99"], b.latency_ms["p99"]),
        "memory_per_connection": ratio(p.kib_per_connection, b.kib_per_connection),
    }


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    out = []
    head = f"{'N':>4}  {'metric':<34}{'Parley':>12}{'baseline':>12}{'ratio':>9}"
    out.append(head)
    out.append("-" * len(head))
    for row in rows:
        p: Figures = row["parley"]
        b: Figures = row["baseline"]
        r = row["ratios"]
        lines = [
            ("server CPU per delivery (us)", p.cpu_us_per_delivery, b.cpu_us_per_delivery, ".1f", r["cpu_per_delivery"]),
            ("server CPU per sent event (ms)", p.cpu_ms_per_event, b.cpu_ms_per_event, ".2f", None),
            ("latency p50 (ms)", p.latency_ms["p50"], b.latency_ms["p50"], ".2f", r["latency_p50"]),
            ("latency p99 (ms)", p.latency_ms["p99"], b.latency_ms["p99"], ".2f", r["latency_p99"]),
            ("latency max (ms)", p.latency_ms["max"], b.latency_ms["max"], ".2f", None),
            ("memory per connection (KiB)", p.kib_per_connection, b.kib_per_connection, ".1f", r["memory_per_connection"]),
            ("server RSS before clients (MiB)", p.rss_before_mib, b.rss_before_mib, ".1f", None),
            ("server CPU utilisation (%)", p.server_cpu_util * 100, b.server_cpu_util * 100, ".1f", None),
            ("client process CPU (%)", p.client_proc_cpu_util * 100, b.client_proc_cpu_util * 100, ".1f", None),
            ("delivered / expected", None, None, "", None),
            ("sender ack p50 / p99 (ms)", None, None, "", None),
        ]
        for i, (name, pv, bv, spec, rv) in enumerate(lines):
            n = f"{p.clients:>4}" if i == 0 else "    "
            if name == "delivered / expected":
                pv_s = f"{p.deliveries}/{p.deliveries_expected}"
                bv_s = f"{b.deliveries}/{b.deliveries_expected}"
                out.append(f"{n}  {name:<34}{pv_s:>12}{bv_s:>12}")
                continue
            if name.startswith("sender ack"):
                a = p.ack_ms or {}
                out.append(f"{n}  {name:<34}{fmt(a.get('p50'), '.2f') + ' / ' + fmt(a.get('p99'), '.2f'):>12}")
                continue
            out.append(f"{n}  {name:<34}{fmt(pv, spec):>12}{fmt(bv, spec):>12}{fmt(rv, '.1f'):>9}")
        out.append("")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for n in args.clients:
        print(f"N={n}: Parley ...", file=sys.stderr, flush=True)
        p = await run_parley(n, args.rate, args.seconds, args.keep)
        print(f"N={n}: baseline ...", file=sys.stderr, flush=True)
        b = await run_baseline(n, args.rate, args.seconds, args.keep)
        rows.append({"clients": n, "parley": p, "baseline": b, "ratios": ratios(p, b)})
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "params": {"clients": args.clients, "rate": args.rate, "seconds": args.seconds,
                   "warmup_events": WARMUP_EVENTS},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Parley room-broadcast benchmark (beside a bare aiohttp server).")
    parser.add_argument("--clients", default="50,300", help="comma-separated client counts (default 50,300)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second from the sender (default 20)")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending duration per run (default 10)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (server logs)")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    if not args.clients or min(args.clients) < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--clients, --rate and --seconds must be positive")
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nRoom broadcast, {result['params']['rate']:g} events/s for {result['params']['seconds']:g} s, "
          f"{result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), {result['date']}\n")
    print(table(result["rows"]))
    for row in result["rows"]:
        for f in (row["parley"], row["baseline"]):
            if not f.complete:
                print(f"WARNING: {f.server} N={f.clients}: {f.deliveries}/{f.deliveries_expected} delivered, "
                      f"{f.clients_missing_messages} clients missed messages")
            for note in f.notes:
                if "failed" in note:
                    print(f"WARNING: {f.server} N={f.clients}: {note}")
    print(f"total {result['total_seconds']} s")
    if args.json:
        serialisable = {**result, "rows": [
            {"clients": r["clients"], "parley": asdict(r["parley"]), "baseline": asdict(r["baseline"]),
             "ratios": r["ratios"]} for r in result["rows"]]}
        args.json.write_text(json.dumps(serialisable, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    ok = all(r["parley"].complete and r["baseline"].complete for r in result["rows"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
