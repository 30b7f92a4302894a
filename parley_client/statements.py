"""Signed statements, the manifest, shares, and the reader's checks (docs/evidence.md
"Signed statements", "Manifest", "Late recipients")."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from parley_client.content import CHUNK, TAG, chunk_count, key_commit, open_meta, unwrap_key
from parley_client.encoding import b64u, canonical_json, check_id, parse_canonical, unb64u
from parley_client.errors import FormatError, TrustError
from parley_client.keys import DeviceKeys, DevicePublic, verify_signature

STATEMENT_KINDS = {"verify": "parley/verify/v1", "cross-sign": "parley/cross-sign/v1"}


def sign_statement(keys: DeviceKeys, body: Mapping[str, Any]) -> tuple[str, str]:
    """(canonical text, b64u raw signature over its bytes)."""
    data = canonical_json(dict(body))
    return data.decode("ascii"), b64u(keys.sign(data))


def verify_statement(sig_alg: str, sig_pub: bytes, text: str, signature: str) -> dict[str, Any]:
    """The statement's body, after checking it is canonical and signed by that key."""
    body = parse_canonical(text)
    if not verify_signature(sig_alg, sig_pub, text.encode("ascii"), unb64u(signature)):
        raise TrustError("The signature does not match the signer's key.")
    return body


def device_statement(kind: str, signer: DevicePublic, subject: DevicePublic) -> dict[str, Any]:
    """A verify or cross-sign statement about ``subject``'s current fingerprint."""
    if kind not in STATEMENT_KINDS:
        raise FormatError("A statement is a verify or a cross-sign.")
    if kind == "cross-sign" and signer.person != subject.person:
        raise FormatError("A cross-sign is between two devices of the same person.")
    return {"t": STATEMENT_KINDS[kind], "by": signer.id, "by_fp": b64u(signer.fingerprint), "subject": subject.id,
            "subject_fp": b64u(subject.fingerprint), "subject_person": subject.person}


@dataclass(frozen=True)
class Recipient:
    device: str
    person: str
    fp: bytes

    def as_json(self) -> dict[str, str]:
        return {"device": self.device, "fp": b64u(self.fp), "person": self.person}


def _recipients_json(recipients: Iterable[Recipient]) -> list[dict[str, str]]:
    listed = sorted(recipients, key=lambda r: r.device)
    if len({r.device for r in listed}) != len(listed):
        raise FormatError("A device is listed twice among the recipients.")
    for r in listed:
        check_id(r.device, "recipient device")
        check_id(r.person, "recipient person")
        if len(r.fp) != 32:
            raise FormatError("A recipient fingerprint is 32 bytes.")
    return [r.as_json() for r in listed]


def make_manifest(*, visit_id: str, document_id: str, version_id: str, chunk_hashes: Sequence[bytes], size: int,
                  meta_ciphertext: bytes, commit: bytes, uploader: str, uploader_fp: bytes,
                  recipients: Iterable[Recipient], chunk_size: int = CHUNK) -> dict[str, Any]:
    """The manifest body to sign with :func:`sign_statement`; recipients sorted by device,
    the uploading device among them."""
    listed = _recipients_json(recipients)
    if not any(r["device"] == uploader and r["fp"] == b64u(uploader_fp) for r in listed):
        raise FormatError("The uploading device must be among the recipients.")
    if not chunk_hashes or any(len(h) != 32 for h in chunk_hashes):
        raise FormatError("There is at least one chunk, and a chunk hash is 32 bytes.")
    return {
        "t": "parley/manifest/v1", "visit": check_id(visit_id, "visit"), "document": check_id(document_id, "document"),
        "version": check_id(version_id, "version"), "chunk_size": chunk_size, "chunks": len(chunk_hashes),
        "size": size, "chunk_hashes": [b64u(h) for h in chunk_hashes],
        "meta_hash": b64u(hashlib.sha256(meta_ciphertext).digest()), "commit": b64u(commit),
        "uploader": check_id(uploader, "uploader"), "uploader_fp": b64u(uploader_fp), "recipients": listed,
    }


def make_share(*, version_id: str, manifest_text: str, by: DevicePublic,
               recipients: Iterable[Recipient]) -> dict[str, Any]:
    return {"t": "parley/share/v1", "version": check_id(version_id, "version"),
            "manifest_hash": b64u(hashlib.sha256(manifest_text.encode("ascii")).digest()),
            "by": by.id, "by_fp": b64u(by.fingerprint), "recipients": _recipients_json(recipients)}


def _int(body: Mapping[str, Any], field: str, minimum: int) -> int:
    value = body.get(field)
    if not isinstance(value, int) or value < minimum:
        raise FormatError(f"Manifest {field}: not an integer of at least {minimum}.")
    return value


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{what}: missing.")
    raw = unb64u(value)
    if len(raw) != 32:
        raise FormatError(f"{what}: not 32 bytes.")
    return raw


def _parse_recipients(value: object, where: str) -> dict[str, Recipient]:
    if not isinstance(value, list) or not value:
        raise FormatError(f"{where}: the recipient list is missing or empty.")
    out: dict[str, Recipient] = {}
    for item in value:
        if not isinstance(item, dict) or set(item) != {"device", "fp", "person"}:
            raise FormatError(f"{where}: a recipient is {{device, fp, person}}.")
        r = Recipient(check_id(item["device"], "recipient device"), check_id(item["person"], "recipient person"),
                      _hash(item["fp"], "recipient fingerprint"))
        out[r.device] = r
    devices = [item["device"] for item in value]
    if devices != sorted(set(devices)):
        raise FormatError(f"{where}: recipients must be sorted by device, each once.")
    return out


@dataclass(frozen=True)
class Manifest:
    """A manifest's fields, parsed and checked for form (not yet for trust)."""

    text: str
    visit: str
    document: str
    version: str
    chunk_size: int
    chunks: int
    size: int
    chunk_hashes: list[bytes]
    meta_hash: bytes
    commit: bytes
    uploader: str
    uploader_fp: bytes
    recipients: dict[str, Recipient]


_MANIFEST_FIELDS = {"t", "visit", "document", "version", "chunk_size", "chunks", "size", "chunk_hashes", "meta_hash",
                    "commit", "uploader", "uploader_fp", "recipients"}


def parse_manifest(text: str) -> Manifest:
    body = parse_canonical(text)
    if body.get("t") != "parley/manifest/v1" or set(body) != _MANIFEST_FIELDS:
        raise FormatError("Not a version 1 manifest (wrong type or fields).")
    chunk_size, chunks, size = _int(body, "chunk_size", 1), _int(body, "chunks", 1), _int(body, "size", TAG)
    if chunk_size > CHUNK:
        raise FormatError(f"Manifest chunk_size: at most {CHUNK} bytes.")
    hashes = body["chunk_hashes"]
    if not isinstance(hashes, list) or len(hashes) != chunks:
        raise FormatError("Manifest: chunk_hashes does not hold one hash per chunk.")
    # n chunks: all but the last are full; the last holds at least one byte unless it is the only one.
    smallest = (chunks - 1) * (chunk_size + TAG) + TAG + (1 if chunks > 1 else 0)
    if not smallest <= size <= chunks * (chunk_size + TAG):
        raise FormatError("Manifest: the size does not fit the number of chunks.")
    return Manifest(
        text=text, visit=check_id(body["visit"], "visit"), document=check_id(body["document"], "document"),
        version=check_id(body["version"], "version"), chunk_size=chunk_size, chunks=chunks, size=size,
        chunk_hashes=[_hash(h, f"chunk hash {i}") for i, h in enumerate(hashes)],
        meta_hash=_hash(body["meta_hash"], "meta_hash"), commit=_hash(body["commit"], "commit"),
        uploader=check_id(body["uploader"], "uploader"), uploader_fp=_hash(body["uploader_fp"], "uploader_fp"),
        recipients=_parse_recipients(body["recipients"], "Manifest"),
    )


@dataclass(frozen=True)
class CheckedVersion:
    """A version every check passed for: its key, its metadata, what each chunk must hash to."""

    manifest: Manifest
    key: bytes
    meta: dict[str, Any]
    via_share: bool

    @property
    def plaintext_size(self) -> int:
        return int(self.meta["size"])


def _accept_shares(manifest: Manifest, shares: Sequence[tuple[str, str]],
                   devices: Mapping[str, DevicePublic]) -> dict[str, Recipient]:
    """Recipients added by valid shares, in order; a share that fails a check is ignored."""
    allowed = dict(manifest.recipients)
    added: dict[str, Recipient] = {}
    manifest_hash = hashlib.sha256(manifest.text.encode("ascii")).digest()
    for text, signature in shares:
        try:
            body = parse_canonical(text)
            if body.get("t") != "parley/share/v1" or body.get("version") != manifest.version:
                continue
            if _hash(body.get("manifest_hash"), "manifest_hash") != manifest_hash:
                continue
            signer = devices.get(str(body.get("by")))
            listed = allowed.get(str(body.get("by")))
            if signer is None or listed is None or listed.fp != signer.fingerprint:
                continue
            if _hash(body.get("by_fp"), "by_fp") != signer.fingerprint:
                continue
            verify_statement(signer.sig_alg, signer.sig_pub, text, signature)
            new = _parse_recipients(body.get("recipients"), "Share")
        except (FormatError, TrustError):
            continue
        for device, r in new.items():
            allowed.setdefault(device, r)
            added.setdefault(device, r)
    return added


def check_manifest(manifest_text: str, signature: str, *, visit_id: str, version_id: str, document_id: str | None,
                   uploader: DevicePublic, me: DevicePublic, keys: DeviceKeys, wrapped: bytes,
                   meta_ciphertext: bytes, shares: Sequence[tuple[str, str]] = (),
                   devices: Mapping[str, DevicePublic] | None = None) -> CheckedVersion:
    """Every check a reader makes before it shows or saves anything: the canonical bytes,
    the uploader's signature, this device among the recipients with its own fingerprint
    (or in a valid share), the key commitment and the metadata hash. Whether the uploader
    is trusted or pinned is the caller's judgement (the document shows "unverified
    uploader" otherwise). Chunk hashes are checked while decrypting."""
    manifest = parse_manifest(manifest_text)
    if (manifest.visit, manifest.version) != (visit_id, version_id) or (
        document_id is not None and manifest.document != document_id
    ):
        raise TrustError("The manifest names another visit, document or version than the one asked for.")
    if manifest.uploader != uploader.id or not hmac.compare_digest(manifest.uploader_fp, uploader.fingerprint):
        raise TrustError("The manifest names another uploading device or fingerprint than the server lists.")
    listed = manifest.recipients.get(uploader.id)
    if listed is None or listed.fp != uploader.fingerprint or listed.person != uploader.person:
        raise TrustError("The uploading device is not among the manifest's recipients.")
    verify_statement(uploader.sig_alg, uploader.sig_pub, manifest_text, signature)
    if me.enc_pub != keys.enc_pub or me.sig_pub != keys.sig_pub or me.sig_alg != keys.sig_alg:
        raise TrustError("This device's keys differ from the ones the server lists for it.")
    mine = manifest.recipients.get(me.id)
    via_share = False
    if mine is None:
        mine = _accept_shares(manifest, shares, devices or {}).get(me.id)
        via_share = True
    if mine is None:
        raise TrustError("This device is not among the document's recipients (nor in a valid share).")
    if mine.fp != me.fingerprint or mine.person != me.person:
        raise TrustError("The recipient list holds another fingerprint for this device: the document was "
                         "shared to keys that are not this device's.")
    key = unwrap_key(wrapped, keys.enc_private, visit_id, version_id, me.id)
    if not hmac.compare_digest(key_commit(key, version_id), manifest.commit):
        raise TrustError("The key commitment does not match: the content key is not the one the uploader signed.")
    if hashlib.sha256(meta_ciphertext).digest() != manifest.meta_hash:
        raise TrustError("The metadata record is not the one the manifest signs.")
    meta = open_meta(key, version_id, meta_ciphertext)
    if chunk_count(meta["size"], manifest.chunk_size) != manifest.chunks or (
        meta["size"] + TAG * manifest.chunks != manifest.size
    ):
        raise TrustError("The metadata's size does not match the manifest's chunks.")
    return CheckedVersion(manifest=manifest, key=key, meta=meta, via_share=via_share)
