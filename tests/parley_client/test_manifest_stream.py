"""The manifest, statements, shares, the reader's checks, and streaming files in and
out (with a small chunk size; the default is 1 MiB)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley_client.crypto import (
    CHUNK,
    CheckedVersion,
    DecryptError,
    FormatError,
    TrustError,
    b64u,
    canonical_json,
    check_manifest,
    decrypt_to_file,
    device_statement,
    make_share,
    sign_statement,
    unb64u,
    verify_statement,
    wrap_key,
)
from tests.parley_client.world import DOCUMENT, VERSION, VISIT, Device, Upload, device, upload

SMALL = 64


@pytest.fixture
def people() -> dict[str, Device]:
    return {"uploader": device(1, 100), "uploader2": device(2, 100, "ES256"), "expert": device(3, 200, "ES256"),
            "secretariat": device(4, 300), "outsider": device(5, 400)}


def _file(tmp_path: Path, data: bytes, name: str = "law.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _check(up: Upload, reader: Device, uploader: Device, **overrides: object) -> CheckedVersion:
    args: dict[str, object] = dict(
        visit_id=VISIT, version_id=VERSION, document_id=DOCUMENT, uploader=uploader.public, me=reader.public,
        keys=reader.keys, wrapped=up.wrapped.get(reader.id, bytes(80)), meta_ciphertext=up.meta_ciphertext,
    )
    args.update(overrides)
    text, signature = str(args.pop("text", up.manifest_text)), str(args.pop("signature", up.signature))
    return check_manifest(text, signature, **args)  # type: ignore[arg-type]


@pytest.fixture
def uploaded(tmp_path: Path, people: dict[str, Device]) -> Upload:
    recipients = [people[k] for k in ("uploader", "uploader2", "expert", "secretariat")]
    return upload(_file(tmp_path, b"x" * (3 * SMALL + 5)), people["uploader"], recipients, chunk_size=SMALL)


def test_manifest_form(uploaded: Upload, people: dict[str, Device]) -> None:
    body = json.loads(uploaded.manifest_text)
    assert canonical_json(body).decode() == uploaded.manifest_text
    assert body["chunks"] == 4 and len(body["chunk_hashes"]) == 4
    assert body["size"] == 3 * SMALL + 5 + 4 * 16
    assert [r["device"] for r in body["recipients"]] == sorted(r["device"] for r in body["recipients"])
    assert body["uploader"] == people["uploader"].id


@pytest.mark.parametrize("reader", ["uploader", "uploader2", "expert", "secretariat"])
def test_every_recipient_reads_it(tmp_path: Path, uploaded: Upload, people: dict[str, Device], reader: str) -> None:
    checked = _check(uploaded, people[reader], people["uploader"])
    assert checked.meta["name"] == "law.txt" and not checked.via_share
    out = tmp_path / "out" / "law.txt"
    out.parent.mkdir()
    assert decrypt_to_file(checked, io.BytesIO(uploaded.content), out) == 3 * SMALL + 5
    assert out.read_bytes() == b"x" * (3 * SMALL + 5)
    assert list(out.parent.iterdir()) == [out]


def test_outsider_is_refused(uploaded: Upload, people: dict[str, Device]) -> None:
    with pytest.raises(TrustError, match="not among the document's recipients"):
        _check(uploaded, people["outsider"], people["uploader"])


def test_forged_or_altered_manifest_is_refused(uploaded: Upload, people: dict[str, Device]) -> None:
    body = json.loads(uploaded.manifest_text)
    forged_text, forged_sig = sign_statement(people["outsider"].keys, body)
    with pytest.raises(TrustError, match="signature"):  # signed by someone else
        _check(uploaded, people["expert"], people["uploader"], signature=forged_sig)
    with pytest.raises(TrustError, match="uploading device"):  # another uploader presented
        _check(uploaded, people["expert"], people["outsider"], text=forged_text, signature=forged_sig)
    altered = canonical_json({**body, "chunks": 4, "size": body["size"] - 1}).decode()
    with pytest.raises(TrustError, match="signature"):
        _check(uploaded, people["expert"], people["uploader"], text=altered)
    with pytest.raises(FormatError, match="canonical"):
        _check(uploaded, people["expert"], people["uploader"], text=json.dumps(body))
    with pytest.raises(TrustError, match="another visit"):
        _check(uploaded, people["expert"], people["uploader"], visit_id="f" * 32)


def test_recipient_list_swapped_for_other_keys(tmp_path: Path, people: dict[str, Device]) -> None:
    """The server swaps the expert's keys for its own: the uploader wraps to them, and
    the manifest records that fingerprint; the real expert device refuses."""
    impostor = Device(people["expert"].id, people["expert"].person, device(9, 200).keys)
    recipients = [people["uploader"], impostor, people["secretariat"]]
    up = upload(_file(tmp_path, b"secret"), people["uploader"], recipients, chunk_size=SMALL)
    up.wrapped[people["expert"].id] = wrap_key(up.key, people["expert"].keys.enc_pub, VISIT, VERSION,
                                               people["expert"].id)
    with pytest.raises(TrustError, match="another fingerprint"):
        _check(up, people["expert"], people["uploader"])


def test_commitment_and_meta_hash(uploaded: Upload, people: dict[str, Device]) -> None:
    expert = people["expert"]
    other_key = wrap_key(b"\x07" * 32, expert.keys.enc_pub, VISIT, VERSION, expert.id)
    with pytest.raises(TrustError, match="key commitment"):
        _check(uploaded, expert, people["uploader"], wrapped=other_key)
    with pytest.raises(TrustError, match="metadata record"):
        _check(uploaded, expert, people["uploader"], meta_ciphertext=uploaded.meta_ciphertext[:-1] + b"\0")
    with pytest.raises(DecryptError, match="wrapped key"):
        _check(uploaded, expert, people["uploader"], wrapped=uploaded.wrapped[people["secretariat"].id])


def test_shares_add_late_recipients(uploaded: Upload, people: dict[str, Device]) -> None:
    sec, late, uploader = people["secretariat"], people["outsider"], people["uploader"]
    devices = {d.id: d.public for d in people.values()}
    body = make_share(version_id=VERSION, manifest_text=uploaded.manifest_text, by=sec.public,
                      recipients=[late.recipient])
    share = sign_statement(sec.keys, body)
    wrapped = wrap_key(uploaded.key, late.keys.enc_pub, VISIT, VERSION, late.id)
    checked = _check(uploaded, late, uploader, wrapped=wrapped, shares=[share], devices=devices)
    assert checked.via_share and checked.key == uploaded.key
    # A share signed by a non-recipient, or about another manifest, or forged, is ignored.
    rogue = device(6, 500)
    devices[rogue.id] = rogue.public
    bad_shares = [
        sign_statement(rogue.keys, {**body, "by": rogue.id, "by_fp": b64u(rogue.public.fingerprint)}),
        sign_statement(sec.keys, {**body, "manifest_hash": b64u(bytes(32))}),
        (share[0], sign_statement(rogue.keys, body)[1]),
    ]
    for bad in bad_shares:
        with pytest.raises(TrustError, match="nor in a valid share"):
            _check(uploaded, late, uploader, wrapped=wrapped, shares=[bad], devices=devices)
    # A chain: the late recipient, once accepted, may share further.
    later = device(7, 600)
    devices[later.id] = later.public
    body2 = make_share(version_id=VERSION, manifest_text=uploaded.manifest_text, by=late.public,
                       recipients=[later.recipient])
    wrapped2 = wrap_key(uploaded.key, later.keys.enc_pub, VISIT, VERSION, later.id)
    _check(uploaded, later, uploader, wrapped=wrapped2, shares=[share, sign_statement(late.keys, body2)],
           devices=devices)
    with pytest.raises(TrustError):
        _check(uploaded, later, uploader, wrapped=wrapped2, shares=[sign_statement(late.keys, body2), share],
               devices=devices)


def test_statements(people: dict[str, Device]) -> None:
    a, b = people["uploader"], people["uploader2"]
    body = device_statement("cross-sign", a.public, b.public)
    text, signature = sign_statement(a.keys, body)
    assert verify_statement(a.keys.sig_alg, a.keys.sig_pub, text, signature) == body
    assert body["subject_fp"] == b64u(b.public.fingerprint)
    with pytest.raises(TrustError):
        verify_statement(b.keys.sig_alg, b.keys.sig_pub, text, signature)
    spaced = text.replace(",", ", ")
    with pytest.raises(FormatError, match="canonical"):
        verify_statement(a.keys.sig_alg, a.keys.sig_pub, spaced, b64u(a.keys.sign(spaced.encode())))
    with pytest.raises(FormatError):
        device_statement("cross-sign", a.public, people["expert"].public)
    with pytest.raises(FormatError):
        sign_statement(a.keys, {"t": "x", "ok": True})


def _tampered_streams(up: Upload) -> dict[str, tuple[bytes, type[Exception]]]:
    c = [x.ciphertext for x in up.chunks]
    flipped = bytearray(up.content)
    flipped[SMALL // 2] ^= 1
    return {
        "flipped bit": (bytes(flipped), TrustError),
        "swapped chunks": (c[1] + c[0] + b"".join(c[2:]), TrustError),
        "missing last chunk": (b"".join(c[:-1]), DecryptError),
        "truncated": (up.content[:-1], DecryptError),
        "extra bytes": (up.content + b"\0", DecryptError),
    }


@pytest.mark.parametrize("case", ["flipped bit", "swapped chunks", "missing last chunk", "truncated", "extra bytes"])
def test_tampered_content_leaves_nothing(tmp_path: Path, uploaded: Upload, people: dict[str, Device],
                                         case: str) -> None:
    checked = _check(uploaded, people["expert"], people["uploader"])
    data, error = _tampered_streams(uploaded)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error):
        decrypt_to_file(checked, io.BytesIO(data), out_dir / "law.txt")
    assert list(out_dir.iterdir()) == []


def test_hash_is_checked_before_decrypting(tmp_path: Path, uploaded: Upload, people: dict[str, Device]) -> None:
    """A chunk that would decrypt (the same chunk, re-encrypted validly) but is not the
    signed one is refused by its hash: the manifest, not the key, is the authority."""
    from parley_client.crypto import encrypt_chunk

    checked = _check(uploaded, people["expert"], people["uploader"])
    other = encrypt_chunk(uploaded.key, VERSION, 0, False, b"y" * SMALL)
    data = other + b"".join(c.ciphertext for c in uploaded.chunks[1:])
    with pytest.raises(TrustError, match="Chunk 0"):
        decrypt_to_file(checked, io.BytesIO(data), tmp_path / "copy.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["law.txt"]  # the input only


def test_existing_file_is_not_overwritten(tmp_path: Path, uploaded: Upload, people: dict[str, Device]) -> None:
    checked = _check(uploaded, people["expert"], people["uploader"])
    out = tmp_path / "out.txt"
    out.write_bytes(b"mine")
    with pytest.raises(FormatError, match="already exists"):
        decrypt_to_file(checked, io.BytesIO(uploaded.content), out)
    assert out.read_bytes() == b"mine" and len(list(tmp_path.iterdir())) == 2  # law.txt and out.txt
    decrypt_to_file(checked, io.BytesIO(uploaded.content), out, overwrite=True)
    assert out.read_bytes() == b"x" * (3 * SMALL + 5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.sampled_from([0, 1, SMALL - 1, SMALL, SMALL + 1, 2 * SMALL, 3 * SMALL + 7]) | st.integers(0, 5 * SMALL),
       alg=st.sampled_from(["Ed25519", "ES256"]))
def test_round_trip_at_chunk_boundaries(tmp_path_factory: pytest.TempPathFactory, size: int, alg: str) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    data = bytes((i * 7) % 251 for i in range(size))
    uploader = device(1, 100, alg)
    up = upload(_file(tmp, data, "in.bin"), uploader, [uploader], chunk_size=SMALL)
    n = max(1, -(-size // SMALL))
    assert len(up.chunks) == n and up.chunks[-1].last and not any(c.last for c in up.chunks[:-1])
    assert len(up.content) == size + 16 * n
    checked = _check(up, uploader, uploader)
    assert checked.manifest.chunks == n and checked.meta["size"] == size
    decrypt_to_file(checked, io.BytesIO(up.content), tmp / "out.bin")
    assert (tmp / "out.bin").read_bytes() == data


def test_default_chunk_size_is_one_mebibyte(tmp_path: Path) -> None:
    uploader = device(1, 100)
    up = upload(_file(tmp_path, b"\1" * (CHUNK + 1), "big.bin"), uploader, [uploader], chunk_size=CHUNK)
    assert [len(c.ciphertext) for c in up.chunks] == [CHUNK + 16, 17]
    assert json.loads(up.manifest_text)["chunk_size"] == 1048576
    checked = _check(up, uploader, uploader)
    decrypt_to_file(checked, io.BytesIO(up.content), tmp_path / "big.out")
    assert (tmp_path / "big.out").read_bytes() == b"\1" * (CHUNK + 1)
    assert unb64u(json.loads(up.manifest_text)["chunk_hashes"][1]) == up.chunks[1].sha256
