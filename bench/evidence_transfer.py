"""Evidence transfer benchmark: encrypted uploads and downloads through ``parley serve``,
beside the disk's own durable write speed and aiohttp's own file response.

    .venv/bin/python bench/evidence_transfer.py [--size-mib 1024] [--parallel 1,4]
                                                [--download-rounds 3] [--json results.json]

One run, in a new temporary directory (``--tmp-dir`` chooses the disk; it needs about
three times the ciphertext size free, and the script refuses to start otherwise):

* ``parley serve`` on the embedded defaults (SQLite, local evidence storage) on a free
  loopback port, its database migrated and loaded with one visit
  (tests.fixtures.world.build_world); the secretariat member logs in by spending their
  invitation link and registers a device, all through parley_client (``Api``,
  ``DeviceKeys``);
* for each concurrency K of ``--parallel``: a new document version is created; its
  ciphertext is made here, streamed to a source file chunk by chunk (random plaintext,
  ``ChunkCipher`` under a fresh content key, bound to the version id) and fsynced;
  **baseline**: ``dd if=<source> of=<a file on the same disk> bs=1M oflag=dsync`` (each
  1 MiB written durably before the next, as an acknowledged chunk must be); then the
  **upload**: every chunk PUT with parley_client's ``Api`` (one connection per request,
  as the client does), K requests in flight, each answer's SHA-256 checked; then the
  key is wrapped for the device, the metadata sealed and the version completed with a
  signed manifest; then the version is read back as a reader does (listed,
  ``check_manifest``, ``/content`` streamed, each chunk's hash checked and decrypted,
  the plaintext compared) and the source file is deleted;
* **download**: the first version's ``/content`` from Parley, and the same stored file
  from a tiny aiohttp app (``web.FileResponse``, the hidden ``--serve-file`` mode of
  this script) on another free port, both read by the same aiohttp client that counts
  and discards the bytes, alternately, after one untimed read of each.

Measured: upload MB/s (10^6 bytes) from the first PUT to the last answer, beside dd's;
per-PUT latency p50/p99/max; the server's RSS sampled every 50 ms (growth = peak minus
the reading just before the first PUT); the server's CPU and bytes written to disk;
download MB/s and server CPU for both servers. Exit status: 0 when everything ran and
every byte matched (the verdicts on the targets are printed, not turned into a
status), 1 when something failed, 2 when the disk is too full to start, 130 when
interrupted. Every subprocess and temporary file is removed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from room_broadcast import (  # noqa: E402
    PARLEY,
    ServerProcess,
    SystemMeter,
    cancel_on_signals,
    forget_child,
    free_port,
    machine,
    percentile,
    register_child,
    run_main,
)

from parley_client.crypto import (  # noqa: E402
    CHUNK,
    ChunkCipher,
    DeviceKeys,
    DevicePublic,
    Recipient,
    b64u,
    check_manifest,
    ciphertext_size,
    key_commit,
    make_manifest,
    new_content_key,
    seal_meta,
    sign_statement,
    unb64u,
    wrap_key,
)
from parley_client.http import Api, ApiError  # noqa: E402

STRIDE = CHUNK + 16
MB = 1e6
RSS_INTERVAL = 0.05
TARGET_UPLOAD_RATIO = 0.5
TARGET_RSS_GROWTH_MB = 100.0
TARGET_DOWNLOAD_RATIO = 0.8
DISK_MARGIN = 256 * 2**20
BUSY_MACHINE_CORES = 0.25


class BenchFailure(Exception):
    """Something did not work (an error answer, a byte mismatch): exit status 1."""


# ---- the visit --------------------------------------------------------------------------------


async def load_visit(var: Path, secret: str) -> tuple[str, str, str]:
    """Migrate a fresh SQLite database under ``var`` and load one visit; returns the visit
    id, its open session and the secretariat member's invitation token."""
    from server.audit import service as audit
    from server.config import Settings
    from server.db import migrate
    from server.db.session import make_engine, make_sessionmaker
    from tests.fixtures.world import build_world

    var.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{var / 'parley.db'}"
    await migrate.upgrade_async(url)
    settings = Settings(
        var_dir=var, database_url=url, redis_url=None, storage_dir=var / "storage",
        host="127.0.0.1", port=0, base_url="http://127.0.0.1", allowed_origins=(),
        secret_key=secret.encode(),
    )
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine, info=audit.session_info(settings))() as db:
            world = await build_world(db, settings, extra_experts=1)
    finally:
        await engine.dispose()
    return world.visit_id, world.sessions["open"], world.members["secretariat"].invite_token


def server_env(tmp: Path, port: int, secret: str, max_bytes: int) -> dict[str, str]:
    """``parley serve`` on the embedded defaults under ``tmp`` (nothing inherited that would
    point it elsewhere), its evidence size limit above what this run uploads."""
    env = {
        **os.environ,
        "PARLEY_VAR_DIR": str(tmp / "var"),
        "PARLEY_SECRET_KEY": secret,
        "PARLEY_HOST": "127.0.0.1",
        "PARLEY_PORT": str(port),
        "PARLEY_EVIDENCE_MAX_BYTES": str(max_bytes),
        # This checkout's server, not the one the virtualenv's editable install points at.
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    for key in ("PARLEY_DATABASE_URL", "PARLEY_REDIS_URL", "PARLEY_BASE_URL", "PARLEY_ALLOWED_ORIGINS",
                "PARLEY_STORAGE_DIR", "PARLEY_EVIDENCE_DIR"):
        env.pop(key, None)
    return env


@dataclass
class Uploader:
    """The signed-in secretariat member's client: API (with the login cookie) and device."""

    url: str
    visit: str
    session: str
    api: Api
    keys: DeviceKeys
    me: DevicePublic


def sign_in(url: str, visit: str, session: str, token: str) -> Uploader:
    """Spend the invitation as the browser's Join does, then register a new device."""
    api = Api(url)
    api.request("GET", f"/invite/{token}", headers={"Accept": "text/html"}, ok=(200,))
    api.request("POST", f"/invite/{token}", body=b"", ok=(303,),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    if not api.cookie:
        raise BenchFailure("the invitation gave no login cookie")
    keys = DeviceKeys.generate("Ed25519")
    answer = api.send_json("POST", "/api/devices", {"label": "evidence benchmark", "sig_alg": keys.sig_alg,
                                                     "sig_pub": b64u(keys.sig_pub), "enc_pub": b64u(keys.enc_pub)})
    d = answer["device"]
    me = DevicePublic(d["id"], d["person"], d["sig_alg"], unb64u(d["sig_pub"]), unb64u(d["enc_pub"]))
    if (me.sig_pub, me.enc_pub) != (keys.sig_pub, keys.enc_pub):
        raise BenchFailure("the server registered other keys than the device's")
    return Uploader(url, visit, session, api, keys, me)


# ---- one version's ciphertext -------------------------------------------------------------------


@dataclass
class Source:
    """A version's ciphertext in a local file, with what a reader checks it against."""

    document: str
    version: str
    key: bytes
    path: Path
    chunks: int
    plain_size: int
    chunk_hashes: list[bytes] = field(default_factory=list)
    plain_hashes: list[bytes] = field(default_factory=list)
    make_seconds: float = 0.0

    @property
    def size(self) -> int:
        return ciphertext_size(self.plain_size)

    def chunk_length(self, index: int) -> int:
        return STRIDE if index < self.chunks - 1 else self.size - (self.chunks - 1) * STRIDE


def new_version(up: Uploader, plain_size: int, path: Path) -> Source:
    """Create a document version, then write its ciphertext to ``path`` one chunk at a time
    (random plaintext, a fresh key) and fsync it."""
    n = max(1, -(-plain_size // CHUNK))
    created = up.api.send_json("POST", f"/api/visits/{up.visit}/documents", {
        "session": up.session, "articles": [], "chunks": n, "size": ciphertext_size(plain_size),
    })
    if created.get("chunk_size") != CHUNK:
        raise BenchFailure(f"the server wants chunks of {created.get('chunk_size')} bytes, not {CHUNK}")
    src = Source(created["document"], created["version"], new_content_key(), path, n, plain_size)
    cipher = ChunkCipher(src.key, src.version)
    started = time.perf_counter()
    with path.open("wb") as out:
        for i in range(n):
            plain = os.urandom(min(CHUNK, plain_size - i * CHUNK))
            ct = cipher.encrypt(i, i == n - 1, plain)
            src.plain_hashes.append(hashlib.sha256(plain).digest())
            src.chunk_hashes.append(hashlib.sha256(ct).digest())
            out.write(ct)
        out.flush()
        os.fsync(out.fileno())
    src.make_seconds = time.perf_counter() - started
    if path.stat().st_size != src.size:
        raise BenchFailure(f"the source file has {path.stat().st_size} bytes, not {src.size}")
    return src


# ---- measuring ----------------------------------------------------------------------------------


class RssSampler:
    """The server's RSS every ~50 ms in a thread: the reading at ``mark`` and the peak after it."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.marked_at = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.samples.append((time.perf_counter(), int(self.proc.memory_info().rss)))
            self._stop.wait(RSS_INTERVAL)

    def start(self) -> None:
        self._thread.start()

    def mark(self) -> int:
        self.marked_at = time.perf_counter()
        rss = int(self.proc.memory_info().rss)
        self.samples.append((self.marked_at, rss))
        return rss

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        after = [r for t, r in self.samples if t >= self.marked_at]
        before = next(r for t, r in self.samples if t == self.marked_at)
        gaps = [b[0] - a[0] for a, b in zip(self.samples, self.samples[1:], strict=False) if a[0] >= self.marked_at]
        return {"before": before, "peak": max(after), "growth": max(after) - before, "samples": len(after),
                "max_gap_ms": max(gaps) * 1e3 if gaps else None}


class ProcessCpu:
    """User and system CPU seconds of a process between ``start`` and ``stop``, from the
    process totals, which keep the time of threads that ended in between (the per-thread
    schedstat sums of room_broadcast's CpuMeter lose them: the uploader's threads end
    before the stop). Resolution: one clock tick (10 ms)."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc

    def start(self) -> None:
        self.t0 = self.proc.cpu_times()

    def stop(self) -> tuple[float, float]:
        t1 = self.proc.cpu_times()
        return t1.user - self.t0.user, t1.system - self.t0.system


def io_write_bytes(proc: psutil.Process) -> int | None:
    try:
        return int(proc.io_counters().write_bytes)
    except (psutil.Error, AttributeError):
        return None


async def dd_baseline(src: Path, dest: Path) -> dict[str, Any]:
    """``dd bs=1M oflag=dsync`` of the source file to ``dest`` (same disk), then ``dest`` deleted."""
    os.sync()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "dd", f"if={src}", f"of={dest}", "bs=1M", "oflag=dsync",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    register_child(proc.pid)
    try:
        _, err = await proc.communicate()
    finally:
        forget_child(proc.pid)
    seconds = time.perf_counter() - started
    try:
        if proc.returncode != 0:
            raise BenchFailure(f"dd failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
        size = dest.stat().st_size
        if size != src.stat().st_size:
            raise BenchFailure(f"dd wrote {size} bytes of {src.stat().st_size}")
    finally:
        dest.unlink(missing_ok=True)
    last = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {"seconds": seconds, "bytes": size, "mb_s": size / seconds / MB, "dd_says": last[0]}


def put_chunks(up: Uploader, src: Source, parallel: int, stop: threading.Event) -> dict[str, Any]:
    """Every chunk PUT by ``parallel`` threads, each with its own parley_client ``Api`` (one
    connection per request); each answer's index and SHA-256 checked."""
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []

    def worker() -> None:
        api = Api(up.url, up.api.cookie)
        fd = os.open(src.path, os.O_RDONLY)
        try:
            while not stop.is_set():
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= src.chunks:
                    return
                data = os.pread(fd, src.chunk_length(i), i * STRIDE)
                t0 = time.perf_counter()
                r = api.request("PUT", f"/api/versions/{src.version}/chunks/{i}", body=data,
                                headers={"Content-Type": "application/octet-stream"}, ok=(200, 201))
                took = time.perf_counter() - t0
                answer = r.json()
                with lock:
                    latencies.append(took)
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                if answer.get("index") != i or answer.get("sha256") != b64u(src.chunk_hashes[i]):
                    raise BenchFailure(f"chunk {i}: the server answered {answer}")
        except (ApiError, BenchFailure, OSError) as err:
            with lock:
                errors.append(str(err))
            stop.set()
        finally:
            os.close(fd)

    threads = [threading.Thread(target=worker, name=f"put-{k}") for k in range(parallel)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if errors:
        raise BenchFailure(f"upload with {parallel} in flight: {errors[0]}")
    if len(latencies) != src.chunks:
        raise BenchFailure(f"upload with {parallel} in flight: {len(latencies)} of {src.chunks} chunks answered")
    return {"seconds": seconds, "latencies": sorted(latencies), "statuses": statuses}


def small_requests(up: Uploader, src: Source, proc: psutil.Process, count: int = 100) -> dict[str, float]:
    """The fixed cost of one request on the same path as a chunk (login, visit lookup,
    access check, the version's rows), without a body: ``GET .../upload`` before any
    chunk is stored, one connection per request as the client makes them."""
    meter = ProcessCpu(proc)
    meter.start()
    started = time.perf_counter()
    took = []
    for _ in range(count):
        t0 = time.perf_counter()
        state = up.api.get_json(f"/api/versions/{src.version}/upload")
        took.append(time.perf_counter() - t0)
        if state.get("chunks"):
            raise BenchFailure(f"a new version already has chunks: {state}")
    seconds = time.perf_counter() - started
    cpu = sum(meter.stop())
    took.sort()
    return {"requests": count, "server_cpu_ms": cpu * 1e3 / count, "latency_ms_p50": ms(percentile(took, 50)) or 0.0,
            "wall_ms": seconds * 1e3 / count}


def complete(up: Uploader, src: Source) -> float:
    """Wrap the key for the device, seal the metadata, sign the manifest, complete."""
    started = time.perf_counter()
    keys = up.api.get_json(f"/api/visits/{up.visit}/keys")
    listed = {d["id"] for p in keys.get("people", []) for d in p.get("devices", []) if not d.get("revoked_at")}
    if up.me.id not in listed:
        raise BenchFailure("the visit's keys do not list the benchmark's device")
    meta = seal_meta(src.key, src.version, {"name": "evidence-bench.bin", "type": "application/octet-stream",
                                            "size": src.plain_size, "description": "benchmark"})
    up.api.send_json("PUT", f"/api/versions/{src.version}/keys", {"keys": [
        {"device": up.me.id, "wrapped": b64u(wrap_key(src.key, up.me.enc_pub, up.visit, src.version, up.me.id))},
    ]})
    body = make_manifest(
        visit_id=up.visit, document_id=src.document, version_id=src.version, chunk_hashes=src.chunk_hashes,
        size=src.size, meta_ciphertext=meta, commit=key_commit(src.key, src.version), uploader=up.me.id,
        uploader_fp=up.me.fingerprint, recipients=[Recipient(up.me.id, up.me.person, up.me.fingerprint)],
    )
    text, signature = sign_statement(up.keys, body)
    done = up.api.send_json("POST", f"/api/versions/{src.version}/complete",
                            {"manifest": text, "signature": signature, "meta": b64u(meta)})
    if done.get("version") != src.version:
        raise BenchFailure(f"complete answered {done}")
    return time.perf_counter() - started


def read_back(up: Uploader, src: Source) -> dict[str, Any]:
    """As a reader: list, check the manifest, stream ``/content``, check each chunk's hash,
    decrypt it and compare the plaintext with what was encrypted."""
    started = time.perf_counter()
    listing = up.api.get_json(f"/api/visits/{up.visit}/documents?session={up.session}")
    document = next((d for d in listing.get("documents", []) if d.get("id") == src.document), None)
    if document is None:
        raise BenchFailure(f"document {src.document} is not listed")
    version = document["version"]
    wrapped = next((k["wrapped"] for k in version.get("keys", []) if k.get("device") == up.me.id), None)
    if version.get("id") != src.version or wrapped is None:
        raise BenchFailure("the listed version is not the uploaded one, or holds no key for the device")
    checked = check_manifest(
        version["manifest"], version["signature"], visit_id=up.visit, version_id=src.version,
        document_id=src.document, uploader=up.me, me=up.me, keys=up.keys, wrapped=unb64u(wrapped),
        meta_ciphertext=unb64u(version["meta"]),
    )
    cipher = ChunkCipher(checked.key, src.version)
    with up.api.stream(f"/api/versions/{src.version}/content") as response:
        for i in range(src.chunks):
            data = response.read(src.chunk_length(i))
            if len(data) != src.chunk_length(i):
                raise BenchFailure(f"/content ends early, in chunk {i}")
            if hashlib.sha256(data).digest() != checked.manifest.chunk_hashes[i]:
                raise BenchFailure(f"/content: chunk {i} differs from the manifest's")
            plain = cipher.decrypt(i, i == src.chunks - 1, data)
            if hashlib.sha256(plain).digest() != src.plain_hashes[i]:
                raise BenchFailure(f"chunk {i} decrypts to other bytes than were encrypted")
        if response.read(1):
            raise BenchFailure("/content goes on after the last chunk")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "mb_s": src.size / seconds / MB}


@dataclass
class UploadFigures:
    parallel: int
    ciphertext_bytes: int
    chunks: int
    upload_seconds: float
    upload_mb_s: float
    dd: dict[str, Any]
    ratio_to_dd: float
    put_latency_ms: dict[str, float | None]
    statuses: dict[int, int]
    complete_seconds: float
    rss: dict[str, Any]
    server_cpu_seconds: float
    server_cpu_system_seconds: float
    server_cpu_cores: float
    server_cpu_ms_per_chunk: float
    server_cpu_s_per_gib: float
    client_cpu_cores: float
    other_processes_cores: float
    server_disk_write_bytes: int | None
    loadavg_1min_before: float
    small_request: dict[str, float]
    make_source_mb_s: float
    read_back_mb_s: float


async def upload_run(up: Uploader, server: ServerProcess, tmp: Path, plain_size: int,
                     parallel: int) -> tuple[UploadFigures, Source]:
    """One version: its ciphertext made, dd's baseline, the upload measured, completion,
    the read-back; the source file deleted."""
    assert server.ps is not None
    path = tmp / f"source-{parallel}.bin"
    try:
        print(f"  K={parallel}: making {ciphertext_size(plain_size) / 2**20:.0f} MiB of ciphertext ...",
              file=sys.stderr, flush=True)
        src = await asyncio.to_thread(new_version, up, plain_size, path)
        probe = await asyncio.to_thread(small_requests, up, src, server.ps)
        print(f"  K={parallel}: dd baseline ...", file=sys.stderr, flush=True)
        dd = await dd_baseline(path, tmp / "dd-copy.bin")
        print(f"  K={parallel}: upload ...", file=sys.stderr, flush=True)
        await asyncio.to_thread(os.sync)
        await asyncio.sleep(1.0)
        sampler = RssSampler(server.ps)
        sampler.start()
        await asyncio.sleep(0.3)
        server_cpu, client_cpu, machine_cpu = ProcessCpu(server.ps), ProcessCpu(psutil.Process()), SystemMeter()
        load = os.getloadavg()[0]
        io0 = io_write_bytes(server.ps)
        stop = threading.Event()
        sampler.mark()
        machine_cpu.start()
        server_cpu.start()
        client_cpu.start()
        try:
            put = await asyncio.to_thread(put_chunks, up, src, parallel, stop)
        finally:
            stop.set()
            s_user, s_sys = server_cpu.stop()
            c_cpu = sum(client_cpu.stop())
            busy = machine_cpu.stop()
            rss = sampler.stop()
        io1 = io_write_bytes(server.ps)
        complete_s = await asyncio.to_thread(complete, up, src)
        back = await asyncio.to_thread(read_back, up, src)
    finally:
        path.unlink(missing_ok=True)
    s_cpu = s_user + s_sys
    secs = put["seconds"]
    lat = put["latencies"]
    mb_s = src.size / secs / MB
    return UploadFigures(
        parallel=parallel, ciphertext_bytes=src.size, chunks=src.chunks, upload_seconds=secs, upload_mb_s=mb_s,
        dd=dd, ratio_to_dd=mb_s / dd["mb_s"],
        put_latency_ms={"p50": ms(percentile(lat, 50)), "p90": ms(percentile(lat, 90)),
                        "p99": ms(percentile(lat, 99)), "max": ms(lat[-1]), "mean": ms(statistics.fmean(lat))},
        statuses=put["statuses"], complete_seconds=complete_s, rss=rss,
        server_cpu_seconds=s_cpu, server_cpu_system_seconds=s_sys, server_cpu_cores=s_cpu / secs,
        server_cpu_ms_per_chunk=s_cpu * 1e3 / src.chunks,
        server_cpu_s_per_gib=s_cpu / (src.size / 2**30), client_cpu_cores=c_cpu / secs,
        other_processes_cores=max(0.0, busy - s_cpu - c_cpu) / secs,
        server_disk_write_bytes=None if io0 is None or io1 is None else io1 - io0,
        loadavg_1min_before=load, small_request=probe, make_source_mb_s=src.size / src.make_seconds / MB, read_back_mb_s=back["mb_s"],
    ), src


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


# ---- downloads ----------------------------------------------------------------------------------


async def serve_file_main(path: Path, host: str, port: int) -> None:
    """The download baseline: ``web.FileResponse`` of one file, and ``/healthz``."""

    async def file(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/file", file)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    await asyncio.Event().wait()


async def fetch_all(http: aiohttp.ClientSession, url: str, headers: dict[str, str], expected: int) -> float:
    """GET ``url``, reading and discarding the body; the seconds it took."""
    started = time.perf_counter()
    got = 0
    async with http.get(url, headers=headers) as r:
        if r.status != 200:
            raise BenchFailure(f"GET {url} answered {r.status}: {(await r.read())[:200]!r}")
        async for data in r.content.iter_any():
            got += len(data)
    seconds = time.perf_counter() - started
    if got != expected:
        raise BenchFailure(f"GET {url} gave {got} bytes, not {expected}")
    return seconds


def stored_file(var: Path, version: str, size: int) -> Path:
    """The file in the server's storage directory that holds the version's ciphertext."""
    found = [p for p in var.rglob(f"{version}*") if p.is_file() and p.stat().st_size == size]
    if len(found) != 1:
        raise BenchFailure(f"cannot tell which stored file holds version {version}: {found}")
    return found[0]


async def download_run(up: Uploader, server: ServerProcess, tmp: Path, src: Source, rounds: int) -> dict[str, Any]:
    assert server.ps is not None
    path = stored_file(tmp / "var", src.version, src.size)
    port = free_port()
    base = ServerProcess("file-baseline", [sys.executable, str(Path(__file__).resolve()), "--serve-file", str(path),
                                           "--port", str(port)], tmp, dict(os.environ), f"http://127.0.0.1:{port}")
    try:
        await base.start()
        assert base.ps is not None
        targets = {
            "parley": (server, f"{server.url}/api/versions/{src.version}/content",
                       {"Cookie": f"parley_session={up.api.cookie}"}),
            "baseline": (base, f"{base.url}/file", {}),
        }
        runs: dict[str, list[dict[str, float]]] = {"parley": [], "baseline": []}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _, url, headers in targets.values():  # warm: page cache, connections
                await fetch_all(http, url, headers, src.size)
            for _ in range(rounds):
                for name, (proc, url, headers) in targets.items():
                    assert proc.ps is not None
                    meter, client = ProcessCpu(proc.ps), ProcessCpu(psutil.Process())
                    meter.start()
                    client.start()
                    seconds = await fetch_all(http, url, headers, src.size)
                    cpu, ccpu = sum(meter.stop()), sum(client.stop())
                    runs[name].append({"seconds": seconds, "mb_s": src.size / seconds / MB,
                                       "server_cpu_cores": cpu / seconds, "client_cpu_cores": ccpu / seconds})
    finally:
        base.stop()
    out: dict[str, Any] = {"bytes": src.size, "rounds": rounds, "runs": runs}
    for name, rs in runs.items():
        out[name] = {"mb_s_median": statistics.median(r["mb_s"] for r in rs),
                     "mb_s_best": max(r["mb_s"] for r in rs),
                     "server_cpu_cores_median": statistics.median(r["server_cpu_cores"] for r in rs),
                     "client_cpu_cores_median": statistics.median(r["client_cpu_cores"] for r in rs)}
    out["ratio_median"] = out["parley"]["mb_s_median"] / out["baseline"]["mb_s_median"]
    out["ratio_best"] = out["parley"]["mb_s_best"] / out["baseline"]["mb_s_best"]
    return out


# ---- the run ------------------------------------------------------------------------------------


def check_disk(where: Path, plain_size: int) -> tuple[bool, int, int]:
    need = 3 * ciphertext_size(plain_size) + DISK_MARGIN
    free = shutil.disk_usage(where).free
    return free >= need, free, need


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_signals()
    plain_size = args.size_mib * CHUNK
    tmp = Path(tempfile.mkdtemp(prefix="parley-evidence-bench-", dir=args.tmp_dir))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(48)
    env = server_env(tmp, port, secret, max_bytes=max(4 * 2**30, 2 * ciphertext_size(plain_size)))
    server = ServerProcess("parley", [str(PARLEY), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           tmp, env, url)
    uploads: list[UploadFigures] = []
    download: dict[str, Any] | None = None
    try:
        print("starting parley serve ...", file=sys.stderr, flush=True)
        visit, session, token = await load_visit(tmp / "var", secret)
        await server.start()
        assert server.ps is not None
        up = await asyncio.to_thread(sign_in, url, visit, session, token)
        rss_idle = server.rss()
        first: Source | None = None
        for k in args.parallel:
            fig, src = await upload_run(up, server, tmp, plain_size, k)
            uploads.append(fig)
            print(f"  K={k}: {fig.upload_mb_s:.0f} MB/s (dd {fig.dd['mb_s']:.0f} MB/s), "
                  f"RSS +{fig.rss['growth'] / MB:.1f} MB", file=sys.stderr, flush=True)
            first = first or src
        assert first is not None
        print("downloads ...", file=sys.stderr, flush=True)
        download = await download_run(up, server, tmp, first, args.download_rounds)
        rss_end = server.rss()
    except BenchFailure:
        print(f"server log (last lines):\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "disk": str(Path(args.tmp_dir or tempfile.gettempdir()).resolve()),
        "params": {"size_mib": args.size_mib, "parallel": args.parallel, "download_rounds": args.download_rounds},
        "server_rss_idle_bytes": rss_idle, "server_rss_end_bytes": rss_end,
        "uploads": [asdict(u) for u in uploads],
        "download": download,
    }

# ---- report -------------------------------------------------------------------------------------


def fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def verdicts(result: dict[str, Any]) -> list[tuple[str, bool]]:
    out = []
    for u in result["uploads"]:
        k = u["parallel"]
        out.append((f"upload K={k}: {u['ratio_to_dd']:.2f} of dd's speed (target >= {TARGET_UPLOAD_RATIO})",
                    u["ratio_to_dd"] >= TARGET_UPLOAD_RATIO))
        growth = u["rss"]["growth"] / MB
        out.append((f"upload K={k}: server peak RSS +{growth:.1f} MB (target < {TARGET_RSS_GROWTH_MB:.0f} MB)",
                    growth < TARGET_RSS_GROWTH_MB))
    d = result["download"]
    out.append((f"download: {d['ratio_median']:.2f} of aiohttp FileResponse's speed, medians "
                f"(target >= {TARGET_DOWNLOAD_RATIO})", d["ratio_median"] >= TARGET_DOWNLOAD_RATIO))
    return out


def report(result: dict[str, Any]) -> str:
    ups = result["uploads"]
    m = result["machine"]
    first = ups[0]
    lines = [
        f"Evidence transfer, {result['params']['size_mib']} MiB of plaintext = {first['ciphertext_bytes']:,} bytes of "
        f"ciphertext in {first['chunks']} chunks; {m['cpus']} CPUs ({m['cpu_model']}); disk of {result['disk']}; "
        f"{result['date']}",
        "",
        f"{'upload':<44}" + "".join(f"{'K=' + str(u['parallel']):>16}" for u in ups),
        "-" * (44 + 16 * len(ups)),
    ]

    def row(name: str, values: list[str]) -> None:
        lines.append(f"{name:<44}" + "".join(f"{v:>16}" for v in values))

    row("Parley upload (MB/s)", [fmt(u["upload_mb_s"]) for u in ups])
    row("dd bs=1M oflag=dsync, same bytes (MB/s)", [fmt(u["dd"]["mb_s"]) for u in ups])
    row("ratio (target >= 0.5)", [fmt(u["ratio_to_dd"], ".2f") for u in ups])
    row("PUT latency p50 / p99 (ms)", [f"{fmt(u['put_latency_ms']['p50'])} / {fmt(u['put_latency_ms']['p99'])}"
                                       for u in ups])
    row("PUT latency max (ms)", [fmt(u["put_latency_ms"]["max"]) for u in ups])
    row("server RSS before -> peak (MB)", [f"{u['rss']['before'] / MB:.0f} -> {u['rss']['peak'] / MB:.0f}"
                                           for u in ups])
    row("server RSS growth (MB, target < 100)", [fmt(u["rss"]["growth"] / MB) for u in ups])
    row("server CPU (cores)", [fmt(u["server_cpu_cores"], ".2f") for u in ups])
    row("server CPU per GiB (s)", [fmt(u["server_cpu_s_per_gib"], ".2f") for u in ups])
    row("server CPU per chunk (ms; of it system)", [f"{u['server_cpu_ms_per_chunk']:.1f} "
                                                    f"({u['server_cpu_system_seconds'] * 1e3 / u['chunks']:.1f})"
                                                    for u in ups])
    row("  same path without a body: CPU (ms)", [fmt(u["small_request"]["server_cpu_ms"]) for u in ups])
    row("server disk writes / ciphertext", [fmt(None if u["server_disk_write_bytes"] is None
                                                else u["server_disk_write_bytes"] / u["ciphertext_bytes"], ".3f")
                                            for u in ups])
    row("uploader CPU (cores)", [fmt(u["client_cpu_cores"], ".2f") for u in ups])
    row("other processes' CPU (cores)", [fmt(u["other_processes_cores"], ".2f") for u in ups])
    row("load average (1 min) before", [fmt(u["loadavg_1min_before"], ".2f") for u in ups])
    row("keys + complete (ms)", [fmt(u["complete_seconds"] * 1e3) for u in ups])
    row("client: make ciphertext file (MB/s)", [fmt(u["make_source_mb_s"]) for u in ups])
    row("client: read back, check, decrypt (MB/s)", [fmt(u["read_back_mb_s"]) for u in ups])
    d = result["download"]
    p, b = d["parley"], d["baseline"]
    lines += [
        "",
        f"{'download (' + str(d['rounds']) + ' rounds each, alternating)':<44}{'Parley':>16}{'FileResponse':>16}"
        f"{'ratio':>10}",
        "-" * 86,
        f"{'median (MB/s)':<44}{fmt(p['mb_s_median']):>16}{fmt(b['mb_s_median']):>16}{fmt(d['ratio_median'], '.2f'):>10}",
        f"{'best (MB/s)':<44}{fmt(p['mb_s_best']):>16}{fmt(b['mb_s_best']):>16}{fmt(d['ratio_best'], '.2f'):>10}",
        f"{'server CPU, median (cores)':<44}{fmt(p['server_cpu_cores_median'], '.2f'):>16}"
        f"{fmt(b['server_cpu_cores_median'], '.2f'):>16}",
        f"{'client CPU, median (cores)':<44}{fmt(p['client_cpu_cores_median'], '.2f'):>16}"
        f"{fmt(b['client_cpu_cores_median'], '.2f'):>16}",
        "",
        "verdicts:",
    ]
    for text, met in verdicts(result):
        lines.append(f"  {'met   ' if met else 'MISSED'} {text}")
    for u in ups:
        if u["other_processes_cores"] > BUSY_MACHINE_CORES:
            lines.append(f"WARNING: K={u['parallel']}: other processes used {u['other_processes_cores']:.2f} cores "
                         "during the upload; the figures are disturbed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Parley evidence upload/download benchmark (beside dd and a bare "
                                                 "aiohttp FileResponse).")
    parser.add_argument("--size-mib", type=int, default=1024, help="plaintext MiB per upload (default 1024)")
    parser.add_argument("--parallel", default="1,4",
                        help="comma-separated chunk PUTs in flight, one upload each (default 1,4)")
    parser.add_argument("--download-rounds", type=int, default=5, help="timed downloads from each server (default 5)")
    parser.add_argument("--tmp-dir", type=Path, help="where the temporary directory goes (default: the system's)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--serve-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_file is not None:
        asyncio.run(serve_file_main(args.serve_file, "127.0.0.1", args.port))
        return 0
    try:
        args.parallel = [int(x) for x in str(args.parallel).split(",") if x.strip()]
    except ValueError:
        parser.error("--parallel: comma-separated whole numbers")
    if args.size_mib < 1 or not args.parallel or min(args.parallel) < 1 or args.download_rounds < 1:
        parser.error("--size-mib, --parallel and --download-rounds must be positive")
    where = Path(args.tmp_dir or tempfile.gettempdir())
    ok, free, need = check_disk(where, args.size_mib * CHUNK)
    if not ok:
        print(f"Not enough free disk in {where}: {free / 2**30:.1f} GiB free, this run needs {need / 2**30:.1f} GiB "
              "(three times the ciphertext: the source file, dd's copy or a second stored version, and the stored "
              "version). Free some space, use --tmp-dir on another disk, or a smaller --size-mib.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        result = run_main(run(args))
    except (BenchFailure, ApiError, RuntimeError, OSError) as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    if result is None:
        return 130
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    print()
    print(report(result))
    print(f"total {result['total_seconds']} s")
    if args.json:
        result["verdicts"] = [{"target": t, "met": m} for t, m in verdicts(result)]
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
