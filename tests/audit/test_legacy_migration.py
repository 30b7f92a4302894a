"""Revision 0003 keeps entries written before keyed hashing as the ``legacy`` chain,
checked with its old rule; the downgrade puts every entry back into one plain chain."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from server.audit import service as audit
from server.audit.chain import LEGACY_CHAIN, chain_for
from server.config import Settings
from server.db import migrate
from server.db.session import make_engine, make_sessionmaker
from tests.audit.helpers import check
from tests.conftest import BACKENDS
from tests.fixtures.databases import create_pg_database, drop_pg_database, pg_url


def old_digest(prev: str, row: dict[str, Any]) -> str:
    body = json.dumps(
        {"seq": row["seq"], "at": row["at"].astimezone(UTC).isoformat(), "action": row["action"],
         "actor": None, "visit": row["visit_id"], "subject": None, "data": row["data"]},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256((prev + body).encode()).hexdigest()


@pytest.fixture(params=BACKENDS)
async def url_at_0002(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        name = None
    else:
        name = await create_pg_database()
        url = pg_url(name)
    await asyncio.to_thread(migrate.upgrade, url, "0002")
    yield url
    if name:
        await drop_pg_database(name)


async def plain_chain(url: str) -> list[tuple[int, str, str]]:
    """The 0002 log's rows, checked with the 0002 rule."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT seq, prev_hash, hash FROM audit_entry ORDER BY seq"))).all()
    finally:
        await engine.dispose()
    return [(r.seq, r.prev_hash, r.hash) for r in rows]


async def test_old_entries_become_the_legacy_chain(url_at_0002: str, tmp_path: Path) -> None:
    url = url_at_0002
    start = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    prev = "0" * 64
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for seq in (1, 2, 3):
                row: dict[str, Any] = {"seq": seq, "at": start + timedelta(minutes=seq), "action": "login",
                       "visit_id": "v1", "data": {"n": seq}}
                digest = old_digest(prev, row)
                await conn.execute(
                    text("INSERT INTO audit_entry (seq, at, action, visit_id, data, prev_hash, hash) "
                         "VALUES (:seq, :at, :action, :visit_id, :data, :prev, :hash)"),
                    row | {"at": row["at"] if url.startswith("postgresql") else row["at"].replace(tzinfo=None),
                           "data": json.dumps(row["data"]), "prev": prev, "hash": digest},
                )
                prev = digest
    finally:
        await engine.dispose()
    legacy_hashes = [h for _, _, h in await plain_chain(url)]

    await asyncio.to_thread(migrate.upgrade, url)
    settings = Settings(
        var_dir=tmp_path / "var", database_url=url, redis_url=None, storage_dir=tmp_path, host="127.0.0.1",
        port=1, base_url="http://x", allowed_origins=(), secret_key=b"legacy-test",
    )
    engine = make_engine(url)
    try:
        sessions = make_sessionmaker(engine, info=audit.session_info(settings))
        async with sessions() as db:
            await audit.record(db, "login", visit_id="v1")
            await db.commit()
        report = await check(sessions, settings)
        assert report.ok and report.chains == {LEGACY_CHAIN: 3, chain_for("v1"): 1}
        assert report.legacy_entries == 3
        async with sessions() as db:
            listed = await audit.visit_entries(db, "v1")
        assert [(e.chain, e.seq) for e in listed] == [(chain_for("v1"), 1), (LEGACY_CHAIN, 3), (LEGACY_CHAIN, 2), (LEGACY_CHAIN, 1)]
        assert [e.hash for e in reversed(listed[1:])] == legacy_hashes
        # The legacy chain is still checked with its own rule.
        async with sessions() as db:
            await db.execute(text("UPDATE audit_entry SET action = 'x' WHERE chain = 'legacy' AND seq = 2"))
            await db.commit()
        [problem] = (await check(sessions, settings)).problems
        assert (problem.chain, problem.seq) == (LEGACY_CHAIN, 2)
        async with sessions() as db:
            await db.execute(text("UPDATE audit_entry SET action = 'login' WHERE chain = 'legacy' AND seq = 2"))
            await db.commit()
    finally:
        await engine.dispose()

    # Down again: one plain chain, legacy entries first, that the 0002 rule accepts.
    await asyncio.to_thread(migrate.downgrade, url, "0002")
    rows = await plain_chain(url)
    assert [seq for seq, _, _ in rows] == [1, 2, 3, 4]
    assert [h for _, _, h in rows[:3]] == legacy_hashes
    assert rows[3][1] == rows[2][2]
