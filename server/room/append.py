"""Appending to the room log on the embedded database in one thread hop.

Through SQLAlchemy's async session on aiosqlite, a room command's write costs four hops
to a worker thread and back (cursor, execute, cursor close, commit), each about 40 us
of CPU, plus the session's own bookkeeping: most of the fixed cost of a chat message
in a 300-person room. On the embedded setup (SQLite, one process) the room log is
appended here instead: one thread with its own ``sqlite3`` connection runs the INSERT
and the COMMIT in one call.

Nothing else changes: the statement and the parameter conversions are SQLAlchemy's own
(compiled from the ``room_event`` table for the SQLite dialect, and each column type's
bind processor), errors arrive as SQLAlchemy's exception classes (an idempotency key
met again is still an ``IntegrityError``), and the connection is set up with the same
PRAGMAs as the pool's (server/db/session.py). Commands that read or write anything
else in their transaction use the session as before (``RoomLog.unit``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url

from server.db.session import sqlite_pragmas


class SqliteAppender:
    def __init__(self, url: str, table: Table) -> None:
        database = make_url(url).database
        if not database:
            raise ValueError("the appender needs a SQLite database file")
        self.database = database
        dialect = sqlite_dialect.dialect(paramstyle="qmark")
        compiled = insert(table).compile(dialect=dialect)
        self.sql = str(compiled)
        self.columns: list[str] = list(compiled.positiontup or [])
        self.processors: dict[str, Callable[[Any], Any] | None] = {
            name: table.c[name].type.bind_processor(dialect) for name in self.columns
        }
        # One thread: the connection below is made, used and closed only in it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="room-append")
        self._conn: sqlite3.Connection | None = None

    def _params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for name in self.columns:
            value = row.get(name)
            process = self.processors[name]
            out.append(process(value) if process is not None and value is not None else value)
        return tuple(out)

    async def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert the rows and commit, or raise with nothing stored."""
        params = [self._params(row) for row in rows]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._write, params)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.database, check_same_thread=True)
            for pragma in sqlite_pragmas():
                self._conn.execute(pragma)
        return self._conn

    def _write(self, params: list[tuple[Any, ...]]) -> None:
        conn = self._connection()
        try:
            if len(params) == 1:
                conn.execute(self.sql, params[0])
            else:
                conn.executemany(self.sql, params)
            conn.commit()
        except sqlite3.Error as exc:
            conn.rollback()
            raise sa_exc.DBAPIError.instance(
                self.sql, params, exc, sqlite3.Error, dialect=sqlite_dialect.dialect()
            ) from exc
        except BaseException:
            conn.rollback()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
