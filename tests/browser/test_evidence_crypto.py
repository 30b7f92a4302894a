"""The evidence room's browser cryptography (client_web/js/evidence_crypto.js and
evidence_keys.js) in Debian's Chromium, under Parley's own CSP, against the formats of
docs/evidence.md as computed here in Python with `cryptography`: RFC 9180 known
answers, HPKE both ways, byte-for-byte parity of every format, tampering, IndexedDB.

One server, one browser and one page for the whole module (the suite stays fast)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from playwright.async_api import Page, async_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, WATCH_CSP
from tests.browser.evidence_env import browser_server_settings
from tests.conftest import start_server
from tests.fixtures.databases import Templates

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CHUNK = 1048576
PERSON = "a" * 32
VISIT = "b" * 32
DOCUMENT = "c" * 32
VERSION = "d" * 32
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


# ---- the formats of docs/evidence.md, in Python ---------------------------------------------


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(person: str, enc_pub: bytes, sig_pub: bytes, sig_alg: str) -> bytes:
    d = {"enc": b64u(enc_pub), "person": person, "sig": b64u(sig_pub), "sig_alg": sig_alg, "t": "parley/device/v1"}
    return hashlib.sha256(canonical(d).encode()).digest()


def safety_code(fp: bytes) -> str:
    return " ".join(f"{int.from_bytes(fp[g * 5:g * 5 + 5], 'big') % 100000:05d}" for g in range(4))


def hkdf(ikm: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def chunk_ct(k: bytes, version: str, i: int, last: bool, plain: bytes) -> bytes:
    aad = b"parley/chunk/v1\0" + version.encode() + b"\0" + i.to_bytes(8, "big") + (b"\1" if last else b"\0")
    return AESGCM(hkdf(k, b"parley/chunk/v1")).encrypt(bytes(4) + i.to_bytes(8, "big"), plain, aad)


def meta_ct(k: bytes, version: str, record: bytes) -> bytes:
    return AESGCM(hkdf(k, b"parley/meta/v1")).encrypt(bytes(12), record, b"parley/meta/v1\0" + version.encode())


def commit(k: bytes, version: str) -> bytes:
    return hmac.new(k, b"parley/commit/v1\0" + version.encode(), hashlib.sha256).digest()


def wrap_info(visit: str, version: str, device: str) -> bytes:
    return f"parley/wrap/v1\0{visit}\0{version}\0{device}".encode()


def recovery_key(blob: dict[str, Any], secret: bytes) -> bytes:
    salt = unb64u(blob["salt"])
    if blob["kdf"] == "hkdf-sha256":
        return hkdf(secret, b"parley/recovery/v1", salt=salt)
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=blob["iterations"]).derive(secret)


def code_bytes(code: str) -> bytes:
    return base64.b32decode(code.replace("-", "").upper())


def es256_raw(sig_der: bytes) -> bytes:
    r, s = decode_dss_signature(sig_der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public(key: x25519.X25519PublicKey | ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pkcs8(key: Any) -> bytes:
    return bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


# ---- one server, one browser, one page -------------------------------------------------------


@dataclass
class Env:
    base_url: str
    page: Page
    problems: list[str] = field(default_factory=list)

    async def js(self, body: str, arg: Any = None) -> Any:
        """Run `body` as an async function of `a` with `ev` (evidence_crypto) and `ek`
        (evidence_keys) in scope; returns its JSON result."""
        return await self.page.evaluate(
            f"async (a) => {{ const ev = window.ev; const ek = window.ek; {body} }}", arg
        )

    async def load(self) -> None:
        await self.page.goto("/login")
        await self.page.evaluate(
            """async () => {
              window.ev = await import("/static/js/evidence_crypto.js");
              window.ek = await import("/static/js/evidence_keys.js");
              window.hpke = await import("/static/vendor/esm/@hpke/core/mod.js");
              window.rejected = async (f) => { try { await f(); return null; }
                catch (e) { return { code: e.code || e.name, message: e.message }; } };
            }"""
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("evidence-crypto")
    settings = await browser_server_settings(templates, tmp, b"test-secret-key-evidence-crypto")
    base = settings.base_url
    _, runner = await start_server(settings)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context(base_url=base)
            context.set_default_timeout(20_000)
            await context.add_init_script(WATCH_CSP)
            page = await context.new_page()
            e = Env(base, page)
            page.on("console", lambda m: e.problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: e.problems.append(f"uncaught: {exc}"))
            await e.load()
            yield e
            await browser.close()
            assert not e.problems, e.problems
    finally:
        await runner.cleanup()


# ---- serving the library under the CSP -------------------------------------------------------

# Statement lines only (usage examples in comments start with "*").
STATIC_IMPORT = re.compile(r'^[ \t]*(?:(?:import|export)\b[^\n]*?|\}[ \t]*)from[ \t]*"([^"]+)"|^[ \t]*import[ \t]*"([^"]+)"', re.M)


async def test_hpke_modules_are_served_with_every_import_resolved(env: Env) -> None:
    """The vendor ESM tree is served with its package-name imports replaced by URLs:
    walk the whole import graph from the entry module; nothing else is served."""
    seen: set[str] = set()
    todo = ["/static/vendor/esm/@hpke/core/mod.js"]
    async with aiohttp.ClientSession(env.base_url) as http:
        while todo:
            url = todo.pop()
            if url in seen:
                continue
            seen.add(url)
            async with http.get(url) as r:
                assert r.status == 200, url
                assert r.content_type == "text/javascript"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
                text = await r.text()
            for m in STATIC_IMPORT.finditer(text):
                spec = m[1] or m[2]
                assert spec.startswith(("/", "./", "../")), f"{url} imports {spec!r}"
                todo.append(spec if spec.startswith("/") else os.path.normpath(os.path.join(os.path.dirname(url), spec)))
        for bad in (
            "/static/vendor/esm/@hpke/core/package.json", "/static/vendor/esm/@hpke/core/mod.d.ts",
            "/static/vendor/esm/@hpke/core/..%2F..%2Fcore%2Fpackage.json", "/static/vendor/esm/@hpke/dhkem-x448/mod.js",
            "/static/vendor/esm/socket.io-client/mod.js",
        ):
            async with http.get(bad) as r:
                assert r.status == 404, bad
    assert any("/@hpke/common/" in u for u in seen) and len(seen) > 20


async def test_signatures_prefer_ed25519_in_chromium(env: Env) -> None:
    assert await env.js('return await ev.preferredSigAlg();') == "Ed25519"


# ---- HPKE -----------------------------------------------------------------------------------


def rfc9180_vector() -> dict[str, Any]:
    import cryptography_vectors  # type: ignore[import-untyped]

    path = Path(cryptography_vectors.__file__).parent / "HPKE" / "test-vectors.json"
    for v in json.loads(path.read_text()):
        if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 0x1, 0x2):
            return dict(v)
    raise AssertionError("no DHKEM(X25519)/HKDF-SHA256/AES-256-GCM base-mode vector")


async def test_rfc9180_known_answers_in_chromium(env: Env) -> None:
    v = rfc9180_vector()
    got = await env.js(
        """
        const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
        const toHex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
        const suite = ev.hpkeSuite();
        const pkR = await suite.kem.deserializePublicKey(hex(a.pkRm));
        const sender = await suite.createSenderContext({ recipientPublicKey: pkR, info: hex(a.info), ekm: hex(a.ikmE).buffer });
        const cts = [];
        for (const e of a.encryptions) cts.push(toHex(await sender.seal(hex(e.pt), hex(e.aad))));
        // The recipient's key pair from ikmR, as RFC 9180's DeriveKeyPair gives it.
        const kpR = await suite.kem.deriveKeyPair(hex(a.ikmR).buffer);
        const pkRm = toHex(await suite.kem.serializePublicKey(kpR.publicKey));
        const skR = await suite.kem.deserializePrivateKey(hex(a.skRm));
        const recipient = await suite.createRecipientContext({ recipientKey: { privateKey: skR, publicKey: pkR }, enc: hex(a.enc), info: hex(a.info) });
        const pts = [];
        for (const e of a.encryptions) pts.push(toHex(await recipient.open(hex(e.ct), hex(e.aad))));
        return { enc: toHex(sender.enc), cts, pts, pkRm };
        """,
        {**v, "encryptions": v["encryptions"][:4]},
    )
    assert got["enc"] == v["enc"]
    assert got["pkRm"] == v["pkRm"]
    assert got["cts"] == [e["ct"] for e in v["encryptions"][:4]]
    assert got["pts"] == [e["pt"] for e in v["encryptions"][:4]]


async def test_key_wrapping_interoperates_with_python_hpke(env: Env) -> None:
    device = "e" * 32
    info = wrap_info(VISIT, VERSION, device)
    k = os.urandom(32)
    py_sk = x25519.X25519PrivateKey.generate()
    py_wrapped = SUITE.encrypt(k, py_sk.public_key(), info=info)
    assert len(py_wrapped) == 80
    got = await env.js(
        """
        const { keys, encPriv } = await ev.generateDeviceKeys();
        window.wrapKeys = keys;
        const info = ev.wrapInfo(a.visit, a.version, a.device);
        // Python sealed for the browser? No: the browser's key is new. Python's key, raw:
        const wrapped = await ev.wrapKey(ev.unb64u(a.k), ev.unb64u(a.pyPub), info);
        return { encPub: ev.b64u(keys.encPub), encPriv: ev.b64u(encPriv), wrapped: ev.b64u(wrapped) };
        """,
        {"visit": VISIT, "version": VERSION, "device": device, "k": b64u(k), "pyPub": b64u(raw_public(py_sk.public_key()))},
    )
    # Browser seals -> Python opens.
    assert len(unb64u(got["wrapped"])) == 80
    assert SUITE.decrypt(unb64u(got["wrapped"]), py_sk, info=info) == k
    # Python seals -> browser opens (with the non-extractable device key).
    browser_pub = x25519.X25519PublicKey.from_public_bytes(unb64u(got["encPub"]))
    wrapped = SUITE.encrypt(k, browser_pub, info=info)
    opened = await env.js(
        """
        const info = ev.wrapInfo(a.visit, a.version, a.device);
        const K = await ev.unwrapKey(ev.unb64u(a.wrapped), window.wrapKeys, info);
        const wrong = await rejected(() => ev.unwrapKey(ev.unb64u(a.wrapped), window.wrapKeys, ev.wrapInfo(a.visit, a.version, "f".repeat(32))));
        return { K: ev.b64u(K), wrong, extractable: window.wrapKeys.encPrivate.extractable };
        """,
        {"visit": VISIT, "version": VERSION, "device": device, "wrapped": b64u(wrapped)},
    )
    assert unb64u(opened["K"]) == k
    assert opened["extractable"] is False
    assert opened["wrong"]["code"] == "unwrap" and "does not open" in opened["wrong"]["message"]
    # The PKCS#8 the browser exported (for the recovery blob) is the same key in Python.
    sk = serialization.load_der_private_key(unb64u(got["encPriv"]), None)
    assert isinstance(sk, x25519.X25519PrivateKey) and raw_public(sk.public_key()) == unb64u(got["encPub"])


# ---- canonical JSON, fingerprints, safety codes, signatures ---------------------------------


async def test_canonical_json_matches_python_and_refuses_the_rest(env: Env) -> None:
    values: list[Any] = [
        {"b": 1, "a": [3, -2, {"z": "x", "y": ""}], "c": {"k": "ctl\n\t\x01\x1f\"\\/ \x7f"}},
        {"t": "parley/verify/v1", "by": "0" * 32, "n": 9007199254740991, "m": -9007199254740991},
        [], {}, "plain", 0, {"B": 1, "a": 2, "_": 3, "A": 4},
    ]
    got = await env.js(
        """
        const out = a.values.map((v) => ev.canonicalJson(v));
        const refused = [];
        for (const v of [1.5, true, null, "é", {"ключ": 1}, [undefined], 2 ** 53, NaN, {x: new Date(0)}]) {
          refused.push(await rejected(() => ev.canonicalJson(v)));
        }
        const parsed = await rejected(() => ev.parseCanonical('{"b":1, "a":2}'));
        const dup = await rejected(() => ev.parseCanonical('{"a":1,"a":2}'));
        const ok = ev.parseCanonical(out[0]);
        return { out, refused, parsed, dup, ok };
        """,
        {"values": values},
    )
    assert got["out"] == [canonical(v) for v in values]
    assert all(r is not None and r["code"] == "canonical" for r in got["refused"]), got["refused"]
    assert "Only integers" in got["refused"][0]["message"] and "boolean" in got["refused"][1]["message"]
    assert "null" in got["refused"][2]["message"] and "ASCII" in got["refused"][3]["message"]
    assert got["parsed"]["code"] == "canonical" and got["dup"]["code"] == "canonical"
    assert got["ok"] == values[0]


async def test_fingerprint_safety_code_and_signatures_match_python(env: Env) -> None:
    py_ed = ed25519.Ed25519PrivateKey.generate()
    py_es = ec.generate_private_key(ec.SECP256R1())
    py_enc = raw_public(x25519.X25519PrivateKey.generate().public_key())
    py_ed_pub = raw_public(py_ed.public_key())
    py_es_pub = py_es.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    message = canonical({"t": "parley/verify/v1", "x": "y"}).encode()
    got = await env.js(
        """
        const out = {};
        for (const alg of ["Ed25519", "ES256"]) {
          const { keys, sigPriv } = await ev.generateDeviceKeys({ sigAlg: alg });
          const wire = ev.deviceWire(a.person, keys);
          const fp = await ev.fingerprint(wire);
          const sig = await ev.sign(keys, ev.unb64u(a.message));
          out[alg] = { wire, fp: ev.b64u(fp), code: ev.safetyCode(fp), sig: ev.b64u(sig), sigPriv: ev.b64u(sigPriv),
                       extractable: keys.sigPrivate.extractable };
        }
        const msg = ev.unb64u(a.message);
        out.pyEd = await ev.verifySignature("Ed25519", ev.unb64u(a.edPub), ev.unb64u(a.edSig), msg);
        out.pyEs = await ev.verifySignature("ES256", ev.unb64u(a.esPub), ev.unb64u(a.esSig), msg);
        out.pyEsOther = await ev.verifySignature("ES256", ev.unb64u(a.esPub), ev.unb64u(a.esSig), ev.utf8("other"));
        out.pyFp = ev.b64u(await ev.fingerprint({ person: a.person, sig_alg: "ES256", sig_pub: a.esPub, enc_pub: a.encPub }));
        out.codes = a.fps.map((f) => ev.safetyCode(ev.unb64u(f)));
        out.badKey = await rejected(() => ev.fingerprint({ person: a.person, sig_alg: "ES256", sig_pub: a.edPub, enc_pub: a.encPub }));
        return out;
        """,
        {
            "person": PERSON, "message": b64u(message), "edPub": b64u(py_ed_pub), "edSig": b64u(py_ed.sign(message)),
            "esPub": b64u(py_es_pub), "esSig": b64u(es256_raw(py_es.sign(message, ec.ECDSA(hashes.SHA256())))),
            "encPub": b64u(py_enc), "fps": [b64u(bytes(32)), b64u(b"\xff" * 32), b64u(bytes(range(32)))],
        },
    )
    assert got["pyEd"] is True and got["pyEs"] is True and got["pyEsOther"] is False
    assert unb64u(got["pyFp"]) == fingerprint(PERSON, py_enc, py_es_pub, "ES256")
    assert got["codes"] == [safety_code(unb64u(f)) for f in (b64u(bytes(32)), b64u(b"\xff" * 32), b64u(bytes(range(32))))]
    assert got["codes"][0] == "00000 00000 00000 00000"
    assert got["badKey"]["code"] == "device"
    for alg in ("Ed25519", "ES256"):
        b = got[alg]
        wire = b["wire"]
        assert wire["sig_alg"] == alg and b["extractable"] is False
        sig_pub, enc_pub = unb64u(wire["sig_pub"]), unb64u(wire["enc_pub"])
        fp = fingerprint(PERSON, enc_pub, sig_pub, alg)
        assert unb64u(b["fp"]) == fp and b["code"] == safety_code(fp)
        assert re.fullmatch(r"\d{5} \d{5} \d{5} \d{5}", b["code"])
        sig = unb64u(b["sig"])
        assert len(sig) == 64
        priv = serialization.load_der_private_key(unb64u(b["sigPriv"]), None)
        if alg == "Ed25519":
            assert len(sig_pub) == 32
            ed25519.Ed25519PublicKey.from_public_bytes(sig_pub).verify(sig, message)
            assert isinstance(priv, ed25519.Ed25519PrivateKey) and raw_public(priv.public_key()) == sig_pub
        else:
            assert len(sig_pub) == 65 and sig_pub[0] == 4
            pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sig_pub)
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            pub.verify(der, message, ec.ECDSA(hashes.SHA256()))
            assert isinstance(priv, ec.EllipticCurvePrivateKey)


# ---- chunks, metadata, key commitment, streaming --------------------------------------------


async def test_chunks_meta_and_commit_are_byte_for_byte_the_format(env: Env) -> None:
    k = os.urandom(32)
    size = 2 * CHUNK + 12345
    seed = os.urandom(32)
    plain = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))[:size]
    meta = {"name": "Ley 1474 de 2011 – Estatuto anticorrupción.pdf", "type": "application/pdf", "size": size, "description": "Artículo 5 ✓"}
    got = await env.js(
        """
        // The File is built in the page from a seed, as a person's file would be read.
        const seed = ev.unb64u(a.seed);
        const parts = [];
        let made = 0;
        for (let i = 0; made < a.size; i++) {
          const block = await ev.sha256(ev.concatBytes(seed, new Uint8Array([i >>> 24, (i >>> 16) & 255, (i >>> 8) & 255, i & 255])));
          parts.push(block.slice(0, Math.min(32, a.size - made)));
          made += 32;
        }
        const file = new File(parts, a.meta.name, { type: a.meta.type });
        const K = ev.unb64u(a.k);
        const chunks = [];
        for await (const c of ev.encryptFile(file, K, a.version)) chunks.push({ index: c.index, hash: ev.b64u(c.hash), ct: ev.b64u(c.ciphertext) });
        const empty = [];
        for await (const c of ev.encryptFile(new File([], "empty.txt"), K, a.version)) empty.push(ev.b64u(c.ciphertext));
        const meta = await ev.sealMeta(K, a.version, a.meta);
        const opened = await ev.openMeta(K, a.version, meta);
        return { chunks, empty, meta: ev.b64u(meta), opened, commit: ev.b64u(await ev.keyCommit(K, a.version)) };
        """,
        {"k": b64u(k), "version": VERSION, "seed": b64u(seed), "size": size, "meta": meta},
    )
    chunks = got["chunks"]
    assert [c["index"] for c in chunks] == [0, 1, 2]
    for i, c in enumerate(chunks):
        last = i == 2
        expected = chunk_ct(k, VERSION, i, last, plain[i * CHUNK:(i + 1) * CHUNK])
        ct = unb64u(c["ct"])
        assert ct == expected, f"chunk {i}"
        assert unb64u(c["hash"]) == hashlib.sha256(ct).digest()
    assert [len(unb64u(c["ct"])) for c in chunks] == [CHUNK + 16, CHUNK + 16, 12345 + 16]
    assert [unb64u(e) for e in got["empty"]] == [chunk_ct(k, VERSION, 0, True, b"")]
    record = unb64u(got["meta"])
    plain_meta = AESGCM(hkdf(k, b"parley/meta/v1")).decrypt(bytes(12), record, b"parley/meta/v1\0" + VERSION.encode())
    assert json.loads(plain_meta) == meta
    assert got["opened"] == meta
    assert unb64u(got["commit"]) == commit(k, VERSION)
    # Python's metadata record opens in the browser too.
    py_meta = meta_ct(k, VERSION, json.dumps(meta, ensure_ascii=False).encode())
    assert await env.js(
        "return await ev.openMeta(ev.unb64u(a.k), a.version, ev.unb64u(a.meta));",
        {"k": b64u(k), "version": VERSION, "meta": b64u(py_meta)},
    ) == meta


# ---- recovery ---------------------------------------------------------------------------------


async def test_recovery_blob_round_trips_with_python(env: Env) -> None:
    device = "e" * 32
    got = await env.js(
        """
        const { keys, encPriv, sigPriv } = await ev.generateDeviceKeys();
        const { code, bytes } = ev.newRecoveryCode();
        const owner = { person: a.person, device: a.device, sigAlg: keys.sigAlg, encPriv, sigPriv };
        const byCode = await ev.sealRecovery(owner, { code });
        const byPass = await ev.sealRecovery(owner, { passphrase: a.passphrase });
        // Reading a code back ignores case, spaces and dashes.
        const typed = code.toLowerCase().replace(/-/g, " ");
        const again = await ev.openRecovery(byCode, a.person, { code: typed });
        const restored = await ev.importDeviceKeys(again);
        return {
          code, bytes: ev.b64u(bytes), byCode, byPass, encPriv: ev.b64u(encPriv), sigPriv: ev.b64u(sigPriv), sigAlg: keys.sigAlg,
          samePub: ev.b64u(restored.encPub) === ev.b64u(keys.encPub) && ev.b64u(restored.sigPub) === ev.b64u(keys.sigPub),
          restoredExtractable: restored.encPrivate.extractable || restored.sigPrivate.extractable,
          wrongPerson: await rejected(() => ev.openRecovery(byCode, "f".repeat(32), { code })),
          wrongPass: await rejected(() => ev.openRecovery(byPass, a.person, { passphrase: "not it" })),
          badCode: await rejected(() => ev.parseRecoveryCode("ABCD-EFGH")),
          fewIterations: await rejected(() => ev.sealRecovery(owner, { passphrase: "x", iterations: 1000 })),
        };
        """,
        {"person": PERSON, "device": device, "passphrase": "correct horse battery staple ünïcode"},
    )
    code = got["code"]
    assert re.fullmatch(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}", code)
    assert code_bytes(code) == unb64u(got["bytes"]) and len(unb64u(got["bytes"])) == 20
    assert got["samePub"] is True and got["restoredExtractable"] is False
    assert got["wrongPerson"]["code"] == "recovery" and got["wrongPass"]["code"] == "recovery"
    assert got["badCode"]["code"] == "recovery-code" and got["fewIterations"]["code"] == "recovery"
    aad = b"parley/recovery/v1\0" + PERSON.encode()
    expected = {
        "device": device, "enc_priv": got["encPriv"], "person": PERSON, "sig_alg": got["sigAlg"],
        "sig_priv": got["sigPriv"], "t": "parley/recovery-keys/v1",
    }
    # Browser seals -> Python opens, with the code and with the passphrase.
    for blob, secret in ((got["byCode"], code_bytes(code)), (got["byPass"], "correct horse battery staple ünïcode".encode())):
        assert blob["v"] == 1 and blob["device"] == device and len(unb64u(blob["salt"])) == 16
        assert len(unb64u(blob["nonce"])) == 12
        plain = AESGCM(recovery_key(blob, secret)).decrypt(unb64u(blob["nonce"]), unb64u(blob["ciphertext"]), aad)
        assert plain.decode() == canonical(expected)
    assert got["byCode"]["kdf"] == "hkdf-sha256" and "iterations" not in got["byCode"]
    assert got["byPass"]["kdf"] == "pbkdf2-sha256" and got["byPass"]["iterations"] >= 600000
    # Python seals -> browser opens (a key pair made in Python, an ES256 device).
    enc = x25519.X25519PrivateKey.generate()
    sig = ec.generate_private_key(ec.SECP256R1())
    body = {
        "device": device, "enc_priv": b64u(pkcs8(enc)), "person": PERSON, "sig_alg": "ES256",
        "sig_priv": b64u(pkcs8(sig)), "t": "parley/recovery-keys/v1",
    }
    raw_code = os.urandom(20)
    blobs = []
    for kdf, secret in (("hkdf-sha256", raw_code), ("pbkdf2-sha256", b"pass phrase")):
        blob: dict[str, Any] = {"v": 1, "kdf": kdf, "salt": b64u(os.urandom(16)), "nonce": b64u(os.urandom(12)), "device": device}
        if kdf == "pbkdf2-sha256":
            blob["iterations"] = 600000
        ct = AESGCM(recovery_key(blob, secret)).encrypt(unb64u(blob["nonce"]), canonical(body).encode(), aad)
        blobs.append({**blob, "ciphertext": b64u(ct)})
    opened = await env.js(
        """
        const out = [];
        const secrets = [{ code: ev.formatRecoveryCode(ev.unb64u(a.code)) }, { passphrase: "pass phrase" }];
        for (let i = 0; i < 2; i++) {
          const r = await ev.openRecovery(a.blobs[i], a.person, secrets[i]);
          const keys = await ev.importDeviceKeys(r);
          out.push({ sigAlg: r.sigAlg, encPub: ev.b64u(keys.encPub), sigPub: ev.b64u(keys.sigPub) });
        }
        return out;
        """,
        {"blobs": blobs, "person": PERSON, "code": b64u(raw_code)},
    )
    sig_pub = sig.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    for o in opened:
        assert o == {"sigAlg": "ES256", "encPub": b64u(raw_public(enc.public_key())), "sigPub": b64u(sig_pub)}


# ---- manifest, reading, tampering ------------------------------------------------------------

# Three devices in the page: the uploader U (Ed25519), the reader R (ES256) and an
# outsider X; a 3-chunk document for U and R, its manifest signed by U, K wrapped for R.
UPLOAD = """
const id = (c) => c.repeat(32);
const dev = async (person, devId, sigAlg) => {
  const { keys } = await ev.generateDeviceKeys({ sigAlg });
  const wire = ev.deviceWire(person, keys, devId);
  return { keys, wire, fp: await ev.fingerprint(wire) };
};
const U = await dev(id("1"), id("a"), "Ed25519");
const R = await dev(id("2"), id("b"), "ES256");
const X = await dev(id("3"), id("c"), "Ed25519");
const devices = new Map([U, R, X].map((d) => [d.wire.id, d.wire]));
const plain = ev.randomBytes(2 * ev.CHUNK + 777);
const K = ev.newContentKey();
const ids = { visit: id("4"), document: id("5"), version: id("6") };
const chunks = [];
for await (const c of ev.encryptFile(new File([plain], "case.pdf"), K, ids.version)) chunks.push(c);
const meta = await ev.sealMeta(K, ids.version, { name: "case.pdf", type: "application/pdf", size: plain.length, description: "" });
const manifestFor = (recipients, hashes = chunks.map((c) => c.hash)) => ev.buildManifest({
  ...ids, chunkHashes: hashes, size: chunks.reduce((n, c) => n + c.ciphertext.length, 0),
  metaCiphertext: meta, K, uploader: U.wire, recipients,
});
const manifest = await manifestFor([R.wire, U.wire]);
const wire = await ev.signManifest(U.keys, manifest);
const forR = await ev.wrapForDevice(K, R.wire, ids.visit, ids.version);
const wrapped = ev.unb64u(forR.wrapped);
window.up = { U, R, X, devices, plain, K, ids, chunks, meta, manifest, wire, wrapped, manifestFor };
"""


async def test_a_reader_checks_the_manifest_then_streams_the_plaintext(env: Env) -> None:
    got = await env.js(
        UPLOAD + """
        const K2 = await ev.unwrapKey(wrapped, R.keys, ev.wrapInfo(ids.visit, ids.version, R.wire.id));
        const checked = await ev.checkManifest(wire, {
          me: { device: R.wire.id, fp: R.fp }, deviceById: (d) => devices.get(d), expect: ids, K: K2, metaCiphertext: meta,
          uploaderTrusted: true,
        });
        const body = new Blob(chunks.map((c) => c.ciphertext)).stream();
        const parts = [];
        for await (const p of ev.decryptStream(body, checked.manifest, K2)) parts.push(p);
        const out = ev.concatBytes(...parts);
        return {
          same: ev.b64u(await ev.sha256(out)) === ev.b64u(await ev.sha256(plain)), parts: parts.map((p) => p.length),
          via: checked.via, verified: checked.uploaderVerified, text: checked.text, signature: wire.signature,
          meta: await ev.openMeta(K2, ids.version, meta, checked.manifest), U: U.wire, R: R.wire,
          recipientsSorted: manifest.recipients.map((r) => r.device), forR: forR.device === R.wire.id,
          sizeOk: manifest.size === ev.ciphertextSize(plain.length) && ev.ciphertextSize(0) === 16,
        };
        """,
    )
    assert got["same"] is True and got["parts"] == [CHUNK, CHUNK, 777]
    assert got["via"] == "recipient" and got["verified"] is True
    assert got["meta"]["name"] == "case.pdf" and got["forR"] is True and got["sizeOk"] is True
    assert got["recipientsSorted"] == sorted(got["recipientsSorted"])
    # The manifest is canonical JSON of the documented shape, and Python verifies its signature.
    m = json.loads(got["text"])
    assert canonical(m) == got["text"]
    assert set(m) == {
        "t", "visit", "document", "version", "chunk_size", "chunks", "size", "chunk_hashes", "meta_hash", "commit",
        "uploader", "uploader_fp", "recipients",
    }
    assert m["chunks"] == 3 and m["size"] == 2 * (CHUNK + 16) + 777 + 16 and m["chunk_size"] == CHUNK
    u = got["U"]
    assert m["uploader_fp"] == b64u(fingerprint(u["person"], unb64u(u["enc_pub"]), unb64u(u["sig_pub"]), "Ed25519"))
    ed25519.Ed25519PublicKey.from_public_bytes(unb64u(u["sig_pub"])).verify(unb64u(got["signature"]), got["text"].encode())


async def test_tampering_is_refused_with_a_clear_error(env: Env) -> None:
    got = await env.js(
        UPLOAD + """
        const me = { device: R.wire.id, fp: R.fp };
        const opts = { me, deviceById: (d) => devices.get(d), expect: ids };
        const read = async (cts, m = manifest) => {
          for await (const _ of ev.decryptStream(new Blob(cts).stream(), m, K)) { /* drain */ }
        };
        const cts = chunks.map((c) => c.ciphertext);
        const flipped = cts.map((c) => c.slice());
        flipped[1][100] ^= 1;
        const out = {};
        out.flippedBit = await rejected(() => read(flipped));
        out.flippedBitDecrypt = await rejected(async () => {
          const { chunk } = await ev.subkeys(K);
          await ev.decryptChunk(chunk, ids.version, 1, false, flipped[1]);
        });
        out.swapped = await rejected(() => read([cts[1], cts[0], cts[2]]));
        // Even a manifest signed over the swapped order does not decrypt: nonce and AAD bind the index.
        const swappedManifest = await manifestFor([R.wire, U.wire], [chunks[1].hash, chunks[0].hash, chunks[2].hash]);
        out.swappedSigned = await rejected(() => read([cts[1], cts[0], cts[2]], swappedManifest));
        out.missingLast = await rejected(() => read(cts.slice(0, 2)));
        out.trailing = await rejected(() => read([...cts, new Uint8Array([1])]));
        out.wrongInfo = await rejected(() => ev.unwrapKey(wrapped, R.keys, ev.wrapInfo(ids.visit, "7".repeat(32), R.wire.id)));
        out.wrongDevice = await rejected(() => ev.unwrapKey(wrapped, X.keys, ev.wrapInfo(ids.visit, ids.version, R.wire.id)));
        out.wrongKey = await rejected(() => ev.checkManifest(wire, { ...opts, K: ev.newContentKey() }));
        out.wrongKeyStream = await rejected(() => ev.decryptStream(new Blob(cts).stream(), manifest, ev.newContentKey()).next());
        out.wrongMeta = await rejected(() => ev.checkManifest(wire, { ...opts, metaCiphertext: meta.slice(1) }));
        // Forged manifests: edited text, re-ordered JSON, a signature of another device,
        // the uploader's keys swapped by the server, another version's manifest.
        out.edited = await rejected(() => ev.checkManifest({ ...wire, manifest: wire.manifest.replace('"chunks":3', '"chunks":2') }, opts));
        out.notCanonical = await rejected(() => ev.checkManifest({ ...wire, manifest: " " + wire.manifest }, opts));
        out.otherSigner = await rejected(async () => ev.checkManifest(await ev.signManifest(X.keys, manifest), opts));
        out.uploaderKeysSwapped = await rejected(() => ev.checkManifest(wire, { ...opts, deviceById: (d) => (d === U.wire.id ? { ...X.wire, id: U.wire.id, person: U.wire.person } : devices.get(d)) }));
        out.otherVersion = await rejected(() => ev.checkManifest(wire, { ...opts, expect: { ...ids, version: "7".repeat(32) } }));
        // Recipients: the list edited in the signed text; a validly signed manifest for
        // others; this device listed with keys other than its own.
        out.recipientsSwapped = await rejected(() => ev.checkManifest({ ...wire, manifest: wire.manifest.split(R.wire.id).join(X.wire.id) }, opts));
        out.notRecipient = await rejected(async () => ev.checkManifest(await ev.signManifest(U.keys, await manifestFor([X.wire, U.wire])), opts));
        out.otherKeys = await rejected(() => ev.checkManifest(wire, { ...opts, me: { device: R.wire.id, fp: X.fp } }));
        out.reorderedRecipients = await rejected(async () => {
          const m = { ...manifest, recipients: [...manifest.recipients].reverse() };
          return ev.checkManifest(await ev.signManifest(U.keys, m), opts);
        });
        // Shares: U shares with X; one made by X itself; one for another manifest; U's
        // share carrying another signature.
        const share = await ev.signStatement(U.keys, await ev.makeShare({ manifestText: wire.manifest, version: ids.version, by: U.wire, recipients: [X.wire] }));
        const xOpts = { ...opts, me: { device: X.wire.id, fp: X.fp } };
        out.shared = (await ev.checkManifest(wire, { ...xOpts, shares: [share] })).via;
        const selfShare = await ev.signStatement(X.keys, await ev.makeShare({ manifestText: wire.manifest, version: ids.version, by: X.wire, recipients: [X.wire] }));
        out.shareByOutsider = await rejected(() => ev.checkManifest(wire, { ...xOpts, shares: [selfShare] }));
        const otherShare = await ev.signStatement(U.keys, await ev.makeShare({ manifestText: wire.manifest + " ", version: ids.version, by: U.wire, recipients: [X.wire] }));
        out.shareOtherManifest = await rejected(() => ev.checkManifest(wire, { ...xOpts, shares: [otherShare] }));
        out.shareEdited = await rejected(() => ev.checkManifest(wire, { ...xOpts, shares: [{ ...share, signature: selfShare.signature }] }));
        return out;
        """,
    )
    expected = {
        "flippedBit": ("chunk-hash", "Part 2"),
        "flippedBitDecrypt": ("chunk", "Part 2"),
        "swapped": ("chunk-hash", "Part 1"),
        "swappedSigned": ("chunk", "Part 1"),
        "missingLast": ("truncated", "part 3 of 3 is missing"),
        "trailing": ("trailing", "more data"),
        "wrongInfo": ("unwrap", "does not open"),
        "wrongDevice": ("unwrap", "does not open"),
        "wrongKey": ("commit", "committed"),
        "wrongKeyStream": ("commit", "committed"),
        "wrongMeta": ("meta-hash", "name and description"),
        "edited": ("signature", "valid signature"),
        "notCanonical": ("canonical", "canonical"),
        "otherSigner": ("signature", "valid signature"),
        "uploaderKeysSwapped": ("uploader", "uploading device"),
        "otherVersion": ("manifest", "another version"),
        "recipientsSwapped": ("signature", "valid signature"),
        "notRecipient": ("recipient", "not among"),
        "otherKeys": ("recipient", "other keys"),
        "shareByOutsider": ("share", "did not hold"),
        "shareOtherManifest": ("share", "another manifest"),
        "shareEdited": ("signature", "valid signature"),
        # A validly signed manifest whose recipients are out of order is malformed.
        "reorderedRecipients": ("manifest", "out of order"),
    }
    for name, (code, words) in expected.items():
        err = got[name]
        assert err is not None, f"{name}: accepted"
        assert err["code"] == code and words in err["message"], (name, err)
    assert got["shared"] == "share"


# ---- the device store and trust ---------------------------------------------------------------


async def test_trust_follows_statements_pins_and_warnings(env: Env) -> None:
    got = await env.js(
        """
        const id = (c) => c.repeat(32);
        const A = id("1"), B = id("2"), C = id("3");
        const dev = async (person, devId) => {
          const { keys } = await ev.generateDeviceKeys();
          // The server's own fingerprint field is never used: a wrong one here changes nothing.
          return { keys, wire: { ...ev.deviceWire(person, keys, devId), fingerprint: "x", label: devId.slice(0, 2), revoked_at: null } };
        };
        const [A1, B1, B2, B3, C1, C1new, C2] = await Promise.all([
          dev(A, id("a")), dev(B, id("b")), dev(B, id("c")), dev(B, id("d")), dev(C, id("e")), dev(C, id("e")), dev(C, id("f")),
        ]);
        const db = await ek.openKeyStore();
        await ek.saveDevice(db, { person: A, device: A1.wire.id, keys: A1.keys });
        const stmt = async (kind, signer, subject, signWith = signer) => ({
          kind, signer: signer.wire.id, subject: subject.wire.id,
          ...(await ev.signStatement(signWith.keys, await ev.makeTrustStatement(kind, { by: signer.wire.id, byDevice: signer.wire, subject: subject.wire.id, subjectDevice: subject.wire }))),
        });
        const listing = (people, statements) => ({
          people: Object.entries(people).map(([person, ds]) => ({ person, name: person.slice(0, 1), devices: ds.map((d) => d.wire) })),
          statements,
        });
        const view = (m) => Object.fromEntries([...m.values()].map((e) => [e.device.label, {
          own: e.own, verified: e.verified, pinned: e.pinned, warning: e.warning, shareable: e.shareable, revoked: e.revoked,
        }]));
        const s1 = await stmt("verify", A1, B1);
        const s2 = await stmt("cross-sign", B1, B2);
        const s3 = await stmt("verify", B1, C1);         // another person's verification: no web of trust
        const s4 = await stmt("verify", A1, C1, B1);     // claims A1, signed by B1: invalid
        const out = {};
        out.first = view(await ek.evaluateTrust(db, A, listing({ [A]: [A1], [B]: [B1, B2], [C]: [C1] }, [s1, s2, s3, s4])));
        // The server drops B1 and the statements, presents C1 with other keys, adds B3
        // with no cross-signature, and lists a revoked C2.
        const revokedC2 = { ...C2, wire: { ...C2.wire, revoked_at: "2026-01-01T00:00:00Z" } };
        out.second = view(await ek.evaluateTrust(db, A, listing({ [A]: [A1], [B]: [B2, B3], [C]: [C1new, revokedC2] }, [])));
        // B2 (still verified) cross-signs B3; A1 verifies C1's new keys.
        const s5 = await stmt("cross-sign", B2, B3);
        const s6 = await stmt("verify", A1, C1new);
        out.third = view(await ek.evaluateTrust(db, A, listing({ [A]: [A1], [B]: [B2, B3], [C]: [C1new, revokedC2] }, [s5, s6])));
        // The server lists this browser's own device with other keys.
        const fakeA1 = { ...B1, wire: { ...B1.wire, id: A1.wire.id, person: A, label: A1.wire.label } };
        out.fakeOwn = view(await ek.evaluateTrust(db, A, listing({ [A]: [fakeA1], [B]: [B2, B3] }, [s5])));
        out.shareable = ek.shareableDevices(await ek.evaluateTrust(db, A, listing({ [A]: [A1], [B]: [B2, B3], [C]: [C1new] }, []))).map((e) => e.device.label).sort();
        out.pins = [...(await ek.loadPins(db, A)).values()].map((p) => [p.device.slice(0, 2), p.verified, p.warning]).sort();
        db.close();
        return out;
        """,
    )
    f = {"own": False, "verified": False, "pinned": False, "warning": None, "shareable": False, "revoked": False}
    assert got["first"] == {
        "aa": {**f, "own": True, "shareable": True},
        "bb": {**f, "verified": True, "shareable": True},
        "cc": {**f, "verified": True, "shareable": True},
        "ee": {**f, "pinned": True, "shareable": True},
    }
    assert got["second"] == {
        "aa": {**f, "own": True, "shareable": True},
        "cc": {**f, "verified": True, "shareable": True},
        "dd": {**f, "warning": "replaced"},
        "ee": {**f, "warning": "changed"},
        "ff": {**f, "revoked": True},
    }
    assert got["third"] == {
        "aa": {**f, "own": True, "shareable": True},
        "cc": {**f, "verified": True, "shareable": True},
        "dd": {**f, "verified": True, "shareable": True},
        "ee": {**f, "verified": True, "shareable": True},
        "ff": {**f, "revoked": True},
    }
    assert got["fakeOwn"]["aa"]["own"] is False and got["fakeOwn"]["aa"]["warning"] == "changed"
    assert got["fakeOwn"]["aa"]["shareable"] is False
    assert got["shareable"] == ["aa", "cc", "dd", "ee"]
    assert ["bb", True, None] in got["pins"] and ["dd", True, None] in got["pins"]


async def test_stored_private_keys_are_non_extractable_and_survive_a_reload(env: Env) -> None:
    person, device = "8" * 32, "9" * 32
    saved = await env.js(
        """
        const db = await ek.openKeyStore();
        const { keys } = await ev.generateDeviceKeys();
        await ek.saveDevice(db, { person: a.person, device: a.device, keys });
        const raw = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
        const extractable = await rejected(() => ek.saveDevice(db, { person: "7".repeat(32), device: a.device, keys: { ...keys, encPrivate: raw.privateKey } }));
        await ek.savePins(db, a.person, new Map([["6".repeat(32), { device: "6".repeat(32), person: "5".repeat(32), fp: "abc", first_seen: "now", verified: false, warning: null }]]));
        db.close();
        return { wire: ev.deviceWire(a.person, keys, a.device), extractable };
        """,
        {"person": person, "device": device},
    )
    assert saved["extractable"]["code"] == "device"
    wire = saved["wire"]
    k = os.urandom(32)
    info = wrap_info(VISIT, VERSION, device)
    wrapped = SUITE.encrypt(k, x25519.X25519PublicKey.from_public_bytes(unb64u(wire["enc_pub"])), info=info)
    message = b"signed after a reload"
    await env.load()
    got = await env.js(
        """
        const db = await ek.openKeyStore();
        const mine = await ek.loadDevice(db, a.person);
        const pins = await ek.loadPins(db, a.person);
        const other = await ek.loadDevice(db, "7".repeat(32));
        db.close();
        const k = mine.keys;
        return {
          wire: mine.wire, fp: ev.b64u(mine.fp), pins: [...pins.keys()], other: other === undefined,
          extractable: [k.encPrivate.extractable, k.sigPrivate.extractable],
          exportEnc: await rejected(() => crypto.subtle.exportKey("pkcs8", k.encPrivate)),
          exportSig: await rejected(() => crypto.subtle.exportKey("jwk", k.sigPrivate)),
          K: ev.b64u(await ev.unwrapKey(ev.unb64u(a.wrapped), k, ev.wrapInfo(a.visit, a.version, a.device))),
          sig: ev.b64u(await ev.sign(k, ev.unb64u(a.message))),
        };
        """,
        {"person": person, "device": device, "wrapped": b64u(wrapped), "visit": VISIT, "version": VERSION, "message": b64u(message)},
    )
    assert got["wire"] == wire and got["other"] is True
    assert unb64u(got["fp"]) == fingerprint(person, unb64u(wire["enc_pub"]), unb64u(wire["sig_pub"]), wire["sig_alg"])
    assert got["pins"] == ["6" * 32]
    assert got["extractable"] == [False, False]
    for refused in (got["exportEnc"], got["exportSig"]):
        assert refused is not None and "not extractable" in refused["message"], refused
    assert unb64u(got["K"]) == k
    ed25519.Ed25519PublicKey.from_public_bytes(unb64u(wire["sig_pub"])).verify(unb64u(got["sig"]), message)
