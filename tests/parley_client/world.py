"""A small evidence world for tests: people, devices and one uploaded version, built
with parley_client the way an uploading client would."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from parley_client.crypto import (
    DeviceKeys,
    DevicePublic,
    EncryptedChunk,
    Recipient,
    encrypt_file,
    key_commit,
    make_manifest,
    new_content_key,
    seal_meta,
    sign_statement,
    wrap_key,
)

VISIT, DOCUMENT, VERSION = "a1" * 16, "d0" * 16, "e0" * 16


@dataclass
class Device:
    id: str
    person: str
    keys: DeviceKeys

    @property
    def public(self) -> DevicePublic:
        k = self.keys
        return DevicePublic(self.id, self.person, k.sig_alg, k.sig_pub, k.enc_pub)

    @property
    def recipient(self) -> Recipient:
        return Recipient(self.id, self.person, self.public.fingerprint)


def device(n: int, person: int, alg: str = "Ed25519") -> Device:
    return Device(f"{n:032x}", f"{person:032x}", DeviceKeys.generate(alg))


@dataclass
class Upload:
    key: bytes
    chunks: list[EncryptedChunk]
    meta_ciphertext: bytes
    manifest_text: str
    signature: str
    wrapped: dict[str, bytes] = field(default_factory=dict)

    @property
    def content(self) -> bytes:
        return b"".join(c.ciphertext for c in self.chunks)


def upload(path: Path, uploader: Device, recipients: list[Device], *, chunk_size: int,
           version: str = VERSION, name: str | None = None) -> Upload:
    key = new_content_key()
    chunks = list(encrypt_file(key, version, path, chunk_size=chunk_size))
    size = path.stat().st_size
    meta = seal_meta(key, version, {"name": name or path.name, "type": "text/plain", "size": size, "description": ""})
    body = make_manifest(
        visit_id=VISIT, document_id=DOCUMENT, version_id=version, chunk_hashes=[c.sha256 for c in chunks],
        size=sum(len(c.ciphertext) for c in chunks), meta_ciphertext=meta, commit=key_commit(key, version),
        uploader=uploader.id, uploader_fp=uploader.public.fingerprint,
        recipients=[d.recipient for d in recipients], chunk_size=chunk_size,
    )
    text, signature = sign_statement(uploader.keys, body)
    wrapped = {d.id: wrap_key(key, d.keys.enc_pub, VISIT, version, d.id) for d in recipients}
    assert hashlib.sha256(meta).digest()
    return Upload(key, chunks, meta, text, signature, wrapped)
