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
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    from server.media.janus import JanusClient

    stats: dict[tuple[int, int], StreamStats] = {}
    window = {"on": False}

    async def count_only(self: Any, packet: Any, arrival_time_ms: int) -> None:
        # No jitter buffer, no decoding: a minimal receiver (after DTLS-SRTP).
        if window["on"]:
            stats.setdefault((id(self), packet.ssrc), StreamStats()).add(
                packet.sequence_number, packet.timestamp, time.monotonic()
            )

    RTCRtpReceiver._handle_rtp_packet = count_only  # type: ignore[method-assign]

    pcs = []
    async with JanusClient(args["url"], args["secret"]) as client:
        session = await client.create_session()
        try:
            for n in range(args["count"]):
                feeds = [args["feeds"]["floor"], args["feeds"]["en" if (args["first"] + n) % 2 else "es"]]
                handle = await session.attach()
                offered = await session.message(handle, {
                    "request": "join", "ptype": "subscriber", "room": args["room"], "pin": args["pin"],
                    "streams": [{"feed": f, "mid": "0"} for f in feeds],
                })
                pc = RTCPeerConnection()
                await pc.setRemoteDescription(RTCSessionDescription(**offered["jsep"]))
                await pc.setLocalDescription(await pc.createAnswer())
                await session.message(handle, {"request": "start"},
                                      jsep={"type": "answer", "sdp": pc.localDescription.sdp})
                pcs.append(pc)
            print("ready", flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)  # start of the window
            window["on"] = True
            await loop.run_in_executor(None, sys.stdin.readline)  # end of the window
            window["on"] = False
        finally:
            for pc in pcs:
                await pc.close()
            await session.destroy()
    return {"streams": [s.summary() for s in stats.values()], "listeners": args["count"]}


# ---- inside the namespace: the orchestrator --------------------------------------------


def janus_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def inside(args: argparse.Namespace) -> dict[str, Any]:
    from tests.media.engine_peers import engine_room, speaker, until_live

    results = []
    async with engine_room(args.janus_url, args.janus_secret, args.janus_admin_key, "bench") as (engine, peers):
        peers.append(await speaker(engine, "bench", "floor", "floor", 440.0))
        peers.append(await speaker(engine, "bench", "interp-en", "en", 550.0))
        peers.append(await speaker(engine, "bench", "interp-es", "es", 660.0))
        await until_live(engine, "bench", {"floor", "interp-en", "interp-es"}, timeout=20)
        room = engine._rooms["bench"]
        feeds = {p.channel: p.feed for p in room.publishers.values()}
        for listeners in args.listeners:
            results.append(await measure(args, listeners, room.number, room.pin, feeds))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return {"runs": results}


async def measure(args: argparse.Namespace, listeners: int, room: int, pin: str, feeds: dict[str, int]) -> dict[str, Any]:
    per = [listeners // args.workers + (1 if i < listeners % args.workers else 0) for i in range(args.workers)]
    procs = []
    first = 0
    started = time.monotonic()
    for count in per:
        if not count:
            continue
        spec = json.dumps({"url": args.janus_url, "secret": args.janus_secret, "room": room, "pin": pin,
                           "feeds": feeds, "count": count, "first": first})
        first += count
        procs.append(await asyncio.create_subprocess_exec(
            "taskset", "-c", "1", sys.executable, __file__, "--worker", spec,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(ROOT),
        ))
    for p in procs:
        assert p.stdout is not None
        line = await asyncio.wait_for(p.stdout.readline(), 300)
        if line.strip() != b"ready":
            raise RuntimeError(f"a listener worker failed to set up: {line!r}")
    setup = time.monotonic() - started
    await asyncio.sleep(2.0)  # settle
    cpu0, t0 = janus_cpu_seconds(args.janus_pid), time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        await p.stdin.drain()
    await asyncio.sleep(args.seconds)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"stop\n")
        await p.stdin.drain()
    cpu1, t1 = janus_cpu_seconds(args.janus_pid), time.monotonic()
    streams: list[dict[str, float]] = []
    for p in procs:
        out, _ = await asyncio.wait_for(p.communicate(), 120)
        streams += json.loads(out.decode().strip().splitlines()[-1])["streams"]
    share = (cpu1 - cpu0) / (t1 - t0)
    losses = sorted(s["loss"] for s in streams)
    jitters = sorted(s["jitter_ms"] for s in streams)
    packets = sum(s["received"] for s in streams)
    return {
        "listeners": listeners,
        "streams": len(streams),
        "janus_core_share": share,
        "listeners_per_core": listeners / share if share > 0 else None,
        "packets_per_second": packets / (t1 - t0),
        "loss_p50": losses[len(losses) // 2] if losses else None,
        "loss_max": losses[-1] if losses else None,
        "jitter_ms_p50": jitters[len(jitters) // 2] if jitters else None,
        "jitter_ms_max": jitters[-1] if jitters else None,
        "setup_seconds": setup,
    }


# ---- outside: the namespace and Janus ------------------------------------------------------


def outside(args: argparse.Namespace) -> dict[str, Any]:
    from tests.fixtures.janus import running_janus
    from tests.fixtures.netns import network_namespace

    with tempfile.TemporaryDirectory(prefix="parley-media-bench-") as tmp, network_namespace() as ns, \
            running_janus(Path(tmp), netns=ns, cpus="0") as janus:
        argv = [sys.executable, __file__, "--inside", "--janus-url", janus.url, "--janus-secret", janus.api_secret,
                "--janus-admin-key", janus.admin_key, "--janus-pid", str(janus.process.pid),
                "--listeners", ",".join(map(str, args.listeners)), "--seconds", str(args.seconds),
                "--workers", str(args.workers)]
        done = subprocess.run(ns.command(["taskset", "-c", "1", *argv]), cwd=ROOT, capture_output=True, text=True,
                              timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"the bench failed:\n{done.stderr[-3000:]}\n{janus.output()[-1500:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def table(result: dict[str, Any]) -> str:
    lines = [
        "listeners  streams  janus core  listeners/core  packets/s  loss p50/max       jitter ms p50/max  setup s",
        "-" * 106,
    ]
    for r in result["runs"]:
        lines.append(
            f"{r['listeners']:9d}  {r['streams']:7d}  {r['janus_core_share']:10.3f}  {r['listeners_per_core'] or 0:14.0f}"
            f"  {r['packets_per_second']:9.0f}  {r['loss_p50']:.4f} / {r['loss_max']:.4f}  "
            f"{r['jitter_ms_p50']:8.2f} / {r['jitter_ms_max']:6.2f}  {r['setup_seconds']:7.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", default="50,100,200", help="listener counts, comma-separated")
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
    args.listeners = [int(n) for n in str(args.listeners).split(",") if n]
    if args.inside:
        print(json.dumps(asyncio.run(inside(args))))
        return 0
    result = outside(args)
    if any(r["streams"] == 0 for r in result["runs"]):
        raise SystemExit(f"no listener received anything: {json.dumps(result)}")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
