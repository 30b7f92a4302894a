"""Socket.IO client managers whose room emits go through ``Fanout``.

``FanoutManager`` serves one process. ``FanoutRedisManager`` shares rooms between
processes through Redis pub/sub: python-socketio's pub/sub manager publishes each emit
and hands it, on this process and on every other, to the next ``emit`` in the method
resolution order, which is ``FanoutManager.emit``. So every process delivers with the
same fast path.

The Redis manager also reports gaps: whenever its listener lost the connection and
subscribed again, or a publish failed, messages between processes may have been lost,
and ``on_gap(reason)`` is called so the caller can flush caches and tell clients to
catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from socketio import packet as sio_packet

from server.config import Settings
from server.realtime.fanout import Fanout, Limits

log = logging.getLogger("parley.realtime.manager")

GapCallback = Callable[[str], Awaitable[None] | None]
GAP_RESUBSCRIBED = "resubscribed"
GAP_PUBLISH_FAILED = "publish_failed"
# The listener's re-subscribe back-off: short, because every second without it is a
# second of other processes' messages this one misses.
LISTEN_RETRY_FIRST = 0.05
LISTEN_RETRY_MAX = 1.0
REDIS_TIMEOUT = 2.0


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's in-process manager, with room emits sent by ``Fanout``."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.fanout = Fanout(limits)

    def set_server(self, server: Any) -> None:
        super().set_server(server)
        self.fanout.install(server.eio)

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        text = None if callback is not None else self._encode(event, data, namespace)
        if text is None:
            # Acknowledged emits need one packet id per recipient, and binary payloads
            # several frames: both are rare here, so the library's path serves them.
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
            return
        if namespace not in self.rooms:
            return
        if skip_sid is None and isinstance(room, str):
            # The common case, one room and nobody skipped: its eio sids as they are
            # (a copy, since a drop may change the room while delivering).
            members = self.rooms[namespace].get(room)
            if members:
                self.fanout.deliver(list(members.values()), text)
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        participants = self.get_participants(namespace, room)
        if skip == [None]:
            self.fanout.deliver((eio_sid for _, eio_sid in participants), text)
        else:
            self.fanout.deliver((eio_sid for sid, eio_sid in participants if sid not in skip), text)

    def _encode(self, event: str, data: Any, namespace: str) -> str | None:
        """The Socket.IO EVENT packet as text, or None when it needs binary attachments."""
        if isinstance(data, tuple):
            args = list(data)
        elif data is not None:
            args = [data]
        else:
            args = []
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        return encoded if isinstance(encoded, str) else None


class FanoutRedisManager(socketio.AsyncRedisManager, FanoutManager):  # type: ignore[misc]
    """Rooms shared through Redis pub/sub on ``channel``; each process delivers with
    ``Fanout``. ``on_gap(reason)`` ("resubscribed" or "publish_failed") may be a plain
    function or a coroutine function; it can also be set after construction."""

    def __init__(
        self, url: str, *, channel: str = "parley", limits: Limits | None = None, on_gap: GapCallback | None = None
    ) -> None:
        # Named, not super(): mypy cannot see past the untyped base to the cooperative
        # chain, which still reaches FanoutManager.__init__ (with default limits).
        socketio.AsyncRedisManager.__init__(self, url, channel=channel)
        self.fanout.limits = limits or Limits()
        self.on_gap = on_gap
        self.listening = False  # subscribed right now (for health checks and tests)
        self._publisher: aioredis.Redis | None = None

    async def _gap(self, reason: str) -> None:
        if self.on_gap is None:
            return
        try:
            result = self.on_gap(reason)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("on_gap(%s) failed", reason)

    async def _publish(self, data: Any) -> Any:
        try:
            if self._publisher is None:
                # One retry on a dropped connection; a Redis that is down must not stall
                # every emit for long.
                self._publisher = aioredis.Redis.from_url(
                    self.redis_url, retry=Retry(NoBackoff(), 1), socket_connect_timeout=REDIS_TIMEOUT,
                    socket_timeout=REDIS_TIMEOUT, **self.redis_options,
                )
            return await self._publisher.publish(self.channel, self.json.dumps(data))
        except Exception as exc:
            log.error("redis publish on %r failed, other processes missed a %s: %s: %s",
                      self.channel, data.get("method"), type(exc).__name__, exc)
            await self._gap(GAP_PUBLISH_FAILED)
            return None

    async def _listen(self) -> AsyncIterator[bytes]:
        """Messages on the channel, for python-socketio's listener task; re-subscribes
        after any failure, with a short jittered back-off, and reports the gap."""
        channel = self.channel.encode()
        delay = LISTEN_RETRY_FIRST
        lost = False
        while True:
            # No retries inside redis-py: it would re-subscribe silently, hiding the gap.
            client = aioredis.Redis.from_url(
                self.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=REDIS_TIMEOUT,
                socket_keepalive=True, **self.redis_options,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening = True
                if lost:
                    log.warning("redis listener subscribed to %r again", self.channel)
                    lost = False
                    await self._gap(GAP_RESUBSCRIBED)
                delay = LISTEN_RETRY_FIRST
                async for message in pubsub.listen():
                    if message["type"] == "message" and message["channel"] == channel:
                        yield message["data"]
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("redis listener lost %r (%s: %s); subscribing again",
                                self.channel, type(exc).__name__, exc)
                lost = True
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, LISTEN_RETRY_MAX)

    async def aclose(self) -> None:
        """Stop listening and close the publishing connection (at shutdown)."""
        listener = getattr(self, "thread", None)
        if isinstance(listener, asyncio.Task) and not listener.done():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None


def make_client_manager(settings: Settings, on_gap: GapCallback | None = None) -> FanoutManager:
    """The manager for ``socketio.AsyncServer(client_manager=...)``: Redis-backed when
    ``settings.redis_url`` is set, in-process otherwise."""
    limits = Limits(settings.socket_max_buffer_bytes, settings.socket_max_queued)
    if settings.redis_url:
        return FanoutRedisManager(settings.redis_url, channel=settings.redis_channel, limits=limits, on_gap=on_gap)
    return FanoutManager(limits)
