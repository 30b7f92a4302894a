"""A tiny client side of docs/evidence.md for the tests: device keys, chunk and metadata
sealing, key commitment, HPKE key wrapping, canonical JSON, manifests, shares and
statements, with ``cryptography``'s primitives.

It is test code, written from the document (not from the server's code), so a test
that compares its fingerprints, hashes and signatures with the server's checks both
sides against the contract. The real clients live in ``parley_client/`` and the browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 1048576
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def u64be(i: int) -> bytes:
    return i.to_bytes(8, "big")


def hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


@dataclass
class DeviceKeys:
    """One device's key pairs; ``id`` and ``person`` once the server registered it."""

    sig_alg: str
    sig_priv: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    enc_priv: x25519.X25519PrivateKey
    id: str = ""
    person: str = ""

    @classmethod
    def new(cls, sig_alg: str = "Ed25519") -> DeviceKeys:
        sig: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey = (
            ed25519.Ed25519PrivateKey.generate() if sig_alg == "Ed25519" else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(sig_alg, sig, x25519.X25519PrivateKey.generate())

    @property
    def sig_pub(self) -> bytes:
        if isinstance(self.sig_priv, ed25519.Ed25519PrivateKey):
            return self.sig_priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self.sig_priv.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def enc_pub(self) -> bytes:
        return self.enc_priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def register_body(self, label: str = "Test laptop") -> dict[str, str]:
        return {"label": label, "sig_alg": self.sig_alg, "sig_pub": b64u(self.sig_pub), "enc_pub": b64u(self.enc_pub)}

    def fingerprint(self) -> bytes:
        described = {"enc": b64u(self.enc_pub), "person": self.person, "sig": b64u(self.sig_pub),
                     "sig_alg": self.sig_alg, "t": "parley/device/v1"}
        return hashlib.sha256(canonical(described).encode()).digest()

    @property
    def fp(self) -> str:
        return b64u(self.fingerprint())

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.sig_priv, ed25519.Ed25519PrivateKey):
            return self.sig_priv.sign(message)
        r, s = decode_dss_signature(self.sig_priv.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def recipient(self) -> dict[str, str]:
        return {"device": self.id, "fp": self.fp, "person": self.person}


def safety_code(fp: bytes) -> str:
    return " ".join(f"{int.from_bytes(fp[i:i + 5], 'big') % 100000:05d}" for i in range(0, 20, 5))


# ---- one version ------------------------------------------------------------------------


def chunk_count(size: int) -> int:
    return max(1, math.ceil(size / CHUNK))


def seal_chunks(key: bytes, version_id: str, plaintext: bytes) -> list[bytes]:
    k_chunk = hkdf(key, b"parley/chunk/v1")
    n = chunk_count(len(plaintext))
    out = []
    for i in range(n):
        last = b"\x01" if i == n - 1 else b"\x00"
        aad = b"parley/chunk/v1\x00" + version_id.encode() + b"\x00" + u64be(i) + last
        out.append(AESGCM(k_chunk).encrypt(b"\x00" * 4 + u64be(i), plaintext[i * CHUNK:(i + 1) * CHUNK], aad))
    return out


def open_chunks(key: bytes, version_id: str, chunks: list[bytes]) -> bytes:
    k_chunk = hkdf(key, b"parley/chunk/v1")
    out = b""
    for i, sealed in enumerate(chunks):
        last = b"\x01" if i == len(chunks) - 1 else b"\x00"
        aad = b"parley/chunk/v1\x00" + version_id.encode() + b"\x00" + u64be(i) + last
        out += AESGCM(k_chunk).decrypt(b"\x00" * 4 + u64be(i), sealed, aad)
    return out


def seal_meta(key: bytes, version_id: str, meta: dict[str, Any]) -> bytes:
    record = json.dumps(meta, ensure_ascii=False).encode()
    return AESGCM(hkdf(key, b"parley/meta/v1")).encrypt(bytes(12), record, b"parley/meta/v1\x00" + version_id.encode())


def open_meta(key: bytes, version_id: str, sealed: bytes) -> dict[str, Any]:
    record = AESGCM(hkdf(key, b"parley/meta/v1")).decrypt(bytes(12), sealed, b"parley/meta/v1\x00" + version_id.encode())
    value: dict[str, Any] = json.loads(record)
    return value


def commitment(key: bytes, version_id: str) -> bytes:
    return hmac.new(key, b"parley/commit/v1\x00" + version_id.encode(), hashlib.sha256).digest()


def wrap_info(visit_id: str, version_id: str, device_id: str) -> bytes:
    return b"parley/wrap/v1\x00" + visit_id.encode() + b"\x00" + version_id.encode() + b"\x00" + device_id.encode()


def wrap(key: bytes, enc_pub: bytes, visit_id: str, version_id: str, device_id: str) -> bytes:
    return SUITE.encrypt(key, x25519.X25519PublicKey.from_public_bytes(enc_pub),
                         info=wrap_info(visit_id, version_id, device_id))


def unwrap(wrapped: bytes, device: DeviceKeys, visit_id: str, version_id: str) -> bytes:
    return SUITE.decrypt(wrapped, device.enc_priv, info=wrap_info(visit_id, version_id, device.id))


@dataclass
class Sealed:
    """A file sealed for one version id: what goes to the server."""

    key: bytes
    chunks: list[bytes]
    meta: bytes
    plaintext: bytes
    meta_plain: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks)


def seal(version_id: str, plaintext: bytes, meta: dict[str, Any], key: bytes | None = None) -> Sealed:
    key = key or AESGCM.generate_key(256)
    return Sealed(key, seal_chunks(key, version_id, plaintext), seal_meta(key, version_id, meta), plaintext, meta)


def manifest(
    sealed: Sealed, *, visit: str, document: str, version: str, uploader: DeviceKeys, recipients: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "t": "parley/manifest/v1", "visit": visit, "document": document, "version": version,
        "chunk_size": CHUNK, "chunks": len(sealed.chunks), "size": sealed.size,
        "chunk_hashes": [b64u(hashlib.sha256(c).digest()) for c in sealed.chunks],
        "meta_hash": b64u(hashlib.sha256(sealed.meta).digest()),
        "commit": b64u(commitment(sealed.key, version)),
        "uploader": uploader.id, "uploader_fp": uploader.fp,
        "recipients": sorted(recipients, key=lambda r: r["device"]),
    }


def signed(value: dict[str, Any], signer: DeviceKeys, field_name: str = "manifest") -> dict[str, str]:
    text = canonical(value)
    return {field_name: text, "signature": b64u(signer.sign(text.encode()))}


def share_body(version: str, manifest_text: str, by: DeviceKeys, recipients: list[dict[str, str]]) -> dict[str, Any]:
    return {"t": "parley/share/v1", "version": version,
            "manifest_hash": b64u(hashlib.sha256(manifest_text.encode()).digest()),
            "by": by.id, "by_fp": by.fp, "recipients": sorted(recipients, key=lambda r: r["device"])}


def statement(kind: str, by: DeviceKeys, subject: dict[str, Any]) -> dict[str, str]:
    label = {"verify": "parley/verify/v1", "cross-sign": "parley/cross-sign/v1"}[kind]
    body = {"t": label, "by": by.id, "by_fp": by.fp, "subject": subject["id"], "subject_fp": subject["fingerprint"],
            "subject_person": subject["person"]}
    text = canonical(body)
    return {"kind": kind, "body": text, "signature": b64u(by.sign(text.encode()))}
