"""Evidence cryptography in the browser: client_web/js/evidence_crypto.js in headless
Chromium, beside AES-256-GCM in Python (``cryptography``) on the same machine, same run.

    .venv/bin/python bench/evidence_browser.py [--mib 128] [--repeat 3] [--json results.json]

* ``parley serve`` runs on the embedded defaults (SQLite, migrated beforehand) on a free
  loopback port in a temporary directory, so the page loads the library exactly as the
  evidence room does: from ``/static/js/`` under Parley's Content-Security-Policy.
* Debian's Chromium (``/usr/bin/chromium``, or ``$PARLEY_CHROMIUM``) is driven by
  Playwright, headless, with the flags of tests/browser/conftest.py. The page imports
  the module and, for ``--mib`` chunks of 1 MiB (8 distinct random plaintexts, reused
  in turn), times with ``performance.now()``:
  - ``encryptChunk`` chunk after chunk (as an upload awaits each one);
  - ``decryptChunk`` the same ciphertexts;
  - ``encryptFile`` over a ``File`` built in the page from the same plaintexts (reads
    each chunk with ``File.slice``, encrypts it, hashes the ciphertext: the upload path);
  - ``decryptStream`` over ``new Blob(ciphertexts).stream()`` with a manifest of their
    hashes and the key commitment (reassembles chunks, checks each hash, decrypts: the
    download path without the network).
  Beside them, the platform's reads alone: ``File.slice(...).arrayBuffer()`` per chunk
  and a ``Blob``'s ``stream()`` read to the end.
  Every figure is the median of ``--repeat`` runs; the decrypted bytes are compared with
  the plaintext, and ``encryptFile``'s hashes with the ciphertexts', after timing.
* The baseline is ``cryptography``'s ``AESGCM`` in this process with the same chunk size,
  nonces and associated data (and SHA-256 of the ciphertext where the browser's path
  hashes), one chunk after another, run while the browser is idle.

Figures are MB/s of plaintext (10^6 bytes). Exit status: 0 done, 1 a failure (a
mismatch, a console error or CSP violation in the page, an error), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402
from evidence_transfer import server_env  # noqa: E402
from room_broadcast import PARLEY, ServerProcess, cancel_on_signals, free_port, machine, run_main  # noqa: E402

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-gpu", "--no-first-run"]
CHUNK = 1048576
DISTINCT = 8
VERSION = "d" * 32
MB = 1e6
OPS = ("subtle_encrypt", "subtle_decrypt", "subtle_sha256", "encrypt_chunk", "decrypt_chunk", "encrypt_file",
       "decrypt_stream")
BROWSER_ONLY = ("file_slice", "blob_stream")  # the platform's reads, nothing to compare in Python
WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`);
});
"""

PAGE_BENCH = """
async (a) => {
  const ev = await import("/static/js/evidence_crypto.js");
  const CH = ev.CHUNK;
  const n = a.chunks;
  const plains = [];
  for (let d = 0; d < a.distinct; d++) {
    const b = new Uint8Array(CH);
    for (let o = 0; o < CH; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536));
    plains.push(b);
  }
  const plainOf = (i) => plains[i % a.distinct];
  const K = ev.newContentKey();
  const { chunk: kChunk } = await ev.subkeys(K);
  const ms = { subtle_encrypt: [], subtle_decrypt: [], subtle_sha256: [],
               encrypt_chunk: [], decrypt_chunk: [], encrypt_file: [], decrypt_stream: [] };
  const problems = [];
  // The platform alone: WebCrypto on the same buffers, no library code in between.
  const raw = await crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), "AES-GCM", false,
                                            ["encrypt", "decrypt"]);
  const iv = (i) => { const v = new Uint8Array(12); new DataView(v.buffer).setUint32(8, i); return v; };
  for (let r = 0; r < a.repeat; r++) {
    let t = performance.now();
    const c = new Array(n);
    for (let i = 0; i < n; i++) c[i] = await crypto.subtle.encrypt({ name: "AES-GCM", iv: iv(i) }, raw, plainOf(i));
    ms.subtle_encrypt.push(performance.now() - t);
    t = performance.now();
    for (let i = 0; i < n; i++) await crypto.subtle.decrypt({ name: "AES-GCM", iv: iv(i) }, raw, c[i]);
    ms.subtle_decrypt.push(performance.now() - t);
    t = performance.now();
    for (let i = 0; i < n; i++) await crypto.subtle.digest("SHA-256", plainOf(i));
    ms.subtle_sha256.push(performance.now() - t);
  }
  let cts = [];
  for (let r = 0; r < a.repeat; r++) {
    let t = performance.now();
    const c = new Array(n);
    for (let i = 0; i < n; i++) c[i] = await ev.encryptChunk(kChunk, a.version, i, i === n - 1, plainOf(i));
    ms.encrypt_chunk.push(performance.now() - t);
    cts = c;
    t = performance.now();
    const back = new Array(n);
    for (let i = 0; i < n; i++) back[i] = await ev.decryptChunk(kChunk, a.version, i, i === n - 1, cts[i]);
    ms.decrypt_chunk.push(performance.now() - t);
    if (r === 0) {
      for (let i = 0; i < n; i++) if (!ev.bytesEqual(back[i], plainOf(i))) problems.push(`decryptChunk ${i} differs`);
    }
  }
  const file = new File(Array.from({ length: n }, (_, i) => plainOf(i)), "bench.bin");
  // The platform's reads alone: File.slice per chunk (as encryptFile reads), a Blob's stream.
  // One Blob of the ciphertexts for every stream read (Chromium refuses to read blobs
  // once too many large ones are alive).
  const ctBlob = new Blob(cts);
  ms.file_slice = [];
  ms.blob_stream = [];
  for (let r = 0; r < a.repeat; r++) {
    let t = performance.now();
    for (let i = 0; i < n; i++) await file.slice(i * CH, (i + 1) * CH).arrayBuffer();
    ms.file_slice.push(performance.now() - t);
    t = performance.now();
    const reader = ctBlob.stream().getReader();
    for (;;) { const { done } = await reader.read(); if (done) break; }
    ms.blob_stream.push(performance.now() - t);
  }
  let fileHashes = [];
  for (let r = 0; r < a.repeat; r++) {
    const t = performance.now();
    const h = [];
    for await (const part of ev.encryptFile(file, K, a.version)) h.push(part.hash);
    ms.encrypt_file.push(performance.now() - t);
    fileHashes = h;
  }
  for (let i = 0; i < n; i++) {
    if (!ev.bytesEqual(fileHashes[i], await ev.sha256(cts[i]))) problems.push(`encryptFile ${i} differs`);
  }
  const manifest = {
    version: a.version, chunks: n, chunk_size: CH, size: ev.ciphertextSize(n * CH),
    chunk_hashes: fileHashes.map((h) => ev.b64u(h)), commit: ev.b64u(await ev.keyCommit(K, a.version)),
  };
  for (let r = 0; r < a.repeat; r++) {
    const t = performance.now();
    let i = 0;
    let bad = 0;
    for await (const plain of ev.decryptStream(ctBlob.stream(), manifest, K)) {
      if (plain.length !== CH || (r === 0 && !ev.bytesEqual(plain, plainOf(i)))) bad++;
      i++;
    }
    const took = performance.now() - t;
    if (r > 0) ms.decrypt_stream.push(took);  // the first run also compares every byte
    if (bad || i !== n) problems.push(`decryptStream: ${bad} chunks differ, ${i} of ${n} read`);
  }
  if (a.repeat === 1) problems.push("decryptStream needs --repeat 2 or more (the first run compares bytes)");
  return { ms, problems, userAgent: navigator.userAgent };
}
"""


def median_mb_s(ms_list: list[float], nbytes: int) -> dict[str, float]:
    rates = [nbytes / (m / 1e3) / MB for m in ms_list]
    return {"median": statistics.median(rates), "best": max(rates), "runs": len(rates)}


def python_baseline(chunks: int, repeat: int) -> dict[str, dict[str, float]]:
    """The same work with ``cryptography``'s AESGCM, one chunk after another."""
    plains = [os.urandom(CHUNK) for _ in range(DISTINCT)]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"parley/chunk/v1").derive(os.urandom(32))
    aead = AESGCM(key)

    def nonce(i: int) -> bytes:
        return b"\x00" * 4 + i.to_bytes(8, "big")

    def aad(i: int) -> bytes:
        return (b"parley/chunk/v1\x00" + VERSION.encode() + b"\x00" + i.to_bytes(8, "big")
                + (b"\x01" if i == chunks - 1 else b"\x00"))

    times: dict[str, list[float]] = {op: [] for op in OPS}
    cts: list[bytes] = []
    for _ in range(repeat):
        t = time.perf_counter()
        raw = [aead.encrypt(nonce(i), plains[i % DISTINCT], None) for i in range(chunks)]
        times["subtle_encrypt"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(chunks):
            aead.decrypt(nonce(i), raw[i], None)
        times["subtle_decrypt"].append(time.perf_counter() - t)
        del raw
        t = time.perf_counter()
        for i in range(chunks):
            hashlib.sha256(plains[i % DISTINCT]).digest()
        times["subtle_sha256"].append(time.perf_counter() - t)
        t = time.perf_counter()
        cts = [aead.encrypt(nonce(i), plains[i % DISTINCT], aad(i)) for i in range(chunks)]
        times["encrypt_chunk"].append(time.perf_counter() - t)
        t = time.perf_counter()
        back = [aead.decrypt(nonce(i), cts[i], aad(i)) for i in range(chunks)]
        times["decrypt_chunk"].append(time.perf_counter() - t)
        if any(back[i] != plains[i % DISTINCT] for i in range(chunks)):
            raise RuntimeError("the Python baseline decrypted other bytes")
        del back
        t = time.perf_counter()
        for i in range(chunks):  # encryptFile's work: encrypt, then hash the ciphertext
            hashlib.sha256(aead.encrypt(nonce(i), plains[i % DISTINCT], aad(i))).digest()
        times["encrypt_file"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(chunks):  # decryptStream's work: hash the ciphertext, then decrypt
            hashlib.sha256(cts[i]).digest()
            aead.decrypt(nonce(i), cts[i], aad(i))
        times["decrypt_stream"].append(time.perf_counter() - t)
    nbytes = chunks * CHUNK
    return {op: median_mb_s([s * 1e3 for s in times[op]], nbytes) for op in OPS}


async def browser_run(url: str, chunks: int, repeat: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(base_url=url)
            await context.add_init_script(WATCH_CSP)
            page = await context.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
            await page.goto("/login")
            result = await page.evaluate(PAGE_BENCH, {"chunks": chunks, "repeat": repeat, "distinct": DISTINCT,
                                                      "version": VERSION})
            version = browser.version
            await context.close()
        finally:
            await browser.close()
    nbytes = chunks * CHUNK
    return {"chromium": version, "user_agent": result["userAgent"],
            "figures": {op: median_mb_s(result["ms"][op], nbytes) for op in OPS + BROWSER_ONLY},
            "problems": problems + result["problems"]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_signals()
    tmp = Path(tempfile.mkdtemp(prefix="parley-evidence-browser-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(48)
    server = ServerProcess("parley", [str(PARLEY), "serve", "--host", "127.0.0.1", "--port", str(port)],
                           tmp, server_env(tmp, port, secret, max_bytes=2**30), url)
    try:
        from server.db import migrate

        (tmp / "var").mkdir()
        await migrate.upgrade_async(f"sqlite+aiosqlite:///{tmp / 'var' / 'parley.db'}")
        await server.start()
        load = os.getloadavg()[0]
        print(f"Chromium: {args.mib} MiB x {args.repeat} ...", file=sys.stderr, flush=True)
        browser = await browser_run(url, args.mib, args.repeat)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("Python AESGCM ...", file=sys.stderr, flush=True)
    python = await asyncio.to_thread(python_baseline, args.mib, args.repeat)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(),
        "params": {"mib": args.mib, "repeat": args.repeat, "distinct_plaintexts": DISTINCT},
        "loadavg_1min_before": load, "browser": browser, "python": python,
        "ratios": {op: browser["figures"][op]["median"] / python[op]["median"] for op in OPS},
    }


LABELS = {
    "subtle_encrypt": "WebCrypto AES-GCM encrypt alone",
    "subtle_decrypt": "WebCrypto AES-GCM decrypt alone",
    "subtle_sha256": "WebCrypto SHA-256 alone (Python: hashlib)",
    "file_slice": "File.slice(chunk).arrayBuffer() alone",
    "blob_stream": "Blob.stream() read alone",
    "encrypt_chunk": "encryptChunk, one after another",
    "decrypt_chunk": "decryptChunk, one after another",
    "encrypt_file": "encryptFile (File.slice + encrypt + SHA-256)",
    "decrypt_stream": "decryptStream (Blob stream, SHA-256 + decrypt)",
}


def report(result: dict[str, Any]) -> str:
    b, p = result["browser"]["figures"], result["python"]
    m = result["machine"]
    lines = [
        f"Evidence cryptography, {result['params']['mib']} MiB in 1 MiB chunks, median of "
        f"{result['params']['repeat']} runs; Chromium {result['browser']['chromium']} headless; "
        f"{m['cpus']} CPUs ({m['cpu_model']}); load {result['loadavg_1min_before']:.2f}; {result['date']}",
        "",
        f"{'MB/s of plaintext':<48}{'Chromium':>10}{'(best)':>9}{'Python':>10}{'(best)':>9}{'ratio':>8}",
        "-" * 94,
    ]
    for op in OPS:
        if op == "encrypt_chunk":
            lines.append("evidence_crypto.js:")
        lines.append(f"{LABELS[op]:<48}{b[op]['median']:>10.0f}{b[op]['best']:>9.0f}{p[op]['median']:>10.0f}"
                     f"{p[op]['best']:>9.0f}{result['ratios'][op]:>8.2f}")
    for op in BROWSER_ONLY:
        lines.append(f"{LABELS[op]:<48}{b[op]['median']:>10.0f}{b[op]['best']:>9.0f}{'-':>10}{'-':>9}{'-':>8}")
    lines.append("(Python: cryptography's AESGCM, with SHA-256 of the ciphertext where the browser's path hashes)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evidence cryptography in headless Chromium beside Python's AESGCM.")
    parser.add_argument("--mib", type=int, default=128, help="MiB of plaintext per measurement (default 128)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement, median kept (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.mib < 1 or args.repeat < 2:
        parser.error("--mib must be positive and --repeat at least 2")
    if not Path(CHROMIUM).exists():
        print(f"Chromium not found at {CHROMIUM} (Debian package chromium, or set PARLEY_CHROMIUM)", file=sys.stderr)
        return 1
    try:
        result = run_main(run(args))
    except Exception as err:  # any failure is reported, and exits 1
        print(f"FAILED: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    if result is None:
        return 130
    print()
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"JSON written to {args.json}")
    problems = result["browser"]["problems"]
    for problem in problems:
        print(f"FAILED in the page: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
