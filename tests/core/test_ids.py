"""Row ids: random, URL-safe, and usable as command-line arguments."""

from __future__ import annotations

import secrets

import pytest

from server.core import ids


def test_an_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    made = iter(["-starts-with-a-dash-xx", "_fine-after-the-retry_"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(made))
    assert ids.new_id() == "_fine-after-the-retry_"


def test_ids_are_22_url_safe_characters() -> None:
    for _ in range(2000):
        value = ids.new_id()
        assert len(value) == 22 and ids.is_id(value) and not value.startswith("-")
