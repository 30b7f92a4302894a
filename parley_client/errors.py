"""The three ways evidence handling fails, each with a message meant for people."""

from __future__ import annotations


class EvidenceError(Exception):
    """Base of every error parley_client raises on purpose."""


class FormatError(EvidenceError, ValueError):
    """Input that does not have the form docs/evidence.md fixes (encoding, JSON, fields)."""


class DecryptError(EvidenceError):
    """Ciphertext that does not open: altered, truncated, reordered, or the wrong key."""


class TrustError(EvidenceError):
    """Well-formed but not to be believed: a bad signature, a wrong fingerprint, a
    recipient list that does not name this device, a broken key commitment."""
