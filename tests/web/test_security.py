"""HTTP hardening: security headers with a strict CSP, Origin checks on every
state-changing request, and JSON errors that always have one shape and never leak a
traceback."""

from __future__ import annotations

import io
import re
from typing import Any

import aiohttp
import pytest

from server.visits import service as visits
from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World


def csp_directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


def blocked_by_csp(html: str) -> list[str]:
    """Inline code a CSP without 'unsafe-inline' blocks (so the page would silently break)."""
    found = re.findall(r"<style\b[^>]*>|\sstyle=\"|\son[a-z]+=", html)
    for tag in re.findall(r"<script\b[^>]*>", html):
        if "src=" not in tag and 'type="application/json"' not in tag:
            found.append(tag)
    return found


def assert_error_shape(body: Any, code: str | None = None) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body


def assert_no_leak(text: str) -> None:
    for marker in ("Traceback", 'File "', "/server/", "sqlalchemy", "Exception"):
        assert marker not in text, f"{marker!r} leaked: {text[:500]}"


async def test_pages_carry_security_headers(server: LiveServer, world: World) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    pages = [
        (None, "/login", 200),
        (None, f"/invite/{world.members['expert'].invite_token}", 200),
        (None, "/invite/no-such-token", 410),
        (cookie, f"/visits/{world.visit_id}", 200),
        (cookie, f"/sessions/{world.sessions['open']}", 200),
        (cookie, "/me", 200),
        (cookie, f"/visits/{'x' * 22}", 404),
        (cookie, "/api/me", 200),
        (None, "/api/me", 401),
        (None, "/healthz", 200),
    ]
    for who, path, status in pages:
        async with http_client(server, who) as http, http.get(path, allow_redirects=False) as r:
            assert r.status == status, (path, r.status)
            h = r.headers
            assert h["X-Content-Type-Options"] == "nosniff", path
            assert h["Referrer-Policy"] == "no-referrer", path
            csp = h["Content-Security-Policy"]
            assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, csp
            directives = csp_directives(csp)
            for name, sources in directives.items():
                assert "*" not in sources and not any(s.startswith("*") for s in sources), (name, sources)
                assert "http:" not in sources and "https:" not in sources, (name, sources)
            assert directives["default-src"] in (["'none'"], ["'self'"]), directives
            assert directives.get("script-src", directives["default-src"]) in (["'self'"], ["'none'"])
            assert directives["frame-ancestors"] == ["'none'"]
            if r.content_type == "text/html":
                html = await r.text()
                assert '<html lang="' in html, path
                assert not blocked_by_csp(html), (path, blocked_by_csp(html))
                assert r.headers.get("Cache-Control") == "no-store", path


async def test_state_changes_need_an_allowed_origin(server: LiveServer, world: World) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    member = world.members["expert2"]
    requests = [
        ("POST", f"/api/visits/{world.visit_id}/participants/{member.membership_id}/invitation", None),
        ("PATCH", f"/api/visits/{world.visit_id}/participants/{member.membership_id}", {"role": "observer"}),
        ("PATCH", f"/api/sessions/{world.sessions['open']}", {"access": "closed"}),
        ("POST", "/api/me/logins/anything/revoke", None),
    ]
    origins: list[dict[str, str]] = [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": server.origin + ".evil.example"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    ]
    cookies = {"parley_session": sec}
    async with aiohttp.ClientSession(base_url=server.url, cookies=cookies) as http:
        for method, path, body in requests:
            for headers in origins:
                async with http.request(method, path, json=body, headers=headers) as r:
                    assert r.status == 403, (method, path, headers, r.status)
                    assert_error_shape(await r.json(), "forbidden")
        # Nothing happened: expert2 is still an expert, the session still open.
        async with http.get(f"/api/visits/{world.visit_id}/participants") as r:
            roles = {p["membership_id"]: p["role"] for p in (await r.json())["participants"]}
        assert roles[member.membership_id] == "expert"
        async with http.get(f"/api/sessions/{world.sessions['open']}") as r:
            assert (await r.json())["access"] == "open"


async def test_join_and_login_forms_need_an_allowed_origin(server: LiveServer, world: World) -> None:
    token = world.members["expert"].invite_token
    async with aiohttp.ClientSession(base_url=server.url) as http:
        for headers in ({}, {"Origin": "https://evil.example"}):
            async with http.post(f"/invite/{token}", headers=headers, allow_redirects=False) as r:
                assert r.status == 403, (headers, r.status)
                assert "parley_session" not in r.cookies
            async with http.post("/login", data={"email": "a@b.c", "password": "x"}, headers=headers) as r:
                assert r.status == 403
            async with http.post(
                f"/invite/{token}", headers={**headers, "Accept": "application/json"}, allow_redirects=False
            ) as r:
                assert r.status == 403
                assert_error_shape(await r.json(), "forbidden")
        # A refused POST did not spend the link.
        async with http.get(f"/invite/{token}") as r:
            assert r.status == 200


BAD_REQUESTS = [
    ("GET", "/api/unknown", 404, "not_found"),
    ("GET", "/api/visits/" + "x" * 22, 404, "not_found"),
    ("GET", "/api/visits/" + "v" * 300, 404, "not_found"),
    ("GET", "/api/visits/%27%20OR%201=1--", 404, "not_found"),
    ("GET", "/api/visits/%00", 404, "not_found"),
    ("GET", "/api/sessions/" + "s" * 300, 404, "not_found"),
    ("GET", "/api/sessions/does-not-exist", 404, "not_found"),
    ("GET", "/api/visits/does-not-exist/audit", 404, "not_found"),
    ("DELETE", "/api/me", 405, "invalid"),
    ("PUT", "/api/me/logins", 405, "invalid"),
]


async def test_json_errors_have_one_shape(server: LiveServer, world: World) -> None:
    cookie = await login(server, world.members["expert"].invite_token)
    async with http_client(server, cookie) as http:
        for method, path, status, code in BAD_REQUESTS:
            async with http.request(method, path) as r:
                assert r.status == status, (method, path, r.status)
                assert r.content_type == "application/json", (method, path)
                assert_no_leak(await r.text())
                assert_error_shape(await r.json(), code)


async def test_bad_bodies_get_json_errors(server: LiveServer, world: World) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    member = world.members["expert2"].membership_id
    role_url = f"/api/visits/{world.visit_id}/participants/{member}"
    session_url = f"/api/sessions/{world.sessions['open']}"
    cases: list[tuple[str, dict[str, Any], int]] = [
        (role_url, {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        (role_url, {"json": {"role": "emperor"}}, 400),
        (role_url, {"json": ["role", "expert"]}, 400),
        (role_url, {"json": {"role": "expert", "extra": 1}}, 400),
        (session_url, {"json": {"access": "everyone"}}, 400),
        (session_url, {"json": {"requires_admission": "yes"}}, 400),
        (session_url, {"json": {"chair_membership_id": "nobody-here"}}, 404),
        (session_url, {"data": io.BytesIO(b"x" * (2 * 1024 * 1024)), "headers": {"Content-Type": "application/json"}}, 413),
    ]
    async with http_client(server, sec) as http:
        for url, kwargs, status in cases:
            async with http.patch(url, **kwargs) as r:
                assert r.status == status, (url, kwargs.get("json"), r.status, await r.text())
                text = await r.text()
                assert_no_leak(text)
                assert_error_shape(await r.json())


async def test_unexpected_errors_say_nothing(server: LiveServer, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_: Any, **__: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(visits, "participants", boom)
    cookie = await login(server, world.members["expert"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.get(f"/api/visits/{world.visit_id}/participants") as r:
            assert r.status == 500
            text = await r.text()
            assert "hunter2" not in text and "secret internals" not in text
            assert_no_leak(text)
            assert_error_shape(await r.json(), "internal")
        async with http.get(f"/visits/{world.visit_id}") as r:  # the page says as little
            assert r.status == 500
            text = await r.text()
            assert "hunter2" not in text
            assert_no_leak(text)


async def test_healthz(server: LiveServer) -> None:
    async with http_client(server, None) as http, http.get("/healthz") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        body = await r.json()
    assert body["status"] == "ok"


async def test_static_files_stay_in_their_directories(server: LiveServer) -> None:
    async with http_client(server, None) as http:
        for path in ("/static/js/../../server/config.py", "/static/js/%2e%2e/%2e%2e/pyproject.toml",
                     "/static/vendor/..%2f..%2fpyproject.toml", "/static/vendor/unknown.js"):
            async with http.get(path) as r:
                assert r.status in (403, 404), (path, r.status)
                assert "[project]" not in await r.text()


async def test_pdfjs_data_files_are_served_and_nothing_else(server: LiveServer) -> None:
    """pdf.js's worker fetches its standard fonts, CMaps and JavaScript image decoders
    from Parley; the WebAssembly builds (which the CSP would not compile) and anything
    outside those folders are 404."""
    async with http_client(server, None) as http:
        for path, kind in (("/static/vendor/pdfjs/fonts/LiberationSans-Regular.ttf", None),
                           ("/static/vendor/pdfjs/fonts/FoxitSerif.pfb", None),
                           ("/static/vendor/pdfjs/cmaps/UniJIS-UTF16-H.bcmap", None),
                           ("/static/vendor/pdfjs/wasm/openjpeg_nowasm_fallback.js", "javascript")):
            async with http.get(path) as r:
                assert r.status == 200, path
                assert len(await r.read()) > 1000
                if kind:
                    assert kind in r.content_type, (path, r.content_type)
        for path in ("/static/vendor/pdfjs/wasm/openjpeg.wasm", "/static/vendor/pdfjs/fonts/LICENSE_FOXIT",
                     "/static/vendor/pdfjs/fonts/..%2f..%2f..%2f..%2fpyproject.toml",
                     "/static/vendor/pdfjs/build/pdf.mjs", "/static/vendor/pdfjs/iccs/LICENSE"):
            async with http.get(path) as r:
                assert r.status == 404, (path, r.status)


async def test_nul_bytes_are_refused_not_crashed_on(server: LiveServer, world: World) -> None:
    """PostgreSQL refuses NUL in text: such input must be a clean 4xx / error ack, never a 500."""
    sec = await login(server, world.members["secretariat"].invite_token)
    v = world.visit_id
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/api/visits/%00", None),
        ("GET", "/api/sessions/%00", None),
        ("GET", "/sessions/a%00b", None),
        ("GET", "/visits/a%00", None),
        ("POST", f"/api/visits/{v}/participants/%00/invitation", None),
        ("PATCH", f"/api/visits/{v}/participants/%00", {"role": "expert"}),
        ("PATCH", f"/api/sessions/{world.sessions['open']}", {"chair_membership_id": "\x00"}),
        ("POST", "/api/me/logins/%00/revoke", None),
        ("POST", "/me/logins/%00/revoke", None),
        ("GET", "/invite/%00", None),
        ("POST", "/invite/%00", None),
    ]
    async with http_client(server, sec) as http:
        for method, path, body in requests:
            async with http.request(method, path, json=body, allow_redirects=False) as r:
                assert 400 <= r.status < 500, (method, path, r.status)
                assert_no_leak(await r.text())
    async with http_client(server, None) as http:
        async with http.post("/login", data={"email": "a\x00@example.org", "password": "x\x00"}) as r:
            assert r.status == 401

    client = await socket_client(server, sec)
    sid = world.sessions["open"]
    try:
        assert (await client.call("room.join", {"session_id": sid}, timeout=10))["ok"]
        for event, payload in [
            ("room.join", {"session_id": "\x00"}),
            ("chat.send", {"session_id": sid, "text": "a\x00b", "idem": "k"}),
            ("chat.send", {"session_id": sid, "text": "ab", "idem": "k\x00"}),
            ("item.start", {"session_id": sid, "item_id": "\x00"}),
            ("floor.give", {"session_id": sid, "membership_id": "\x00"}),
        ]:
            ack = await client.call(event, payload, timeout=10)
            assert ack.get("error", {}).get("code") in {"invalid", "not_found"}, (event, ack)
        # The connection still works.
        ack = await client.call("chat.send", {"session_id": sid, "text": "still here", "idem": "k2"}, timeout=10)
        assert ack["ok"], ack
    finally:
        await client.disconnect()
