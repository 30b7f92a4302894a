"""b64u, canonical JSON and ids, exactly as docs/evidence.md "Conventions" fixes them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from parley_client.errors import FormatError

_B64U = re.compile(r"[A-Za-z0-9_-]*")
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    """Strict inverse of :func:`b64u`: no padding, no other alphabet, no whitespace, and
    no stray bits in the last character (so every value has exactly one spelling)."""
    if not isinstance(text, str) or not _B64U.fullmatch(text) or len(text) % 4 == 1:
        raise FormatError("Not base64url without padding.")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise FormatError("Not base64url without padding.") from err
    if b64u(data) != text:
        raise FormatError("Not the canonical base64url spelling (stray bits at the end).")
    return data


def _check_value(value: object, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise FormatError(f"{where}: canonical JSON holds no booleans, null or floats.")
    if isinstance(value, int):
        return
    if isinstance(value, str):
        if not value.isascii():
            raise FormatError(f"{where}: canonical JSON holds only ASCII strings.")
        if "\x7f" in value:
            # Python escapes DEL as \u007f, JSON.stringify writes it raw: the one ASCII
            # character whose canonical bytes would differ between the two clients.
            raise FormatError(f"{where}: canonical JSON holds no DEL character.")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise FormatError(f"{where}: object keys must be ASCII strings.")
            _check_value(item, f"{where}.{key}")
        return
    raise FormatError(f"{where}: {type(value).__name__} is not allowed in canonical JSON.")


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, only ASCII strings, integers, lists and objects."""
    _check_value(value, "value")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise FormatError(f"Duplicate key {key!r} in JSON.")
        out[key] = value
    return out


def _refuse_float(text: str) -> object:
    raise FormatError("canonical JSON holds no floats.")


def _refuse_constant(text: str) -> object:
    raise FormatError(f"canonical JSON holds no {text}.")


def parse_canonical(text: str | bytes) -> dict[str, Any]:
    """A canonical JSON object, refused unless re-canonicalising gives the same bytes."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    try:
        value = json.loads(
            raw, object_pairs_hook=_no_duplicates, parse_float=_refuse_float, parse_constant=_refuse_constant
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"Not JSON: {err}.") from err
    if not isinstance(value, dict):
        raise FormatError("Not a JSON object.")
    if canonical_json(value) != raw:
        raise FormatError("Not canonical JSON (keys unsorted, whitespace, or escapes that differ).")
    return value


def check_id(value: object, what: str = "id") -> str:
    """A server id: URL-safe characters (the server makes 22 of them)."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise FormatError(f"{what}: not a server id.")
    return value
