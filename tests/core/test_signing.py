"""The server's Ed25519 key: created once, owner-only, signs bytes that its public key
(and only its public key) verifies."""

from __future__ import annotations

import stat
from pathlib import Path

from server.core.signing import PublicKey, SigningKey, load_public_key


def test_load_or_create(tmp_path: Path) -> None:
    path = tmp_path / "var" / "signing_key.pem"
    assert load_public_key(path) is None and not path.exists()
    key = SigningKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = SigningKey.load_or_create(path)
    assert again.public_key == key.public_key == load_public_key(path)
    assert len(key.public_key.fingerprint) == 64


def test_sign_and_verify(tmp_path: Path) -> None:
    key = SigningKey.load_or_create(tmp_path / "k.pem")
    signature = key.sign(b"minutes v1")
    assert key.public_key.verify(b"minutes v1", signature)
    assert not key.public_key.verify(b"minutes v2", signature)
    assert not SigningKey.generate().public_key.verify(b"minutes v1", signature)
    assert not key.public_key.verify(b"minutes v1", b"short")
    assert PublicKey.from_text(key.public_key.pem) == PublicKey.from_text(key.public_key.base64)
