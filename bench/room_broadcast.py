"""Room-broadcast benchmark: Parley's live room beside a bare aiohttp WebSocket server.

    .venv/bin/python bench/room_broadcast.py [--clients 50,300] [--rate 20] [--seconds 10]
                                             [--client-procs 2] [--json results.json]

For each client count N, twice (Parley, then the baseline):

* the server runs as a subprocess on a free loopback port, in a temporary directory;
  Parley is ``parley serve`` on the embedded SQLite defaults, its database migrated and
  loaded beforehand by this script (one visit, N experts: one membership and one login
  per client, each logged in by spending its own invitation link over HTTP); the
  baseline is bench/baseline_ws_server.py;
* N clients connect from ``--client-procs`` worker subprocesses (asyncio, commands as
  JSON lines on stdin/stdout): light raw-WebSocket Engine.IO/Socket.IO clients
  (bench/sio_client.py) that join the visit's open session for Parley, aiohttp ``ws_connect`` for the baseline;
* after 5 warm-up messages, client 0 sends ``--rate`` messages per second for
  ``--seconds`` (``chat.send`` for Parley, a text frame for the baseline, which relays
  it to every client); every message carries its index and ``time.time_ns()`` at
  sending, and every client, the sender included, records when it receives it;
* measured: server CPU (user + system of all its threads) from the first send until
  the last delivery, per delivered message (one message received by one client) and
  per sent event; end-to-end latency p50/p99/max over every (message, client) pair;
  server RSS per connection ((RSS with the N clients connected, and joined for
  Parley, minus RSS before they connected) / N); delivery completeness; the client
  processes' CPU (is the client side the limit?) and the CPU that other processes on
  the machine used during the window (is the measurement disturbed?).

Everything stays on 127.0.0.1, the counts and durations are fixed, and every
subprocess is stopped on the way out. See bench/README.md for what the figures mean.
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
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from sio_client import RawSioClient

ROOT = Path(__file__).resolve().parents[1]

BIN = Path(sys.executable).parent
PARLEY = BIN / "parley"
BASELINE = Path(__file__).resolve().parent / "baseline_ws_server.py"
WARMUP_EVENTS = 5
CONNECT_CONCURRENCY = 25
DRAIN_SECONDS = 15.0
DEFAULT_CLIENT_PROCS = 2
BUSY_MACHINE_CORES = 0.25  # other processes' CPU above this makes latency figures suspect


# ---- helpers ------------------------------------------------------------------------------


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived: stop after cleaning up."""


STATE: dict[str, Any] = {"interrupted": False, "children": set()}


def check_interrupted() -> None:
    if STATE["interrupted"]:
        raise Interrupted()


def register_child(pid: int) -> None:
    STATE["children"].add(pid)


def forget_child(pid: int) -> None:
    STATE["children"].discard(pid)


def kill_children() -> None:
    """Last resort on the way out: SIGKILL any subprocess this run started and did not stop."""
    for pid in list(STATE["children"]):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        forget_child(pid)


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


class SystemMeter:
    """CPU the whole machine spent between ``start`` and ``stop`` (all cores), in seconds."""

    def start(self) -> None:
        self.t0 = psutil.cpu_times()

    def stop(self) -> float:
        t1 = psutil.cpu_times()
        idle = (t1.idle - self.t0.idle) + (getattr(t1, "iowait", 0.0) - getattr(self.t0, "iowait", 0.0))
        total = sum(t1) - sum(self.t0)
        return max(0.0, total - idle)


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
        register_child(self.popen.pid)
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
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        forget_child(self.popen.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# ---- client workers (subprocesses) -------------------------------------------------------


class Receipts:
    """What one worker's clients received of the current batch ("w" warm-up, "m" measured)."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices
        self.reset("-", 0)

    def reset(self, tag: str, events: int) -> None:
        self.tag, self.events = tag, events
        self.counts = {i: 0 for i in self.indices}
        self.total = 0
        self.expected = events * len(self.indices)
        self.latencies_ns: list[int] = []
        self.ack_ns: list[int] = []
        self.acks_failed: list[Any] = []
        self.complete = asyncio.Event()
        if self.expected == 0:
            self.complete.set()

    def on_text(self, client: int, text: str) -> None:
        now = time.time_ns()
        parts = text.split(" ")
        if len(parts) != 3 or parts[0] != "bench" or parts[1][:1] != self.tag:
            return
        self.latencies_ns.append(now - int(parts[2]))
        self.counts[client] += 1
        self.total += 1
        if self.total >= self.expected:
            self.complete.set()


class ClientWorker:
    """Runs in a worker subprocess: holds some of the N clients and answers commands."""

    def __init__(self) -> None:
        self.kind = ""
        self.rec = Receipts([])
        self.sio: dict[int, RawSioClient] = {}
        self.ws: dict[int, aiohttp.ClientWebSocketResponse] = {}
        self.readers: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None
        self.session_id = ""
        self.sent = 0
        self.acks: dict[int, tuple[str, int]] = {}

    async def op_connect(self, kind: str, url: str, origin: str, clients: list[list[Any]],
                         session_id: str = "") -> dict[str, Any]:
        self.kind, self.session_id = kind, session_id
        self.rec = Receipts([int(i) for i, _ in clients])
        if kind == "parley":
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                              cookie_jar=aiohttp.DummyCookieJar())

            async def connect_one(k: int) -> None:
                index, cookie = clients[k]

                def on_raw(event: str, text: str) -> None:
                    # The chat text is "bench <tag><i> <ns>": found without decoding JSON.
                    if event == "room.event":
                        at = text.find('"bench ')
                        if at >= 0:
                            self.rec.on_text(index, text[at + 1:text.index('"', at + 1)])

                assert self.http is not None
                c = RawSioClient(self.http, on_raw)
                self.sio[index] = c
                await c.connect(url, {"Cookie": f"parley_session={cookie}", "Origin": origin})
        else:
            self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

            async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        self.rec.on_text(index, msg.data)

            async def connect_one(k: int) -> None:
                index = clients[k][0]
                assert self.http is not None
                ws = await self.http.ws_connect(f"{url}/ws", headers={"Origin": origin}, max_msg_size=64 * 1024,
                                                compress=0)
                self.ws[index] = ws
                self.readers.append(asyncio.create_task(read(index, ws)))

        await gather_limited(len(clients), CONNECT_CONCURRENCY, connect_one)
        return {"connected": len(clients)}

    async def op_join(self) -> dict[str, Any]:
        async def join(c: RawSioClient) -> None:
            ack = await c.call("room.join", {"session_id": self.session_id}, timeout=120)
            if not ack.get("ok") or ack.get("status") != "joined":
                raise RuntimeError(f"room.join failed: {ack}")

        clients = list(self.sio.values())
        await gather_limited(len(clients), CONNECT_CONCURRENCY, lambda k: join(clients[k]))
        return {"joined": len(clients)}

    async def op_arm(self, tag: str, events: int) -> dict[str, Any]:
        self.rec.reset(tag, events)
        return {}

    async def _send_one(self, text: str) -> None:
        if self.kind == "baseline":
            await self.ws[0].send_str(text)
            return
        await self._send_chat(self.sio[0], text, lambda seq: f"m{seq}")

    async def _send_chat(self, sender: Any, text: str, idem: Callable[[int], str]) -> None:
        """``chat.send`` from ``sender``, its acknowledgement time recorded (or its error)."""
        self.sent += 1
        seq, tag = self.sent, self.rec.tag
        self.acks[seq] = (tag, time.time_ns())

        def on_ack(ack: dict[str, Any]) -> None:
            tag_, sent_ns = self.acks.pop(seq)
            if tag_ != self.rec.tag:
                return
            if ack.get("ok"):
                self.rec.ack_ns.append(time.time_ns() - sent_ns)
            else:
                self.rec.acks_failed.append(ack)

        fut = await sender.emit("chat.send", {"session_id": self.session_id, "text": text, "idem": idem(seq)})
        fut.add_done_callback(lambda f: on_ack(f.result()) if not f.exception() else None)

    async def op_send(self, tag: str, events: int, rate: float) -> dict[str, Any]:
        """Client 0 sends ``events`` messages at ``rate`` per second, on an absolute schedule."""
        interval = 1.0 / rate
        t0 = time.perf_counter()
        late = 0.0
        for i in range(events):
            delay = t0 + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            await self._send_one(f"bench {tag}{i} {time.time_ns()}")
        took = time.perf_counter() - t0
        return {"rate_achieved": (events - 1) / took if events > 1 else float(events),
                "max_late_ms": late * 1e3}

    async def op_wait(self, timeout: float) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rec.complete.wait(), timeout)
        return {"complete": self.rec.complete.is_set(), "received": self.rec.total, "expected": self.rec.expected}

    async def op_collect(self) -> dict[str, Any]:
        r = self.rec
        return {"counts": r.counts, "latencies_ns": r.latencies_ns, "ack_ns": r.ack_ns,
                "acks_failed": r.acks_failed[:5], "acks_failed_count": len(r.acks_failed)}

    async def op_close(self) -> dict[str, Any]:
        await asyncio.gather(*(c.close() for c in self.sio.values()), return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in self.ws.values()), return_exceptions=True)
        for t in self.readers:
            t.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        return {}


async def serve_worker(worker: Any, read_limit: int = 2**24) -> None:
    """Run a client worker: JSON commands on stdin (``{"id", "op", "args"}``, each run as
    ``worker.op_<op>(**args)``), one JSON reply per line on stdout, until ``close`` or
    the end of stdin. Shared by the benchmarks' worker processes."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=read_limit)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = sys.stdout.buffer
    tasks: set[asyncio.Task[None]] = set()
    closed = asyncio.Event()

    async def handle(cmd: dict[str, Any]) -> None:
        try:
            result = await getattr(worker, "op_" + cmd["op"])(**cmd.get("args", {}))
            reply = {"id": cmd["id"], "ok": True, "result": result}
        except Exception as exc:  # reported to the orchestrator, which stops the run
            reply = {"id": cmd["id"], "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
        if cmd["op"] == "close":
            closed.set()

    while not closed.is_set():
        line = await reader.readline()
        if not line:
            await worker.op_close()
            break
        task = asyncio.create_task(handle(json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.sleep(0)  # let the close reply go out
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def worker_main() -> None:
    """A client worker of this benchmark."""
    await serve_worker(ClientWorker())


class WorkerProcess:
    """The orchestrator's handle on one client worker subprocess."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
            start_new_session=True,
        )
        register_child(self.proc.pid)
        self.ps = psutil.Process(self.proc.pid)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            fut = self.pending.pop(msg["id"], None)
            if fut is None or fut.done():
                continue
            if msg["ok"]:
                fut.set_result(msg["result"])
            else:
                fut.set_exception(RuntimeError(f"client worker {self.number}: {msg['error']}"))
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(RuntimeError(f"client worker {self.number} exited"))

    async def call(self, op: str, **args: Any) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        self.proc.stdin.write(json.dumps({"id": self.next_id, "op": op, "args": args}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await fut

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call("close"), 15)
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        forget_child(self.proc.pid)
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)


# ---- one run --------------------------------------------------------------------------------


@dataclass
class Figures:
    server: str
    clients: int
    client_procs: int
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
    client_procs_cpu_util: list[float]
    other_processes_cores: float
    loadavg_1min_before: float
    run_s: float
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


async def settle(seconds: float = 1.0) -> None:
    await asyncio.sleep(seconds)


async def drive(
    kind: str, server: ServerProcess, workers: list[WorkerProcess], n: int, rate: float, seconds: float,
    cookies: list[str | None], session_id: str = "",
) -> dict[str, Any]:
    """Connect (and join) N clients spread over the workers, warm up, then measure."""
    k = len(workers)
    await settle(0.5)
    rss: dict[str, int | None] = {"before": server.rss(), "connected": None, "joined": None}
    await asyncio.gather(*(
        w.call("connect", kind=kind, url=server.url, origin=server.url, session_id=session_id,
               clients=[[i, cookies[i]] for i in range(w.number, n, k)])
        for w in workers
    ))
    await settle()
    rss["connected"] = server.rss()
    if kind == "parley":
        await asyncio.gather(*(w.call("join") for w in workers))
        await settle()
        rss["joined"] = server.rss()

    async def batch(tag: str, events: int, timeout: float) -> dict[str, Any]:
        await asyncio.gather(*(w.call("arm", tag=tag, events=events) for w in workers))
        waits = [asyncio.create_task(w.call("wait", timeout=timeout)) for w in workers]
        try:
            sent = await workers[0].call("send", tag=tag, events=events, rate=rate)
            done = await asyncio.gather(*waits)
        finally:
            for t in waits:
                t.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return {"send": sent, "waits": done}

    warm = await batch("w", WARMUP_EVENTS, 30)
    if not all(d["complete"] for d in warm["waits"]):
        raise RuntimeError(f"{kind}: warm-up messages were not all delivered: {warm['waits']}")
    await settle(0.5)

    events = round(rate * seconds)
    meters = [server.meter()] + [CpuMeter(w.ps) for w in workers if w.ps is not None]
    meters.append(CpuMeter(psutil.Process()))
    machine_cpu = SystemMeter()
    load_before = os.getloadavg()[0]
    machine_cpu.start()
    for m in meters:
        m.start()
    t0 = time.perf_counter()
    measured = await batch("m", events, seconds + DRAIN_SECONDS)
    window = time.perf_counter() - t0
    readings = [m.stop() for m in meters]
    busy = machine_cpu.stop()
    others = max(0.0, busy - sum(r[0] for r in readings))
    collected = await asyncio.gather(*(w.call("collect") for w in workers))
    return {"rss": rss, "events": events, "window": window, "send": measured["send"],
            "server_cpu": readings[0], "worker_cpu": [r[0] for r in readings[1:-1]], "collected": collected,
            "other_cpu": others, "loadavg_1min": load_before}


def figures(kind: str, n: int, rate: float, d: dict[str, Any], run_s: float, notes: list[str]) -> Figures:
    counts: dict[str, int] = {}
    latencies: list[int] = []
    acks: list[int] = []
    failed: list[Any] = []
    failed_count = 0
    for c in d["collected"]:
        counts.update(c["counts"])
        latencies += c["latencies_ns"]
        acks += c["ack_ns"]
        failed += c["acks_failed"]
        failed_count += c["acks_failed_count"]
    if failed_count:
        notes = [*notes, f"{failed_count} chat.send acks failed, first: {failed[0]}"]
    events, window = d["events"], d["window"]
    deliveries = sum(counts.values())
    cpu, source = d["server_cpu"]
    rss = d["rss"]
    before = rss["before"] or 0
    after = rss["joined"] if rss["joined"] is not None else rss["connected"] or 0
    return Figures(
        server=kind,
        clients=n,
        client_procs=len(d["collected"]),
        events_sent=events,
        rate_target=rate,
        rate_achieved=round(d["send"]["rate_achieved"], 2),
        deliveries_expected=events * n,
        deliveries=deliveries,
        complete=deliveries == events * n and all(v == events for v in counts.values()),
        clients_missing_messages=sum(1 for v in counts.values() if v < events),
        window_s=round(window, 3),
        server_cpu_s=round(cpu, 4),
        server_cpu_source=source,
        server_cpu_util=round(cpu / window, 3),
        cpu_us_per_delivery=cpu / deliveries * 1e6 if deliveries else None,
        cpu_ms_per_event=cpu / events * 1e3 if events else None,
        latency_ms=latency_summary(latencies),
        ack_ms=latency_summary(acks) if acks else None,
        rss_before_mib=before / 2**20,
        rss_connected_mib=(rss["connected"] or 0) / 2**20,
        rss_joined_mib=rss["joined"] / 2**20 if rss["joined"] is not None else None,
        kib_per_connection=(after - before) / n / 1024,
        kib_per_connection_connected_only=((rss["connected"] or 0) - before) / n / 1024,
        client_procs_cpu_util=[round(c / window, 3) for c in d["worker_cpu"]],
        other_processes_cores=round(d["other_cpu"] / window, 2),
        loadavg_1min_before=round(d["loadavg_1min"], 2),
        run_s=round(run_s, 2),
        notes=notes,
    )


# ---- Parley -------------------------------------------------------------------------------


async def load_rooms(url: str, var: Path, secret: str, rooms: int, per_room: int) -> tuple[list[str], list[list[str]]]:
    """Migrate the database at ``url`` and load ``rooms`` visits of ``per_room`` experts
    each (tests.fixtures.world), every expert with their own membership and invitation.

    Returns each visit's open session id and its experts' invitation tokens."""
    # Imported here so that the client workers do not load the server code.
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from server.audit import service as audit
    from server.config import Settings
    from server.db import migrate
    from server.db.session import make_engine, make_sessionmaker
    from tests.fixtures.world import build_world

    var.mkdir(parents=True, exist_ok=True)
    await migrate.upgrade_async(url)
    settings = Settings(
        var_dir=var, database_url=url, redis_url=None, storage_dir=var / "storage",
        host="127.0.0.1", port=0, base_url="http://127.0.0.1", allowed_origins=(),
        secret_key=secret.encode(),
    )
    engine = make_engine(url)
    sessions, tokens = [], []
    keys = ["expert"] + [f"expert{i + 2}" for i in range(per_room - 1)]
    try:
        for _ in range(rooms):
            async with make_sessionmaker(engine, info=audit.session_info(settings))() as db:
                world = await build_world(db, settings, extra_experts=per_room - 1)
            sessions.append(world.sessions["open"])
            tokens.append([world.members[k].invite_token for k in keys])
    finally:
        await engine.dispose()
    return sessions, tokens


async def load_parley(tmp: Path, n: int, secret: str) -> tuple[str, list[str]]:
    """A fresh SQLite database under ``tmp/var`` with one visit of N experts."""
    var = tmp / "var"
    [session], [tokens] = await load_rooms(f"sqlite+aiosqlite:///{var / 'parley.db'}", var, secret, 1, n)
    return session, tokens


def embedded_env(tmp: Path, port: int, secret: str, chat_rate: float) -> dict[str, str]:
    """The environment of a ``parley serve`` on the embedded defaults under ``tmp``
    (nothing inherited that would point it elsewhere), with the chat limit lifted."""
    env = {
        **os.environ,
        "PARLEY_VAR_DIR": str(tmp / "var"),
        "PARLEY_SECRET_KEY": secret,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_CHAT_RATE": str(chat_rate),
        "PARLEY_CHAT_BURST": "1000",
    }
    for key in ("PARLEY_DATABASE_URL", "PARLEY_REDIS_URL", "PARLEY_BASE_URL", "PARLEY_ALLOWED_ORIGINS",
                "PARLEY_STORAGE_DIR"):
        env.pop(key, None)
    return env


def run_main(run: Coroutine[Any, Any, dict[str, Any]], interrupted: str = "interrupted; subprocesses stopped") -> dict[str, Any] | None:
    """Run a benchmark's coroutine; None (after saying so) when it was interrupted. Every
    subprocess it started is stopped either way."""
    try:
        return asyncio.run(run)
    except (Interrupted, KeyboardInterrupt, asyncio.CancelledError):
        print(interrupted, file=sys.stderr)
        return None
    finally:
        kill_children()


async def login(http: aiohttp.ClientSession, url: str, token: str) -> str:
    """Spend an invitation as a browser does (GET the page, POST "Join"); return the cookie."""
    async with http.get(f"{url}/invite/{token}") as r:
        if r.status != 200:
            raise RuntimeError(f"invite page answered {r.status}: {await r.text()}")
    async with http.post(f"{url}/invite/{token}", headers={"Origin": url}, allow_redirects=False) as r:
        if r.status != 303:
            raise RuntimeError(f"Join answered {r.status}: {await r.text()}")
        return r.cookies["parley_session"].value


async def run_parley(n: int, args: argparse.Namespace) -> Figures:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"parley-bench-{n}-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(48)
    # One client sends everything: lift its chat limit, which this bench does not measure.
    env = embedded_env(tmp, port, secret, chat_rate=max(1.0, 2 * args.rate))
    server = ServerProcess("parley", [str(PARLEY), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           tmp, env, url)
    workers = [WorkerProcess(i) for i in range(args.client_procs)]
    notes = [
        "one membership (expert) and one login per client, each from its own invitation link",
        f"raw Engine.IO/Socket.IO WebSocket clients (bench/sio_client.py) in {args.client_procs} client process(es)",
    ]
    try:
        session_id, tokens = await load_parley(tmp, n, secret)
        await asyncio.gather(server.start(), *(w.start() for w in workers))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookies = await gather_limited(n, 8, lambda i: login(http, url, tokens[i]))
        d = await drive("parley", server, workers, n, args.rate, args.seconds, cookies, session_id)
        return figures("parley", n, args.rate, d, time.perf_counter() - started, notes)
    finally:
        # Stop the server before the clients: otherwise it would record and broadcast
        # N leaves one by one, which is not what is measured.
        server.stop()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        if args.keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- baseline -----------------------------------------------------------------------------


async def run_baseline(n: int, args: argparse.Namespace) -> Figures:
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"baseline-bench-{n}-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess("baseline", [sys.executable, str(BASELINE), "--host", "127.0.0.1", "--port", str(port)],
                           tmp, dict(os.environ), url)
    workers = [WorkerProcess(i) for i in range(args.client_procs)]
    notes = [f"aiohttp ws_connect clients in {args.client_procs} client process(es); "
             "the server relays each text frame to every client"]
    try:
        await asyncio.gather(server.start(), *(w.start() for w in workers))
        d = await drive("baseline", server, workers, n, args.rate, args.seconds, [None] * n)
        return figures("baseline", n, args.rate, d, time.perf_counter() - started, notes)
    finally:
        server.stop()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        if args.keep:
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
        "memory_per_connection_connected_only": ratio(p.kib_per_connection_connected_only,
                                                      b.kib_per_connection_connected_only),
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
            ("memory per connection (KiB)", p.kib_per_connection, b.kib_per_connection, ".1f",
             r["memory_per_connection"]),
            ("  connected only, before joining", p.kib_per_connection_connected_only,
             b.kib_per_connection_connected_only, ".1f", r["memory_per_connection_connected_only"]),
            ("server RSS before clients (MiB)", p.rss_before_mib, b.rss_before_mib, ".1f", None),
            ("server CPU utilisation (%)", p.server_cpu_util * 100, b.server_cpu_util * 100, ".1f", None),
            ("client processes CPU (%, summed)", sum(p.client_procs_cpu_util) * 100,
             sum(b.client_procs_cpu_util) * 100, ".1f", None),
            ("other processes' CPU (cores)", p.other_processes_cores, b.other_processes_cores, ".2f", None),
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


def cancel_on_signals() -> None:
    """SIGINT and SIGTERM mark the run interrupted and cancel the running task, so that
    the ``finally`` blocks stop every subprocess it started."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal() -> None:
        STATE["interrupted"] = True
        if main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_signals()
    rows = []
    for n in args.clients:
        check_interrupted()
        print(f"N={n}: Parley ...", file=sys.stderr, flush=True)
        p = await run_parley(n, args)
        check_interrupted()
        print(f"N={n}: baseline ...", file=sys.stderr, flush=True)
        b = await run_baseline(n, args)
        check_interrupted()
        rows.append({"clients": n, "parley": p, "baseline": b, "ratios": ratios(p, b)})
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "params": {"clients": args.clients, "rate": args.rate, "seconds": args.seconds,
                   "client_procs": args.client_procs, "warmup_events": WARMUP_EVENTS},
        "rows": rows,
    }


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise this process's soft open-files limit (children inherit it): 1,000 sockets
    and their server side do not fit the usual 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def main(argv: list[str] | None = None) -> int:
    raise_nofile_limit()
    parser = argparse.ArgumentParser(description="Parley room-broadcast benchmark (beside a bare aiohttp server).")
    parser.add_argument("--clients", default="300", help="comma-separated client counts (default 300)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second from the sender (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="sending duration per run (default 10)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--client-procs", type=int, default=DEFAULT_CLIENT_PROCS,
                        help=f"client worker processes the N clients are spread over (default {DEFAULT_CLIENT_PROCS})")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (server logs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(worker_main())
        return 0
    args.clients = [int(x) for x in str(args.clients).split(",") if x.strip()]
    if not args.clients or min(args.clients) < 1 or args.rate <= 0 or args.seconds <= 0 or args.client_procs < 1:
        parser.error("--clients, --rate, --seconds and --client-procs must be positive")
    if args.client_procs > min(args.clients):
        parser.error("--client-procs cannot exceed the smallest client count")
    started = time.perf_counter()
    result = run_main(run(args))
    if result is None:
        return 130
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nRoom broadcast, {args.rate:g} events/s for {args.seconds:g} s, clients in {args.client_procs} "
          f"process(es), {result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), {result['date']}\n")
    print(table(result["rows"]))
    for row in result["rows"]:
        for f in (row["parley"], row["baseline"]):
            if not f.complete:
                print(f"WARNING: {f.server} N={f.clients}: {f.deliveries}/{f.deliveries_expected} delivered, "
                      f"{f.clients_missing_messages} clients missed messages")
            if f.other_processes_cores > BUSY_MACHINE_CORES:
                print(f"WARNING: {f.server} N={f.clients}: other processes used {f.other_processes_cores:.2f} "
                      f"cores during the window (load {f.loadavg_1min_before}); latency figures are unreliable")
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
