"""Recovery codes and the sealed recovery blob (docs/evidence.md "Recovery blob")."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from parley_client.encoding import b64u, canonical_json, check_id, parse_canonical, unb64u
from parley_client.errors import DecryptError, FormatError, TrustError
from parley_client.keys import DeviceKeys

MIN_ITERATIONS = 600_000
CODE_BYTES = 20
_LABEL = b"parley/recovery/v1"
_BASE32 = re.compile(r"[A-Z2-7]{32}")


def new_recovery_code() -> tuple[str, bytes]:
    """(display form: 8 groups of 4 base32 characters, the 20 raw bytes)."""
    raw = os.urandom(CODE_BYTES)
    text = base64.b32encode(raw).decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, 32, 4)), raw


def parse_recovery_code(text: str) -> bytes:
    """Reads a code back, ignoring case, spaces and dashes."""
    compact = re.sub(r"[\s-]", "", text).upper()
    if not _BASE32.fullmatch(compact):
        raise FormatError("A recovery code is 32 letters A-Z and digits 2-7 (dashes and spaces are ignored).")
    try:
        return base64.b32decode(compact)
    except binascii.Error as err:
        raise FormatError("Not a recovery code.") from err


def _derive(kdf: str, salt: bytes, *, code: bytes | None, passphrase: str | None, iterations: int) -> bytes:
    if kdf == "hkdf-sha256":
        if code is None or len(code) != CODE_BYTES:
            raise FormatError("This blob is sealed with a recovery code (20 bytes).")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_LABEL).derive(code)
    if passphrase is None:
        raise FormatError("This blob is sealed with a passphrase.")
    if iterations < MIN_ITERATIONS:
        raise FormatError(f"PBKDF2 needs at least {MIN_ITERATIONS} iterations.")
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(
        passphrase.encode("utf-8")
    )


def _aad(person_id: str) -> bytes:
    return _LABEL + b"\x00" + check_id(person_id, "person").encode("ascii")


def seal_recovery(keys: DeviceKeys, person_id: str, device_id: str, *, code: bytes | None = None,
                  passphrase: str | None = None, iterations: int = MIN_ITERATIONS) -> dict[str, Any]:
    """The blob the server stores: the device's private keys under a code or a passphrase."""
    if (code is None) == (passphrase is None):
        raise FormatError("Seal with either a recovery code or a passphrase.")
    enc_priv, sig_priv = keys.private_pkcs8()
    plaintext = canonical_json({
        "device": check_id(device_id, "device"), "enc_priv": b64u(enc_priv), "person": check_id(person_id, "person"),
        "sig_alg": keys.sig_alg, "sig_priv": b64u(sig_priv), "t": "parley/recovery-keys/v1",
    })
    salt, nonce = os.urandom(16), os.urandom(12)
    kdf = "hkdf-sha256" if code is not None else "pbkdf2-sha256"
    secret = _derive(kdf, salt, code=code, passphrase=passphrase, iterations=iterations)
    blob: dict[str, Any] = {"v": 1, "kdf": kdf}
    if kdf == "pbkdf2-sha256":
        blob["iterations"] = iterations
    blob |= {"salt": b64u(salt), "nonce": b64u(nonce), "device": device_id,
             "ciphertext": b64u(AESGCM(secret).encrypt(nonce, plaintext, _aad(person_id)))}
    return blob


def open_recovery(blob: Mapping[str, Any], person_id: str, *, code: bytes | None = None,
                  passphrase: str | None = None) -> DeviceKeys:
    if not isinstance(blob, Mapping) or blob.get("v") != 1:
        raise FormatError("Not a version 1 recovery blob.")
    kdf = blob.get("kdf")
    if kdf not in ("hkdf-sha256", "pbkdf2-sha256"):
        raise FormatError("Unknown key derivation in the recovery blob.")
    iterations = blob.get("iterations", 0) if kdf == "pbkdf2-sha256" else 0
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise FormatError("Recovery blob iterations: not an integer.")
    for field in ("salt", "nonce", "ciphertext"):
        if not isinstance(blob.get(field), str):
            raise FormatError(f"Recovery blob {field}: missing.")
    salt, nonce, ciphertext = unb64u(blob["salt"]), unb64u(blob["nonce"]), unb64u(blob["ciphertext"])
    if len(salt) != 16 or len(nonce) != 12:
        raise FormatError("Recovery blob: the salt is 16 bytes and the nonce 12.")
    device_id = check_id(blob.get("device"), "device")
    secret = _derive(str(kdf), salt, code=code, passphrase=passphrase, iterations=iterations)
    try:
        plaintext = AESGCM(secret).decrypt(nonce, ciphertext, _aad(person_id))
    except InvalidTag:
        what = "recovery code" if kdf == "hkdf-sha256" else "passphrase"
        raise DecryptError(f"Wrong {what} (or the blob is not this person's, or was altered).") from None
    body = parse_canonical(plaintext)
    if body.get("t") != "parley/recovery-keys/v1" or body.get("person") != person_id or body.get("device") != device_id:
        raise TrustError("The recovery blob's content names another person or device.")
    sig_alg = body.get("sig_alg")
    enc_priv, sig_priv = body.get("enc_priv"), body.get("sig_priv")
    if not isinstance(sig_alg, str) or not isinstance(enc_priv, str) or not isinstance(sig_priv, str):
        raise FormatError("The recovery blob's content misses a key.")
    return DeviceKeys.from_pkcs8(sig_alg, unb64u(enc_priv), unb64u(sig_priv))
