"""Security headers on every response, including those no handler returned (redirects,
the router's 404 and 405, 413), HSTS behind https, and a Server header that names no
versions."""

from __future__ import annotations

import io
from dataclasses import replace

import aiohttp

from server.config import Settings
from server.web.middleware import SECURITY_HEADERS
from tests.conftest import LiveServer, http_client, login, start_server
from tests.fixtures.world import World

BIG = 2 * 1024 * 1024


def assert_page_headers(r: aiohttp.ClientResponse, what: object) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (what, name, r.headers.get(name))
    assert r.headers.get("Server") == "Parley", (what, r.headers.get("Server"))
    assert "Strict-Transport-Security" not in r.headers, what  # plain http base URL


async def test_every_kind_of_response_carries_the_headers(server: LiveServer, world: World) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    v = world.visit_id
    requests: list[tuple[str | None, str, str, dict[str, object], int]] = [
        (None, "GET", "/login", {}, 200),
        (None, "GET", f"/visits/{v}", {}, 303),                 # redirect to the login page
        (None, "GET", "/", {}, 303),
        (cookie, "GET", f"/invite/{world.members['secretariat'].invite_token}", {}, 303),  # already signed in
        (None, "GET", "/no/such/page", {}, 404),                # the router's 404
        (None, "GET", "/api/no/such/thing", {}, 404),
        (cookie, "DELETE", "/login", {}, 405),                  # the router's 405
        (cookie, "PUT", "/api/me/logins", {}, 405),
        (None, "POST", "/login", {"data": io.BytesIO(b"x" * BIG),
                                  "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 413),
        (cookie, "PATCH", f"/api/sessions/{world.sessions['open']}",
         {"data": io.BytesIO(b"x" * BIG), "headers": {"Content-Type": "application/json"}}, 413),
        (None, "GET", "/static/css/parley.css", {}, 200),
        (None, "GET", "/static/js/nothing-here.js", {}, 404),
        (None, "GET", "/healthz", {}, 200),
    ]
    for who, method, path, kwargs, status in requests:
        async with http_client(server, who) as http:
            async with http.request(method, path, allow_redirects=False, **kwargs) as r:  # type: ignore[arg-type]
                assert r.status == status, (method, path, r.status)
                assert_page_headers(r, (method, path))
                if status >= 300 and not path.startswith("/static/"):
                    assert r.headers.get("Cache-Control") == "no-store", (method, path)


async def test_socket_io_names_no_versions_either(server: LiveServer) -> None:
    async with http_client(server, None) as http:
        async with http.get("/socket.io/?EIO=4&transport=polling") as r:
            assert r.headers.get("Server") == "Parley"
            assert r.headers.get("X-Content-Type-Options") == "nosniff"
        async with http.get("/socket.io/?EIO=1&transport=carrier-pigeon") as r:
            assert r.status == 400 and r.headers.get("Server") == "Parley"


async def test_hsts_when_the_base_url_is_https(settings: Settings) -> None:
    """Behind a TLS proxy the server itself speaks http, but its public URL is https."""
    public = "https://parley.example.org"
    live, runner = await start_server(replace(settings, base_url=public, allowed_origins=(public,)))
    try:
        async with aiohttp.ClientSession(base_url=f"http://{settings.host}:{settings.port}") as http:
            for path in ("/login", "/no/such/page", "/", "/socket.io/?EIO=4&transport=polling"):
                async with http.get(path, allow_redirects=False) as r:
                    hsts = r.headers.get("Strict-Transport-Security", "")
                    assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 31536000, path
                    assert r.headers.get("Server") == "Parley"
    finally:
        await runner.cleanup()
    assert live.url == public
