"""How an audit entry is hashed, and which chain it belongs to. Pure functions.

An entry's hash is an HMAC-SHA256, under a key derived from the server's secret key
(never stored in the database), over the previous entry's hash and the entry's
content including its chain and position. Someone who can write to the database but
does not hold the secret key cannot make an edited or forged entry verify. Entries
written before keyed hashing form the ``legacy`` chain and keep their plain SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.audit.models import AuditEntry

GENESIS = "0" * 64
GLOBAL_CHAIN = "global"
LEGACY_CHAIN = "legacy"
_VISIT_PREFIX = "visit:"
# Changing the label changes every hash: it names the scheme, so a future scheme can
# coexist with this one under its own label.
_KEY_LABEL = b"parley/audit-chain/hmac-sha256/v1"
_CHECKPOINT_LABEL = b"parley/audit-checkpoint/v1\n"


def chain_for(visit_id: str | None) -> str:
    return _VISIT_PREFIX + visit_id if visit_id else GLOBAL_CHAIN


def chain_key(secret_key: bytes) -> bytes:
    """The HMAC key of every chain, from the server's secret key. A separate derived key
    so that the audit log never uses the raw secret that also hashes login tokens."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_LABEL).derive(secret_key)


def _body(entry: AuditEntry, *, with_chain: bool) -> bytes:
    content: dict[str, object] = {
        "seq": entry.seq,
        "at": entry.at.astimezone(UTC).isoformat(),
        "action": entry.action,
        "actor": entry.actor_person_id,
        "visit": entry.visit_id,
        "subject": entry.subject,
        "data": entry.data,
    }
    if with_chain:
        content["chain"] = entry.chain
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    return hmac.new(key, prev_hash.encode() + b"\n" + _body(entry, with_chain=True), hashlib.sha256).hexdigest()


def legacy_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The pre-0003 plain SHA-256: anyone can recompute it, so a legacy chain proves
    only that it is internally consistent."""
    return hashlib.sha256(prev_hash.encode() + _body(entry, with_chain=False)).hexdigest()


def expected_hash(key: bytes, prev_hash: str, entry: AuditEntry) -> str:
    if entry.chain == LEGACY_CHAIN:
        return legacy_hash(prev_hash, entry)
    return entry_hash(key, prev_hash, entry)


def checkpoint_message(chain: str, seq: int, head_hash: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return _CHECKPOINT_LABEL + json.dumps(
        {"chain": chain, "seq": seq, "hash": head_hash}, sort_keys=True, separators=(",", ":")
    ).encode()
