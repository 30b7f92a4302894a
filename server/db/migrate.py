"""Alembic, driven from Python: upgrade, downgrade, and "is the schema current?"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from server.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    config.set_main_option(
        "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s"
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    _ensure_sqlite_dir(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions(database_url: str) -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def current_revisions(database_url: str) -> tuple[str, ...]:
    _ensure_sqlite_dir(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:

            def _read(sync_conn: Connection) -> tuple[str, ...]:
                return tuple(MigrationContext.configure(sync_conn).get_current_heads())

            return await connection.run_sync(_read)
    finally:
        await engine.dispose()


async def pending(database_url: str) -> bool:
    current = await current_revisions(database_url)
    return set(current) != set(head_revisions(database_url))


async def upgrade_async(database_url: str) -> None:
    # Alembic's env.py runs its own event loop; keep it off ours.
    await asyncio.to_thread(upgrade, database_url)


def _ensure_sqlite_dir(database_url: str) -> None:
    prefix = "sqlite+aiosqlite:///"
    if database_url.startswith(prefix):
        path = database_url[len(prefix) :]
        if path and path != ":memory:":
            # Owner-only, like var/ (server/config.py): it holds the database.
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
