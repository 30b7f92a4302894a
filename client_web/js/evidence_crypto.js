// The evidence room's cryptography in the browser: exactly the formats of
// docs/evidence.md (version 1), with WebCrypto and @hpke/core. Nothing here talks to
// the server; the evidence room's UI calls these functions and sends what they return.
//
// Bytes are Uint8Array everywhere; b64u text only where the wire format has it.
// Every check that fails throws an EvidenceError whose `code` names the check and whose
// message can be shown to the person reading the document.

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "/static/vendor/esm/@hpke/core/mod.js";

export const CHUNK = 1048576;
const TAG = 16;
const subtle = globalThis.crypto.subtle;

export class EvidenceError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "EvidenceError";
    this.code = code;
  }
}

function fail(code, message) {
  throw new EvidenceError(code, message);
}

// ---- bytes -------------------------------------------------------------------------------

const encoder = new TextEncoder();

export function utf8(text) {
  return encoder.encode(text);
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function u64be(i) {
  if (!Number.isSafeInteger(i) || i < 0) throw new RangeError(`not a chunk index: ${i}`);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(i));
  return out;
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function asBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError("expected bytes");
}

export function randomBytes(n) {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes a call.
  for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

export async function sha256(bytes) {
  return new Uint8Array(await subtle.digest("SHA-256", asBytes(bytes)));
}

// ---- base64url without padding -----------------------------------------------------------

const B64U = /^[A-Za-z0-9_-]*$/;

export function b64u(bytes) {
  const b = asBytes(bytes);
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) bin += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function unb64u(text) {
  if (typeof text !== "string" || !B64U.test(text) || text.length % 4 === 1) {
    fail("encoding", "A value is not valid base64url.");
  }
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  if (b64u(out) !== text) fail("encoding", "A value is not canonical base64url.");
  return out;
}

function unb64uLength(text, length, what) {
  const bytes = unb64u(text);
  if (bytes.length !== length) fail("encoding", `${what} must be ${length} bytes.`);
  return bytes;
}

// ---- canonical JSON ----------------------------------------------------------------------

const ASCII = /^[\x00-\x7f]*$/;

function canonicalValue(value, path) {
  if (typeof value === "string") {
    if (!ASCII.test(value)) fail("canonical", `Only ASCII strings can be signed (at ${path}).`);
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) fail("canonical", `Only integers can be signed (at ${path}).`);
    return value === 0 ? 0 : value;
  }
  if (Array.isArray(value)) return value.map((v, i) => canonicalValue(v, `${path}[${i}]`));
  if (value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out = {};
    for (const key of Object.keys(value).sort()) {
      if (!ASCII.test(key)) fail("canonical", `Only ASCII keys can be signed (at ${path}).`);
      out[key] = canonicalValue(value[key], `${path}.${key}`);
    }
    return out;
  }
  const kind = value === null ? "null" : typeof value;
  return fail("canonical", `A ${kind} cannot be signed (at ${path}); only strings, integers, lists and objects.`);
}

/** The canonical JSON text of `value` (sorted keys, no whitespace, ASCII strings,
 * integers, lists and objects only); anything else throws. */
export function canonicalJson(value) {
  // Python's ensure_ascii also escapes DEL (0x7f), which JSON.stringify leaves as is;
  // DEL can only occur inside strings, so escaping it everywhere gives Python's bytes.
  return JSON.stringify(canonicalValue(value, "$")).replace(/\x7f/g, "\\u007f");
}

export function canonicalBytes(value) {
  return utf8(canonicalJson(value));
}

/** Parse a canonical JSON text, refusing it unless re-canonicalising gives the same text. */
export function parseCanonical(text, what = "A signed record") {
  if (typeof text !== "string") fail("canonical", `${what} is missing.`);
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    fail("canonical", `${what} is not valid JSON.`);
  }
  let again;
  try {
    again = canonicalJson(value);
  } catch (e) {
    fail("canonical", `${what} is not canonical: ${e.message}`);
  }
  if (again !== text) fail("canonical", `${what} is not in canonical form.`);
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail("canonical", `${what} is not an object.`);
  return value;
}

// ---- device keys -------------------------------------------------------------------------

const X25519 = { name: "X25519" };
const ED25519 = { name: "Ed25519" };
const P256 = { name: "ECDSA", namedCurve: "P-256" };
const ES256_SIGN = { name: "ECDSA", hash: "SHA-256" };
export const SIG_ALGS = ["Ed25519", "ES256"];

let preferred;

/** "Ed25519" when this browser's WebCrypto can generate Ed25519 keys, else "ES256". */
export async function preferredSigAlg() {
  if (!preferred) {
    preferred = subtle.generateKey(ED25519, false, ["sign", "verify"]).then(
      () => "Ed25519",
      () => "ES256",
    );
  }
  return preferred;
}

function sigParams(sigAlg) {
  if (sigAlg === "Ed25519") return ED25519;
  if (sigAlg === "ES256") return P256;
  return fail("device", `Unknown signature algorithm: ${sigAlg}.`);
}

async function publicRaw(key) {
  return new Uint8Array(await subtle.exportKey("raw", key));
}

/** New device keys. Returns `{keys, encPriv, sigPriv}`: `keys` (DeviceKeys) hold
 * non-extractable private keys for IndexedDB; `encPriv` and `sigPriv` are the PKCS#8
 * bytes, exported this once for the recovery blob: seal them, then drop them. */
export async function generateDeviceKeys({ sigAlg } = {}) {
  const alg = sigAlg || (await preferredSigAlg());
  const enc = await subtle.generateKey(X25519, true, ["deriveBits"]);
  const sig = await subtle.generateKey(sigParams(alg), true, ["sign", "verify"]);
  const encPriv = new Uint8Array(await subtle.exportKey("pkcs8", enc.privateKey));
  const sigPriv = new Uint8Array(await subtle.exportKey("pkcs8", sig.privateKey));
  const keys = await importDeviceKeys({ sigAlg: alg, encPriv, sigPriv });
  return { keys, encPriv, sigPriv };
}

/** DeviceKeys from PKCS#8 private keys (a new device, or an opened recovery blob):
 * `{sigAlg, encPrivate, encPublic, sigPrivate, sigPublic, encPub, sigPub}`, the private
 * CryptoKeys non-extractable, `encPub`/`sigPub` the raw public keys of the wire. */
export async function importDeviceKeys({ sigAlg, encPriv, sigPriv }) {
  const sp = sigParams(sigAlg);
  let encJwk;
  let sigJwk;
  try {
    // An extractable copy only to learn the public halves, then dropped.
    encJwk = await subtle.exportKey("jwk", await subtle.importKey("pkcs8", encPriv, X25519, true, ["deriveBits"]));
    sigJwk = await subtle.exportKey("jwk", await subtle.importKey("pkcs8", sigPriv, sp, true, ["sign"]));
  } catch {
    fail("device", "The device's private keys cannot be read.");
  }
  const pubJwk = (jwk) => {
    const { d: _d, key_ops: _ops, ext: _ext, ...pub } = jwk;
    return pub;
  };
  const encPublic = await subtle.importKey("jwk", pubJwk(encJwk), X25519, true, []);
  const sigPublic = await subtle.importKey("jwk", pubJwk(sigJwk), sp, true, ["verify"]);
  return {
    sigAlg,
    encPrivate: await subtle.importKey("pkcs8", encPriv, X25519, false, ["deriveBits"]),
    encPublic,
    sigPrivate: await subtle.importKey("pkcs8", sigPriv, sp, false, ["sign"]),
    sigPublic,
    encPub: await publicRaw(encPublic),
    sigPub: await publicRaw(sigPublic),
  };
}

function checkPublicKey(sigAlg, sigPub, encPub) {
  if (encPub.length !== 32) fail("device", "A device's encryption key must be 32 bytes.");
  if (sigAlg === "Ed25519" && sigPub.length !== 32) fail("device", "An Ed25519 key must be 32 bytes.");
  if (sigAlg === "ES256" && (sigPub.length !== 65 || sigPub[0] !== 4)) {
    fail("device", "An ES256 key must be an uncompressed P-256 point (65 bytes).");
  }
}

/** A device's fingerprint (32 bytes) from its wire form `{person, sig_alg, sig_pub, enc_pub}`
 * (b64u keys, as the server lists devices). Never the server's own `fingerprint` field. */
export async function fingerprint(device) {
  sigParams(device.sig_alg);
  checkPublicKey(device.sig_alg, unb64u(device.sig_pub), unb64u(device.enc_pub));
  return sha256(canonicalBytes({
    enc: device.enc_pub, person: device.person, sig: device.sig_pub, sig_alg: device.sig_alg, t: "parley/device/v1",
  }));
}

/** The wire form of this browser's device from its DeviceKeys. */
export function deviceWire(person, keys, id = undefined) {
  const out = { person, sig_alg: keys.sigAlg, sig_pub: b64u(keys.sigPub), enc_pub: b64u(keys.encPub) };
  if (id !== undefined) out.id = id;
  return out;
}

/** "04211 93310 00712 58890": four groups of 5 bytes of the fingerprint, each mod 100000. */
export function safetyCode(fp) {
  const b = asBytes(fp);
  if (b.length < 20) throw new RangeError("a fingerprint is 32 bytes");
  const groups = [];
  for (let g = 0; g < 4; g++) {
    let n = 0n;
    for (let i = 0; i < 5; i++) n = (n << 8n) | BigInt(b[g * 5 + i]);
    groups.push((n % 100000n).toString().padStart(5, "0"));
  }
  return groups.join(" ");
}

// ---- signatures --------------------------------------------------------------------------

/** Raw signature (Ed25519: 64 bytes; ES256: r || s) over `bytes`. */
export async function sign(keys, bytes) {
  const params = keys.sigAlg === "ES256" ? ES256_SIGN : ED25519;
  return new Uint8Array(await subtle.sign(params, keys.sigPrivate, asBytes(bytes)));
}

/** True when `signature` is a valid raw signature by the raw public key `sigPub`. */
export async function verifySignature(sigAlg, sigPub, signature, bytes) {
  const pub = asBytes(sigPub);
  const sig = asBytes(signature);
  if (sig.length !== 64) return false; // Ed25519, and ES256's r || s
  let key;
  try {
    key = await subtle.importKey("raw", pub, sigParams(sigAlg), false, ["verify"]);
  } catch {
    return false;
  }
  const params = sigAlg === "ES256" ? ES256_SIGN : ED25519;
  return subtle.verify(params, key, sig, asBytes(bytes));
}

// ---- signed statements -------------------------------------------------------------------

/** `{body, signature}`: `body` the canonical JSON text of `value`, signed by `keys`. */
export async function signStatement(keys, value) {
  const body = canonicalJson(value);
  return { body, signature: b64u(await sign(keys, utf8(body))) };
}

/** The body of a statement of kind "verify" or "cross-sign" (signer and subject in wire form). */
export async function makeTrustStatement(kind, { by, byDevice, subject, subjectDevice }) {
  if (kind !== "verify" && kind !== "cross-sign") throw new RangeError(`unknown statement kind: ${kind}`);
  return {
    t: `parley/${kind}/v1`,
    by,
    by_fp: b64u(await fingerprint(byDevice)),
    subject,
    subject_fp: b64u(await fingerprint(subjectDevice)),
    subject_person: subjectDevice.person,
  };
}

/** Check a signed `{body, signature}` (canonical form, then the signature by `signer`,
 * a device in wire form) and return the parsed body. */
export async function verifyStatement(wire, signer, what = "A signed statement") {
  const body = parseCanonical(wire && wire.body, what);
  let signature;
  try {
    signature = unb64u(wire.signature);
  } catch {
    fail("signature", `${what} has no readable signature.`);
  }
  if (!(await verifySignature(signer.sig_alg, unb64u(signer.sig_pub), signature, utf8(wire.body)))) {
    fail("signature", `${what} does not carry a valid signature of device ${signer.id || "(unknown)"}.`);
  }
  return body;
}

// ---- content key, chunks, metadata, commitment ------------------------------------------

const LABEL_CHUNK = "parley/chunk/v1";
const LABEL_META = "parley/meta/v1";
const LABEL_COMMIT = "parley/commit/v1";
const ZERO = new Uint8Array([0]);

/** A fresh content key K (32 random bytes): one per version, never reused. */
export function newContentKey() {
  return randomBytes(32);
}

function checkK(K) {
  const k = asBytes(K);
  if (k.length !== 32) fail("key", "A content key is 32 bytes.");
  return k;
}

async function hkdfAesKey(K, label) {
  const ikm = await subtle.importKey("raw", checkK(K), "HKDF", false, ["deriveKey"]);
  return subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8(label) },
    ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"],
  );
}

/** `{chunk, meta}`: the AES-256-GCM subkeys of K (HKDF-SHA256, empty salt). */
export async function subkeys(K) {
  return { chunk: await hkdfAesKey(K, LABEL_CHUNK), meta: await hkdfAesKey(K, LABEL_META) };
}

export function chunkCount(size) {
  return Math.max(1, Math.ceil(size / CHUNK));
}

export function chunkNonce(index) {
  return concatBytes(new Uint8Array(4), u64be(index));
}

export function chunkAad(versionId, index, last) {
  return concatBytes(utf8(LABEL_CHUNK), ZERO, utf8(versionId), ZERO, u64be(index), new Uint8Array([last ? 1 : 0]));
}

/** Ciphertext of chunk `index` (`last` for chunk n - 1) under the chunk subkey. */
export async function encryptChunk(kChunk, versionId, index, last, plaintext) {
  const params = { name: "AES-GCM", iv: chunkNonce(index), additionalData: chunkAad(versionId, index, last) };
  return new Uint8Array(await subtle.encrypt(params, kChunk, asBytes(plaintext)));
}

export async function decryptChunk(kChunk, versionId, index, last, ciphertext) {
  const params = { name: "AES-GCM", iv: chunkNonce(index), additionalData: chunkAad(versionId, index, last) };
  try {
    return new Uint8Array(await subtle.decrypt(params, kChunk, asBytes(ciphertext)));
  } catch {
    return fail("chunk", `Part ${index + 1} of the document does not decrypt: it was altered, reordered or cut.`);
  }
}

/** Encrypt a File (or Blob) chunk by chunk, reading one chunk at a time with
 * `File.slice`. Yields `{index, ciphertext, hash}` (hash = SHA-256 of the ciphertext). */
export async function* encryptFile(file, K, versionId) {
  const { chunk: kChunk } = await subkeys(K);
  const n = chunkCount(file.size);
  for (let i = 0; i < n; i++) {
    const plain = new Uint8Array(await file.slice(i * CHUNK, Math.min(file.size, (i + 1) * CHUNK)).arrayBuffer());
    const ciphertext = await encryptChunk(kChunk, versionId, i, i === n - 1, plain);
    yield { index: i, ciphertext, hash: await sha256(ciphertext) };
  }
}

/** Total ciphertext bytes of a file of `size` plaintext bytes (the manifest's `size`). */
export function ciphertextSize(size) {
  return size + TAG * chunkCount(size);
}

/** Ciphertext length of chunk `index` in a manifest. */
export function chunkCiphertextLength(manifest, index) {
  if (index < manifest.chunks - 1) return manifest.chunk_size + TAG;
  return manifest.size - (manifest.chunks - 1) * (manifest.chunk_size + TAG);
}

/** Decrypt a version's ciphertext (`readable`: a ReadableStream of all chunks in order,
 * such as a fetch response's body) against its checked manifest. Each chunk's SHA-256
 * is compared with the manifest before it is decrypted; yields plaintext Uint8Arrays.
 * The document is whole only when the generator finishes without throwing: a reader
 * keeps nothing of what it yielded when it throws. */
export async function* decryptStream(readable, manifest, K) {
  await checkCommit(K, manifest);
  const { chunk: kChunk } = await subkeys(K);
  const reader = readable.getReader();
  let pending = [];
  let pendingBytes = 0;
  let done = false;
  const take = async (length) => {
    while (pendingBytes < length && !done) {
      const { value, done: end } = await reader.read();
      if (end) done = true;
      else if (value && value.length) {
        pending.push(asBytes(value));
        pendingBytes += value.length;
      }
    }
    if (pendingBytes < length) return null;
    const all = pending.length === 1 ? pending[0] : concatBytes(...pending);
    const out = all.slice(0, length);
    pending = all.length > length ? [all.subarray(length)] : [];
    pendingBytes = all.length - length;
    return out;
  };
  try {
    for (let i = 0; i < manifest.chunks; i++) {
      const ciphertext = await take(chunkCiphertextLength(manifest, i));
      if (ciphertext === null) {
        fail("truncated", `The document is cut short: part ${i + 1} of ${manifest.chunks} is missing.`);
      }
      if (!bytesEqual(await sha256(ciphertext), unb64u(manifest.chunk_hashes[i]))) {
        fail("chunk-hash", `Part ${i + 1} of the document is not the one its uploader signed.`);
      }
      yield await decryptChunk(kChunk, manifest.version, i, i === manifest.chunks - 1, ciphertext);
    }
    if ((await take(1)) !== null) fail("trailing", "The document has more data than its uploader signed.");
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    reader.releaseLock();
  }
}

/** The metadata record `{name, type, size, description}` sealed under K_meta. */
export async function sealMeta(K, versionId, meta) {
  const { meta: kMeta } = await subkeys(K);
  const record = { name: meta.name, type: meta.type, size: meta.size, description: meta.description || "" };
  const params = { name: "AES-GCM", iv: new Uint8Array(12), additionalData: metaAad(versionId) };
  return new Uint8Array(await subtle.encrypt(params, kMeta, utf8(JSON.stringify(record))));
}

function metaAad(versionId) {
  return concatBytes(utf8(LABEL_META), ZERO, utf8(versionId));
}

/** Open a metadata record; with a manifest, its hash is checked first. */
export async function openMeta(K, versionId, ciphertext, manifest = undefined) {
  const ct = asBytes(ciphertext);
  if (manifest) {
    if (!bytesEqual(await sha256(ct), unb64u(manifest.meta_hash))) {
      fail("meta-hash", "The document's name and description are not the ones its uploader signed.");
    }
  }
  const { meta: kMeta } = await subkeys(K);
  let plain;
  try {
    const params = { name: "AES-GCM", iv: new Uint8Array(12), additionalData: metaAad(versionId) };
    plain = await subtle.decrypt(params, kMeta, ct);
  } catch {
    fail("meta", "The document's name and description do not decrypt.");
  }
  let meta;
  try {
    meta = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(plain));
  } catch {
    fail("meta", "The document's metadata record is malformed.");
  }
  if (meta === null || typeof meta !== "object" || typeof meta.name !== "string" || !Number.isSafeInteger(meta.size)) {
    fail("meta", "The document's metadata record is malformed.");
  }
  return meta;
}

/** HMAC-SHA256(K, "parley/commit/v1" || 0x00 || version_id). */
export async function keyCommit(K, versionId) {
  const key = await subtle.importKey("raw", checkK(K), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await subtle.sign("HMAC", key, concatBytes(utf8(LABEL_COMMIT), ZERO, utf8(versionId))));
}

/** Throws unless K is the key the manifest commits to. */
export async function checkCommit(K, manifest) {
  if (!bytesEqual(await keyCommit(K, manifest.version), unb64u(manifest.commit))) {
    fail("commit", "The document key does not match the key its uploader committed to.");
  }
}

// ---- key wrapping (HPKE, RFC 9180) ------------------------------------------------------

let suite;

/** The HPKE suite of docs/evidence.md: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM. */
export function hpkeSuite() {
  if (!suite) {
    suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
  }
  return suite;
}

export function wrapInfo(visitId, versionId, deviceId) {
  return concatBytes(utf8("parley/wrap/v1"), ZERO, utf8(visitId), ZERO, utf8(versionId), ZERO, utf8(deviceId));
}

/** Wrap K for a recipient's raw X25519 public key: `enc (32) || ciphertext (48)`. */
export async function wrapKey(K, recipientEncPub, info) {
  const s = hpkeSuite();
  const pub = asBytes(recipientEncPub);
  if (pub.length !== 32) fail("device", "A device's encryption key must be 32 bytes.");
  const recipientPublicKey = await s.kem.deserializePublicKey(pub);
  const { enc, ct } = await s.seal({ recipientPublicKey, info: asBytes(info) }, checkK(K));
  return concatBytes(new Uint8Array(enc), new Uint8Array(ct));
}

/** `{device, wrapped}` (b64u) for `PUT /api/versions/{version}/keys`: K wrapped for a
 * wire-form device (with `id`) of the visit. */
export async function wrapForDevice(K, device, visitId, versionId) {
  const wrapped = await wrapKey(K, unb64u(device.enc_pub), wrapInfo(visitId, versionId, device.id));
  return { device: device.id, wrapped: b64u(wrapped) };
}

/** Unwrap K with this device's keys (`encPrivate` and `encPublic`); a wrong key, wrong
 * info (visit, version, device) or altered bytes throw. */
export async function unwrapKey(wrapped, keys, info) {
  const w = asBytes(wrapped);
  if (w.length !== 32 + 48) fail("unwrap", "A wrapped key is 80 bytes.");
  let K;
  try {
    K = await hpkeSuite().open(
      { recipientKey: { privateKey: keys.encPrivate, publicKey: keys.encPublic }, enc: w.slice(0, 32), info: asBytes(info) },
      w.slice(32),
    );
  } catch {
    fail("unwrap", "The document key does not open for this device (wrong device, visit or version, or altered).");
  }
  return new Uint8Array(K);
}

// ---- recovery ----------------------------------------------------------------------------

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const LABEL_RECOVERY = "parley/recovery/v1";
export const PBKDF2_ITERATIONS = 600000;

/** `{code, bytes}`: 20 random bytes and their 32 base32 characters, 8 groups of 4. */
export function newRecoveryCode() {
  const bytes = randomBytes(20);
  return { code: formatRecoveryCode(bytes), bytes };
}

export function formatRecoveryCode(bytes) {
  const b = asBytes(bytes);
  if (b.length !== 20) throw new RangeError("a recovery code is 20 bytes");
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out.match(/.{4}/g).join("-");
}

/** The 20 bytes of a recovery code as typed (case, spaces and dashes ignored). */
export function parseRecoveryCode(text) {
  const clean = String(text).toUpperCase().replace(/[\s-]/g, "");
  if (clean.length !== 32 || [...clean].some((c) => !BASE32.includes(c))) {
    fail("recovery-code", "A recovery code is 32 letters and digits (2 to 7), in groups of four.");
  }
  const out = new Uint8Array(20);
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const c of clean) {
    value = (value << 5) | BASE32.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out[at++] = (value >>> (bits - 8)) & 255;
      bits -= 8;
      value &= (1 << bits) - 1;
    }
  }
  return out;
}

async function recoveryKey(secret, kdf, salt, iterations) {
  if (kdf === "hkdf-sha256") {
    const ikm = await subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
    return subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt, info: utf8(LABEL_RECOVERY) },
      ikm, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"],
    );
  }
  if (kdf === "pbkdf2-sha256") {
    if (!Number.isSafeInteger(iterations) || iterations < PBKDF2_ITERATIONS) {
      fail("recovery", `A passphrase needs at least ${PBKDF2_ITERATIONS} PBKDF2 iterations.`);
    }
    const base = await subtle.importKey("raw", secret, "PBKDF2", false, ["deriveKey"]);
    return subtle.deriveKey(
      { name: "PBKDF2", hash: "SHA-256", salt, iterations },
      base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"],
    );
  }
  return fail("recovery", `Unknown key derivation: ${kdf}.`);
}

function recoverySecret(secret) {
  if (secret.code !== undefined) {
    const bytes = typeof secret.code === "string" ? parseRecoveryCode(secret.code) : asBytes(secret.code);
    if (bytes.length !== 20) fail("recovery-code", "A recovery code is 20 bytes.");
    return { kdf: "hkdf-sha256", bytes };
  }
  if (typeof secret.passphrase === "string" && secret.passphrase.length > 0) {
    return { kdf: "pbkdf2-sha256", bytes: utf8(secret.passphrase) };
  }
  return fail("recovery", "A recovery code or a passphrase is needed.");
}

function recoveryAad(personId) {
  return concatBytes(utf8(LABEL_RECOVERY), ZERO, utf8(personId));
}

/** Seal a device's private keys. `secret`: `{code}` (the code text or its 20 bytes) or
 * `{passphrase, iterations?}`. Returns the blob the server stores. */
export async function sealRecovery({ person, device, sigAlg, encPriv, sigPriv }, secret) {
  const { kdf, bytes } = recoverySecret(secret);
  const iterations = kdf === "pbkdf2-sha256" ? secret.iterations || PBKDF2_ITERATIONS : undefined;
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const key = await recoveryKey(bytes, kdf, salt, iterations);
  const plaintext = canonicalBytes({
    device, enc_priv: b64u(encPriv), person, sig_alg: sigAlg, sig_priv: b64u(sigPriv), t: "parley/recovery-keys/v1",
  });
  const ciphertext = new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: recoveryAad(person) }, key, plaintext),
  );
  const blob = { v: 1, kdf, salt: b64u(salt), nonce: b64u(nonce), ciphertext: b64u(ciphertext), device };
  if (iterations !== undefined) blob.iterations = iterations;
  return blob;
}

/** Open a recovery blob of `personId`'s device: `{device, person, sigAlg, encPriv, sigPriv}`
 * (PKCS#8 bytes; pass them to importDeviceKeys). */
export async function openRecovery(blob, personId, secret) {
  if (!blob || blob.v !== 1) fail("recovery", "This recovery record has an unknown format.");
  const given = recoverySecret(secret);
  if (given.kdf !== blob.kdf) {
    fail("recovery", blob.kdf === "hkdf-sha256" ? "This device was saved with a recovery code." : "This device was saved with a passphrase.");
  }
  const key = await recoveryKey(given.bytes, blob.kdf, unb64u(blob.salt), blob.iterations);
  let plain;
  try {
    plain = await subtle.decrypt(
      { name: "AES-GCM", iv: unb64uLength(blob.nonce, 12, "A nonce"), additionalData: recoveryAad(personId) },
      key, unb64u(blob.ciphertext),
    );
  } catch {
    fail("recovery", "The recovery code or passphrase is wrong, or the record was altered.");
  }
  const body = parseCanonical(new TextDecoder().decode(plain), "The recovered keys");
  if (body.t !== "parley/recovery-keys/v1" || body.person !== personId || body.device !== blob.device) {
    fail("recovery", "The recovered keys belong to another person or device.");
  }
  return {
    device: body.device, person: body.person, sigAlg: body.sig_alg,
    encPriv: unb64u(body.enc_priv), sigPriv: unb64u(body.sig_priv),
  };
}

// ---- manifest ----------------------------------------------------------------------------

function sortedRecipients(recipients) {
  const out = recipients.map((r) => ({ device: r.device, fp: r.fp, person: r.person }));
  out.sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
  return out;
}

/** The manifest of one version (docs/evidence.md "Manifest"). `chunkHashes` and
 * `metaCiphertext` are bytes; `uploader` and each recipient's `device` are wire-form
 * devices (with `id`), their fingerprints computed here. */
export async function buildManifest({ visit, document, version, chunkHashes, size, metaCiphertext, K, uploader, recipients }) {
  const wireRecipients = [];
  for (const d of recipients) wireRecipients.push({ device: d.id, fp: b64u(await fingerprint(d)), person: d.person });
  return {
    t: "parley/manifest/v1",
    visit, document, version,
    chunk_size: CHUNK,
    chunks: chunkHashes.length,
    size,
    chunk_hashes: chunkHashes.map((h) => b64u(h)),
    meta_hash: b64u(await sha256(metaCiphertext)),
    commit: b64u(await keyCommit(K, version)),
    uploader: uploader.id,
    uploader_fp: b64u(await fingerprint(uploader)),
    recipients: sortedRecipients(wireRecipients),
  };
}

/** `{manifest, signature}` as sent to `POST /api/versions/{version}/complete`. */
export async function signManifest(keys, manifest) {
  const { body, signature } = await signStatement(keys, manifest);
  return { manifest: body, signature };
}

const ID = /^[A-Za-z0-9_-]{16,64}$/;

function checkRecipientList(list, what) {
  if (!Array.isArray(list) || list.length === 0) fail("manifest", `${what} has no recipients.`);
  let previous = "";
  for (const r of list) {
    if (!r || !ID.test(r.device) || !ID.test(r.person) || typeof r.fp !== "string" || Object.keys(r).length !== 3) {
      fail("manifest", `${what} has a malformed recipient.`);
    }
    unb64uLength(r.fp, 32, "A fingerprint");
    if (r.device <= previous) fail("manifest", `${what} lists its recipients out of order or twice.`);
    previous = r.device;
  }
}

function checkManifestForm(m) {
  const bad = (why) => fail("manifest", `The document's manifest is malformed: ${why}.`);
  if (m.t !== "parley/manifest/v1") bad("unknown type");
  for (const k of ["visit", "document", "version", "uploader"]) if (!ID.test(m[k])) bad(`${k} is not an id`);
  if (m.chunk_size !== CHUNK) bad("unexpected chunk size");
  if (!Number.isSafeInteger(m.chunks) || m.chunks < 1) bad("no chunks");
  if (!Array.isArray(m.chunk_hashes) || m.chunk_hashes.length !== m.chunks) bad("chunk hashes do not match the chunk count");
  for (const h of m.chunk_hashes) unb64uLength(h, 32, "A chunk hash");
  const full = (m.chunks - 1) * (CHUNK + TAG);
  if (!Number.isSafeInteger(m.size) || m.size < full + TAG || m.size > full + CHUNK + TAG) bad("size does not match the chunk count");
  unb64uLength(m.meta_hash, 32, "The metadata hash");
  unb64uLength(m.commit, 32, "The key commitment");
  unb64uLength(m.uploader_fp, 32, "The uploader's fingerprint");
  checkRecipientList(m.recipients, "The manifest");
}

/** Check a share statement `{body, signature}` against an accepted manifest. */
async function checkShare(share, manifest, manifestHash, holders, deviceById) {
  let body;
  try {
    body = parseCanonical(share && share.body, "A share");
  } catch (e) {
    return fail("share", e.message);
  }
  if (body.t !== "parley/share/v1" || body.version !== manifest.version) fail("share", "A share is not for this document version.");
  if (body.manifest_hash !== b64u(manifestHash)) fail("share", "A share names another manifest.");
  const held = holders.get(body.by);
  if (!held || held !== body.by_fp) fail("share", "A share was made by a device that did not hold the document key.");
  const signer = deviceById(body.by);
  if (!signer || b64u(await fingerprint(signer)) !== body.by_fp) fail("share", "A share's signer has changed keys.");
  await verifyStatement(share, signer, "A share");
  checkRecipientList(body.recipients, "A share");
  return body;
}

/** Apply every check of docs/evidence.md "A reader checks" that can be made before the
 * content is fetched; throws an EvidenceError with a clear message on the first failure.
 *
 * - `wire`: `{manifest, signature}` (the version's `manifest` and `signature` fields).
 * - `me`: `{device, fp}`: this device's id and fingerprint (bytes or b64u).
 * - `deviceById(id)`: the wire-form device (`{id, person, sig_alg, sig_pub, enc_pub}`)
 *   the server lists for that id, or undefined (used for the uploader and share signers).
 * - `shares`: the version's share statements, in order.
 * - `expect`: `{visit, document, version}` that the manifest must name.
 * - `K`: the unwrapped content key; then the key commitment is checked.
 * - `metaCiphertext`: the sealed metadata record; then its hash is checked.
 * - `uploaderTrusted`: whether the caller's trust computation trusts or pins the
 *   uploader device; when false the result says `uploaderVerified: false` (the
 *   document shows "unverified uploader").
 *
 * Returns `{manifest, text, hash, uploaderVerified, via}`, `via` "recipient" or "share".
 * Each chunk's hash is then checked by decryptStream before it is decrypted. */
export async function checkManifest(wire, { me, deviceById, shares = [], expect = {}, K, metaCiphertext, uploaderTrusted = false }) {
  if (!wire || typeof wire.manifest !== "string") fail("manifest", "The document has no manifest.");
  const text = wire.manifest;
  const manifest = parseCanonical(text, "The document's manifest");
  // The signature first (an edited manifest says so), then the form of what it signed.
  const uploader = typeof manifest.uploader === "string" ? deviceById(manifest.uploader) : undefined;
  if (!uploader) fail("uploader", "The uploading device is unknown.");
  if (b64u(await fingerprint(uploader)) !== manifest.uploader_fp) {
    fail("uploader", "The uploading device's keys are not the ones the manifest names.");
  }
  await verifyStatement({ body: text, signature: wire.signature }, uploader, "The document's manifest");
  checkManifestForm(manifest);
  for (const k of ["visit", "document", "version"]) {
    if (expect[k] !== undefined && manifest[k] !== expect[k]) fail("manifest", `The manifest is for another ${k}.`);
  }
  const self = manifest.recipients.find((r) => r.device === manifest.uploader);
  if (!self || self.fp !== manifest.uploader_fp || self.person !== uploader.person) {
    fail("manifest", "The uploading device is not among the document's recipients.");
  }
  const myFp = typeof me.fp === "string" ? me.fp : b64u(me.fp);
  const hash = await sha256(utf8(text));
  const holders = new Map(manifest.recipients.map((r) => [r.device, r.fp]));
  let via = holders.get(me.device) === myFp ? "recipient" : null;
  if (holders.has(me.device) && !via) fail("recipient", "This device is listed as a recipient with other keys.");
  // A share that does not check is ignored; if this device is left without access,
  // the first such share's reason is the error shown.
  let shareError = null;
  for (const share of shares) {
    let body;
    try {
      body = await checkShare(share, manifest, hash, holders, deviceById);
      if (body.recipients.some((r) => r.device === me.device && r.fp !== myFp)) {
        fail("recipient", "A share names this device with other keys.");
      }
    } catch (e) {
      if (!(e instanceof EvidenceError)) throw e;
      shareError = shareError || e;
      continue;
    }
    for (const r of body.recipients) {
      if (!holders.has(r.device)) holders.set(r.device, r.fp);
      if (r.device === me.device && !via) via = "share";
    }
  }
  if (!via) throw shareError || new EvidenceError("recipient", "This device is not among the document's recipients.");
  if (K !== undefined) await checkCommit(K, manifest);
  if (metaCiphertext !== undefined && !bytesEqual(await sha256(metaCiphertext), unb64u(manifest.meta_hash))) {
    fail("meta-hash", "The document's name and description are not the ones its uploader signed.");
  }
  return { manifest, text, hash, uploaderVerified: Boolean(uploaderTrusted), via };
}

/** The body of a share statement for late recipients (wire-form devices with `id`). */
export async function makeShare({ manifestText, version, by, recipients }) {
  const list = [];
  for (const d of recipients) list.push({ device: d.id, fp: b64u(await fingerprint(d)), person: d.person });
  return {
    t: "parley/share/v1",
    version,
    manifest_hash: b64u(await sha256(utf8(manifestText))),
    by: by.id,
    by_fp: b64u(await fingerprint(by)),
    recipients: sortedRecipients(list),
  };
}
