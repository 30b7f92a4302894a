"""A small HTTP client for Parley's JSON API: the login cookie, the Origin header the
server wants on state-changing requests, error bodies turned into messages, and
streamed downloads. Standard library only (http.client), no redirects followed."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from parley_client.errors import EvidenceError

COOKIE_NAME = "parley_session"
TIMEOUT = 120.0
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class ApiError(EvidenceError):
    """The server refused or failed: the status, its error code and its message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}{', ' + code if code else ''})")
        self.status, self.code, self.message = status, code, message


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise ApiError(self.status, "", "The server's answer is not JSON") from err


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Not an http(s) URL: {url}")
    return f"{parts.scheme}://{parts.netloc}"


class Api:
    def __init__(self, server: str, cookie: str = "") -> None:
        self.server = origin_of(server)
        self.cookie = cookie
        parts = urlsplit(self.server)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=TIMEOUT,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=TIMEOUT)

    def _headers(self, method: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": "parley-client/1", "Accept": "application/json"}
        if method in UNSAFE:
            headers["Origin"] = self.server
        if self.cookie:
            headers["Cookie"] = f"{COOKIE_NAME}={self.cookie}"
        headers.update(extra or {})
        return headers

    def _take_cookie(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            if COOKIE_NAME in jar:
                self.cookie = jar[COOKIE_NAME].value

    def request(self, method: str, path: str, *, body: bytes | None = None, json_body: object = None,
                headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200, 201, 204)) -> Response:
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            extra["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            try:
                connection.request(method, path, body=body, headers=self._headers(method, extra))
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as err:
                raise ApiError(0, "network", f"Cannot reach {self.server}: {err}") from err
            self._take_cookie(response)
            if response.status not in ok:
                raise _error(response.status, data)
            return Response(response.status, response.headers, data)
        finally:
            connection.close()

    def get_json(self, path: str) -> Any:
        return self.request("GET", path).json()

    def send_json(self, method: str, path: str, value: object) -> Any:
        response = self.request(method, path, json_body=value)
        return response.json() if response.body else None

    @contextmanager
    def stream(self, path: str) -> Iterator[http.client.HTTPResponse]:
        """A GET whose body is read as it arrives (never whole in memory)."""
        connection = self._connection()
        try:
            try:
                connection.request("GET", path, headers=self._headers("GET", {"Accept": "application/octet-stream"}))
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as err:
                raise ApiError(0, "network", f"Cannot reach {self.server}: {err}") from err
            if response.status != 200:
                raise _error(response.status, response.read())
            yield response
        finally:
            connection.close()


def _error(status: int, data: bytes) -> ApiError:
    try:
        error = json.loads(data)["error"]
        return ApiError(status, str(error.get("code", "")), str(error.get("message", "")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiError(status, "", {401: "Not signed in (the login has ended: enroll again)",
                                     403: "Not allowed", 404: "Not found", 410: "Gone: the link was used or has ended",
                                     413: "Too large"}.get(status, "The server refused the request"))
