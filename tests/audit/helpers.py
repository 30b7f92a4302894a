"""Reading and checking the audit log as the tests need it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from server.audit.heads import HeadsFile
from server.audit.models import AuditEntry
from server.audit.service import AuditConfig
from server.audit.verify import VerifyReport, verify
from server.config import Settings
from server.core.signing import key_path, load_public_key

PARLEY = Path(sys.executable).with_name("parley")


async def entries(sessions: Any, action: str | None = None, chain: str | None = None) -> list[AuditEntry]:
    async with sessions() as db:
        query = select(AuditEntry).order_by(AuditEntry.chain, AuditEntry.seq)
        if action:
            query = query.where(AuditEntry.action == action)
        if chain:
            query = query.where(AuditEntry.chain == chain)
        return list((await db.execute(query)).scalars())


async def check(sessions: Any, settings: Settings, *, heads: bool = True) -> VerifyReport:
    """Verify as `parley audit verify` does: the key from the settings, the heads file
    under var/, the signing key's public half."""
    config = AuditConfig.from_settings(settings)
    recorded = HeadsFile(config.heads_file).read() if heads else {}
    async with sessions() as db:
        return await verify(db, config.key, heads=recorded, public_key=load_public_key(key_path(settings)))


def parley(settings: Settings, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """The CLI against the test's database, var directory and secret key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        {
            "PARLEY_DATABASE_URL": settings.database_url,
            "PARLEY_VAR_DIR": str(settings.var_dir),
            "PARLEY_SECRET_KEY": settings.secret_key.decode(),
        },
        **extra,
    )
    return subprocess.run(
        [str(PARLEY), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
