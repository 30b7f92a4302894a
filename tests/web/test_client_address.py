"""The address the login throttle counts: the peer, and X-Forwarded-For only from a
configured proxy (a client can write anything in that header)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.config import Settings, load_settings
from server.web.auth import client_address
from server.web.keys import SETTINGS


def request_from(peer: str, forwarded: str | None, trusted: tuple[str, ...], tmp_path: Path) -> web.Request:
    app = web.Application()
    app[SETTINGS] = replace(_settings(tmp_path), trusted_proxies=trusted)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return make_mocked_request("POST", "/login", headers=headers, app=app).clone(remote=peer)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path, database_url="sqlite+aiosqlite://", redis_url=None, storage_dir=tmp_path,
        host="127.0.0.1", port=1, base_url="http://127.0.0.1:1", allowed_origins=("http://127.0.0.1:1",),
        secret_key=b"k",
    )


def test_forwarded_for_is_ignored_by_default(tmp_path: Path) -> None:
    assert client_address(request_from("198.51.100.9", "203.0.113.1", (), tmp_path)) == "198.51.100.9"


def test_forwarded_for_from_a_trusted_proxy(tmp_path: Path) -> None:
    trusted = ("172.16.0.0/12",)
    # nginx appends the client it saw; earlier entries are the client's own claims.
    r = request_from("172.18.0.5", "6.6.6.6, 203.0.113.1", trusted, tmp_path)
    assert client_address(r) == "203.0.113.1"
    # A chain of trusted proxies is skipped from the right.
    r = request_from("172.18.0.5", "203.0.113.1, 172.18.0.9", trusted, tmp_path)
    assert client_address(r) == "203.0.113.1"
    # The same header from an untrusted peer is not believed.
    assert client_address(request_from("198.51.100.9", "203.0.113.1", trusted, tmp_path)) == "198.51.100.9"
    # A trusted peer without the header is the client itself.
    assert client_address(request_from("172.18.0.5", None, trusted, tmp_path)) == "172.18.0.5"


def test_trusted_proxies_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("PARLEY_SECRET_KEY", "k")
    monkeypatch.setenv("PARLEY_TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12")
    assert load_settings().trusted_proxies == ("10.0.0.1", "172.16.0.0/12")
    monkeypatch.setenv("PARLEY_TRUSTED_PROXIES", "nginx")
    with pytest.raises(ValueError, match="PARLEY_TRUSTED_PROXIES"):
        load_settings()
