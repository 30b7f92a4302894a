"""Hashing of secrets: tokens (keyed hash) and passwords (Argon2id)."""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

# Argon2id with the library's RFC 9106 "low memory" defaults (64 MiB, t=3).
_hasher = PasswordHasher()


def token_hash(secret_key: bytes, token: str) -> str:
    """Keyed hash of a high-entropy token, so a database dump cannot replay it.

    Tokens carry 256 random bits, so a fast keyed hash is enough (no KDF needed);
    the key means a leaked table alone is not even useful for offline matching.
    """
    return hmac.new(secret_key, token.encode(), hashlib.sha256).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, InvalidHashError):
        return False
