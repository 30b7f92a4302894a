"""Parley's client for the Janus WebRTC server's HTTP API.

Browsers never talk to Janus's API: Parley makes every request itself (sessions, plugin
handles, VideoRoom rooms, publishers and subscribers), always with the deployment's API
secret, and relays only what a browser needs (SDP and ICE candidates) over its own
Socket.IO events. Media (RTP) flows directly between the browsers and Janus.

The HTTP API (janus.transport.http) is request/response for synchronous requests
(``create``, ``attach``, most VideoRoom management requests) and answers ``ack`` for
asynchronous ones (``join``, ``configure``, ``start``), whose result arrives later as an
``event`` on the session's long poll (``GET /janus/<session>``). ``JanusSession`` keeps
one long poll per session running and hands each event to the request waiting for its
transaction. There is no maintained asyncio client for this API on PyPI, hence this
module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

log = logging.getLogger("parley.media.janus")

VIDEOROOM = "janus.plugin.videoroom"
REQUEST_TIMEOUT = 10.0
LONG_POLL_EVENTS = 10


class JanusError(Exception):
    """Janus refused a request (``code`` is Janus's or the plugin's error code)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class JanusUnavailable(Exception):
    """Janus could not be reached or did not answer in time."""


def _transaction() -> str:
    return secrets.token_urlsafe(12)


def _raise_for(reply: dict[str, Any]) -> None:
    if reply.get("janus") == "error":
        err = reply.get("error") or {}
        raise JanusError(int(err.get("code", 0)), str(err.get("reason", "unknown error")))
    data = (reply.get("plugindata") or {}).get("data") or {}
    if "error_code" in data or "error" in data:
        raise JanusError(int(data.get("error_code", 0)), str(data.get("error", "plugin error")))


@dataclass
class JanusClient:
    """One Janus server: its HTTP API base URL (``.../janus``) and API secret."""

    url: str
    api_secret: str | None
    http: aiohttp.ClientSession | None = None
    _own_http: bool = field(default=False, repr=False)

    async def __aenter__(self) -> JanusClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    def _session(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
            self._own_http = True
        return self.http

    async def close(self) -> None:
        if self._own_http and self.http is not None:
            await self.http.close()
            self.http = None

    async def fetch(
        self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None,
        seconds: float = REQUEST_TIMEOUT,
    ) -> Any:
        """One HTTP exchange with the API: its JSON answer, or ``JanusUnavailable``."""
        try:
            async with self._session().request(
                method, f"{self.url}{path}", json=body, params=params, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as r:
                return await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JanusUnavailable(f"Janus did not answer: {type(exc).__name__}") from exc

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One API request; returns Janus's reply (``success``, ``ack``, ...) or raises."""
        payload = {**body, "transaction": body.get("transaction") or _transaction()}
        if self.api_secret:
            payload["apisecret"] = self.api_secret
        reply: dict[str, Any] = await self.fetch("POST", path, body=payload)
        _raise_for(reply)
        return reply

    async def info(self) -> dict[str, Any]:
        reply: dict[str, Any] = await self.fetch("GET", "/info")
        return reply

    async def create_session(self) -> JanusSession:
        reply = await self.post("", {"janus": "create"})
        session = JanusSession(self, int(reply["data"]["id"]))
        session.start()
        return session


class JanusSession:
    """A Janus session with its long poll; requests that Janus answers asynchronously
    wait here for their event."""

    def __init__(self, client: JanusClient, session_id: int) -> None:
        self.client = client
        self.id = session_id
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._poll: asyncio.Task[None] | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)  # unsolicited events
        self.closed = False

    def start(self) -> None:
        self._poll = asyncio.get_running_loop().create_task(self._long_poll(), name=f"janus-poll-{self.id}")

    async def _long_poll(self) -> None:
        params = {"maxev": str(LONG_POLL_EVENTS)}
        if self.client.api_secret:
            params["apisecret"] = self.client.api_secret
        failures = 0
        while not self.closed:
            try:
                got = await self.client.fetch("GET", f"/{self.id}", params=params, seconds=60)
                failures = 0
            except Exception as exc:  # Janus away: keep trying, the session may still live
                failures += 1
                log.warning("janus long poll failed (%d): %s", failures, exc)
                await asyncio.sleep(min(5.0, 0.2 * 2**failures))
                continue
            for event in got if isinstance(got, list) else [got]:
                self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        future = self._waiting.pop(str(event.get("transaction")), None)
        if future is not None and not future.done():
            future.set_result(event)
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.events.put_nowait(event)

    async def request(self, body: dict[str, Any], handle: int | None = None) -> dict[str, Any]:
        """Send a request on this session (or one of its handles). For an asynchronous
        request, wait for its event and return it; otherwise return the reply."""
        transaction = _transaction()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = future
        path = f"/{self.id}" if handle is None else f"/{self.id}/{handle}"
        try:
            reply = await self.client.post(path, {**body, "transaction": transaction})
            if reply.get("janus") != "ack" or body.get("janus") == "keepalive":
                return reply
            try:
                event = await asyncio.wait_for(future, REQUEST_TIMEOUT)
            except TimeoutError as exc:
                raise JanusUnavailable("Janus did not send the request's event in time") from exc
            _raise_for(event)
            return event
        finally:
            self._waiting.pop(transaction, None)

    async def attach(self, plugin: str = VIDEOROOM) -> int:
        reply = await self.request({"janus": "attach", "plugin": plugin})
        return int(reply["data"]["id"])

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        """A plugin request; returns the plugin's data (and ``jsep`` under ``"jsep"``)."""
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        reply = await self.request(request, handle)
        data: dict[str, Any] = dict((reply.get("plugindata") or {}).get("data") or {})
        if "jsep" in reply:
            data["jsep"] = reply["jsep"]
        return data

    async def trickle(self, handle: int, candidate: dict[str, Any] | None) -> None:
        body: dict[str, Any] = {"janus": "trickle", "candidate": candidate or {"completed": True}}
        await self.client.post(f"/{self.id}/{handle}", body)

    async def detach(self, handle: int) -> None:
        await self.client.post(f"/{self.id}/{handle}", {"janus": "detach"})

    async def keepalive(self) -> None:
        await self.client.post(f"/{self.id}", {"janus": "keepalive"})

    async def destroy(self) -> None:
        self.closed = True
        try:
            await self.client.post(f"/{self.id}", {"janus": "destroy"})
        finally:
            if self._poll is not None:
                self._poll.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poll
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(JanusUnavailable("the Janus session ended"))
