"""Each chain's latest head, kept outside the database so a truncated tail shows.

Deleting the last entries of a chain leaves a shorter chain that is still consistent;
only a record of how long the chain was, held where a database-only attacker cannot
reach, reveals it. Two places for that record:

* ``file``: ``var/audit_heads.json`` (directory 0700, file 0600), rewritten after each
  commit that added entries. The embedded, single-host setup.
* ``log``: one JSON line per commit on logger ``parley.audit.head``, for the operator's
  log stream; ``parley audit verify --heads FILE`` reads those lines back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

HEAD_LOGGER = "parley.audit.head"
HEAD_EVENT = "audit.head"
HEADS_FILE_NAME = "audit_heads.json"

logger = logging.getLogger(HEAD_LOGGER)


@dataclass(frozen=True)
class Head:
    chain: str
    seq: int
    hash: str


class HeadSink(Protocol):
    def publish(self, heads: Iterable[Head]) -> None: ...


def _merge(known: dict[str, Head], head: Head) -> None:
    # A head only moves forward: a late writer with an older head must not hide entries.
    current = known.get(head.chain)
    if current is None or head.seq >= current.seq:
        known[head.chain] = head


class HeadsFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Head]:
        if not self.path.exists():
            return {}
        return parse_heads(self.path.read_text())

    def publish(self, heads: Iterable[Head]) -> None:
        with self._locked():
            known = self.read()
            for head in heads:
                _merge(known, head)
            body = json.dumps(
                {"heads": {h.chain: {"seq": h.seq, "hash": h.hash} for h in sorted(known.values(), key=_by_chain)}},
                indent=1,
                sort_keys=True,
            )
            temporary = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(body + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            # Atomic: a crash leaves the old file or the new one, never half of one.
            os.replace(temporary, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


class HeadsLog:
    def publish(self, heads: Iterable[Head]) -> None:
        for head in heads:
            logger.info(
                json.dumps({"event": HEAD_EVENT, "chain": head.chain, "seq": head.seq, "hash": head.hash})
            )


def _by_chain(head: Head) -> str:
    return head.chain


def parse_heads(text: str) -> dict[str, Head]:
    """Heads from a heads file, or from log lines carrying ``parley.audit.head``
    messages (any prefix a log formatter adds before the JSON is skipped); the
    furthest head of each chain wins."""
    known: dict[str, Head] = {}
    stripped = text.strip()
    if stripped.startswith("{") and '"heads"' in stripped[:20]:
        for chain, value in json.loads(stripped)["heads"].items():
            _merge(known, Head(chain, int(value["seq"]), str(value["hash"])))
        return known
    for line in text.splitlines():
        start = line.find("{")
        if start < 0 or HEAD_EVENT not in line:
            continue
        try:
            record = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("event") == HEAD_EVENT:
            _merge(known, Head(str(record["chain"]), int(record["seq"]), str(record["hash"])))
    return known
