"""One logged-in world and server per test module (tests/access/matrix_env.py), and a
client that registers devices and uploads documents the way docs/evidence.md says.

Modules share their world: each test registers the devices it needs and names the
documents it made. Most modules run on SQLite only; ``ev_both`` runs a module's
tests on PostgreSQL as well, where the database matters.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.access.matrix_env import MatrixEnv, matrix_env
from tests.conftest import BACKENDS, http_client
from tests.evidence import crypto
from tests.evidence.crypto import DeviceKeys, Sealed, b64u
from tests.fixtures.databases import Templates


@dataclass
class Uploaded:
    document: str
    version: str
    sealed: Sealed
    manifest: str
    recipients: list[DeviceKeys]


@dataclass
class Ev:
    env: MatrixEnv
    devices: dict[str, list[DeviceKeys]] = field(default_factory=dict)  # member key -> live devices

    @property
    def visit(self) -> str:
        return self.env.world.visit_id

    def session(self, access: str) -> str:
        return self.env.world.sessions[access]

    def person(self, key: str) -> str:
        return self.env.world.members[key].person_id

    def http(self, key: str | None) -> aiohttp.ClientSession:
        return http_client(self.env.server, self.env.cookies[key] if key else None)

    async def device(self, key: str, sig_alg: str = "Ed25519", label: str = "Test laptop") -> DeviceKeys:
        """A newly registered device of a member."""
        keys = DeviceKeys.new(sig_alg)
        async with self.http(key) as http, http.post("/api/devices", json=keys.register_body(label)) as r:
            assert r.status == 201, await r.text()
            found = (await r.json())["device"]
        keys.id, keys.person = found["id"], found["person"]
        self.devices.setdefault(key, []).append(keys)
        return keys

    async def first(self, key: str) -> DeviceKeys:
        """The member's first live device (registered when they have none)."""
        live = self.devices.get(key)
        return live[0] if live else await self.device(key)

    def forget(self, key: str, device: DeviceKeys) -> None:
        self.devices[key] = [d for d in self.devices.get(key, []) if d.id != device.id]

    async def start(self, key: str, sealed_size: int, chunks: int, **extra: Any) -> tuple[str, str]:
        body = {"articles": ["5", "52.1"], "chunks": chunks, "size": sealed_size, **extra}
        async with self.http(key) as http, http.post(f"/api/visits/{self.visit}/documents", json=body) as r:
            assert r.status == 201, await r.text()
            made = await r.json()
        assert made["chunk_size"] == crypto.CHUNK
        return made["document"], made["version"]

    async def upload(
        self,
        key: str,
        plaintext: bytes = b"Ley 1474 de 2011, article 73",
        *,
        to: tuple[str, ...] = ("expert",),
        uploader: DeviceKeys | None = None,
        session: str | None = None,
        document: str | None = None,
        rekey: bool = False,
        meta: dict[str, Any] | None = None,
        complete: bool = True,
    ) -> Uploaded:
        """Seal, start, send chunks and keys, and complete (signed by ``uploader``).
        Recipients: the uploader's and the secretariat's live devices, and those of ``to``."""
        device = uploader or await self.first(key)
        recipients: dict[str, DeviceKeys] = {device.id: device}
        for member in (key, "secretariat", *to):
            for d in self.devices.get(member, []) or [await self.first(member)]:
                recipients[d.id] = d
        extra: dict[str, Any] = {"rekey": True} if rekey else {}
        if session:
            extra["session"] = session
        if document:
            extra["document"] = document
        size_guess = len(plaintext)
        n = crypto.chunk_count(size_guess)
        ciphertext_size = size_guess + 16 * n
        document_id, version = await self.start(key, ciphertext_size, n, **extra)
        sealed = crypto.seal(version, plaintext, meta or {"name": "ley-1474.pdf", "type": "application/pdf",
                                                          "size": len(plaintext), "description": "Anti-corruption statute"})
        async with self.http(key) as http:
            for i, chunk in enumerate(sealed.chunks):
                async with http.put(f"/api/versions/{version}/chunks/{i}", data=io.BytesIO(chunk)) as r:
                    assert r.status == 201, await r.text()
            keys = [{"device": d.id, "wrapped": b64u(crypto.wrap(sealed.key, d.enc_pub, self.visit, version, d.id))}
                    for d in recipients.values()]
            async with http.put(f"/api/versions/{version}/keys", json={"keys": keys}) as r:
                assert r.status == 200, await r.text()
            value = crypto.manifest(sealed, visit=self.visit, document=document_id, version=version,
                                    uploader=device, recipients=[d.recipient() for d in recipients.values()])
            body = {**crypto.signed(value, device), "meta": b64u(sealed.meta)}
            if complete:
                async with http.post(f"/api/versions/{version}/complete", json=body) as r:
                    assert r.status == 200, await r.text()
        return Uploaded(document_id, version, sealed, body["manifest"], list(recipients.values()))

    async def documents(self, key: str, **params: str) -> dict[str, Any]:
        async with self.http(key) as http, http.get(f"/api/visits/{self.visit}/documents", params=params) as r:
            assert r.status == 200, await r.text()
            return {d["id"]: d for d in (await r.json())["documents"]}


async def _ev(backend: str, templates: Templates, tmp: Path) -> AsyncIterator[Ev]:
    async with matrix_env(backend, templates, tmp) as env:
        yield Ev(env)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ev(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Ev]:
    async for e in _ev("sqlite", templates, tmp_path_factory.mktemp("evidence")):
        yield e


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def ev_both(
    request: pytest.FixtureRequest, templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ev]:
    async for e in _ev(request.param, templates, tmp_path_factory.mktemp(f"evidence-{request.param}")):
        yield e
