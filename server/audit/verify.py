"""Check the audit log: every chain's links and keyed hashes, the heads recorded
outside the database, and the signed checkpoints.

What each check catches (docs/security.md has the full picture):

* links and keyed hashes: an edited, inserted or deleted entry, also when later hashes
  were recomputed, unless whoever did it holds the server's secret key;
* recorded heads: a chain whose tail was cut off (it is otherwise still consistent);
* checkpoints: that the log's state at each checkpoint was signed by this server.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.chain import GENESIS, LEGACY_CHAIN, checkpoint_message, expected_hash
from server.audit.heads import Head
from server.audit.models import AuditCheckpoint, AuditEntry
from server.core.signing import PublicKey


@dataclass(frozen=True)
class Problem:
    chain: str
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"chain {self.chain}" + (f", entry {self.seq}" if self.seq is not None else "")
        return f"{where}: {self.reason}"


@dataclass
class ChainState:
    entries: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    wanted: set[int] = field(default_factory=set)  # seqs a head or checkpoint names
    hashes: dict[int, str] = field(default_factory=dict)
    broken: bool = False


@dataclass(frozen=True)
class VerifyReport:
    chains: dict[str, int]  # chain -> entries checked
    problems: list[Problem]
    checkpoints: int
    heads_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def entries(self) -> int:
        return sum(self.chains.values())

    @property
    def legacy_entries(self) -> int:
        return self.chains.get(LEGACY_CHAIN, 0)


async def verify(
    db: AsyncSession,
    key: bytes,
    *,
    heads: Mapping[str, Head] | None = None,
    public_key: PublicKey | None = None,
    batch: int = 1000,
) -> VerifyReport:
    """Walk every chain; report the first bad entry of each, truncation against
    ``heads``, and checkpoints that do not hold (checked with ``public_key``)."""
    heads = heads or {}
    checkpoints = (
        await db.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.chain, AuditCheckpoint.seq))
    ).scalars().all()
    states: dict[str, ChainState] = {}
    for chain, seq in [(h.chain, h.seq) for h in heads.values()] + [(c.chain, c.seq) for c in checkpoints]:
        states.setdefault(chain, ChainState()).wanted.add(seq)
    problems: list[Problem] = []
    after: tuple[str, int] = ("", 0)
    while True:
        rows = (
            await db.execute(
                select(AuditEntry)
                .where(tuple_(AuditEntry.chain, AuditEntry.seq) > tuple_(*after))
                .order_by(AuditEntry.chain, AuditEntry.seq)
                .limit(batch)
            )
        ).scalars().all()
        if not rows:
            break
        for entry in rows:
            state = states.setdefault(entry.chain, ChainState())
            if not state.broken:
                problem = _check_entry(key, state, entry)
                if problem is not None:
                    state.broken = True
                    problems.append(problem)
            after = (entry.chain, entry.seq)
    for head in heads.values():
        problem = _check_head(states.get(head.chain), head)
        if problem is not None:
            problems.append(problem)
    for checkpoint in checkpoints:
        problem = _check_checkpoint(states.get(checkpoint.chain), checkpoint, public_key)
        if problem is not None:
            problems.append(problem)
    return VerifyReport(
        chains={chain: s.entries for chain, s in states.items() if s.entries or s.broken},
        problems=problems,
        checkpoints=len(checkpoints),
        heads_checked=len(heads),
    )


def _check_entry(key: bytes, state: ChainState, entry: AuditEntry) -> Problem | None:
    expected_seq = state.last_seq + 1
    if entry.seq != expected_seq:
        missing = f"entry {expected_seq}" if entry.seq == expected_seq + 1 else f"entries {expected_seq}-{entry.seq - 1}"
        return Problem(entry.chain, entry.seq, f"{missing} missing before it")
    if entry.prev_hash != state.last_hash:
        return Problem(entry.chain, entry.seq, "its link to the previous entry is broken")
    if expected_hash(key, state.last_hash, entry) != entry.hash:
        return Problem(entry.chain, entry.seq, "its content was altered (the hash does not match)")
    state.entries += 1
    state.last_seq = entry.seq
    state.last_hash = entry.hash
    # Keep only the hashes a head or checkpoint asks about, so memory does not grow
    # with the length of the log.
    if entry.seq in state.wanted:
        state.hashes[entry.seq] = entry.hash
    return None


def _check_head(state: ChainState | None, head: Head) -> Problem | None:
    last = state.last_seq if state else 0
    if state is not None and state.broken and head.seq > last:
        return None  # already reported at the first bad entry
    if head.seq > last:
        return Problem(head.chain, None, f"truncated after {last} (the recorded head is entry {head.seq})")
    assert state is not None
    if state.hashes.get(head.seq) != head.hash:
        return Problem(head.chain, head.seq, "differs from the head recorded outside the database")
    return None


def _check_checkpoint(
    state: ChainState | None, checkpoint: AuditCheckpoint, public_key: PublicKey | None
) -> Problem | None:
    where = (checkpoint.chain, checkpoint.seq)
    if public_key is None:
        return Problem(*where, "checkpoint cannot be checked: no signing key (parley keys show)")
    if checkpoint.key_fingerprint != public_key.fingerprint:
        return Problem(*where, f"checkpoint signed by another key ({checkpoint.key_fingerprint[:16]}...)")
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    message = checkpoint_message(checkpoint.chain, checkpoint.seq, checkpoint.hash)
    if not public_key.verify(message, signature):
        return Problem(*where, "checkpoint signature is not valid")
    last = state.last_seq if state else 0
    if state is not None and state.broken and checkpoint.seq > last:
        return None
    if checkpoint.seq > last:
        return Problem(checkpoint.chain, None, f"truncated after {last} (a signed checkpoint is at entry {checkpoint.seq})")
    assert state is not None
    if state.hashes.get(checkpoint.seq) != checkpoint.hash:
        return Problem(*where, "differs from its signed checkpoint")
    return None
