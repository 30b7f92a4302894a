"""RFC 9180 known answers for the suite Parley wraps keys with (DHKEM(X25519,
HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, base mode), from cryptography_vectors.

cryptography's HPKE is single-shot: no fixed ephemeral key, no sequence numbers, no
exporter. So this file carries a small hand-written RFC 9180 key schedule (sections
4, 4.1, 5.1, 5.2, 7.1.3), test-only, built from cryptography's X25519 and HKDF
primitives, checks it against every value of the vectors, and then checks that the
library's Suite opens what that schedule produces for the vectors' keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from parley_client.crypto import unwrap_key, wrap_key

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE_ID = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big") + AEAD_ID.to_bytes(2, "big")
NK, NN = 32, 12


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return HKDF.extract(hashes.SHA256(), salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled_info).derive(prk)


def derive_key_pair(ikm: bytes) -> bytes:
    """DeriveKeyPair for X25519 (RFC 9180 section 7.1.3): the private key bytes."""
    prk = labeled_extract(KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    return labeled_expand(KEM_SUITE_ID, prk, b"sk", b"", 32)


def raw_public(private: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def encap(sk_e: bytes, pk_r: bytes) -> tuple[bytes, bytes]:
    """DHKEM Encap (section 4.1) with a fixed ephemeral key: (shared_secret, enc)."""
    dh = x25519.X25519PrivateKey.from_private_bytes(sk_e).exchange(x25519.X25519PublicKey.from_public_bytes(pk_r))
    enc = raw_public(sk_e)
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_r, 32), enc


@dataclass
class Context:
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes
    key_schedule_context: bytes
    secret: bytes

    def nonce(self, seq: int) -> bytes:
        """ComputeNonce (section 5.2): base_nonce XOR I2OSP(seq, Nn)."""
        return bytes(a ^ b for a, b in zip(self.base_nonce, seq.to_bytes(NN, "big"), strict=True))


def key_schedule_base(shared_secret: bytes, info: bytes) -> Context:
    """KeySchedule (section 5.1), mode_base: empty psk and psk_id."""
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info)
    context = bytes([0]) + psk_id_hash + info_hash
    secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"")
    return Context(
        key=labeled_expand(HPKE_SUITE_ID, secret, b"key", context, NK),
        base_nonce=labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", context, NN),
        exporter_secret=labeled_expand(HPKE_SUITE_ID, secret, b"exp", context, 32),
        key_schedule_context=context,
        secret=secret,
    )


def decap(enc: bytes, sk_r: bytes) -> bytes:
    dh = x25519.X25519PrivateKey.from_private_bytes(sk_r).exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", enc + raw_public(sk_r), 32)


def _vector() -> dict[str, Any]:
    text = resources.files("cryptography_vectors").joinpath("HPKE/test-vectors.json").read_text()
    found = [v for v in json.loads(text)
             if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, KEM_ID, KDF_ID, AEAD_ID)]
    assert len(found) == 1
    return {k: v if isinstance(v, list) else bytes.fromhex(v) if isinstance(v, str) else v for k, v in found[0].items()}


VECTOR = _vector()
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def test_derived_key_pairs_match() -> None:
    assert derive_key_pair(VECTOR["ikmE"]) == VECTOR["skEm"]
    assert derive_key_pair(VECTOR["ikmR"]) == VECTOR["skRm"]
    assert raw_public(VECTOR["skRm"]) == VECTOR["pkRm"]
    assert raw_public(VECTOR["skEm"]) == VECTOR["pkEm"]


def test_encap_and_key_schedule_match() -> None:
    shared_secret, enc = encap(VECTOR["skEm"], VECTOR["pkRm"])
    assert enc == VECTOR["enc"]
    assert shared_secret == VECTOR["shared_secret"]
    assert decap(enc, VECTOR["skRm"]) == shared_secret
    ctx = key_schedule_base(shared_secret, VECTOR["info"])
    assert ctx.key_schedule_context == VECTOR["key_schedule_context"]
    assert ctx.secret == VECTOR["secret"]
    assert ctx.key == VECTOR["key"]
    assert ctx.base_nonce == VECTOR["base_nonce"]
    assert ctx.exporter_secret == VECTOR["exporter_secret"]


def test_every_encryption_matches() -> None:
    ctx = key_schedule_base(VECTOR["shared_secret"], VECTOR["info"])
    assert len(VECTOR["encryptions"]) > 100
    for seq, e in enumerate(VECTOR["encryptions"]):
        pt, aad, nonce, ct = (bytes.fromhex(e[k]) for k in ("pt", "aad", "nonce", "ct"))
        assert ctx.nonce(seq) == nonce, seq
        assert AESGCM(ctx.key).encrypt(nonce, pt, aad) == ct, seq
        assert AESGCM(ctx.key).decrypt(nonce, ct, aad) == pt, seq


def test_library_opens_the_vectors_context() -> None:
    """Every vector encryption carries AAD ("Count-i"), which the single-shot API does
    not take; so seal the first plaintext at sequence 0 with empty AAD under the
    vector's key and nonce, and have the library open enc || ct with skRm and info."""
    pt = bytes.fromhex(VECTOR["encryptions"][0]["pt"])
    ct = AESGCM(VECTOR["key"]).encrypt(VECTOR["base_nonce"], pt, b"")
    sk_r = x25519.X25519PrivateKey.from_private_bytes(VECTOR["skRm"])
    assert SUITE.decrypt(VECTOR["enc"] + ct, sk_r, info=VECTOR["info"]) == pt
    with pytest.raises(InvalidTag):
        SUITE.decrypt(VECTOR["enc"] + ct, sk_r, info=VECTOR["info"] + b"x")


def test_library_output_is_enc_then_ciphertext() -> None:
    """Suite.encrypt gives enc || ct: the hand-written schedule opens it at sequence 0."""
    sk_r = x25519.X25519PrivateKey.from_private_bytes(VECTOR["skRm"])
    out = SUITE.encrypt(b"k" * 32, sk_r.public_key(), info=VECTOR["info"])
    assert len(out) == 32 + 32 + 16
    enc, ct = out[:32], out[32:]
    ctx = key_schedule_base(decap(enc, VECTOR["skRm"]), VECTOR["info"])
    assert AESGCM(ctx.key).decrypt(ctx.nonce(0), ct, b"") == b"k" * 32


def test_parley_wrap_is_rfc9180_with_parley_info() -> None:
    visit, version, device = "a" * 32, "b" * 32, "c" * 32
    sk_r = x25519.X25519PrivateKey.from_private_bytes(VECTOR["skRm"])
    wrapped = wrap_key(b"K" * 32, VECTOR["pkRm"], visit, version, device)
    info = b"parley/wrap/v1\x00" + b"a" * 32 + b"\x00" + b"b" * 32 + b"\x00" + b"c" * 32
    ctx = key_schedule_base(decap(wrapped[:32], VECTOR["skRm"]), info)
    assert AESGCM(ctx.key).decrypt(ctx.nonce(0), wrapped[32:], b"") == b"K" * 32
    assert unwrap_key(wrapped, sk_r, visit, version, device) == b"K" * 32


def test_library_opens_the_vectors_first_encryption() -> None:
    """The vectors' own first ciphertext (sequence 0, AAD "Count-0"), through the
    library's AAD-taking entry point (private in cryptography 50, hence only here)."""
    from cryptography.hazmat.bindings._rust import openssl as rust_openssl

    first = VECTOR["encryptions"][0]
    sk_r = x25519.X25519PrivateKey.from_private_bytes(VECTOR["skRm"])
    opened = rust_openssl.hpke._decrypt_with_aad(
        SUITE, VECTOR["enc"] + bytes.fromhex(first["ct"]), sk_r, info=VECTOR["info"], aad=bytes.fromhex(first["aad"])
    )
    assert opened == bytes.fromhex(first["pt"])
