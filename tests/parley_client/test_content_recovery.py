"""Chunks, the metadata record, key commitment, key wrapping and recovery blobs."""

from __future__ import annotations

import pytest

from parley_client.crypto import (
    DecryptError,
    DeviceKeys,
    FormatError,
    TrustError,
    chunk_count,
    decrypt_chunk,
    encrypt_chunk,
    key_commit,
    new_content_key,
    new_recovery_code,
    open_meta,
    open_recovery,
    parse_recovery_code,
    seal_meta,
    seal_recovery,
    unb64u,
    unwrap_key,
    wrap_key,
)

VISIT, VERSION, OTHER_VERSION, DEVICE, PERSON = "1" * 32, "2" * 32, "3" * 32, "4" * 32, "5" * 32


def test_chunk_round_trip_and_every_binding() -> None:
    key = new_content_key()
    ct = encrypt_chunk(key, VERSION, 3, False, b"evidence")
    assert len(ct) == len(b"evidence") + 16
    assert decrypt_chunk(key, VERSION, 3, False, ct) == b"evidence"
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    for args in ((key, VERSION, 3, False, flipped), (key, VERSION, 4, False, ct), (key, VERSION, 3, True, ct),
                 (key, OTHER_VERSION, 3, False, ct), (new_content_key(), VERSION, 3, False, ct),
                 (key, VERSION, 3, False, ct[:-1]), (key, VERSION, 3, False, ct[:10])):
        with pytest.raises(DecryptError, match=r"chunk|truncated"):
            decrypt_chunk(*args)


def test_chunk_count() -> None:
    assert [chunk_count(s, 4) for s in (0, 1, 3, 4, 5, 8, 9)] == [1, 1, 1, 1, 2, 2, 3]
    assert chunk_count(1048576) == 1 and chunk_count(1048577) == 2


def test_meta_round_trip_any_unicode_and_binding() -> None:
    key = new_content_key()
    meta = {"name": "Ley 1474 — anticorrupción.pdf", "type": "application/pdf", "size": 12, "description": "中文"}
    sealed = seal_meta(key, VERSION, meta)
    assert open_meta(key, VERSION, sealed) == meta
    with pytest.raises(DecryptError):
        open_meta(key, OTHER_VERSION, sealed)
    with pytest.raises(DecryptError):
        open_meta(key, VERSION, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(FormatError):
        seal_meta(key, VERSION, {"name": "x", "type": "t", "size": True, "description": ""})
    with pytest.raises(FormatError):
        seal_meta(key, VERSION, {**meta, "extra": "x"})


def test_key_commit_binds_key_and_version() -> None:
    key = new_content_key()
    assert len(key_commit(key, VERSION)) == 32
    assert key_commit(key, VERSION) != key_commit(key, OTHER_VERSION)
    assert key_commit(key, VERSION) != key_commit(new_content_key(), VERSION)


def test_wrap_binds_visit_version_and_device() -> None:
    device = DeviceKeys.generate()
    key = new_content_key()
    wrapped = wrap_key(key, device.enc_pub, VISIT, VERSION, DEVICE)
    assert len(wrapped) == 80
    assert unwrap_key(wrapped, device.enc_private, VISIT, VERSION, DEVICE) == key
    for visit, version, dev in ((VERSION, VERSION, DEVICE), (VISIT, OTHER_VERSION, DEVICE), (VISIT, VERSION, PERSON)):
        with pytest.raises(DecryptError, match="wrapped key"):
            unwrap_key(wrapped, device.enc_private, visit, version, dev)
    with pytest.raises(DecryptError):
        unwrap_key(wrapped, DeviceKeys.generate().enc_private, VISIT, VERSION, DEVICE)
    with pytest.raises(DecryptError):
        unwrap_key(wrapped[:-1] + bytes([wrapped[-1] ^ 1]), device.enc_private, VISIT, VERSION, DEVICE)
    with pytest.raises(FormatError):
        unwrap_key(wrapped[:-1], device.enc_private, VISIT, VERSION, DEVICE)
    with pytest.raises(FormatError):
        wrap_key(key, device.enc_pub, "not-an-id", VERSION, DEVICE)


def test_recovery_code_display_and_parsing() -> None:
    text, raw = new_recovery_code()
    assert len(raw) == 20
    groups = text.split("-")
    assert len(groups) == 8 and all(len(g) == 4 for g in groups) and text == text.upper()
    assert parse_recovery_code(text) == raw
    assert parse_recovery_code(" " + text.lower().replace("-", " ") + "\n") == raw
    assert parse_recovery_code(text.replace("-", "")) == raw
    for bad in (text[:-1], text + "A", text.replace(text[0], "1"), ""):
        with pytest.raises(FormatError):
            parse_recovery_code(bad)


@pytest.mark.parametrize("alg", ["Ed25519", "ES256"])
def test_recovery_with_a_code(alg: str) -> None:
    keys = DeviceKeys.generate(alg)
    _, code = new_recovery_code()
    blob = seal_recovery(keys, PERSON, DEVICE, code=code)
    assert blob["kdf"] == "hkdf-sha256" and "iterations" not in blob and blob["device"] == DEVICE
    assert len(unb64u(blob["salt"])) == 16 and len(unb64u(blob["nonce"])) == 12
    again = open_recovery(blob, PERSON, code=code)
    assert (again.sig_alg, again.sig_pub, again.enc_pub) == (alg, keys.sig_pub, keys.enc_pub)
    with pytest.raises(DecryptError, match="Wrong recovery code"):
        open_recovery(blob, PERSON, code=new_recovery_code()[1])
    with pytest.raises(DecryptError):
        open_recovery(blob, VISIT, code=code)  # another person's associated data
    with pytest.raises(FormatError):
        open_recovery(blob, PERSON, passphrase="x")


def test_recovery_with_a_passphrase() -> None:
    keys = DeviceKeys.generate()
    blob = seal_recovery(keys, PERSON, DEVICE, passphrase="correct horse")
    assert blob["kdf"] == "pbkdf2-sha256" and blob["iterations"] == 600000
    assert open_recovery(blob, PERSON, passphrase="correct horse").sig_pub == keys.sig_pub
    with pytest.raises(DecryptError, match="Wrong passphrase"):
        open_recovery(blob, PERSON, passphrase="wrong horse")
    with pytest.raises(FormatError, match="600000"):
        open_recovery({**blob, "iterations": 1000}, PERSON, passphrase="correct horse")
    with pytest.raises(FormatError):
        seal_recovery(keys, PERSON, DEVICE, passphrase="x", iterations=10)
    with pytest.raises(FormatError):
        seal_recovery(keys, PERSON, DEVICE)
    with pytest.raises(TrustError, match="another person or device"):  # the id is sealed inside
        open_recovery({**blob, "device": VISIT}, PERSON, passphrase="correct horse")
