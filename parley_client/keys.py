"""Device keys (X25519 for wrapping, Ed25519 or ECDSA P-256 for signing), raw
signatures, fingerprints and safety codes (docs/evidence.md "Device keys")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from parley_client.encoding import b64u, canonical_json
from parley_client.errors import FormatError

SIG_ALGS = ("Ed25519", "ES256")
SigningPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _check_alg(sig_alg: str) -> None:
    if sig_alg not in SIG_ALGS:
        raise FormatError(f"Unknown signature algorithm {sig_alg!r} (Ed25519 or ES256).")


class DeviceKeys:
    """One device's two private keys."""

    def __init__(self, sig_alg: str, enc_private: x25519.X25519PrivateKey, sig_private: SigningPrivateKey) -> None:
        _check_alg(sig_alg)
        if sig_alg == "Ed25519" and not isinstance(sig_private, ed25519.Ed25519PrivateKey):
            raise FormatError("The signing key is not an Ed25519 key.")
        if sig_alg == "ES256" and not (
            isinstance(sig_private, ec.EllipticCurvePrivateKey) and isinstance(sig_private.curve, ec.SECP256R1)
        ):
            raise FormatError("The signing key is not an ECDSA P-256 key.")
        self.sig_alg = sig_alg
        self.enc_private = enc_private
        self._sig = sig_private

    @classmethod
    def generate(cls, sig_alg: str = "Ed25519") -> DeviceKeys:
        _check_alg(sig_alg)
        sig: SigningPrivateKey = (
            ed25519.Ed25519PrivateKey.generate() if sig_alg == "Ed25519" else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(sig_alg, x25519.X25519PrivateKey.generate(), sig)

    @property
    def enc_pub(self) -> bytes:
        return self.enc_private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def sig_pub(self) -> bytes:
        if isinstance(self._sig, ed25519.Ed25519PrivateKey):
            return self._sig.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self._sig.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def sign(self, data: bytes) -> bytes:
        """Raw signature: Ed25519's 64 bytes, or ECDSA's r || s (32 bytes each)."""
        if isinstance(self._sig, ed25519.Ed25519PrivateKey):
            return self._sig.sign(data)
        r, s = decode_dss_signature(self._sig.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def private_pkcs8(self) -> tuple[bytes, bytes]:
        """(encryption key, signing key) as unencrypted PKCS#8 DER."""
        der, pkcs8, none = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        return self.enc_private.private_bytes(der, pkcs8, none), self._sig.private_bytes(der, pkcs8, none)

    @classmethod
    def from_pkcs8(cls, sig_alg: str, enc_pkcs8: bytes, sig_pkcs8: bytes) -> DeviceKeys:
        try:
            enc = serialization.load_der_private_key(enc_pkcs8, password=None)
            sig = serialization.load_der_private_key(sig_pkcs8, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            raise FormatError("A private key is not readable PKCS#8.") from err
        if not isinstance(enc, x25519.X25519PrivateKey):
            raise FormatError("The encryption key is not an X25519 key.")
        if not isinstance(sig, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise FormatError("The signing key is neither Ed25519 nor ECDSA.")
        return cls(sig_alg, enc, sig)

    def fingerprint(self, person_id: str) -> bytes:
        return fingerprint(person_id, self.sig_alg, self.sig_pub, self.enc_pub)


def _public_signing_key(sig_alg: str, sig_pub: bytes) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    _check_alg(sig_alg)
    try:
        if sig_alg == "Ed25519":
            if len(sig_pub) != 32:
                raise FormatError("An Ed25519 public key is 32 bytes.")
            return ed25519.Ed25519PublicKey.from_public_bytes(sig_pub)
        if len(sig_pub) != 65 or sig_pub[0] != 4:
            raise FormatError("An ES256 public key is a 65-byte uncompressed point (04 || X || Y).")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sig_pub)
    except ValueError as err:
        raise FormatError(f"Not a valid {sig_alg} public key.") from err


def check_enc_pub(enc_pub: bytes) -> x25519.X25519PublicKey:
    if len(enc_pub) != 32:
        raise FormatError("An X25519 public key is 32 bytes.")
    return x25519.X25519PublicKey.from_public_bytes(enc_pub)


def verify_signature(sig_alg: str, sig_pub: bytes, data: bytes, signature: bytes) -> bool:
    """True for a valid raw signature; False for a wrong or malformed one. An unknown
    algorithm or a malformed public key raises :class:`FormatError`."""
    key = _public_signing_key(sig_alg, sig_pub)
    if len(signature) != 64:
        return False
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def fingerprint(person_id: str, sig_alg: str, sig_pub: bytes, enc_pub: bytes) -> bytes:
    """SHA-256 of the canonical device description: binds both keys to their person."""
    _check_alg(sig_alg)
    description = {"enc": b64u(enc_pub), "person": person_id, "sig": b64u(sig_pub), "sig_alg": sig_alg,
                   "t": "parley/device/v1"}
    return hashlib.sha256(canonical_json(description)).digest()


def safety_code(fp: bytes) -> str:
    """Four groups of five digits from the fingerprint's first 20 bytes."""
    if len(fp) != 32:
        raise FormatError("A fingerprint is 32 bytes.")
    return " ".join(f"{int.from_bytes(fp[i:i + 5], 'big') % 100000:05d}" for i in range(0, 20, 5))


@dataclass(frozen=True)
class DevicePublic:
    """A device as the server lists it, reduced to what the cryptography needs."""

    id: str
    person: str
    sig_alg: str
    sig_pub: bytes
    enc_pub: bytes

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.person, self.sig_alg, self.sig_pub, self.enc_pub)
