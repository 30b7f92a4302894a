"""The server's Ed25519 signing key: audit checkpoints now, signed minutes later.

The private key lives in a file outside the database (``var/signing_key.pem`` or
``PARLEY_SIGNING_KEY_FILE``), created owner-only on first use, so that someone with
only database access can neither forge a signature nor learn the key. Anyone holding
the public key (``parley keys show``) can check a signature without the server.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.config import Settings


def key_path(settings: Settings) -> Path:
    return settings.signing_key_file or settings.var_dir / "signing_key.pem"


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """A public key as ``parley keys show`` prints it: PEM or base64 of the raw 32 bytes."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_public_key(text.encode())
            if not isinstance(loaded, Ed25519PublicKey):
                raise ValueError("not an Ed25519 public key")
            return cls(loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        raw = base64.b64decode(text, validate=True)
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key has 32 bytes")
        return cls(raw)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.raw).decode()

    @property
    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw key, hex: short enough to read aloud in parts, and what a
        signature's record names so a rotated key is recognised as another key."""
        return hashlib.sha256(self.raw).hexdigest()

    def verify(self, data: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public_key = PublicKey(
            private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(loaded)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """The key in ``path``, created there (mode 0600, directory 0700) if absent.
        Two processes starting together agree: only one creates, the other loads."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = cls.generate()
        pem = key._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            # Owner-only from the moment the file exists, before the key is written.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls.load(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return key

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)


def load_public_key(path: Path) -> PublicKey | None:
    """The public half of the key in ``path``, or None when there is no key file (a
    check must not create a key it would then trust)."""
    if not path.exists():
        return None
    return SigningKey.load(path).public_key
