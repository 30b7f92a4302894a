"""Server blindness (issue: "a database dump, a stolen disk or a curious operator reveals
no document content and no file name").

A document whose content, file name and description hold a random canary goes
through the whole path: upload, completion, a share, listing and downloads. Then every
place the server writes is searched for the canary, in plain text, base64 (standard
and URL-safe, at each of the three alignments a base64 encoder could start from) and
hex (both cases): every row of every table, the SQLite file and its WAL, the storage
directory, and every log record the server emitted meanwhile, at DEBUG level.

The search is checked to work: the same scan finds a canary the test writes into the
storage directory and one it logs.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.evidence.conftest import Ev

pytestmark = pytest.mark.asyncio(loop_scope="module")


def encodings(secret: bytes) -> list[bytes]:
    """The byte strings that would betray ``secret`` if any of them were stored."""
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for shift in range(3):
        # A secret inside a longer base64 text starts at any of three offsets in a
        # 3-byte group; the middle of its encoding is the same whatever comes before.
        padded = b"\0" * shift + secret
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(padded)
            forms.add(encoded[4 : len(encoded) - 4])  # drop the groups the padding touches
    return sorted(forms)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def every_log_record() -> Iterator[Records]:
    root = logging.getLogger()
    handler = Records()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


async def stored_bytes(ev: Ev) -> dict[str, bytes]:
    """Everything the server keeps: each table's rows, the database files, the blobs."""
    places: dict[str, bytes] = {}
    async with ev.env.sessions() as db:
        tables = await db.run_sync(lambda s: inspect(s.connection()).get_table_names())
        assert {"document", "document_version", "wrapped_key", "audit_entry", "device"} <= set(tables)
        for table in tables:
            rows = (await db.execute(text(f'SELECT * FROM "{table}"'))).all()
            places[f"table {table}"] = "\n".join(repr(tuple(r)) for r in rows).encode()
        if ev.env.backend == "sqlite":
            db_file = Path(ev.env.settings.database_url.split("///", 1)[1])
            for path in db_file.parent.glob(db_file.name + "*"):  # the file, its WAL and shm
                places[f"file {path.name}"] = path.read_bytes()
    for path in ev.env.settings.evidence_dir.rglob("*"):
        if path.is_file():
            places[f"blob {path.name}"] = path.read_bytes()
    return places


def found(places: dict[str, bytes], secret: bytes) -> list[str]:
    needles = encodings(secret)
    return [f"{where}: {needle!r}" for where, data in places.items() for needle in needles if needle in data]


async def test_no_content_or_name_reaches_the_database_the_disk_or_the_logs(ev_both: Ev) -> None:
    ev = ev_both
    canary = secrets.token_hex(16).encode()
    name = f"confiscations-{canary.decode()}.xlsx"
    description = f"Figures 2019-2023 {canary.decode()}"
    plaintext = os.urandom(1000) + canary + os.urandom(200) + canary * 3

    with every_log_record() as logs:
        up = await ev.upload("delegate", plaintext, to=("expert",), session=ev.session("closed"),
                             meta={"name": name, "type": "application/vnd.ms-excel", "size": len(plaintext),
                                   "description": description})
        listed = (await ev.documents("expert"))[up.document]
        assert listed["version"]["id"] == up.version
        async with ev.http("expert") as http:
            for path in (f"/api/versions/{up.version}/content", f"/api/versions/{up.version}/chunks/0"):
                async with http.get(path) as r:
                    assert r.status == 200
                    assert await r.read() == up.sealed.chunks[0]  # one chunk: the whole ciphertext
    assert logs.lines, "the server logged nothing at DEBUG: the log capture is not working"

    places = await stored_bytes(ev)
    places["server logs"] = "\n".join(logs.lines).encode()
    for secret in (canary, name.encode(), description.encode()):
        assert found(places, secret) == []
    # The ciphertext is there (the server does keep the document), the plaintext is not.
    assert any(up.sealed.chunks[0] in data for where, data in places.items() if where.startswith("blob"))


async def test_the_search_finds_a_canary_where_one_is_written(ev: Ev) -> None:
    """The scan above must be able to fail: a canary written in each encoding into the
    storage directory, and one logged, are found."""
    canary = secrets.token_hex(16).encode()
    with every_log_record() as logs:
        logging.getLogger("parley.evidence").debug("leaked %s", canary.decode())
    planted = ev.env.settings.evidence_dir / "planted.txt"
    planted.parent.mkdir(parents=True, exist_ok=True)
    try:
        for form in (canary, canary.hex().encode(), base64.b64encode(b"x" + canary),
                     base64.urlsafe_b64encode(b"xy" + canary)):
            planted.write_bytes(b"header " + form + b" trailer")
            places = await stored_bytes(ev)
            assert any("planted.txt" in hit for hit in found(places, canary)), form
    finally:
        planted.unlink(missing_ok=True)
    assert found({"server logs": "\n".join(logs.lines).encode()}, canary)
