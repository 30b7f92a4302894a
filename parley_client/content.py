"""One document version's content: subkeys, chunks, the metadata record, the key
commitment and HPKE key wrapping (docs/evidence.md "One document version", "Key
wrapping")."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from parley_client.encoding import check_id
from parley_client.errors import DecryptError, FormatError
from parley_client.keys import check_enc_pub

CHUNK = 1048576
TAG = 16
KEY_BYTES = 32
WRAPPED_BYTES = 32 + KEY_BYTES + TAG

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def new_content_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise FormatError("A content key is 32 bytes.")


def _subkey(key: bytes, label: bytes) -> bytes:
    _check_key(key)
    # salt=None is HashLen zero bytes, which RFC 5869 defines as the empty salt.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key)


def chunk_key(key: bytes) -> bytes:
    return _subkey(key, b"parley/chunk/v1")


def meta_key(key: bytes) -> bytes:
    return _subkey(key, b"parley/meta/v1")


def chunk_count(size: int, chunk_size: int = CHUNK) -> int:
    """n = max(1, ceil(size / chunk_size)): an empty file is one empty chunk."""
    if size < 0 or chunk_size <= 0:
        raise FormatError("Sizes are not negative and chunks not empty.")
    return max(1, -(-size // chunk_size))


def ciphertext_size(size: int, chunk_size: int = CHUNK) -> int:
    """Total ciphertext bytes of a plaintext of ``size`` bytes."""
    return size + TAG * chunk_count(size, chunk_size)


def _chunk_nonce(index: int) -> bytes:
    if not 0 <= index < 2**64:
        raise FormatError("A chunk index is an unsigned 64-bit integer.")
    return b"\x00" * 4 + index.to_bytes(8, "big")


def _chunk_aad(version_id: str, index: int, last: bool) -> bytes:
    check_id(version_id, "version")
    return (b"parley/chunk/v1\x00" + version_id.encode("ascii") + b"\x00" + index.to_bytes(8, "big")
            + (b"\x01" if last else b"\x00"))


class ChunkCipher:
    """AES-256-GCM under K_chunk, derived once for a whole stream."""

    def __init__(self, key: bytes, version_id: str) -> None:
        self._aead = AESGCM(chunk_key(key))
        self.version_id = check_id(version_id, "version")

    def encrypt(self, index: int, last: bool, plaintext: bytes) -> bytes:
        return self._aead.encrypt(_chunk_nonce(index), plaintext, _chunk_aad(self.version_id, index, last))

    def decrypt(self, index: int, last: bool, ciphertext: bytes) -> bytes:
        if len(ciphertext) < TAG:
            raise DecryptError(f"Chunk {index} is shorter than its authentication tag: truncated.")
        try:
            return self._aead.decrypt(_chunk_nonce(index), ciphertext, _chunk_aad(self.version_id, index, last))
        except InvalidTag:
            where = "the last chunk" if last else f"chunk {index}"
            raise DecryptError(
                f"{where.capitalize()} does not decrypt: it was altered, reordered or truncated, "
                "or the key is wrong."
            ) from None


def encrypt_chunk(key: bytes, version_id: str, index: int, last: bool, plaintext: bytes) -> bytes:
    return ChunkCipher(key, version_id).encrypt(index, last, plaintext)


def decrypt_chunk(key: bytes, version_id: str, index: int, last: bool, ciphertext: bytes) -> bytes:
    return ChunkCipher(key, version_id).decrypt(index, last, ciphertext)


_META_FIELDS = {"name": str, "type": str, "size": int, "description": str}


def check_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata record's four fields, and only those."""
    if not isinstance(meta, Mapping) or set(meta) != set(_META_FIELDS):
        raise FormatError("The metadata record has exactly: name, type, size, description.")
    for field, kind in _META_FIELDS.items():
        value = meta[field]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise FormatError(f"Metadata {field}: must be a {kind.__name__}.")
    if meta["size"] < 0:
        raise FormatError("Metadata size: must not be negative.")
    return dict(meta)


def _meta_aad(version_id: str) -> bytes:
    return b"parley/meta/v1\x00" + check_id(version_id, "version").encode("ascii")


def seal_meta(key: bytes, version_id: str, meta: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON (not canonical), AES-256-GCM under K_meta with a zero nonce (used once)."""
    record = json.dumps(check_meta(meta), ensure_ascii=False).encode("utf-8")
    return AESGCM(meta_key(key)).encrypt(b"\x00" * 12, record, _meta_aad(version_id))


def open_meta(key: bytes, version_id: str, sealed: bytes) -> dict[str, Any]:
    try:
        record = AESGCM(meta_key(key)).decrypt(b"\x00" * 12, sealed, _meta_aad(version_id))
    except InvalidTag:
        raise DecryptError("The metadata record does not decrypt: altered, or not this version's.") from None
    try:
        meta = json.loads(record.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError("The metadata record is not UTF-8 JSON.") from err
    return check_meta(meta)


def key_commit(key: bytes, version_id: str) -> bytes:
    _check_key(key)
    return hmac.new(key, b"parley/commit/v1\x00" + check_id(version_id, "version").encode("ascii"),
                    hashlib.sha256).digest()


def wrap_info(visit_id: str, version_id: str, device_id: str) -> bytes:
    ids = (check_id(visit_id, "visit"), check_id(version_id, "version"), check_id(device_id, "device"))
    return b"parley/wrap/v1\x00" + b"\x00".join(i.encode("ascii") for i in ids)


def wrap_key(key: bytes, recipient_enc_pub: bytes, visit_id: str, version_id: str, device_id: str) -> bytes:
    """HPKE base mode to the recipient device: enc (32) || ciphertext (48)."""
    _check_key(key)
    wrapped = _SUITE.encrypt(key, check_enc_pub(recipient_enc_pub), info=wrap_info(visit_id, version_id, device_id))
    assert len(wrapped) == WRAPPED_BYTES
    return wrapped


def unwrap_key(wrapped: bytes, enc_private_key: x25519.X25519PrivateKey, visit_id: str, version_id: str,
               device_id: str) -> bytes:
    if len(wrapped) != WRAPPED_BYTES:
        raise FormatError(f"A wrapped key is {WRAPPED_BYTES} bytes.")
    try:
        key = _SUITE.decrypt(wrapped, enc_private_key, info=wrap_info(visit_id, version_id, device_id))
    except (InvalidTag, ValueError):
        raise DecryptError(
            "The wrapped key does not open with this device's key (not wrapped for this device, visit "
            "and version, or altered)."
        ) from None
    if len(key) != KEY_BYTES:
        raise FormatError("The unwrapped content key is not 32 bytes.")
    return key
