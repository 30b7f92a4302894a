"""Running `parley client` as its users do, against a real Parley server: one config
directory per person (``HOME`` and ``XDG_CONFIG_HOME`` in a temporary directory), the
passphrase from ``PARLEY_CLIENT_PASSPHRASE``, the `parley` command as a subprocess
importing this checkout's code. Also the server's access log, to see which chunks
were sent, and a server started the way tests/access/matrix_env.py starts one."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from server.web.keys import SESSIONS
from tests.access.matrix_env import make_settings
from tests.conftest import LiveServer, settings_for, start_server
from tests.fixtures.databases import Templates
from tests.fixtures.world import World, build_world

ROOT = Path(__file__).resolve().parents[2]
PARLEY = Path(sys.executable).parent / "parley"
PASSPHRASE = "correct horse battery staple"
ID = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """One person's install of the command-line client."""

    name: str
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"), "PYTHONPATH": str(ROOT),
            "PARLEY_CLIENT_PASSPHRASE": PASSPHRASE, "LANG": "C.UTF-8",
        }

    @property
    def config(self) -> Path:
        return self.home / ".config" / "parley"

    def enrollment(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.config / "client.json").read_text())
        return value

    async def start(self, *args: str, cwd: Path | None = None) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            str(PARLEY), "client", *args, cwd=str(cwd or self.home), env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, cwd: Path | None = None, timeout: float = 60) -> Result:
        process = await self.start(*args, cwd=cwd)
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())


def new_cli(tmp: Path, name: str) -> Cli:
    home = tmp / f"home-{name}"
    home.mkdir(parents=True)
    return Cli(name, home)


@dataclass
class AccessLog:
    """Every request the server answered: (method, path, status)."""

    entries: list[tuple[str, str, int]] = field(default_factory=list)

    def chunk_puts(self, version: str, since: int = 0) -> list[int]:
        pattern = re.compile(rf"/api/versions/{re.escape(version)}/chunks/(\d+)")
        return [int(m.group(1)) for method, path, _ in self.entries[since:]
                if method == "PUT" and (m := pattern.fullmatch(path))]

    def mark(self) -> int:
        return len(self.entries)


class _Capture(logging.Handler):
    LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')

    def __init__(self, log: AccessLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        found = self.LINE.search(record.getMessage())
        if found:
            self.log.entries.append((found.group(1), found.group(2).split("?")[0], int(found.group(3))))


@contextmanager
def access_log() -> Iterator[AccessLog]:
    log = AccessLog()
    logger = logging.getLogger("aiohttp.access")
    handler, level, propagate = _Capture(log), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield log
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@asynccontextmanager
async def live_server(templates: Templates, tmp: Path, **changes: Any) -> AsyncIterator[tuple[LiveServer, World]]:
    """A real server on a free port (SQLite) with one visit's world in it."""
    settings = settings_for(make_settings(await templates.sqlite_copy(tmp / "parley.db"), tmp), **changes)
    runner: web.AppRunner | None = None
    try:
        live, runner = await start_server(settings)
        async with live.app[SESSIONS]() as db:
            world = await build_world(db, settings)
        yield live, world
    finally:
        if runner is not None:
            await runner.cleanup()
