"""Scale-out: one live room served by two ``parley serve`` processes (PostgreSQL + Redis)
beside the same room served by one process.

    .venv/bin/python bench/scale_out.py [--clients 300] [--seconds 5] [--start-rate 20]
                                        [--factor 1.5] [--json out.json]

The workload is room_broadcast.py's: N participants in one room, chat messages that
must reach all N, the senders included. Here there are two senders (the first client of
each of the two client worker processes), each sending half the rate, so that in the
two-process setup both processes take ``chat.send`` commands.

Both setups use the production backends: a scratch PostgreSQL database (created on
``--pg-admin-db``, migrated, loaded with one visit of N experts, dropped at the end) and
Redis with a channel of its own (``PARLEY_REDIS_CHANNEL``), so the only difference is the
number of processes:

* ``1 process``: both client workers (N/2 clients each) connect to the one process;
* ``2 processes``: worker k connects to process k; each process holds N/2 clients and one
  sender; every broadcast goes through Redis to both.

For each setup the rate goes up a ladder (``--start-rate`` x ``--factor``^k events/s in
total, ``--seconds`` per step) until a step fails, then one step half-way between the
last pass and the failure is tried. A step passes when every client received every
message, p99 latency (sender's clock to receipt, over every message and client) is at most
``--p99-ms``, no ``chat.send`` failed, and the senders kept to the schedule (95 %). The
max sustainable rate is the highest passing step; the ratio two/one is the scale-out
figure (goal: 1.7).

Also measured at every step: the server processes' CPU per delivered message (all server
processes together), each process's utilisation, the PostgreSQL backends' and Redis's CPU,
the client workers' CPU and the rest of the machine's. From the per-process CPU a
"CPU-bound capacity" is derived: the rate at which the busiest server process would use a
whole core, i.e. what the setup would sustain if every server process had a core of its
own and the clients, PostgreSQL and Redis ran elsewhere. Its two/one ratio is the
hardware-independent scale-out estimate; on a 2-core machine the measured ratio cannot
show more than the cores left over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import room_broadcast as rb
from reconnect_storm import login

ROOT = Path(__file__).resolve().parents[1]
WARMUP_EVENTS = 6
DRAIN_SECONDS = 10.0
RUN_KEY = uuid.uuid4().hex[:12]  # per process: idempotency keys never repeat


# ---- the client worker: room_broadcast's, with one sender per worker --------------------------


class ScaleWorker(rb.ClientWorker):
    """room_broadcast's client worker; the sender is this worker's first client."""

    async def _send_one(self, text: str) -> None:
        # Unique across runs: the same member sending a key again gets its earlier
        # message back (an idempotent replay), not a new one.
        await self._send_chat(self.sio[min(self.sio)], text, lambda seq: f"{RUN_KEY}-{seq}")


class ScaleWorkerProcess(rb.WorkerProcess):
    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26,
            start_new_session=True,
        )
        rb.register_child(self.proc.pid)
        self.ps = psutil.Process(self.proc.pid)
        self.reader = asyncio.create_task(self._read())


# ---- PostgreSQL -------------------------------------------------------------------------------


class ScratchDb:
    """A scratch PostgreSQL database: created, migrated and loaded; dropped by ``drop``."""

    def __init__(self, host: str, port: int, user: str, admin_db: str) -> None:
        self.host, self.port, self.user, self.admin_db = host, port, user, admin_db
        self.name = f"parley_bench_{uuid.uuid4().hex[:10]}"
        self.created = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{self.name}"

    async def _admin(self) -> Any:
        import asyncpg

        return await asyncpg.connect(host=self.host, port=self.port, user=self.user, database=self.admin_db)

    async def create(self) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
            self.created = True
        finally:
            await conn.close()

    async def drop(self) -> None:
        if not self.created:
            return
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        finally:
            await conn.close()

    def backends(self) -> list[psutil.Process]:
        """The PostgreSQL server processes serving this database (one per connection)."""
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(p.info["cmdline"] or [])
                if cmd.startswith("postgres:") and f" {self.name} " in cmd:
                    found.append(p)
        return found


async def load(db: ScratchDb, n: int, secret: str, var: Path) -> tuple[str, list[str]]:
    [session], [tokens] = await rb.load_rooms(db.url, var, secret, 1, n)
    return session, tokens


# ---- one setup ----------------------------------------------------------------------------------


@dataclass
class Step:
    rate: float
    attempt: int
    events: int
    window_s: float
    rate_achieved: float
    deliveries: int
    deliveries_expected: int
    complete: bool
    latency_ms: dict[str, float | None]
    ack_ms: dict[str, float | None] | None
    acks_failed: int
    server_cpu_s: list[float]
    server_util: list[float]
    cpu_us_per_delivery: float | None
    cpu_ms_per_event: float | None
    capacity_events_per_s: float | None
    postgres_cores: float
    redis_cores: float
    client_procs_cores: float
    other_cores: float
    passed: bool
    why: str = ""


@dataclass
class Setup:
    processes: int
    clients: int
    steps: list[Step] = field(default_factory=list)
    max_rate: float | None = None
    cold_join_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def redis_process() -> psutil.Process | None:
    for p in psutil.process_iter(["name"]):
        if (p.info["name"] or "").startswith("redis-server"):
            return p
    return None


class Meter:
    """CPU of a changing set of processes between start and stop (psutil ticks)."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.procs = procs

    def _read(self) -> dict[int, float]:
        out = {}
        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                out[p.pid] = rb.cpu_seconds(p)
        return out

    def start(self) -> None:
        self.t0 = self._read()

    def stop(self) -> float:
        t1 = self._read()
        return sum(v - self.t0.get(pid, 0.0) for pid, v in t1.items() if pid in self.t0)


async def run_setup(processes: int, args: argparse.Namespace, db: ScratchDb, session_id: str, tokens: list[str],
                    secret: str, channel: str, cookies: list[str]) -> Setup:
    """One setup; ``cookies`` is filled by the first (an invitation is spent once), then reused."""
    n = args.clients
    tmp = Path(tempfile.mkdtemp(prefix=f"parley-scale-{processes}-"))
    ports = [rb.free_port() for _ in range(processes)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    servers = []
    for k in range(processes):
        env = {
            **os.environ,
            "PARLEY_VAR_DIR": str(tmp / f"var{k}"),
            "PARLEY_SECRET_KEY": secret,
            "PARLEY_DATABASE_URL": db.url,
            "PARLEY_REDIS_URL": args.redis_url,
            "PARLEY_REDIS_CHANNEL": channel,
            "PARLEY_AUDIT_HEADS": "log",
            "PARLEY_ALLOWED_ORIGINS": ",".join(urls),
            "PARLEY_HOST": "127.0.0.1",
            "PARLEY_PORT": str(ports[k]),
            # Two members send everything: lift their chat limit, which is not measured here.
            "PARLEY_CHAT_RATE": "100000",
            "PARLEY_CHAT_BURST": "100000",
            "PARLEY_AUTO_MIGRATE": "false",
        }
        for key in ("PARLEY_BASE_URL", "PARLEY_STORAGE_DIR"):
            env.pop(key, None)
        servers.append(rb.ServerProcess(f"parley{k}", [str(rb.PARLEY), "serve", "--host", "127.0.0.1",
                                                        "--port", str(ports[k])], tmp, env, urls[k]))
    workers = [ScaleWorkerProcess(i) for i in range(2)]
    setup = Setup(processes, n)
    try:
        await asyncio.gather(*(s.start() for s in servers), *(w.start() for w in workers))
        if not cookies:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                cookies += await rb.gather_limited(n, 8, lambda i: login(http, urls[i % processes], tokens[i]))
        t0 = time.perf_counter()
        await asyncio.gather(*(
            w.call("connect", kind="parley", url=urls[w.number % processes], origin=urls[w.number % processes],
                   session_id=session_id, clients=[[i, cookies[i]] for i in range(w.number, n, 2)])
            for w in workers))
        await asyncio.gather(*(w.call("join") for w in workers))
        setup.cold_join_s = round(time.perf_counter() - t0, 2)
        await asyncio.sleep(1.0)
        warm = await batch(workers, "w", WARMUP_EVENTS, 10.0, 30.0)
        if not all(d["complete"] for d in warm["waits"]):
            raise RuntimeError(f"{processes} process(es): warm-up not delivered: {warm['waits']}")
        redis = redis_process()

        async def step_at(rate: float) -> bool:
            """Measure at ``rate``; a failed step is measured once more (a pause of the
            shared machine should not decide the result): it passes if either did."""
            for attempt in range(1 + args.retries):
                rb.check_interrupted()
                step = await measure(rate, n, args, servers, workers, db, redis, attempt)
                setup.steps.append(step)
                print(f"  {processes} process(es): {rate:7.1f} ev/s  p99 {rb_fmt(step.latency_ms['p99'])} ms  "
                      f"delivered {step.deliveries}/{step.deliveries_expected}  servers "
                      f"{'+'.join(f'{u:.2f}' for u in step.server_util)} cores  other {step.other_cores:.2f}  "
                      f"{'pass' if step.passed else 'FAIL ' + step.why}", file=sys.stderr, flush=True)
                # Let any backlog drain before the next step.
                await asyncio.sleep(1.0 if step.passed else 2.0)
                if step.passed:
                    return True
            return False

        last_pass: float | None = None
        if args.rates:
            for rate in args.rates:
                if await step_at(rate):
                    last_pass = max(last_pass or 0.0, rate)
        else:
            rate = args.start_rate
            first_fail: float | None = None
            while len(setup.steps) <= args.max_steps:
                if await step_at(rate):
                    last_pass = rate
                    if first_fail is not None:
                        break
                    rate = round(rate * args.factor, 1)
                    if rate > args.max_rate:
                        break
                    continue
                first_fail = rate
                if last_pass is None:
                    break
                mid = round((last_pass + first_fail) / 2, 1)
                if mid - last_pass < 0.08 * last_pass:
                    break
                rate = mid
        setup.max_rate = last_pass
        return setup
    finally:
        # A graceful stop ends each process's presence lease. Killed, a process would
        # leave its lease to expire 25 s later, and the next setup's processes would then
        # record and broadcast a leave for each of its N connections mid-measurement.
        await asyncio.gather(*(stop_gracefully(s) for s in servers))
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        logs = "\n".join(s.log_tail(400) for s in servers)
        warnings = [line for line in logs.splitlines() if " WARNING " in line or " ERROR " in line]
        if warnings:
            setup.notes.append(f"{len(warnings)} server log warnings/errors:")
            setup.notes += ["  " + line[:220] for line in warnings[:6]]
        if args.keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


async def stop_gracefully(server: rb.ServerProcess, timeout: float = 20.0) -> None:
    """SIGTERM, then wait for the process to close its sockets and end its lease
    (it takes about aiohttp's shutdown timeout, 5 s); SIGKILL only after ``timeout``."""
    popen = server.popen
    if popen is None:
        return
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    server.stop()  # SIGKILL if still running; forgets the child


def rb_fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


async def batch(workers: list[ScaleWorkerProcess], tag: str, events_each: int, rate_each: float,
                timeout: float) -> dict[str, Any]:
    """Both senders send ``events_each`` at ``rate_each``; every client expects all of them."""
    total = events_each * len(workers)
    await asyncio.gather(*(w.call("arm", tag=tag, events=total) for w in workers))
    waits = [asyncio.create_task(w.call("wait", timeout=timeout)) for w in workers]
    try:
        sent = await asyncio.gather(*(w.call("send", tag=tag, events=events_each, rate=rate_each) for w in workers))
        done = await asyncio.gather(*waits)
    finally:
        for t in waits:
            t.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
    return {"send": sent, "waits": done}


async def measure(rate: float, n: int, args: argparse.Namespace, servers: list[rb.ServerProcess],
                  workers: list[ScaleWorkerProcess], db: ScratchDb, redis: psutil.Process | None,
                  attempt: int = 0) -> Step:
    each = rate / len(workers)
    events_each = max(1, round(each * args.seconds))
    total = events_each * len(workers)
    meters = [s.meter() for s in servers]
    worker_meters = [rb.CpuMeter(w.ps) for w in workers if w.ps is not None]
    own = rb.CpuMeter(psutil.Process())
    pg = Meter(db.backends())
    rd = Meter([redis] if redis is not None else [])
    machine = rb.SystemMeter()
    machine.start()
    for m in [*meters, *worker_meters, own]:
        m.start()
    pg.start()
    rd.start()
    profilers = []
    if args.profile:
        for k, srv in enumerate(servers):
            assert srv.ps is not None
            out = Path(f"{args.profile}-{len(servers)}p-{rate:g}-{k}{'-retry' if attempt else ''}.txt").resolve()
            prof = subprocess.Popen(
                [args.py_spy, "record", "-p", str(srv.ps.pid), "-d", str(int(args.seconds + 1)), "-r", "200",
                 "-f", "raw", "-o", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            rb.register_child(prof.pid)
            profilers.append(prof)
    t0 = time.perf_counter()
    measured = await batch(workers, "m", events_each, each, args.seconds + DRAIN_SECONDS)
    window = time.perf_counter() - t0
    for prof in profilers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(prof.wait, args.seconds + 10)
        rb.forget_child(prof.pid)
    server_cpu = [m.stop()[0] for m in meters]
    worker_cpu = sum(m.stop()[0] for m in worker_meters)
    own_cpu = own.stop()[0]
    pg_cpu = pg.stop()
    rd_cpu = rd.stop()
    busy = machine.stop()
    collected = await asyncio.gather(*(w.call("collect") for w in workers))
    counts: dict[str, int] = {}
    latencies: list[int] = []
    acks: list[int] = []
    failed = 0
    for c in collected:
        counts.update(c["counts"])
        latencies += c["latencies_ns"]
        acks += c["ack_ns"]
        failed += c["acks_failed_count"]
    deliveries = sum(counts.values())
    expected = total * n
    complete = deliveries == expected and all(v == total for v in counts.values())
    lat = rb.latency_summary(latencies)
    achieved = min(s["rate_achieved"] for s in measured["send"]) * len(workers)
    cpu = sum(server_cpu)
    util = [c / window for c in server_cpu]
    busiest_cpu_per_event = max(server_cpu) / total if total else None
    why = []
    if not complete:
        why.append(f"lost {expected - deliveries}")
    if lat["p99"] is None or lat["p99"] > args.p99_ms:
        why.append(f"p99 {rb_fmt(lat['p99'])} ms")
    if failed:
        why.append(f"{failed} acks failed")
    if achieved < 0.95 * rate:
        why.append(f"sent at {achieved:.1f}/s")
    others = max(0.0, busy - cpu - worker_cpu - own_cpu - pg_cpu - rd_cpu)
    return Step(
        rate=rate, attempt=attempt, events=total, window_s=round(window, 2), rate_achieved=round(achieved, 1),
        deliveries=deliveries, deliveries_expected=expected, complete=complete, latency_ms=lat,
        ack_ms=rb.latency_summary(acks) if acks else None, acks_failed=failed,
        server_cpu_s=[round(c, 3) for c in server_cpu], server_util=[round(u, 3) for u in util],
        cpu_us_per_delivery=cpu / deliveries * 1e6 if deliveries else None,
        cpu_ms_per_event=cpu / total * 1e3 if total else None,
        capacity_events_per_s=1.0 / busiest_cpu_per_event if busiest_cpu_per_event else None,
        postgres_cores=round(pg_cpu / window, 2), redis_cores=round(rd_cpu / window, 2),
        client_procs_cores=round(worker_cpu / window, 2), other_cores=round(others / window, 2),
        passed=not why, why=", ".join(why),
    )


# ---- report -------------------------------------------------------------------------------------


def pick(setup: Setup, rate: float | None) -> Step | None:
    """The deciding measurement at ``rate`` (the retry, when the first one failed)."""
    for s in reversed(setup.steps):
        if rate is not None and abs(s.rate - rate) < 1e-6:
            return s
    return None


def report(result: dict[str, Any]) -> str:
    setups: list[Setup] = result["setups"]
    one, two = setups[0], setups[-1]
    p = result["params"]
    out = [
        f"Scale-out: one room of {p['clients']} clients (2 client processes, one sender in each), PostgreSQL + Redis; "
        f"steps of {p['seconds']:g} s from {p['start_rate']:g} events/s x{p['factor']:g}; pass = all delivered, "
        f"p99 <= {p['p99_ms']:g} ms",
        f"{result['machine']['cpus']} CPUs ({result['machine']['cpu_model']}), {result['date']}",
        "",
        f"{'rate':>7}  {'setup':<12}{'p50/p99 ms':>16}{'delivered':>18}{'µs/deliv':>10}{'ms/event':>10}"
        f"{'server cores':>16}{'capacity':>10}{'pg':>6}{'redis':>7}{'clients':>8}{'other':>7}  result",
    ]
    rates = sorted({s.rate for st in setups for s in st.steps})
    for r in rates:
        for st, s in [(su, x) for su in setups for x in su.steps if abs(x.rate - r) < 1e-6]:
            lat = f"{rb_fmt(s.latency_ms['p50'])}/{rb_fmt(s.latency_ms['p99'])}"
            cores = "+".join(f"{u:.2f}" for u in s.server_util)
            out.append(
                f"{r:>7.1f}  {str(st.processes) + ' process' + ('es' if st.processes > 1 else ''):<12}{lat:>16}"
                f"{str(s.deliveries) + '/' + str(s.deliveries_expected):>18}"
                f"{rb_fmt(s.cpu_us_per_delivery):>10}{rb_fmt(s.cpu_ms_per_event):>10}{cores:>16}"
                f"{rb_fmt(s.capacity_events_per_s):>10}{s.postgres_cores:>6.2f}{s.redis_cores:>7.2f}"
                f"{s.client_procs_cores:>8.2f}{s.other_cores:>7.2f}  {'pass' if s.passed else 'FAIL: ' + s.why}"
                f"{' (again)' if s.attempt else ''}")
    out.append("")
    if len(setups) != 2 or one.processes != 1 or two.processes != 2:
        return "\n".join(out)
    ratio = (two.max_rate / one.max_rate) if one.max_rate and two.max_rate else None
    out.append(f"max sustainable rate: 1 process {rb_fmt(one.max_rate)} events/s, 2 processes "
               f"{rb_fmt(two.max_rate)} events/s, ratio {'-' if ratio is None else f'{ratio:.2f}'} (goal 1.7)")
    # Compare CPU at the rates both passed.
    both = [r for r in rates if (a := pick(one, r)) and (b := pick(two, r)) and a.passed and b.passed]
    if both:
        r = max(both)
        a, b = pick(one, r), pick(two, r)
        assert a is not None and b is not None
        out.append(f"at {r:g} events/s (highest rate both sustained): server CPU per delivery "
                   f"{rb_fmt(a.cpu_us_per_delivery)} µs (1) vs {rb_fmt(b.cpu_us_per_delivery)} µs (2, both processes), "
                   f"ratio {b.cpu_us_per_delivery / a.cpu_us_per_delivery:.2f}; per event {rb_fmt(a.cpu_ms_per_event)} vs "
                   f"{rb_fmt(b.cpu_ms_per_event)} ms")
        if a.capacity_events_per_s and b.capacity_events_per_s:
            out.append(f"CPU-bound capacity (busiest server process at one full core): {a.capacity_events_per_s:.0f} "
                       f"vs {b.capacity_events_per_s:.0f} events/s, ratio "
                       f"{b.capacity_events_per_s / a.capacity_events_per_s:.2f} (a server process per core, "
                       f"clients/PostgreSQL/Redis elsewhere)")
    for st in (one, two):
        for note in st.notes:
            out.append(f"{st.processes} process(es): {note}")
    out.append(f"connect+join of {p['clients']}: {one.cold_join_s} s (1 process), {two.cold_join_s} s (2 processes); "
               f"total {result['total_s']} s")
    return "\n".join(out)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rb.cancel_on_signals()
    started = time.perf_counter()
    db = ScratchDb(args.pg_host, args.pg_port, args.pg_user, args.pg_admin_db)
    secret = secrets.token_urlsafe(48)
    channel = f"parley-bench-{uuid.uuid4().hex[:10]}"
    var = Path(tempfile.mkdtemp(prefix="parley-scale-load-"))
    setups: list[Setup] = []
    cookies: list[str] = []
    try:
        await db.create()
        session_id, tokens = await load(db, args.clients, secret, var)
        for processes in args.setups:
            print(f"{processes} process(es) ...", file=sys.stderr, flush=True)
            setups.append(await run_setup(processes, args, db, session_id, tokens, secret, channel, cookies))
    finally:
        with contextlib.suppress(Exception):
            await db.drop()
        shutil.rmtree(var, ignore_errors=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": rb.machine(),
        "params": {"clients": args.clients, "seconds": args.seconds, "start_rate": args.start_rate,
                   "factor": args.factor, "p99_ms": args.p99_ms, "redis_channel": channel, "database": db.name},
        "setups": setups,
        "total_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    rb.raise_nofile_limit()
    parser = argparse.ArgumentParser(description="Parley scale-out: two processes on PostgreSQL + Redis vs one.")
    parser.add_argument("--clients", type=int, default=300, help="clients in the room (default 300)")
    parser.add_argument("--seconds", type=float, default=5.0, help="sending time per step (default 5)")
    parser.add_argument("--start-rate", type=float, default=20.0, help="first step, events/s in total (default 20)")
    parser.add_argument("--factor", type=float, default=1.5, help="rate factor between steps (default 1.5)")
    parser.add_argument("--max-rate", type=float, default=2000.0, help="stop the ladder above this rate")
    parser.add_argument("--max-steps", type=int, default=12, help="at most this many steps per setup")
    parser.add_argument("--p99-ms", type=float, default=100.0, help="latency bound for a passing step (default 100)")
    parser.add_argument("--pg-host", default=os.environ.get("PARLEY_BENCH_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("PARLEY_BENCH_PG_PORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("PARLEY_BENCH_PG_USER", "postgres"))
    parser.add_argument("--pg-admin-db", default=os.environ.get("PARLEY_BENCH_PG_DB", "test"),
                        help="database to connect to for CREATE/DROP DATABASE (default test)")
    parser.add_argument("--redis-url", default=os.environ.get("PARLEY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--rates", help="measure these total rates (comma-separated) instead of the ladder")
    parser.add_argument("--retries", type=int, default=1, help="measure a failed step again this many times")
    parser.add_argument("--profile", help="py-spy every server process during each step into PREFIX-<n>p-<rate>-<k>.txt")
    parser.add_argument("--py-spy", default=os.environ.get("PY_SPY", "py-spy"), help="py-spy executable")
    parser.add_argument("--setups", default="1,2", help="process counts to run, in order (default 1,2)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories (server logs)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        rb.ClientWorker = ScaleWorker  # type: ignore[misc]
        asyncio.run(rb.worker_main())
        return 0
    args.setups = [int(x) for x in str(args.setups).split(",") if x.strip()]
    args.rates = [float(x) for x in str(args.rates).split(",") if x.strip()] if args.rates else []
    if args.clients < 4 or args.seconds <= 0 or args.start_rate <= 0 or args.factor <= 1:
        parser.error("--clients >= 4, --seconds > 0, --start-rate > 0, --factor > 1")
    result = rb.run_main(run(args), "interrupted; subprocesses stopped and the scratch database dropped")
    if result is None:
        return 130
    print()
    print(report(result))
    if args.json:
        serialisable = {**result, "setups": [asdict(s) for s in result["setups"]]}
        args.json.write_text(json.dumps(serialisable, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 0 if all(s.max_rate for s in result["setups"]) else 1


if __name__ == "__main__":
    sys.exit(main())
