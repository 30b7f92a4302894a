"""The formats the server checks (server/evidence/formats.py), against the test client
written from docs/evidence.md, and the promise that no server code path decrypts."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from server.evidence import formats
from tests.evidence import crypto
from tests.evidence.crypto import DeviceKeys, b64u

SERVER = Path(__file__).resolve().parents[2] / "server"


def test_safety_code_known_answer() -> None:
    fp = bytes(range(32))
    # 0x0001020304 = 16909060 -> 09060 (leading zero kept); 0x0506070809 = 21575960585 -> 60585
    assert formats.safety_code(fp) == crypto.safety_code(fp)
    assert formats.safety_code(fp).split()[0:2] == ["09060", "60585"]
    assert formats.safety_code(bytes(32)) == "00000 00000 00000 00000"


@pytest.mark.parametrize("sig_alg", ["Ed25519", "ES256"])
def test_fingerprints_and_signatures_agree_with_the_client(sig_alg: str) -> None:
    device = DeviceKeys.new(sig_alg)
    device.person = "Pp-person_0123456789abc"
    assert formats.fingerprint(device.person, sig_alg, device.sig_pub, device.enc_pub) == device.fingerprint()
    message = crypto.canonical({"t": "parley/verify/v1", "x": [1, "y"]}).encode()
    signature = device.sign(message)
    assert formats.verify_signature(sig_alg, device.sig_pub, message, signature)
    assert not formats.verify_signature(sig_alg, device.sig_pub, message + b" ", signature)
    assert not formats.verify_signature(sig_alg, device.sig_pub, message, signature[:-1])
    other = "ES256" if sig_alg == "Ed25519" else "Ed25519"
    assert not formats.verify_signature(other, device.sig_pub, message, signature)


def test_canonical_json() -> None:
    assert formats.canonical_json({"b": [1, "x"], "a": {"d": 2, "c": "y"}}) == b'{"a":{"c":"y","d":2},"b":[1,"x"]}'
    for bad in [{"a": 1.5}, {"a": True}, {"a": None}, {"a": "\u00e9"}]:
        with pytest.raises(formats.FormatError):
            formats.canonical_json(bad)
    assert formats.parse_canonical('{"a":1,"b":"c"}') == {"a": 1, "b": "c"}
    for text in ['{"b":1,"a":2}', '{"a": 1}', '{"a":1,"a":2}', '[1]', '{"a":1.0}', '{"a":true}', '{"a":"\\u00e9"}',
                 '{"a":NaN}', "{", "\u00e9"]:
        with pytest.raises(formats.FormatError):
            formats.parse_canonical(text)


def test_b64u_is_strict() -> None:
    assert formats.from_b64u(b64u(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ["AA==", "A", "AB", "a+b/", " AA"]:
        with pytest.raises(formats.FormatError):
            formats.from_b64u(bad)
    assert base64.urlsafe_b64decode("AQ==") == b"\x01"
    assert formats.from_b64u("AQ") == b"\x01"


# What decrypting would take: an AEAD or HPKE opening, or the client library.
FORBIDDEN = [
    re.compile(r"\bAESGCM\b"),
    re.compile(r"\bChaCha20Poly1305\b|\bAESCCM\b|\bAESOCB3\b|\bAESSIV\b|\bFernet\b"),
    re.compile(r"hazmat\.primitives\.ciphers"),
    # the Python module (the browser library's "@hpke/..." served as files is not code here)
    re.compile(r"primitives\s*\.\s*hpke|\bimport\s+hpke\b|\bhpke\s*\.\s*Suite\b"),
    re.compile(r"\bparley_client\b"),
    re.compile(r"\.decrypt\("),
    re.compile(r"\bnacl\b|\bCrypto\.Cipher\b"),
]


def test_no_server_code_path_decrypts() -> None:
    """docs/evidence.md: the server stores ciphertext and has no code that opens it."""
    files = sorted(SERVER.rglob("*.py"))
    assert len(files) > 50
    for path in files:
        source = path.read_text()
        if path == SERVER / "cli.py":
            # `parley client ...` hands over to the client library, imported only then:
            # that one import is the only code line of the server that names it.
            imports = [line.strip() for line in source.splitlines() if "parley_client" in line and line.strip().startswith(("import", "from"))]
            assert imports == ["from parley_client.cli import main as client_main"], imports
            source = source.replace("parley_client", "")  # the other patterns still apply
        for pattern in FORBIDDEN:
            assert pattern.search(source) is None, f"{path.relative_to(SERVER.parent)}: {pattern.pattern}"
