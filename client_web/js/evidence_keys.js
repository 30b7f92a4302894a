// This browser's evidence keys and what it trusts, kept in IndexedDB.
//
// - "devices": one record per person signed in on this browser profile: the device id
//   the server gave, the signature algorithm, the raw public keys and the private
//   CryptoKeys themselves, non-extractable (IndexedDB stores CryptoKeys as they are;
//   no script can export them again).
// - "pins": per person using this browser, every other device seen, with the
//   fingerprint first seen (trust on first use), whether it was ever verified, and a
//   warning that stays until the device is verified again.
//
// Trust is computed here from the server's key listing and signed statements, never
// taken from a server flag (docs/evidence.md "Trust, as each client computes it").

import { b64u, EvidenceError, fingerprint, safetyCode, unb64u, verifyStatement } from "./evidence_crypto.js";

export const DB_NAME = "parley-evidence";
const DB_VERSION = 1;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("IndexedDB transaction aborted"));
  });
}

/** Open (creating on first use) the evidence database. */
export function openKeyStore(name = DB_NAME) {
  const req = indexedDB.open(name, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains("devices")) db.createObjectStore("devices", { keyPath: "person" });
    if (!db.objectStoreNames.contains("pins")) {
      db.createObjectStore("pins", { keyPath: ["owner", "device"] }).createIndex("owner", "owner");
    }
  };
  return request(req);
}

/** Keep `person`'s device on this browser: `device` is the server's id for it, `keys`
 * the DeviceKeys of evidence_crypto.js (private keys non-extractable). */
export async function saveDevice(db, { person, device, keys }) {
  for (const k of [keys.encPrivate, keys.sigPrivate]) {
    if (k.extractable) throw new EvidenceError("device", "Private keys are stored only non-extractable.");
  }
  const record = {
    person, device, sig_alg: keys.sigAlg, sig_pub: b64u(keys.sigPub), enc_pub: b64u(keys.encPub),
    enc_private: keys.encPrivate, enc_public: keys.encPublic, sig_private: keys.sigPrivate, sig_public: keys.sigPublic,
    saved_at: new Date().toISOString(),
  };
  const tx = db.transaction("devices", "readwrite");
  tx.objectStore("devices").put(record);
  await done(tx);
}

/** `person`'s device on this browser: `{person, device, fp, wire, keys}` or undefined. */
export async function loadDevice(db, person) {
  const r = await request(db.transaction("devices").objectStore("devices").get(person));
  if (!r) return undefined;
  const wire = { id: r.device, person: r.person, sig_alg: r.sig_alg, sig_pub: r.sig_pub, enc_pub: r.enc_pub };
  const keys = {
    sigAlg: r.sig_alg, encPrivate: r.enc_private, encPublic: r.enc_public, sigPrivate: r.sig_private,
    sigPublic: r.sig_public, encPub: unb64u(r.enc_pub), sigPub: unb64u(r.sig_pub),
  };
  return { person: r.person, device: r.device, fp: await fingerprint(wire), wire, keys };
}

export async function forgetDevice(db, person) {
  const tx = db.transaction("devices", "readwrite");
  tx.objectStore("devices").delete(person);
  await done(tx);
}

/** The pins of `owner` (a person using this browser): Map device id -> pin record
 * `{owner, device, person, fp, first_seen, verified, warning}`. */
export async function loadPins(db, owner) {
  const rows = await request(db.transaction("pins").objectStore("pins").index("owner").getAll(owner));
  return new Map(rows.map((r) => [r.device, r]));
}

export async function savePins(db, owner, pins) {
  const tx = db.transaction("pins", "readwrite");
  const store = tx.objectStore("pins");
  for (const pin of pins.values()) store.put({ ...pin, owner });
  await done(tx);
}

// ---- trust -------------------------------------------------------------------------------

export const WARNINGS = {
  changed: "This device's keys have changed since you first saw it. Compare its safety code before sharing with it.",
  replaced: "A verified device of this person has gone and this new device was not vouched for by it. Compare its safety code before sharing with it.",
};

async function validStatements(statements, byId) {
  const out = [];
  for (const s of statements || []) {
    const signer = byId.get(s.signer);
    if (!signer || signer.revoked) continue;
    let body;
    try {
      body = await verifyStatement(s, signer.device, "A statement");
    } catch (e) {
      if (e instanceof EvidenceError) continue;
      throw e;
    }
    const subject = byId.get(body.subject);
    if (
      (s.kind !== "verify" && s.kind !== "cross-sign") || body.t !== `parley/${s.kind}/v1` ||
      body.by !== signer.id || body.by_fp !== signer.fp || !subject || subject.revoked ||
      body.subject_fp !== subject.fp || body.subject_person !== subject.person ||
      (s.kind === "cross-sign" && signer.person !== subject.person)
    ) {
      continue;
    }
    out.push({ kind: s.kind, signer, subject });
  }
  return out;
}

/** Trust for every device the server lists (docs/evidence.md "Trust, as each client
 * computes it"). Pure: returns the new pins rather than storing them.
 *
 * - `me`: this person's id; `own`: `[{device, fp}]` this browser's own devices (fp bytes
 *   or b64u): trusted when the server lists them with the same keys.
 * - `people`, `statements`: the answer of `GET /api/visits/{visit}/keys`.
 * - `pins`: loadPins's Map; `now`: an ISO time for new pins.
 *
 * A verify statement makes its subject verified when signed by one of this person's
 * own or verified devices (no web of trust through other people); a cross-sign makes
 * its subject verified when signed by a verified device of the same person. A device
 * verified once stays verified while its fingerprint is the same (kept in its pin).
 *
 * Returns `{devices: Map id -> entry, pins: Map}`, each entry
 * `{id, person, device, fp, safetyCode, own, verified, pinned, revoked, warning, shareable}`,
 * `warning` null or a key of WARNINGS. */
export async function computeTrust({ me, own = [], people, statements, pins = new Map(), now = new Date().toISOString() }) {
  const byId = new Map();
  for (const p of people || []) {
    for (const d of p.devices || []) {
      const device = { ...d, person: d.person || p.person };
      let fp;
      try {
        fp = b64u(await fingerprint(device));
      } catch (e) {
        if (e instanceof EvidenceError) continue; // malformed keys: never shareable
        throw e;
      }
      byId.set(d.id, { id: d.id, person: device.person, device, fp, revoked: Boolean(d.revoked_at) });
    }
  }
  const ownFp = new Map(own.map((o) => [o.device, typeof o.fp === "string" ? o.fp : b64u(o.fp)]));
  const isOwn = (d) => !d.revoked && ownFp.get(d.id) === d.fp;

  const valid = await validStatements(statements, byId);
  // Own devices, and those this person verified before with the same keys (a
  // verification is remembered even if the server stops listing its statement).
  const remembered = (d) => !d.revoked && pins.get(d.id)?.verified === true && pins.get(d.id).fp === d.fp;
  const verified = new Set([...byId.values()].filter((d) => isOwn(d) || remembered(d)).map((d) => d.id));
  for (let grew = true; grew;) {
    grew = false;
    for (const { kind, signer, subject } of valid) {
      if (verified.has(subject.id) || !verified.has(signer.id)) continue;
      if (kind === "verify" && signer.person !== me) continue;
      verified.add(subject.id);
      grew = true;
    }
  }

  const listed = new Set([...byId.values()].filter((d) => !d.revoked).map((d) => d.id));
  const lostVerified = new Set();
  for (const pin of pins.values()) {
    if (pin.verified && !listed.has(pin.device)) lostVerified.add(pin.person);
  }

  const out = new Map();
  const newPins = new Map(pins);
  for (const d of byId.values()) {
    const entry = {
      id: d.id, person: d.person, device: d.device, fp: d.fp, safetyCode: safetyCode(unb64u(d.fp)),
      own: isOwn(d), verified: false, pinned: false, revoked: d.revoked, warning: null, shareable: false,
    };
    out.set(d.id, entry);
    if (d.revoked) continue;
    const pin = pins.get(d.id);
    entry.verified = !entry.own && verified.has(d.id);
    if (entry.own || entry.verified) {
      newPins.set(d.id, { device: d.id, person: d.person, fp: d.fp, first_seen: pin ? pin.first_seen : now, verified: true, warning: null });
    } else if (!pin) {
      const warning = lostVerified.has(d.person) ? "replaced" : null;
      newPins.set(d.id, { device: d.id, person: d.person, fp: d.fp, first_seen: now, verified: false, warning });
      entry.pinned = warning === null;
      entry.warning = warning;
    } else if (pin.fp !== d.fp) {
      entry.warning = "changed";
    } else {
      entry.pinned = !pin.warning;
      entry.warning = pin.warning || null;
    }
    if (ownFp.has(d.id) && !entry.own) entry.warning = "changed"; // the server lists this browser's device with other keys
    entry.shareable = !entry.warning && (entry.own || entry.verified || entry.pinned);
  }
  return { devices: out, pins: newPins };
}

/** Compute trust for `me` from a keys listing, with this browser's device and pins, and
 * store the new pins. Returns computeTrust's `devices` Map. */
export async function evaluateTrust(db, me, listing) {
  const mine = await loadDevice(db, me);
  const pins = await loadPins(db, me);
  const { devices, pins: newPins } = await computeTrust({
    me, own: mine ? [{ device: mine.device, fp: mine.fp }] : [], people: listing.people, statements: listing.statements, pins,
  });
  await savePins(db, me, newPins);
  return devices;
}

/** The devices new shares may go to: verified or pinned, not in warning, not revoked. */
export function shareableDevices(devices) {
  return [...devices.values()].filter((e) => e.shareable);
}
