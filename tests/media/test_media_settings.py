"""Media configuration (PARLEY_MEDIA_ENGINE, PARLEY_JANUS_URL, PARLEY_ICE_SERVERS,
PARLEY_TURN_SECRET): defaults, clear refusals at start-up, and short-lived TURN
credentials that coturn's use-auth-secret accepts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.config import load_settings
from server.media.ice import ice_servers_for, turn_credential

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("PARLEY_MEDIA_ENGINE", "PARLEY_JANUS_URL", "PARLEY_JANUS_API_SECRET", "PARLEY_JANUS_ADMIN_KEY", "PARLEY_ICE_SERVERS",
                 "PARLEY_TURN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    return monkeypatch


def test_defaults_are_the_embedded_engine_without_ice_servers(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.media_engine == "embedded" and settings.janus_url is None and settings.ice_servers == ()
    assert "turn_secret=" not in repr(settings)  # secrets never printed


def test_janus_needs_its_url(env: pytest.MonkeyPatch) -> None:
    env.setenv("PARLEY_MEDIA_ENGINE", "janus")
    with pytest.raises(ValueError, match="PARLEY_JANUS_URL"):
        load_settings()
    env.setenv("PARLEY_JANUS_URL", "http://janus:8088/janus/")
    env.setenv("PARLEY_JANUS_API_SECRET", "s3cret")
    env.setenv("PARLEY_JANUS_ADMIN_KEY", "adm1n")
    settings = load_settings()
    assert settings.media_engine == "janus" and settings.janus_url == "http://janus:8088/janus"
    assert settings.janus_api_secret == "s3cret" and settings.janus_admin_key == "adm1n"
    assert "s3cret" not in repr(settings) and "adm1n" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PARLEY_MEDIA_ENGINE", "zoom", "embedded or janus"),
        ("PARLEY_JANUS_URL", "janus:8088", "http"),
        ("PARLEY_ICE_SERVERS", "{not json", "JSON list"),
        ("PARLEY_ICE_SERVERS", '{"urls": "stun:x"}', "JSON list"),
        ("PARLEY_ICE_SERVERS", '[{"urls": "http://x"}]', "stun:, turn: or turns:"),
        ("PARLEY_ICE_SERVERS", '[{"urls": "stun:x", "password": "p"}]', "optionally username"),
        ("PARLEY_ICE_SERVERS", '[{"urls": ["turn:turn.example.org:3478"]}]', "PARLEY_TURN_SECRET"),
    ],
)
def test_bad_media_settings_are_refused_clearly(env: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    env.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        load_settings()


def test_turn_credentials_are_per_participant_and_expire(env: pytest.MonkeyPatch) -> None:
    env.setenv("PARLEY_ICE_SERVERS", json.dumps([
        {"urls": "stun:stun.example.org:3478"},
        {"urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]},
    ]))
    env.setenv("PARLEY_TURN_SECRET", "shared-with-coturn")
    settings = load_settings()
    mine = ice_servers_for(settings.ice_servers, settings.turn_secret, "membership-1", NOW)
    theirs = ice_servers_for(settings.ice_servers, settings.turn_secret, "membership-2", NOW)
    assert mine[0] == {"urls": ["stun:stun.example.org:3478"]}  # STUN needs no credential
    username, credential = mine[1]["username"], mine[1]["credential"]
    assert username == f"{int((NOW + timedelta(hours=12)).timestamp())}:membership-1"
    # What coturn computes with use-auth-secret: base64(HMAC-SHA1(secret, username)).
    expected = base64.b64encode(hmac.new(b"shared-with-coturn", username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected
    assert theirs[1]["credential"] != credential
    assert "shared-with-coturn" not in json.dumps(mine)
    later_user, _ = turn_credential("shared-with-coturn", "membership-1", NOW + timedelta(hours=1))
    assert later_user != username


def test_a_static_turn_login_is_passed_through(env: pytest.MonkeyPatch) -> None:
    env.setenv("PARLEY_ICE_SERVERS", '[{"urls": "turn:t.example.org", "username": "u", "credential": "c"}]')
    settings = load_settings()
    assert ice_servers_for(settings.ice_servers, None, "m", NOW) == [
        {"urls": ["turn:t.example.org"], "username": "u", "credential": "c"}
    ]
