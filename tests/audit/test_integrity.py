"""What the keyed chains, the recorded heads and the signed checkpoints catch: a cut-off
tail, an edit whose later hashes were recomputed (with plain SHA-256, or HMAC under a
wrong key), a forged checkpoint; and that visits' chains are independent."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import stat
from dataclasses import replace
from datetime import UTC
from typing import Any

from sqlalchemy import delete, select, update

from server.audit import service as audit
from server.audit.chain import GLOBAL_CHAIN, chain_for, entry_hash
from server.audit.heads import HeadsFile
from server.audit.models import AuditCheckpoint, AuditEntry
from server.config import Settings
from server.core.signing import SigningKey, key_path
from server.db.session import make_engine, make_sessionmaker
from tests.audit.helpers import check, entries

VISIT_A, VISIT_B = "visit-a", "visit-b"


async def fill(sessions: Any, visit_id: str | None, n: int) -> None:
    for i in range(n):
        async with sessions() as db:
            await audit.record(db, "test.event", visit_id=visit_id, subject=str(i), data={"i": i})
            await db.commit()


async def rewrite_from(sessions: Any, chain: str, seq: int, digest: Any) -> None:
    """Edit entry ``seq`` and re-link every later entry with ``digest(prev, row)``,
    as someone with only database access would."""
    async with sessions() as db:
        rows = list(
            (await db.execute(select(AuditEntry).where(AuditEntry.chain == chain).order_by(AuditEntry.seq))).scalars()
        )
        prev = rows[seq - 2].hash if seq > 1 else "0" * 64
        for row in rows[seq - 1 :]:
            if row.seq == seq:
                row.data = {"rewritten": True}
            row.prev_hash = prev
            row.hash = prev = digest(prev, row)
        await db.commit()


def plain_sha256(prev: str, row: AuditEntry) -> str:
    body = json.dumps(
        {"seq": row.seq, "at": row.at.astimezone(UTC).isoformat(), "action": row.action,
         "actor": row.actor_person_id, "visit": row.visit_id, "subject": row.subject, "data": row.data,
         "chain": row.chain},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


async def test_a_cut_off_tail_is_reported_as_truncated(sessions: Any, settings: Settings) -> None:
    await fill(sessions, VISIT_A, 5)
    heads = HeadsFile(settings.var_dir / "audit_heads.json")
    assert heads.read()[chain_for(VISIT_A)].seq == 5
    assert (await check(sessions, settings)).ok
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.chain == chain_for(VISIT_A), AuditEntry.seq >= 4))
        await db.commit()
    result = await check(sessions, settings)
    [problem] = result.problems
    assert problem.chain == chain_for(VISIT_A) and str(problem).endswith("truncated after 3 (the recorded head is entry 5)")
    # Without the heads the shorter chain is consistent: the heads are the evidence.
    assert (await check(sessions, settings, heads=False)).ok

    # A whole chain deleted.
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.chain == chain_for(VISIT_A)))
        await db.commit()
    [problem] = (await check(sessions, settings)).problems
    assert "truncated after 0" in problem.reason


async def test_the_heads_file_is_owner_only(sessions: Any, settings: Settings) -> None:
    await fill(sessions, None, 1)
    path = settings.var_dir / "audit_heads.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.var_dir.stat().st_mode) == 0o700


async def test_edit_recomputed_with_plain_sha256_is_detected(sessions: Any, settings: Settings) -> None:
    await fill(sessions, VISIT_A, 6)
    await rewrite_from(sessions, chain_for(VISIT_A), 3, plain_sha256)
    problems = (await check(sessions, settings, heads=False)).problems
    assert (problems[0].chain, problems[0].seq) == (chain_for(VISIT_A), 3)
    assert "altered" in problems[0].reason


async def test_edit_recomputed_without_the_key_is_detected(sessions: Any, settings: Settings) -> None:
    await fill(sessions, VISIT_A, 6)
    # The attacker knows the scheme (HMAC over the same content) but not the secret key.
    guessed = audit.chain_key(b"a guess at the secret key")

    def with_guessed_key(prev: str, row: AuditEntry) -> str:
        return entry_hash(guessed, prev, row)

    await rewrite_from(sessions, chain_for(VISIT_A), 2, with_guessed_key)
    [problem] = (await check(sessions, settings, heads=False)).problems
    assert (problem.chain, problem.seq) == (chain_for(VISIT_A), 2) and "altered" in problem.reason
    # Even the raw secret key as the HMAC key is wrong: the chain key is derived from it.
    assert hmac.compare_digest(audit.chain_key(settings.secret_key), audit.AuditConfig.from_settings(settings).key)
    assert audit.chain_key(settings.secret_key) != settings.secret_key


async def test_visits_have_independent_chains(sessions: Any, settings: Settings) -> None:
    await fill(sessions, VISIT_A, 3)
    await fill(sessions, VISIT_B, 2)
    await fill(sessions, None, 2)
    assert [e.seq for e in await entries(sessions, chain=chain_for(VISIT_A))] == [1, 2, 3]
    assert [e.seq for e in await entries(sessions, chain=chain_for(VISIT_B))] == [1, 2]
    assert [e.seq for e in await entries(sessions, chain=GLOBAL_CHAIN)] == [1, 2]
    report = await check(sessions, settings)
    assert report.ok and report.chains == {chain_for(VISIT_A): 3, chain_for(VISIT_B): 2, GLOBAL_CHAIN: 2}

    # Damage to one visit's chain leaves the others verified.
    async with sessions() as db:
        await db.execute(
            update(AuditEntry).where(AuditEntry.chain == chain_for(VISIT_B), AuditEntry.seq == 1).values(action="x")
        )
        await db.commit()
    [problem] = (await check(sessions, settings)).problems
    assert (problem.chain, problem.seq) == (chain_for(VISIT_B), 1)

    if not settings.database_url.startswith("postgresql"):
        return  # SQLite has one writer at a time whatever the chain
    # A transaction holding visit A's chain does not hold up visit B.
    async with sessions() as holder:
        await audit.record(holder, "test.hold", visit_id=VISIT_A)
        async with sessions() as other:
            await asyncio.wait_for(audit.record(other, "test.other", visit_id=VISIT_B), timeout=5)
            await other.commit()
        await holder.commit()


async def test_concurrent_transactions_take_consecutive_positions(sessions: Any, settings: Settings) -> None:
    """Each writer records twice in one transaction and yields in between; on either
    backend the chain stays gap-free and unforked."""

    async def writer(i: int) -> None:
        async with sessions() as db:
            await audit.record(db, "test.first", visit_id=VISIT_A, subject=str(i))
            await asyncio.sleep(0.01)
            await audit.record(db, "test.second", visit_id=VISIT_A, subject=str(i))
            await db.commit()

    await asyncio.wait_for(asyncio.gather(*(writer(i) for i in range(6))), timeout=30)
    rows = await entries(sessions, chain=chain_for(VISIT_A))
    assert [r.seq for r in rows] == list(range(1, 13))
    # A transaction's two entries are adjacent: the chain was held until its commit.
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        assert (first.action, second.action, first.subject) == ("test.first", "test.second", second.subject)
    assert (await check(sessions, settings)).ok


async def test_rolled_back_entries_leave_no_head(sessions: Any, settings: Settings) -> None:
    await fill(sessions, VISIT_A, 2)
    async with sessions() as db:
        await audit.record(db, "test.discarded", visit_id=VISIT_A)
        await db.rollback()
    assert HeadsFile(settings.var_dir / "audit_heads.json").read()[chain_for(VISIT_A)].seq == 2
    await fill(sessions, VISIT_A, 1)
    assert (await check(sessions, settings)).ok


async def test_checkpoints_are_signed_and_checked(sessions: Any, settings: Settings) -> None:
    settings = replace(settings, audit_checkpoint_every=3)
    engine = make_engine(settings.database_url)
    try:
        every3 = make_sessionmaker(engine, info=audit.session_info(settings))
        await fill(every3, VISIT_A, 7)
        async with every3() as db:
            checkpoints = list((await db.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))).scalars())
        assert [(c.chain, c.seq) for c in checkpoints] == [(chain_for(VISIT_A), 3), (chain_for(VISIT_A), 6)]
        public = SigningKey.load(key_path(settings)).public_key
        assert all(c.key_fingerprint == public.fingerprint for c in checkpoints)
        assert stat.S_IMODE(key_path(settings).stat().st_mode) == 0o600
        report = await check(every3, settings)
        assert report.ok and report.checkpoints == 2

        # `parley audit checkpoint`'s work: the head of every chain, once.
        async with every3() as db:
            made = await audit.checkpoint_all(db)
            await db.commit()
        assert [(c.chain, c.seq) for c in made] == [(chain_for(VISIT_A), 7)]
        async with every3() as db:
            assert await audit.checkpoint_all(db) == []

        # A checkpoint moved to another hash keeps its signature only if it was re-signed.
        async with every3() as db:
            await db.execute(
                update(AuditCheckpoint).where(AuditCheckpoint.seq == 6).values(hash="f" * 64)
            )
            await db.commit()
        [problem] = (await check(every3, settings)).problems
        assert (problem.seq, problem.reason) == (6, "checkpoint signature is not valid")

        # Signed by someone else's key.
        forger = SigningKey.generate()
        async with every3() as db:
            row = await db.get(AuditCheckpoint, (chain_for(VISIT_A), 6))
            assert row is not None
            row.hash = (await db.get(AuditEntry, (chain_for(VISIT_A), 6))).hash  # type: ignore[union-attr]
            row.key_fingerprint = forger.public_key.fingerprint
            await db.commit()
        [problem] = (await check(every3, settings)).problems
        assert problem.seq == 6 and "another key" in problem.reason
    finally:
        await engine.dispose()


async def test_a_session_factory_without_the_audit_configuration_refuses(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            try:
                await audit.record(db, "test.event")
            except RuntimeError as err:
                assert "session_info" in str(err)
            else:
                raise AssertionError("recorded without a key")
    finally:
        await engine.dispose()
