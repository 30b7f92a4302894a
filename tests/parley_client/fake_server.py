"""A stand-in for Parley's evidence routes (docs/evidence.md "Protocol"), in memory,
for driving `parley client` end to end until the real routes land. It checks what
the contract makes the server check that matters to the client (login cookie, Origin
on state-changing requests, chunk hashes, one wrapped key per recipient) and can be
told to fail one chunk upload, to test resumption."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from parley_client.crypto import b64u, fingerprint, parse_manifest, safety_code, unb64u, verify_statement

VISIT, SESSION, PERSON = "a1" * 16, "5e" * 16, "9e" * 16


@dataclass
class Version:
    id: str
    document: str
    uploader_device: str
    chunks: int
    size: int
    data: dict[int, bytes] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    manifest: str = ""
    signature: str = ""
    meta: str = ""


@dataclass
class World:
    origin: str = ""
    people: list[dict[str, Any]] = field(default_factory=list)  # {"person","name","role","delegation","devices"}
    versions: dict[str, Version] = field(default_factory=dict)
    secretariat: Any = None  # the test's secretariat device (keys held by the test)
    fail_chunk_once: int | None = None
    puts: list[int] = field(default_factory=list)
    counter: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_id(self) -> str:
        with self.lock:
            self.counter += 1
            return f"{self.counter:032x}"

    def device_json(self, device_id: str, person: str, sig_alg: str, sig_pub: bytes, enc_pub: bytes) -> dict[str, Any]:
        fp = fingerprint(person, sig_alg, sig_pub, enc_pub)
        return {"id": device_id, "person": person, "label": "d", "sig_alg": sig_alg, "sig_pub": b64u(sig_pub),
                "enc_pub": b64u(enc_pub), "fingerprint": b64u(fp), "safety_code": safety_code(fp),
                "created_at": "2026-01-01T00:00:00Z", "revoked_at": None}

    def devices(self) -> dict[str, dict[str, Any]]:
        return {d["id"]: d for p in self.people for d in p["devices"]}


def make_handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, value: object = None, *, headers: dict[str, str] | None = None,
                  raw: bytes | None = None) -> None:
            body = raw if raw is not None else (json.dumps(value).encode() if value is not None else b"")
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"error": {"code": code, "message": message}})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))

        def _signed_in(self) -> bool:
            if "parley_session=tok" not in (self.headers.get("Cookie") or ""):
                self._error(401, "unauthenticated", "Sign in first.")
                return False
            return True

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path.startswith("/invite/"):
                return self._send(200, raw=b"<html>Join</html>")
            if not self._signed_in():
                return None
            if path == "/api/me":
                return self._send(200, {"id": PERSON, "name": "Focal point"})
            if path == "/api/me/logins":
                return self._send(200, {"logins": [{"id": "l" * 22, "via": "invitation", "visit_id": VISIT,
                                                    "current": True}]})
            if path == f"/api/visits/{VISIT}/keys":
                return self._send(200, {"people": world.people, "statements": []})
            if path == f"/api/visits/{VISIT}/documents":
                mine = {d["id"] for p in world.people if p["person"] == PERSON for d in p["devices"]}
                docs = [{
                    "id": v.document, "session": SESSION, "item": None, "articles": [], "created_at": "x",
                    "uploader": {"person": PERSON, "name": "Focal point", "delegation": "X",
                                 "device": v.uploader_device},
                    "version": {"id": v.id, "created_at": "x", "chunks": v.chunks, "size": v.size, "meta": v.meta,
                                "manifest": v.manifest, "signature": v.signature, "shares": [],
                                "keys": [{"device": d, "wrapped": w} for d, w in v.keys.items() if d in mine]},
                    "versions": [{"id": v.id, "created_at": "x"}],
                } for v in world.versions.values() if v.complete]
                return self._send(200, {"documents": docs})
            m = re.fullmatch(r"/api/versions/(\w+)/(upload|content)", path)
            if m and m.group(1) in world.versions:
                v = world.versions[m.group(1)]
                if m.group(2) == "upload":
                    return self._send(200, {"chunks": {str(i): b64u(hashlib.sha256(c).digest())
                                                       for i, c in v.data.items()},
                                            "keys": list(v.keys), "complete": v.complete})
                return self._send(200, raw=b"".join(v.data[i] for i in range(v.chunks)),
                                  headers={"Content-Type": "application/octet-stream"})
            return self._error(404, "not_found", "Not found.")

        def do_POST(self) -> None:
            self._unsafe("POST")

        def do_PUT(self) -> None:
            self._unsafe("PUT")

        def _unsafe(self, method: str) -> None:
            body = self._body()
            if self.headers.get("Origin") != world.origin:
                return self._error(403, "forbidden", "This request came from an origin that is not allowed.")
            path = self.path
            if method == "POST" and path.startswith("/invite/"):
                return self._send(303, headers={"Location": f"/visits/{VISIT}",
                                                "Set-Cookie": "parley_session=tok; HttpOnly; Path=/; SameSite=Lax"})
            if method == "POST" and path.startswith("/api/device-links/"):
                return self._send(204, headers={"Set-Cookie": "parley_session=tok; HttpOnly; Path=/"})
            if not self._signed_in():
                return None
            if method == "POST" and path == "/api/devices":
                value = json.loads(body)
                device = world.device_json(world.new_id(), PERSON, value["sig_alg"], unb64u(value["sig_pub"]),
                                           unb64u(value["enc_pub"]))
                next(p for p in world.people if p["person"] == PERSON)["devices"].append(device)
                return self._send(201, {"device": device})
            if method == "POST" and path == f"/api/visits/{VISIT}/documents":
                value = json.loads(body)
                mine = [d["id"] for p in world.people if p["person"] == PERSON for d in p["devices"]]
                v = Version(world.new_id(), world.new_id(), mine[-1], value["chunks"], value["size"])
                world.versions[v.id] = v
                return self._send(201, {"document": v.document, "version": v.id, "chunk_size": 1048576})
            m = re.fullmatch(r"/api/versions/(\w+)/(chunks/(\d+)|keys|complete)", path)
            if not m or m.group(1) not in world.versions:
                return self._error(404, "not_found", "Not found.")
            v = world.versions[m.group(1)]
            if m.group(3) is not None:
                index = int(m.group(3))
                world.puts.append(index)
                if world.fail_chunk_once == index:
                    world.fail_chunk_once = None
                    return self._error(503, "unavailable", "Storage is busy.")
                if index in v.data and v.data[index] != body:
                    return self._error(409, "conflict", "Other bytes are stored for this chunk.")
                status = 200 if index in v.data else 201
                v.data[index] = body
                return self._send(status, {"index": index, "sha256": b64u(hashlib.sha256(body).digest())})
            value = json.loads(body)
            if m.group(2) == "keys":
                v.keys = {k["device"]: k["wrapped"] for k in value["keys"]}
                return self._send(200, {})
            manifest = parse_manifest(value["manifest"])
            uploader = world.devices()[v.uploader_device]
            verify_statement(uploader["sig_alg"], unb64u(uploader["sig_pub"]), value["manifest"], value["signature"])
            assert manifest.chunk_hashes == [hashlib.sha256(v.data[i]).digest() for i in range(v.chunks)]
            assert manifest.size == v.size == sum(len(c) for c in v.data.values())
            assert set(manifest.recipients) == set(v.keys)
            assert manifest.meta_hash == hashlib.sha256(unb64u(value["meta"])).digest()
            v.manifest, v.signature, v.meta, v.complete = value["manifest"], value["signature"], value["meta"], True
            return self._send(200, {"document": v.document, "version": v.id})

    return Handler


def serve(world: World) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(world))
    world.origin = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
