"""The public API of docs/evidence.md in Python: one import for every format."""

from __future__ import annotations

from parley_client.content import (
    CHUNK,
    ChunkCipher,
    chunk_count,
    chunk_key,
    ciphertext_size,
    decrypt_chunk,
    encrypt_chunk,
    key_commit,
    meta_key,
    new_content_key,
    open_meta,
    seal_meta,
    unwrap_key,
    wrap_key,
)
from parley_client.encoding import b64u, canonical_json, check_id, parse_canonical, unb64u
from parley_client.errors import DecryptError, EvidenceError, FormatError, TrustError
from parley_client.keys import DeviceKeys, DevicePublic, fingerprint, safety_code, verify_signature
from parley_client.recovery import new_recovery_code, open_recovery, parse_recovery_code, seal_recovery
from parley_client.statements import (
    CheckedVersion,
    Manifest,
    Recipient,
    check_manifest,
    device_statement,
    make_manifest,
    make_share,
    parse_manifest,
    sign_statement,
    verify_statement,
)
from parley_client.stream import EncryptedChunk, PlainChunk, decrypt_to_file, encrypt_file, read_plain_chunks

__all__ = [
    "CHUNK", "CheckedVersion", "ChunkCipher", "DecryptError", "DeviceKeys", "DevicePublic", "EncryptedChunk",
    "EvidenceError", "FormatError", "Manifest", "PlainChunk", "Recipient", "TrustError", "b64u", "canonical_json",
    "check_id", "check_manifest", "chunk_count", "chunk_key", "ciphertext_size", "decrypt_chunk", "decrypt_to_file",
    "device_statement", "encrypt_chunk", "encrypt_file", "fingerprint", "key_commit", "make_manifest", "make_share",
    "meta_key", "new_content_key", "new_recovery_code", "open_meta", "open_recovery", "parse_canonical",
    "parse_manifest", "parse_recovery_code", "read_plain_chunks", "safety_code", "seal_meta", "seal_recovery",
    "sign_statement", "unb64u", "unwrap_key", "verify_signature", "verify_statement", "wrap_key",
]
