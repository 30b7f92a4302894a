"""Alembic creates the schema: one head, a clean upgrade/downgrade/upgrade round trip
and no drift from the models, on SQLite and on PostgreSQL; `parley serve` refuses an
out-of-date database when it may not migrate it itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from server.db import migrate
from server.db.registry import Base
from server.db.session import make_engine
from tests.conftest import BACKENDS, free_port
from tests.fixtures.databases import create_pg_database, drop_pg_database, pg_url

PARLEY = Path(sys.executable).with_name("parley")


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables at all)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    else:
        name = asyncio.run(create_pg_database())
        try:
            yield pg_url(name)
        finally:
            asyncio.run(drop_pg_database(name))


def run_sync(url: str, fn: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def tables(url: str) -> set[str]:
    return set(run_sync(url, lambda conn: inspect(conn).get_table_names()))


def drift(url: str) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True, "target_metadata": Base.metadata}
        )
        return list(compare_metadata(context, Base.metadata))

    return list(run_sync(url, compare))


def test_single_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite+aiosqlite:///unused.db"))
    assert len(script.get_heads()) == 1, script.get_heads()
    assert len(script.get_bases()) == 1, script.get_bases()
    revisions = list(script.walk_revisions())
    assert revisions, "no migrations"
    for rev in revisions:  # a straight line: no merges, no branches
        assert not isinstance(rev.down_revision, tuple), rev.revision
        assert len(rev.nextrev) <= 1, rev.revision


def test_upgrade_downgrade_round_trip(fresh_url: str) -> None:
    model_tables = set(Base.metadata.tables)
    migrate.upgrade(fresh_url)
    assert tables(fresh_url) >= model_tables
    assert set(asyncio.run(migrate.current_revisions(fresh_url))) == set(migrate.head_revisions(fresh_url))
    assert not asyncio.run(migrate.pending(fresh_url))

    migrate.downgrade(fresh_url, "base")
    assert not (tables(fresh_url) & model_tables), "downgrade to base left tables behind"
    assert asyncio.run(migrate.current_revisions(fresh_url)) == ()
    assert asyncio.run(migrate.pending(fresh_url))

    migrate.upgrade(fresh_url)
    assert tables(fresh_url) >= model_tables
    assert not asyncio.run(migrate.pending(fresh_url))
    assert drift(fresh_url) == []


def test_migrations_match_the_models(fresh_url: str) -> None:
    """Autogenerate finds nothing to add: the models are created only by migrations, and completely."""
    migrate.upgrade(fresh_url)
    assert drift(fresh_url) == []


def _cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update({"PARLEY_VAR_DIR": str(tmp_path / "var"), "PARLEY_PORT": str(free_port())}, **extra)
    return env


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = _cli_env(tmp_path, PARLEY_AUTO_MIGRATE="false")
    done = subprocess.run(
        [str(PARLEY), "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0, done.stdout
    assert "parley db upgrade" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert "serving" not in done.stdout

    # After the named command, the schema is current.
    up = subprocess.run(
        [str(PARLEY), "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert up.returncode == 0, up.stderr
    url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'parley.db'}"
    assert not asyncio.run(migrate.pending(url))
