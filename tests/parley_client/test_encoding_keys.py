"""b64u, canonical JSON, device keys, signatures, fingerprints and safety codes."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley_client.crypto import (
    DeviceKeys,
    FormatError,
    b64u,
    canonical_json,
    fingerprint,
    parse_canonical,
    safety_code,
    unb64u,
    verify_signature,
)

PERSON = "0123456789abcdef0123456789abcdef"


def test_b64u_is_unpadded_urlsafe_and_strict() -> None:
    assert b64u(b"\xfb\xff") == "-_8"
    assert unb64u("-_8") == b"\xfb\xff"
    assert b64u(b"") == "" and unb64u("") == b""
    for bad in ("-_8=", "+/8", "a", "ab c", "-_9", "é"):
        with pytest.raises(FormatError):
            unb64u(bad)


@given(st.binary(max_size=80))
def test_b64u_round_trip(data: bytes) -> None:
    text = b64u(data)
    assert "=" not in text and unb64u(text) == data
    assert text == base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_canonical_json_bytes() -> None:
    value = {"b": [1, {"z": "x", "a": -2}], "a": "q\"\\\n"}
    assert canonical_json(value) == b'{"a":"q\\"\\\\\\n","b":[1,{"a":-2,"z":"x"}]}'


@pytest.mark.parametrize("bad", [1.5, True, None, "é", {"k": False}, [None], {"é": 1}, (1, 2), b"x", {1: 2}, "\x7f"])
def test_canonical_json_refuses_values_outside_the_subset(bad: object) -> None:
    with pytest.raises(FormatError):
        canonical_json(bad)


def test_parse_canonical_refuses_other_spellings() -> None:
    assert parse_canonical('{"a":1,"b":"x"}') == {"a": 1, "b": "x"}
    for bad in ('{"b":1,"a":2}', '{"a": 1}', '{"a":1.0}', '{"a":true}', '{"a":1,"a":1}', '{"a":"\\u00e9"}',
                '[1]', '{"a":"\\u0041"}', 'nope', '{"a":NaN}'):
        with pytest.raises(FormatError):
            parse_canonical(bad)


_ascii = st.text(st.characters(min_codepoint=0, max_codepoint=0x7E), max_size=8)
_values = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63) | _ascii,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ascii, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150)
@given(st.dictionaries(_ascii, _values, max_size=5))
def test_canonical_json_round_trip(value: dict[str, object]) -> None:
    data = canonical_json(value)
    assert data == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert parse_canonical(data.decode()) == value
    assert canonical_json(parse_canonical(data)) == data


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_keys_sign_verify_and_pkcs8_round_trip(alg: str) -> None:
    keys = DeviceKeys.generate(alg)
    assert len(keys.enc_pub) == 32
    assert len(keys.sig_pub) == (32 if alg == "Ed25519" else 65)
    signature = keys.sign(b"hello")
    assert len(signature) == 64
    assert verify_signature(alg, keys.sig_pub, b"hello", signature)
    assert not verify_signature(alg, keys.sig_pub, b"hellO", signature)
    assert not verify_signature(alg, keys.sig_pub, b"hello", signature[:-1])
    assert not verify_signature(alg, keys.sig_pub, b"hello", bytes(64))
    again = DeviceKeys.from_pkcs8(alg, *keys.private_pkcs8())
    assert (again.sig_pub, again.enc_pub) == (keys.sig_pub, keys.enc_pub)
    assert verify_signature(alg, keys.sig_pub, b"x", again.sign(b"x"))


def test_key_mismatches_are_refused() -> None:
    ed, es = DeviceKeys.generate("Ed25519"), DeviceKeys.generate("ES256")
    with pytest.raises(FormatError):
        DeviceKeys.from_pkcs8("ES256", *ed.private_pkcs8())
    with pytest.raises(FormatError):
        DeviceKeys.from_pkcs8("Ed25519", ed.private_pkcs8()[1], ed.private_pkcs8()[1])
    with pytest.raises(FormatError):
        DeviceKeys.generate("RS256")
    with pytest.raises(FormatError):
        verify_signature("Ed25519", es.sig_pub, b"x", ed.sign(b"x"))
    with pytest.raises(FormatError):
        verify_signature("ES256", b"\x04" + bytes(64), b"x", es.sign(b"x"))


def test_fingerprint_is_the_hash_of_the_device_description() -> None:
    enc, sig = bytes(range(32)), bytes(range(32, 64))
    text = ('{"enc":"' + b64u(enc) + '","person":"' + PERSON + '","sig":"' + b64u(sig)
            + '","sig_alg":"Ed25519","t":"parley/device/v1"}')
    assert fingerprint(PERSON, "Ed25519", sig, enc) == hashlib.sha256(text.encode()).digest()
    assert fingerprint(PERSON, "ES256", sig, enc) != fingerprint(PERSON, "Ed25519", sig, enc)
    assert fingerprint("f" * 32, "Ed25519", sig, enc) != fingerprint(PERSON, "Ed25519", sig, enc)


def test_safety_code_examples() -> None:
    # Worked by hand: 0x0001020304 = 16909060, 0x0506070809 = 21575960585,
    # 0x0a0b0c0d0e = 43135012110, 0x0f10111213 = 64694063635 (each mod 100000).
    assert safety_code(bytes(range(32))) == "09060 60585 12110 63635"
    assert safety_code(bytes(32)) == "00000 00000 00000 00000"
    assert safety_code(b"\xff" * 32) == "27775 27775 27775 27775"  # 1099511627775
    fp = hashlib.sha256(b"parley").digest()
    groups = [int.from_bytes(fp[i:i + 5], "big") % 100000 for i in (0, 5, 10, 15)]
    assert safety_code(fp) == " ".join(f"{g:05d}" for g in groups)
    with pytest.raises(FormatError):
        safety_code(bytes(20))
