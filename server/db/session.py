"""Engine and session factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from server.config import private_file

POOL_TIMEOUT_SECONDS = 5.0
SQLITE_BUSY_SECONDS = 5.0


def make_engine(url: str) -> AsyncEngine:
    # Nothing waits without end: a request that cannot get a connection, a lock or an
    # answer in time fails with "unavailable" (retry later) instead of piling up.
    kwargs: dict[str, Any] = {"pool_timeout": POOL_TIMEOUT_SECONDS}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
        # A small fixed pool. Overflow connections (each an aiosqlite thread) opened
        # and closed under load cost CPU exactly when the server is behind; and each
        # connection keeps its own page and statement caches, about 0.4 MiB once warm
        # (15 of them were a third of a 300-person room's memory). SQLite has one
        # writer at a time anyway, and the room log's appends have their own
        # connection (server/room/append.py).
        kwargs["pool_size"] = 5
        kwargs["max_overflow"] = 0
        # No rollback on every return to the pool (one more hop to aiosqlite's thread):
        # pysqlite opens a transaction only for writes, and a session closed with one
        # still open rolls it back itself.
        kwargs["pool_reset_on_return"] = None
    else:
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {
            "command_timeout": 30,
            "timeout": 10,  # connecting
            "server_settings": {
                "statement_timeout": "15000",
                "lock_timeout": "5000",
                "idle_in_transaction_session_timeout": "30000",
                # Notice a dead peer in about a minute, not the kernel's 2 hours.
                "tcp_keepalives_idle": "30",
                "tcp_keepalives_interval": "10",
                "tcp_keepalives_count": "3",
                "application_name": "parley",
            },
        }
    if url.startswith("sqlite"):
        private_sqlite_files(url)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _tune_sqlite(engine)
    return engine


def private_sqlite_files(url: str) -> None:
    """Owner-only database, -wal and -shm files. SQLite creates a new database with
    the process umask (usually world-readable) and its -wal and -shm files with the
    database's mode, so the database is created here first, 0600, and an existing
    one (with its companions) loses group and other access."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return  # SQLite reports the missing directory itself
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        private_file(name)


def sqlite_pragmas() -> list[str]:
    """Every SQLite connection's set-up. WAL lets readers proceed while one writer
    commits; foreign keys are off by default in SQLite."""
    return [
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}",
    ]


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in sqlite_pragmas():
            cursor.execute(pragma)
        cursor.close()


def make_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``; ``info`` is copied into each session's ``info`` (the
    audit log keeps its configuration there: ``audit.session_info(settings)``)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)
