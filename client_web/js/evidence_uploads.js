// Uploading one file as a document version, resumable; and the IndexedDB records that
// make it so. No DOM: progress goes to the caller's `onProgress(sentBytes, totalBytes)`.
//
// Per (person, visit, file name, size, lastModified) this browser keeps the version id
// it was sending and the content key wrapped for its own device (the same bytes the
// server holds for it). Dropping the same file again after a cut or a reload asks the
// server what it already has, re-encrypts with the same key and compares each chunk's
// hash: equal, only the missing chunks are sent; different, the file changed and it
// starts over with a new version and a new key (one key and nonce never encrypt two
// different plaintexts that both leave the browser).

import * as ev from "./evidence_crypto.js";
import { api, ApiError, VISIT } from "./evidence_common.js";

const DB = "parley-evidence-uploads";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

let dbPromise = null;
function open() {
  if (!dbPromise) {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore("uploads", { keyPath: "key" });
    dbPromise = request(req);
  }
  return dbPromise;
}

async function store(mode, fn) {
  const db = await open();
  const tx = db.transaction("uploads", mode);
  const result = await request(fn(tx.objectStore("uploads")));
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  return result;
}

export function fileKey(person, file) {
  return [person, VISIT, file.name, file.size, file.lastModified].join("\u0000");
}

export const getRecord = (key) => store("readonly", (s) => s.get(key));
export const putRecord = (record) => store("readwrite", (s) => s.put(record));
export const deleteRecord = (key) => store("readwrite", (s) => s.delete(key));

/** The unfinished uploads of `person` in this visit. */
export async function unfinished(person) {
  const all = await store("readonly", (s) => s.getAll());
  return all.filter((r) => r.person === person && r.visit === VISIT);
}

class StartOver extends Error {}

/** Upload `file` (a File or Blob with `name`, `type`, `size`) and return
 * `{document, version, resumed, sent}` (`sent`: chunk PUTs made).
 *
 * - `mine`: this browser's device (evidence_keys loadDevice).
 * - `recipients`: wire-form devices (with `id`) to wrap the key for, besides `mine`.
 * - `placement`: `{session, item, articles}` for a new document; `{document, rekey}` for
 *   a new version of one.
 * - `recordKey`: fileKey() to keep the upload resumable (none for a re-key).
 * - `deviceById(id)`: wire-form devices, for those keyed before a cut. */
export async function uploadFile({ file, name, description, mine, recipients, placement, recordKey, onProgress, deviceById }) {
  const meta = { name: name || file.name, type: file.type || "application/octet-stream", size: file.size, description };
  if (recordKey) {
    const record = await getRecord(recordKey);
    if (record) {
      try {
        return await resume({ file, meta, record, mine, recipients, onProgress, deviceById });
      } catch (e) {
        if (!(e instanceof StartOver)) throw e;
        await deleteRecord(recordKey);
      }
    }
  }
  return fresh({ file, meta, mine, recipients, placement, recordKey, onProgress });
}

function recipientsWith(mine, recipients) {
  const byId = new Map([[mine.device, mine.wire]]);
  for (const d of recipients) if (!byId.has(d.id)) byId.set(d.id, d);
  return byId;
}

async function fresh({ file, meta, mine, recipients, placement, recordKey, onProgress }) {
  const K = ev.newContentKey();
  const n = ev.chunkCount(file.size);
  const size = ev.ciphertextSize(file.size);
  const body = { chunks: n, size };
  if (placement.document) {
    body.document = placement.document;
    if (placement.rekey) body.rekey = true;
  } else {
    if (placement.session) body.session = placement.session;
    if (placement.item) body.item = placement.item;
    body.articles = placement.articles || [];
  }
  const created = await api("POST", `/api/visits/${VISIT}/documents`, body);
  const { document, version } = created;
  // The uploader's own key first: a resumed upload unwraps it again.
  const own = await ev.wrapForDevice(K, mine.wire, VISIT, version);
  await api("PUT", `/api/versions/${version}/keys`, { keys: [own] });
  if (recordKey) {
    await putRecord({
      key: recordKey, person: mine.person, visit: VISIT, document, version, device: mine.device, wrapped: own.wrapped,
      name: meta.name, description: meta.description, size: file.size, chunks: n, started_at: new Date().toISOString(),
    });
  }
  const all = recipientsWith(mine, recipients);
  const others = [];
  for (const d of all.values()) if (d.id !== mine.device) others.push(await ev.wrapForDevice(K, d, VISIT, version));
  if (others.length) await api("PUT", `/api/versions/${version}/keys`, { keys: others });
  const hashes = [];
  let sent = 0;
  let done = 0;
  for await (const chunk of ev.encryptFile(file, K, version)) {
    await putChunk(version, chunk);
    sent += 1;
    hashes[chunk.index] = chunk.hash;
    done += chunk.ciphertext.length;
    if (onProgress) onProgress(done, size);
  }
  await finish({ K, meta, mine, devices: [...all.values()], document, version, hashes, size });
  if (recordKey) await deleteRecord(recordKey);
  return { document, version, resumed: false, sent };
}

async function putChunk(version, chunk) {
  const answer = await api("PUT", `/api/versions/${version}/chunks/${chunk.index}`, chunk.ciphertext);
  if (answer.sha256 !== ev.b64u(chunk.hash)) throw new ev.EvidenceError("upload", "The server stored other bytes than were sent.");
}

async function resume({ file, meta, record, mine, recipients, onProgress, deviceById }) {
  if (record.device !== mine.device) throw new StartOver();
  let state;
  try {
    state = await api("GET", `/api/versions/${record.version}/upload`);
  } catch (e) {
    if (e instanceof ApiError && e.status >= 400 && e.status < 500) throw new StartOver();
    throw e;
  }
  if (state.complete) {
    await deleteRecord(record.key);
    return { document: record.document, version: record.version, resumed: true, sent: 0, already: true };
  }
  const n = ev.chunkCount(file.size);
  const size = ev.ciphertextSize(file.size);
  if ((state.chunks_total !== undefined && state.chunks_total !== n) || (state.size !== undefined && state.size !== size)) {
    throw new StartOver();
  }
  // The key the server holds for this device (when it says), else the same bytes kept here.
  const serverKey = (state.keys || []).find((k) => k && typeof k === "object" && k.device === mine.device);
  const wrapped = serverKey ? serverKey.wrapped : record.wrapped;
  let K;
  try {
    K = await ev.unwrapKey(ev.unb64u(wrapped), mine.keys, ev.wrapInfo(VISIT, record.version, mine.device));
  } catch {
    throw new StartOver();
  }
  const keyed = new Set((state.keys || []).map((k) => (typeof k === "string" ? k : k.device)));
  const all = recipientsWith(mine, recipients);
  const missingKeys = [];
  for (const d of all.values()) if (!keyed.has(d.id)) missingKeys.push(await ev.wrapForDevice(K, d, VISIT, record.version));
  // Devices keyed before (and still listed) stay recipients: the manifest names every key.
  for (const id of keyed) {
    if (!all.has(id) && deviceById) {
      const d = deviceById(id);
      if (d) all.set(id, d);
    }
  }
  const hashes = [];
  let sent = 0;
  let done = 0;
  // Compare every chunk already stored before anything new leaves the browser.
  const pending = [];
  for await (const chunk of ev.encryptFile(file, K, record.version)) {
    const stored = state.chunks[String(chunk.index)];
    hashes[chunk.index] = chunk.hash;
    if (stored !== undefined) {
      if (stored !== ev.b64u(chunk.hash)) throw new StartOver();
      done += chunk.ciphertext.length;
      if (onProgress) onProgress(done, size);
    } else {
      pending.push(chunk.index);
    }
  }
  if (missingKeys.length) await api("PUT", `/api/versions/${record.version}/keys`, { keys: missingKeys });
  if (pending.length) {
    const wanted = new Set(pending);
    for await (const chunk of ev.encryptFile(file, K, record.version)) {
      if (!wanted.has(chunk.index)) continue;
      await putChunk(record.version, chunk);
      sent += 1;
      done += chunk.ciphertext.length;
      if (onProgress) onProgress(done, size);
    }
  }
  await finish({
    K, meta: { ...meta, description: record.description ?? meta.description }, mine, devices: [...all.values()],
    document: record.document, version: record.version, hashes, size,
  });
  await deleteRecord(record.key);
  return { document: record.document, version: record.version, resumed: true, sent };
}

async function finish({ K, meta, mine, devices, document, version, hashes, size }) {
  const metaCiphertext = await ev.sealMeta(K, version, meta);
  const manifest = await ev.buildManifest({
    visit: VISIT, document, version, chunkHashes: hashes, size, metaCiphertext, K, uploader: mine.wire, recipients: devices,
  });
  const signed = await ev.signManifest(mine.keys, manifest);
  await api("POST", `/api/versions/${version}/complete`, { ...signed, meta: ev.b64u(metaCiphertext) });
}
