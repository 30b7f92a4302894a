"""The evidence formats the server checks (docs/evidence.md): b64u, canonical JSON,
device fingerprints and safety codes, and signatures.

Public-key operations only: the server verifies signatures and hashes ciphertext; it
holds no private key of anyone and opens no sealed value. Everything here is pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

DEVICE_LABEL = "parley/device/v1"
VERIFY_LABEL = "parley/verify/v1"
CROSS_SIGN_LABEL = "parley/cross-sign/v1"
MANIFEST_LABEL = "parley/manifest/v1"
SHARE_LABEL = "parley/share/v1"
CHUNK_SIZE = 1048576  # plaintext bytes of every chunk but the last
TAG_BYTES = 16  # what sealing adds to each chunk
CHUNK_STRIDE = CHUNK_SIZE + TAG_BYTES  # ciphertext bytes of every chunk but the last
WRAPPED_BYTES = 32 + 48  # HPKE enc || sealed 32-byte content key
SIG_ALGS = ("Ed25519", "ES256")

_B64U = re.compile(r"[A-Za-z0-9_-]*")


class FormatError(ValueError):
    """A value that does not have the documented form (the caller says where)."""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64u(text: object, *, length: int | None = None, max_length: int | None = None) -> bytes:
    """Strict base64url without padding: only the alphabet, and only the one spelling
    of each value (no stray bits in the last character)."""
    if not isinstance(text, str) or _B64U.fullmatch(text) is None or len(text) % 4 == 1:
        raise FormatError("not base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise FormatError("not base64url without padding") from None
    if b64u(data) != text:
        raise FormatError("not the canonical base64url spelling")
    if length is not None and len(data) != length:
        raise FormatError(f"must be {length} bytes")
    if max_length is not None and len(data) > max_length:
        raise FormatError(f"must be at most {max_length} bytes")
    return data


# ---- canonical JSON -----------------------------------------------------------------------


def _check_subset(value: Any, depth: int = 0) -> None:
    if depth > 16:
        raise FormatError("nested too deeply")
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise FormatError("only strings, integers, lists and objects are allowed")
    if isinstance(value, str):
        if not value.isascii():
            raise FormatError("strings must be ASCII")
    elif isinstance(value, int):
        return
    elif isinstance(value, list):
        for item in value:
            _check_subset(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise FormatError("object keys must be ASCII strings")
            _check_subset(item, depth + 1)
    else:
        raise FormatError("only strings, integers, lists and objects are allowed")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only; refuses values outside the subset."""
    _check_subset(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _refuse(name: str) -> Any:
    raise FormatError(f"{name} is not allowed")


def parse_canonical(text: object, *, max_bytes: int = 1024 * 1024) -> dict[str, Any]:
    """A signed object's text: it must parse to an object and be exactly its canonical
    bytes (a client re-canonicalises too, so anything else would read differently)."""
    if not isinstance(text, str):
        raise FormatError("must be a string holding canonical JSON")
    if len(text) > max_bytes:
        raise FormatError("too long")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise FormatError("must be ASCII") from None
    try:
        value = json.loads(raw, parse_float=lambda _: _refuse("a decimal number"), parse_constant=_refuse)
    except RecursionError:
        raise FormatError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise FormatError("must be a JSON object")
    if canonical_json(value) != raw:
        raise FormatError("not canonical JSON (sorted keys, no spaces, ASCII)")
    return value


# ---- devices ------------------------------------------------------------------------------


def check_device_keys(sig_alg: str, sig_pub: bytes, enc_pub: bytes) -> None:
    """The public keys must be well-formed points of their algorithm."""
    if sig_alg not in SIG_ALGS:
        raise FormatError("sig_alg must be Ed25519 or ES256")
    try:
        if sig_alg == "Ed25519":
            if len(sig_pub) != 32:
                raise FormatError("sig_pub: an Ed25519 key is 32 bytes")
            ed25519.Ed25519PublicKey.from_public_bytes(sig_pub)
        else:
            if len(sig_pub) != 65 or sig_pub[0] != 4:
                raise FormatError("sig_pub: an ES256 key is the 65-byte uncompressed point")
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sig_pub)
    except ValueError as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError("sig_pub: not a valid public key") from None
    if len(enc_pub) != 32:
        raise FormatError("enc_pub: an X25519 key is 32 bytes")
    try:
        x25519.X25519PublicKey.from_public_bytes(enc_pub)
    except ValueError:
        raise FormatError("enc_pub: not a valid public key") from None
    if enc_pub == bytes(32):
        raise FormatError("enc_pub: not a valid public key")


def fingerprint(person_id: str, sig_alg: str, sig_pub: bytes, enc_pub: bytes) -> bytes:
    """SHA-256 of the device's canonical description: binds its keys to its person."""
    described = {"enc": b64u(enc_pub), "person": person_id, "sig": b64u(sig_pub), "sig_alg": sig_alg,
                 "t": DEVICE_LABEL}
    return hashlib.sha256(canonical_json(described)).digest()


def safety_code(fp: bytes) -> str:
    """The first 20 bytes as four 5-digit groups (each 5 bytes, big-endian, mod 100000)."""
    groups = (int.from_bytes(fp[i : i + 5], "big") % 100000 for i in range(0, 20, 5))
    return " ".join(f"{g:05d}" for g in groups)


# ---- signatures ---------------------------------------------------------------------------


def verify_signature(sig_alg: str, sig_pub: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 (64 raw bytes) or ES256 (raw ``r || s``, 32 bytes each, IEEE P1363)."""
    if len(signature) != 64:
        return False
    try:
        if sig_alg == "Ed25519":
            ed25519.Ed25519PublicKey.from_public_bytes(sig_pub).verify(signature, message)
            return True
        if sig_alg == "ES256":
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sig_pub)
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
