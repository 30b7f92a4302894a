"""Storing a chunk: its bytes are durable before its row is committed, so the order of
concurrent writers and a commit that fails after the write must leave the stored bytes
and the rows agreeing (docs/evidence.md, "Storage")."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
from typing import Any

import pytest

from server.evidence import uploads
from server.evidence.service import ChunkWrites
from tests.evidence import crypto
from tests.evidence.conftest import Ev
from tests.evidence.crypto import b64u

pytestmark = pytest.mark.asyncio(loop_scope="module")

STRIDE = crypto.CHUNK + 16
LAST = 40  # the last chunk's length in these versions of two chunks


def slot(ev: Ev, version: str, index: int, length: int) -> bytes:
    path = ev.env.settings.evidence_dir / version[:2] / f"{version}.bin"
    with path.open("rb") as handle:
        handle.seek(index * STRIDE)
        return handle.read(length)


async def received(ev: Ev, key: str, version: str) -> dict[str, str]:
    async with ev.http(key) as http, http.get(f"/api/versions/{version}/upload") as r:
        assert r.status == 200, await r.text()
        chunks: dict[str, str] = (await r.json())["chunks"]
        return chunks


async def put(ev: Ev, key: str, version: str, index: int, data: bytes) -> tuple[int, dict[str, Any]]:
    async with ev.http(key) as http, http.put(f"/api/versions/{version}/chunks/{index}", data=io.BytesIO(data)) as r:
        return r.status, await r.json()


async def test_concurrent_different_writes_leave_the_winners_bytes(ev: Ev, monkeypatch: pytest.MonkeyPatch) -> None:
    _, version = await ev.start("expert", STRIDE + LAST, 2)
    original = uploads.hash_and_write

    def slow(*args: Any) -> bytes:
        time.sleep(0.2)  # in the writer's thread: the other request arrives meanwhile
        return original(*args)

    monkeypatch.setattr(uploads, "hash_and_write", slow)
    ours, theirs = os.urandom(LAST), os.urandom(LAST)
    answers = await asyncio.gather(put(ev, "expert", version, 1, ours), put(ev, "expert", version, 1, theirs))
    assert sorted(status for status, _ in answers) == [201, 409], answers
    winner = next(body for status, body in answers if status == 201)
    assert (await received(ev, "expert", version)) == {"1": winner["sha256"]}
    assert b64u(hashlib.sha256(slot(ev, version, 1, LAST)).digest()) == winner["sha256"]
    # Later: the winner's bytes again are accepted, the loser's still refused.
    winning = ours if b64u(hashlib.sha256(ours).digest()) == winner["sha256"] else theirs
    assert (await put(ev, "expert", version, 1, winning))[0] == 200
    assert (await put(ev, "expert", version, 1, theirs if winning is ours else ours))[0] == 409
    assert b64u(hashlib.sha256(slot(ev, version, 1, LAST)).digest()) == winner["sha256"]


async def test_a_commit_failing_after_the_write_leaves_the_chunk_to_send_again(
    ev: Ev, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, version = await ev.start("expert", STRIDE + LAST, 2)
    original = uploads.record_chunk

    async def failing(*args: Any) -> bool:
        raise RuntimeError("the commit failed (test)")

    monkeypatch.setattr(uploads, "record_chunk", failing)
    first, second = os.urandom(LAST), os.urandom(LAST)
    async with ev.http("expert") as http:
        async with http.put(f"/api/versions/{version}/chunks/1", data=io.BytesIO(first)) as r:
            assert r.status == 500
    assert slot(ev, version, 1, LAST) == first  # bytes without a row
    assert await received(ev, "expert", version) == {}  # not received
    monkeypatch.setattr(uploads, "record_chunk", original)
    # The resend (here even with other bytes: nothing was received) is stored.
    status, body = await put(ev, "expert", version, 1, second)
    assert status == 201 and body["sha256"] == b64u(hashlib.sha256(second).digest())
    assert await received(ev, "expert", version) == {"1": body["sha256"]}
    assert slot(ev, version, 1, LAST) == second


async def test_body_lengths(ev: Ev) -> None:
    _, version = await ev.start("expert", STRIDE + LAST, 2)

    async def chunked(data: bytes) -> Any:  # no Content-Length: the server counts
        yield data

    async with ev.http("expert") as http:
        for data, status in ((b"x" * (LAST + 1), 400), (b"x" * (LAST - 1), 400), (b"x" * (STRIDE + 1), 413)):
            for body in (io.BytesIO(data), chunked(data)):
                async with http.put(f"/api/versions/{version}/chunks/1", data=body) as r:
                    assert r.status == status, (len(data), await r.text())
        async with http.put(f"/api/versions/{version}/chunks/1", data=chunked(b"y" * LAST)) as r:
            assert r.status == 201, await r.text()
    assert slot(ev, version, 1, LAST) == b"y" * LAST


async def test_chunk_writes_remember_recent_commits() -> None:
    writes = ChunkWrites(remember=60.0)
    before = time.monotonic()
    assert not writes.committed_since(("v", 0), before)
    writes.committed(("v", 0))
    assert writes.committed_since(("v", 0), before)
    assert not writes.committed_since(("v", 0), time.monotonic() + 1)  # read after the commit
    assert not writes.committed_since(("v", 1), before)
    assert writes.committed_since(("v", 1), before - 61)  # too old a read to vouch for
    writes.remember = 0.0
    writes.committed(("v", 2))
    assert len(writes) == 0  # forgotten once older than ``remember``
