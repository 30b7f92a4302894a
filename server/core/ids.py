"""Opaque, random identifiers and secret tokens."""

from __future__ import annotations

import re
import secrets

# 16 random bytes = 128 bits; URL-safe base64 without padding (22 characters).
ID_BYTES = 16
TOKEN_BYTES = 32  # invitation and login tokens: 256 bits


def new_id() -> str:
    """A random id for a row that appears in URLs; never sequential, and never starting
    with "-", which a command line would read as an option (`parley client upload
    --session ID`). That takes under 6 bits from one character in 64: 122 stay random."""
    while True:
        found = secrets.token_urlsafe(ID_BYTES)
        if not found.startswith("-"):
            return found


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_id(value: object) -> bool:
    """Whether a value from outside has the shape of an id (anything else names nothing;
    in particular no NUL byte, which PostgreSQL refuses in text, reaches a query)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
