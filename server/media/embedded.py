"""The embedded media engine: an aiortc SFU in a child process, for small meetings.

The media work (SRTP, RTP packing, ICE; audio, and a floor speaker's VP8 video, both
forwarded without decoding) runs in a child process,
``python -m server.media.embedded_worker`` (``server/media/embedded_worker.py``), so it
never competes with the server's event loop, and a fault in it never takes the server
down. The child is an ordinary subprocess started with ``asyncio.create_subprocess_exec``
rather than ``multiprocessing``: it shares nothing with the server (no fork of a process
holding sockets, database connections and threads), it is started the same way under
every start method, and its pipes are plain asyncio streams.

The protocol is one JSON object a line, over the child's stdin and stdout: a request
``{"id", "op", "args"}`` and its response ``{"id", "result"}`` or ``{"id", "error"}``
(an error is a ``MediaError``, its message safe for a browser). Requests carry ids, so
several may be in flight; each waits at most ``request_timeout`` seconds.

The child starts on the first request. If it dies, or does not answer in time (it is
then killed), the pending requests and the next one raise ``MediaUnavailable``; the
request after starts a new child, into which the rooms this engine had opened are opened
again, empty: their publishers and listeners were in the old child, and callers publish
and subscribe again. ``aclose`` asks the child to stop and kills it after two seconds.

Capacity: see ``EMBEDDED_CEILING``; beyond it, configure Janus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.media.engine import Candidate, MediaError, MediaUnavailable, Subscription

# The largest meeting (listeners, each hearing the floor and one booth, with a floor
# speaker and two interpreters publishing) the embedded engine serves on one core with
# that core under ~85% busy and no loss: measured by bench/media_capacity.py
# (--engine embedded), figures in bench/README.md ("Media capacity"). Measured on a busy
# 2-vCPU machine: 40 held in every run, 50 lost 1.3% on a stream. Beyond it, use Janus.
EMBEDDED_CEILING = 40

ROOT = Path(__file__).resolve().parents[2]
MAX_LINE = 4 * 1024 * 1024
STOP_GRACE = 2.0
STARTUP_TIMEOUT = 20.0


class EmbeddedEngine:
    name = "embedded"

    def __init__(self, *, request_timeout: float = 10.0, cpus: set[int] | None = None) -> None:
        self.request_timeout = request_timeout
        self.cpus = set(cpus) if cpus else None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()  # one start (or restart) at a time
        self._death_reported = False  # a pending request already told its caller
        self._rooms: set[str] = set()  # the rooms opened, opened again in a new child
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    # ---- the child ----------------------------------------------------------------------

    async def _spawn(self) -> asyncio.subprocess.Process:
        argv = [sys.executable, "-m", "server.media.embedded_worker"]
        if self.cpus:
            argv += ["--cpus", ",".join(str(c) for c in sorted(self.cpus))]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env, limit=MAX_LINE,
                start_new_session=True,  # a Ctrl-C on the server's terminal is the server's to handle
            )
        except OSError as exc:
            raise MediaUnavailable(f"the embedded media engine could not start: {exc}") from exc
        self._proc = proc
        self._death_reported = False
        self._reader = asyncio.ensure_future(self._read(proc))
        return proc

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                line = await proc.stdout.readline()
                if not line:
                    break
                try:
                    message = json.loads(line)
                    future = self._pending.pop(int(message["id"]), None)
                except (ValueError, KeyError, TypeError):
                    continue
                if future is None or future.done():
                    continue
                if "error" in message:
                    future.set_exception(MediaError(str(message["error"])))
                else:
                    future.set_result(message.get("result"))
        except (ValueError, ConnectionError):  # a line over the limit, a broken pipe
            pass
        finally:
            self._fail_pending("the embedded media engine stopped")

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(MediaUnavailable(reason))
                self._death_reported = True

    def _alive(self) -> bool:
        return (self._proc is not None and self._proc.returncode is None
                and self._reader is not None and not self._reader.done())

    async def _reap(self) -> None:
        """Forget a dead (or hung) child, killing it if need be."""
        proc, reader = self._proc, self._reader
        self._proc = self._reader = None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        self._fail_pending("the embedded media engine stopped")

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._lock:
            if self._closed:
                raise MediaUnavailable("the embedded media engine is closed")
            if self._proc is not None and not self._alive():
                reported = self._death_reported
                await self._reap()
                if not reported:
                    raise MediaUnavailable("the embedded media engine stopped; its rooms are gone")
            if self._proc is None:
                proc = await self._spawn()
                # Its imports take a second or so: the first answer may take longer.
                await self._send(proc, "ping", {}, wait=max(self.request_timeout, STARTUP_TIMEOUT))
                for room in sorted(self._rooms):
                    await self._send(proc, "open_room", {"room": room})
            assert self._proc is not None
            return self._proc

    async def _send(self, proc: asyncio.subprocess.Process, op: str, args: dict[str, Any],
                    wait: float | None = None) -> Any:
        assert proc.stdin is not None
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            proc.stdin.write((json.dumps({"id": rid, "op": op, "args": args}) + "\n").encode())
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._pending.pop(rid, None)
            self._death_reported = True
            raise MediaUnavailable("the embedded media engine stopped") from exc
        try:
            return await asyncio.wait_for(future, wait or self.request_timeout)
        except TimeoutError:
            self._pending.pop(rid, None)
            # A child that does not answer in time is hung: it is killed, and the next
            # request starts a new one.
            if self._proc is proc:
                await self._reap()
            raise MediaUnavailable("the embedded media engine did not answer in time") from None

    async def _request(self, op: str, **args: Any) -> Any:
        proc = await self._ensure()
        return await self._send(proc, op, args)

    # ---- MediaEngine --------------------------------------------------------------------

    async def open_room(self, room: str) -> None:
        await self._request("open_room", room=room)
        self._rooms.add(room)

    async def close_room(self, room: str) -> None:
        self._rooms.discard(room)
        await self._request("close_room", room=room)

    async def publish(self, room: str, publisher: str, channel: str, offer: str) -> str:
        return str(await self._request("publish", room=room, publisher=publisher, channel=channel, offer=offer))

    async def unpublish(self, room: str, publisher: str) -> None:
        await self._request("unpublish", room=room, publisher=publisher)

    async def set_forwarding(self, room: str, publisher: str, forwarding: bool) -> None:
        await self._request("set_forwarding", room=room, publisher=publisher, forwarding=bool(forwarding))

    async def subscribe(
        self, room: str, listener: str, publishers: Sequence[str], *, video: bool = False
    ) -> Subscription:
        """A new peer connection for the listener each time (``fresh``): the browser
        closes its old one and answers this offer with ``start``."""
        result = await self._request("subscribe", room=room, listener=listener, publishers=list(publishers),
                                     video=bool(video))
        tracks = {str(mid): str(key) for mid, key in (result.get("tracks") or {}).items()}
        return Subscription(str(result["offer"]), bool(result["fresh"]), tracks)

    async def start(self, room: str, listener: str, answer: str) -> None:
        await self._request("start", room=room, listener=listener, answer=answer)

    async def unsubscribe(self, room: str, listener: str) -> None:
        await self._request("unsubscribe", room=room, listener=listener)

    async def trickle(self, room: str, peer: str, candidate: Candidate | None) -> None:
        if candidate is None:
            return
        if not isinstance(candidate, dict):
            raise MediaError("malformed ICE candidate")
        await self._request("trickle", room=room, peer=peer, candidate=candidate)

    async def live(self, room: str) -> set[str]:
        return {str(key) for key in await self._request("live", room=room)}

    async def aclose(self) -> None:
        """Stop the child: it closes every peer connection and exits; killed after 2 s."""
        async with self._lock:
            self._closed = True
            self._rooms.clear()
            proc = self._proc
            if proc is not None and self._alive():
                assert proc.stdin is not None
                with contextlib.suppress(Exception):
                    proc.stdin.write(b'{"id": 0, "op": "shutdown"}\n')
                    await proc.stdin.drain()
                    proc.stdin.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), STOP_GRACE)
            await self._reap()
