"""`parley keys show`, `parley audit verify` and `parley audit checkpoint`, run as an
operator would, against the test's database, var directory and secret key."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, text

from server.audit import service as audit
from server.audit.chain import GLOBAL_CHAIN, chain_for
from server.audit.heads import HEAD_LOGGER
from server.audit.models import AuditEntry
from server.config import Settings
from server.core.signing import PublicKey, SigningKey, key_path
from server.db.session import make_engine, make_sessionmaker
from tests.audit.helpers import parley

VISIT = "cli-visit"


async def fill(sessions: Any, visit_id: str | None, n: int) -> None:
    for i in range(n):
        async with sessions() as db:
            await audit.record(db, "test.event", visit_id=visit_id, data={"i": i})
            await db.commit()


def test_keys_show(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path / "var", database_url="sqlite+aiosqlite:///unused.db", redis_url=None,
        storage_dir=tmp_path, host="127.0.0.1", port=1, base_url="http://x", allowed_origins=(),
        secret_key=b"k",
    )
    shown = parley(settings, tmp_path, "keys", "show")
    assert shown.returncode == 0, shown.stderr
    key = SigningKey.load(tmp_path / "var" / "signing_key.pem").public_key
    assert f"Public key (Ed25519, base64): {key.base64}" in shown.stdout
    assert f"Fingerprint (SHA-256): {key.fingerprint}" in shown.stdout
    pem = shown.stdout[shown.stdout.index("-----BEGIN PUBLIC KEY-----"):]
    assert PublicKey.from_text(pem) == key == PublicKey.from_text(key.base64)
    # Created once: showing again prints the same key.
    assert parley(settings, tmp_path, "keys", "show").stdout == shown.stdout

    # PARLEY_SIGNING_KEY_FILE puts the key elsewhere.
    elsewhere = tmp_path / "keys" / "parley.pem"
    moved = parley(settings, tmp_path, "keys", "show", PARLEY_SIGNING_KEY_FILE=str(elsewhere))
    assert moved.returncode == 0 and str(elsewhere) in moved.stdout
    assert SigningKey.load(elsewhere).public_key.base64 in moved.stdout
    assert key.base64 not in moved.stdout


async def test_verify_messages(sessions: Any, settings: Settings, tmp_path: Path) -> None:
    await fill(sessions, VISIT, 4)
    await fill(sessions, None, 2)
    ok = parley(settings, tmp_path, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "Audit log intact: 6 entries in 2 chains, 2 recorded heads, 0 signed checkpoints." in ok.stdout

    made = parley(settings, tmp_path, "audit", "checkpoint")
    assert made.returncode == 0 and "Signed 2 new checkpoints" in made.stdout, made.stderr
    assert "2 signed checkpoints" in parley(settings, tmp_path, "audit", "verify").stdout

    # An edit, as someone with database access would make it.
    async with sessions() as db:
        await db.execute(
            text("UPDATE audit_entry SET action = 'nothing.to.see' WHERE chain = :c AND seq = 2"),
            {"c": chain_for(VISIT)},
        )
        await db.commit()
    broken = parley(settings, tmp_path, "audit", "verify")
    assert broken.returncode == 1, (broken.stdout, broken.stderr)
    assert f"Audit log BROKEN: chain {chain_for(VISIT)}, entry 2: its content was altered" in broken.stderr
    assert "Traceback" not in broken.stderr

    # A cut-off tail of the other chain.
    async with sessions() as db:
        await db.execute(delete(AuditEntry).where(AuditEntry.chain == GLOBAL_CHAIN, AuditEntry.seq == 2))
        await db.commit()
    broken = parley(settings, tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert (
        f"Audit log BROKEN: chain {GLOBAL_CHAIN}: truncated after 1 (the recorded head is entry 2)." in broken.stderr
    )


async def test_verify_with_heads_from_the_log(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logged = replace(settings, audit_heads="log")
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine, info=audit.session_info(logged))
        with caplog.at_level(logging.INFO, logger=HEAD_LOGGER):
            await fill(sessions, VISIT, 3)
        assert not (settings.var_dir / "audit_heads.json").exists()
        # As the operator's log stream holds them: a formatter's prefix, other lines between.
        lines = [f"2026-11-24 10:00:00,000 INFO {r.name}: {r.getMessage()}" for r in caplog.records]
        assert len(lines) == 3
        log_file = tmp_path / "parley.log"
        log_file.write_text("\n".join(["unrelated line {", *lines, "aiohttp.access GET /"]) + "\n")

        env = {"PARLEY_AUDIT_HEADS": "log"}
        without = parley(settings, tmp_path, "audit", "verify", **env)
        assert without.returncode == 0 and "no recorded heads" in without.stdout
        assert parley(settings, tmp_path, "audit", "verify", "--heads", str(log_file), **env).returncode == 0

        async with sessions() as db:
            await db.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
            await db.commit()
        broken = parley(settings, tmp_path, "audit", "verify", "--heads", str(log_file), **env)
        assert broken.returncode == 1
        assert "truncated after 2 (the recorded head is entry 3)" in broken.stderr
    finally:
        await engine.dispose()


async def test_verify_checks_checkpoints_with_a_given_public_key(
    sessions: Any, settings: Settings, tmp_path: Path
) -> None:
    await fill(sessions, VISIT, 2)
    assert parley(settings, tmp_path, "audit", "checkpoint").returncode == 0
    public = tmp_path / "public.txt"
    public.write_text(SigningKey.load(key_path(settings)).public_key.pem)
    assert parley(settings, tmp_path, "audit", "verify", "--public-key", str(public)).returncode == 0
    public.write_text(SigningKey.generate().public_key.base64)
    other = parley(settings, tmp_path, "audit", "verify", "--public-key", str(public))
    assert other.returncode == 1 and "checkpoint signed by another key" in other.stderr
