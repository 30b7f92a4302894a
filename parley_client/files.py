"""Pure decisions of the command-line client, kept apart to be tested alone: a safe
local name for a decrypted file, and what a resumed upload does with each chunk."""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Any

MAX_NAME_BYTES = 200
# Names Windows reserves for devices, with or without an extension (also refused on
# shared drives mounted from Linux).
_DEVICE_NAMES = re.compile(r"(CON|PRN|AUX|NUL|CLOCK\$|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])(\..*)?", re.IGNORECASE)


def safe_file_name(name: str, fallback: str = "document") -> str:
    """A file name to save under, from a name someone else chose: one component (no
    separators, never a path, no ``..``), no control or invisible formatting
    characters (no bidirectional overrides), not hidden, not a device name, not empty,
    at most 200 UTF-8 bytes with the extension kept."""
    text = unicodedata.normalize("NFC", name)
    text = "".join(
        "_" if c in "/\\:" else c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
    )
    text = text.strip().strip(".").strip()
    if _DEVICE_NAMES.fullmatch(text) or _DEVICE_NAMES.fullmatch(text.split(".")[0]):
        text = "_" + text
    text = _shorten(text, MAX_NAME_BYTES)
    if not text or set(text) <= {".", "_", " "}:
        return fallback
    return text


def _shorten(text: str, limit: int) -> str:
    if len(text.encode("utf-8")) <= limit:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 20:
        stem, ext = text, ""
    keep = limit - len(ext.encode("utf-8")) - (1 if ext else 0)
    cut = stem.encode("utf-8")[:keep].decode("utf-8", errors="ignore").rstrip(". ")
    return f"{cut}.{ext}" if ext else cut


class Start(StrEnum):
    NEW = "new"  # no usable state: a new version with a new key
    RESUME = "resume"  # same version, same key: send what the server lacks
    DONE = "done"  # the server already has it complete


def resume_decision(state: dict[str, Any] | None, file_size: int, server: dict[str, Any] | None) -> Start:
    """Whether an upload of a file resumes. ``state`` is what this client recorded,
    ``server`` the answer of GET /api/versions/{v}/upload (None when that version is
    unknown or not ours any more)."""
    if state is None or server is None:
        return Start.NEW
    if server.get("complete") is True:
        return Start.DONE
    if state.get("size") != file_size:
        return Start.NEW  # a changed file starts over with a new key
    return Start.RESUME


class Chunk(StrEnum):
    SEND = "send"
    SKIP = "skip"
    RESTART = "restart"


def plaintext_decision(recorded: str | None, current: str) -> Chunk:
    """Before encrypting chunk i again under the same key and nonce: only the same
    plaintext may be (a changed chunk would reuse the nonce for other bytes)."""
    return Chunk.RESTART if recorded is not None and recorded != current else Chunk.SEND


def ciphertext_decision(stored: str | None, current: str) -> Chunk:
    """After encrypting: the server lacks it (send), has it (skip), or has other bytes
    under that index (the state cannot be trusted: start over)."""
    if stored is None:
        return Chunk.SEND
    return Chunk.SKIP if stored == current else Chunk.RESTART
