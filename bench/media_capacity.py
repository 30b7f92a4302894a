"""Media capacity: how many audio listeners the Janus engine serves per core.

    sudo .venv/bin/python bench/media_capacity.py [--listeners 50,100,200] [--seconds 10]
                                                  [--workers 4] [--json out.json]

One floor speaker and two active interpreters (English and Spanish booths) publish
Opus tones into one VideoRoom, set up by Parley's Janus engine (server/media/). Each
listener subscribes, as a browser does, to the floor and one booth (alternately English
and Spanish): two audio streams each. Everything runs inside a network namespace of its
own (tests/fixtures/netns.py), with Janus pinned to core 0 (``taskset``) and the
publishers and listeners on core 1.

Listeners are minimal receivers: aiortc peer connections (ICE, DTLS-SRTP) in worker
processes, whose RTP receivers count packets instead of decoding them. From the RTP
sequence numbers and timestamps each stream's loss and interarrival jitter (RFC 3550)
are computed. Janus's CPU comes from /proc/<pid>/stat over the measured window.

Figures: for each listener count, Janus's CPU (share of one core), listeners per core
(= listeners / that share), streams forwarded per second, loss and jitter (p50 / max
over streams). The anchor named by the product brief is about 230 audio listeners per
core (LiveKit). Runs as root (network namespaces); stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLOCK = 48000  # Opus RTP clock
CORE_LIMIT = 0.85  # the ceiling: the engine's core below 85% busy ...
LOSS_LIMIT = 0.01  # ... and every stream's loss below 1%
LIVEKIT_PER_CORE = 230  # the product brief's anchor: audio listeners per core (LiveKit)


# ---- inside the namespace: listeners (worker processes) ----------------------------------


class StreamStats:
    def __init__(self) -> None:
        self.count = 0
        self.first_seq: int | None = None
        self.last_ext = 0
        self.cycles = 0
        self.last_seq: int | None = None
        self.jitter = 0.0
        self.prev: tuple[float, int] | None = None

    def add(self, seq: int, timestamp: int, arrival: float) -> None:
        self.count += 1
        if self.last_seq is not None and seq < self.last_seq and self.last_seq - seq > 30000:
            self.cycles += 1 << 16
        self.last_seq = seq
        ext = self.cycles + seq
        if self.first_seq is None:
            self.first_seq = ext
        self.last_ext = max(self.last_ext, ext)
        if self.prev is not None:
            p_arrival, p_ts = self.prev
            d = (arrival - p_arrival) * CLOCK - (timestamp - p_ts)
            self.jitter += (abs(d) - self.jitter) / 16
        self.prev = (arrival, timestamp)

    def summary(self) -> dict[str, float]:
        expected = (self.last_ext - self.first_seq + 1) if self.first_seq is not None else 0
        lost = max(0, expected - self.count)
        return {"received": self.count, "loss": lost / expected if expected else 1.0,
                "jitter_ms": 1000 * self.jitter / CLOCK}


async def worker(args: dict[str, Any]) -> dict[str, Any]:
    """``count`` listeners: for each, an offer from the engine arrives on stdin (one JSON
    line) and the answer goes out on stdout; then "go" and "stop" bound the window."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    stats: dict[tuple[int, int], StreamStats] = {}
    window = {"on": False}

    async def count_only(self: Any, packet: Any, arrival_time_ms: int) -> None:
        # No jitter buffer, no decoding: a minimal receiver (after DTLS-SRTP).
        if window["on"]:
            stats.setdefault((id(self), packet.ssrc), StreamStats()).add(
                packet.sequence_number, packet.timestamp, time.monotonic()
            )

    RTCRtpReceiver._handle_rtp_packet = count_only  # type: ignore[method-assign]

    loop = asyncio.get_running_loop()
    pcs = []
    try:
        for _ in range(args["count"]):
            offer = json.loads(await loop.run_in_executor(None, sys.stdin.readline))["offer"]
            pc = RTCPeerConnection()
            pcs.append(pc)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            print(json.dumps({"answer": pc.localDescription.sdp}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # start of the window
        window["on"] = True
        await loop.run_in_executor(None, sys.stdin.readline)  # end of the window
        window["on"] = False
    finally:
        for pc in pcs:
            await pc.close()
    return {"streams": [s.summary() for s in stats.values()], "listeners": args["count"]}


# ---- inside the namespace: the orchestrator --------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def inside(args: argparse.Namespace) -> dict[str, Any]:
    from tests.media.engine_peers import engine_room, speaker, until_live

    if args.engine == "janus":
        spec = ["janus", args.janus_url, args.janus_secret, args.janus_admin_key]
    else:
        spec = ["embedded"]
    results = []
    async with engine_room(spec, "bench", cpus={0}) as (engine, peers):
        peers.append(await speaker(engine, "bench", "floor", "floor", 440.0))
        peers.append(await speaker(engine, "bench", "interp-en", "en", 550.0))
        peers.append(await speaker(engine, "bench", "interp-es", "es", 660.0))
        await until_live(engine, "bench", {"floor", "interp-en", "interp-es"}, timeout=20)
        pid = args.janus_pid if args.engine == "janus" else engine.pid  # type: ignore[attr-defined]
        for listeners in args.listeners:
            results.append(await measure(args, engine, pid, listeners))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return {"engine": args.engine, "runs": results}


async def measure(args: argparse.Namespace, engine: Any, pid: int, listeners: int) -> dict[str, Any]:
    per = [listeners // args.workers + (1 if i < listeners % args.workers else 0) for i in range(args.workers)]
    procs = []
    started = time.monotonic()
    for count in per:
        if not count:
            continue
        procs.append(await asyncio.create_subprocess_exec(
            "taskset", "-c", "1", sys.executable, __file__, "--worker", json.dumps({"count": count}),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT), limit=2**22,
        ))
    keys: list[str] = []

    async def set_up(p: Any, first: int, count: int) -> None:
        # Each listener subscribes, as a browser does, to the floor and one booth.
        for n in range(first, first + count):
            key = f"listener-{n}"
            keys.append(key)
            offered = await engine.subscribe("bench", key, ["floor", "interp-en" if n % 2 else "interp-es"])
            p.stdin.write((json.dumps({"offer": offered.offer}) + "\n").encode())
            await p.stdin.drain()
            line = await asyncio.wait_for(p.stdout.readline(), 120)
            if not line.startswith(b"{"):
                raise RuntimeError(f"a listener worker failed to set up: {line!r}")
            await engine.start("bench", key, json.loads(line)["answer"])

    slices = [(sum(per[:i]), count) for i, count in enumerate(per) if count]
    await asyncio.gather(*(set_up(p, first, count) for p, (first, count) in zip(procs, slices, strict=True)))
    setup = time.monotonic() - started
    await asyncio.sleep(3.0)  # settle: ICE and DTLS of the last listeners
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    await asyncio.sleep(args.seconds)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"stop\n")
        await p.stdin.drain()
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    streams: list[dict[str, float]] = []
    for p in procs:
        out, _ = await asyncio.wait_for(p.communicate(), 120)
        streams += json.loads(out.decode().strip().splitlines()[-1])["streams"]
    for key in keys:
        await engine.unsubscribe("bench", key)
    share = (cpu1 - cpu0) / (t1 - t0)
    losses = sorted(s["loss"] for s in streams)
    jitters = sorted(s["jitter_ms"] for s in streams)
    packets = sum(s["received"] for s in streams)
    return {
        "listeners": listeners,
        "streams": len(streams),
        "engine_core_share": share,
        "listeners_per_core": listeners / share if share > 0 else None,
        "packets_per_second": packets / (t1 - t0),
        # The engine's CPU per packet it forwarded: what the ceiling comes from when the
        # source rate is off (a busy machine), since a listener costs 100 packets/s.
        "cpu_us_per_packet": 1e6 * share * (t1 - t0) / packets if packets else None,
        "loss_p50": losses[len(losses) // 2] if losses else None,
        "loss_max": losses[-1] if losses else None,
        "jitter_ms_p50": jitters[len(jitters) // 2] if jitters else None,
        "jitter_ms_max": jitters[-1] if jitters else None,
        "setup_seconds": setup,
    }


# ---- outside: the namespace and Janus ------------------------------------------------------


def outside(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    from tests.fixtures.janus import running_janus
    from tests.fixtures.netns import network_namespace

    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(network_namespace())
        argv = [sys.executable, __file__, "--inside", "--engine", engine,
                "--listeners", ",".join(map(str, args.listeners)), "--seconds", str(args.seconds),
                "--workers", str(args.workers)]
        janus = None
        if engine == "janus":
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="parley-media-bench-"))
            janus = stack.enter_context(running_janus(Path(tmp), netns=ns, cpus="0"))
            argv += ["--janus-url", janus.url, "--janus-secret", janus.api_secret,
                     "--janus-admin-key", janus.admin_key, "--janus-pid", str(janus.process.pid)]
        # The orchestrator (and the publishers) on core 1; the engine on core 0.
        done = subprocess.run(ns.command(["taskset", "-c", "1", *argv]), cwd=ROOT, capture_output=True, text=True,
                              timeout=3600)
        if done.returncode != 0:
            raise SystemExit(f"the bench failed:\n{done.stderr[-3000:]}\n{janus.output()[-1500:] if janus else ''}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def table(result: dict[str, Any]) -> str:
    lines = [
        f"engine: {result['engine']}",
        "listeners  streams  engine core  listeners/core  packets/s  CPU us/packet  loss p50/max       jitter ms p50/max  setup s",
        "-" * 122,
    ]
    for r in result["runs"]:
        lines.append(
            f"{r['listeners']:9d}  {r['streams']:7d}  {r['engine_core_share']:11.3f}  {r['listeners_per_core'] or 0:14.0f}"
            f"  {r['packets_per_second']:9.0f}  {r.get('cpu_us_per_packet') or 0:13.1f}  {r['loss_p50']:.4f} / {r['loss_max']:.4f}  "
            f"{r['jitter_ms_p50']:8.2f} / {r['jitter_ms_max']:6.2f}  {r['setup_seconds']:7.1f}"
        )
    return "\n".join(lines)


def ceiling(result: dict[str, Any]) -> dict[str, Any] | None:
    """The run with the most listeners whose engine core stayed below 85% with < 1% loss
    (on every stream)."""
    fit = [r for r in result["runs"]
           if r["streams"] and r["engine_core_share"] < CORE_LIMIT and (r["loss_max"] or 0) < LOSS_LIMIT]
    return max(fit, key=lambda r: r["listeners"]) if fit else None


def comparison(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    per_core = {}
    for engine, result in results.items():
        top = ceiling(result)
        if top is None:
            lines.append(f"{engine}: no measured count within {CORE_LIMIT:.0%} of a core and {LOSS_LIMIT:.0%} loss")
            continue
        # Listeners per core at the ceiling count (CPU scales about linearly with listeners).
        per_core[engine] = top["listeners_per_core"]
        lines.append(
            f"{engine}: ceiling {top['listeners']} listeners measured (core {top['engine_core_share']:.2f}, "
            f"loss max {top['loss_max']:.4f}, jitter p50/max {top['jitter_ms_p50']:.1f}/{top['jitter_ms_max']:.1f} ms); "
            f"{top['listeners_per_core']:.0f} listeners per core"
        )
    for engine, value in per_core.items():
        lines.append(f"{engine}: {value / LIVEKIT_PER_CORE:.2f} x LiveKit's {LIVEKIT_PER_CORE} listeners/core anchor")
    if "janus" in per_core and "embedded" in per_core:
        lines.append(f"embedded / janus (listeners per core, same run): {per_core['embedded'] / per_core['janus']:.2f}")
    cost = {engine: [r["cpu_us_per_packet"] for r in result["runs"] if r.get("cpu_us_per_packet")]
            for engine, result in results.items()}
    for engine, values in cost.items():
        if values:
            lines.append(f"{engine}: {min(values):.0f}-{max(values):.0f} us of CPU per forwarded packet")
    if cost.get("janus") and cost.get("embedded"):
        ratio = min(cost["embedded"]) / min(cost["janus"])
        lines.append(f"embedded costs {ratio:.1f} x janus per forwarded packet (best runs, same run of the bench)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("janus", "embedded", "both"), default="janus",
                        help="the engine to measure, or both in one run (default janus)")
    parser.add_argument("--listeners", default="50,100,200", help="listener counts, comma-separated")
    parser.add_argument("--embedded-listeners", help="listener counts for the embedded engine with --engine both "
                                                     "(default: --listeners)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per count (default 10)")
    parser.add_argument("--workers", type=int, default=4, help="listener worker processes (default 4)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--janus-url", help=argparse.SUPPRESS)
    parser.add_argument("--janus-secret", help=argparse.SUPPRESS)
    parser.add_argument("--janus-admin-key", help=argparse.SUPPRESS)
    parser.add_argument("--janus-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(worker(json.loads(args.worker)))))
        return 0
    counts = [int(n) for n in str(args.listeners).split(",") if n]
    args.listeners = counts
    if args.inside:
        print(json.dumps(asyncio.run(inside(args))))
        return 0
    results: dict[str, dict[str, Any]] = {}
    for engine in (("janus", "embedded") if args.engine == "both" else (args.engine,)):
        if engine == "embedded" and args.embedded_listeners:
            args.listeners = [int(n) for n in str(args.embedded_listeners).split(",") if n]
        else:
            args.listeners = counts
        results[engine] = outside(args, engine)
        if any(r["streams"] == 0 for r in results[engine]["runs"]):
            raise SystemExit(f"no listener received anything: {json.dumps(results[engine])}")
        print(table(results[engine]), flush=True)
        print(flush=True)
    print(comparison(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
