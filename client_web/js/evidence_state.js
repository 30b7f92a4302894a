// The evidence room's state in this tab: this browser's device (evidence_keys.js), the
// visit's keys listing with the trust this browser computes from it, and listeners
// that redraw the sections when any of it changes.

import * as ek from "./evidence_keys.js";
import { api, ME, VISIT } from "./evidence_common.js";

export const room = {
  db: null,
  mine: null, // loadDevice's {person, device, fp, wire, keys}, or null
  listing: { people: [], statements: [] },
  trust: new Map(), // device id -> computeTrust entry
  people: new Map(), // person id -> {person, name, role, delegation, devices}
  documents: [], // the checked documents (evidence_documents_ui.js)
  revokedNotice: null,
};

const listeners = new Set();

export function onChange(fn) {
  listeners.add(fn);
}

export function changed(what) {
  for (const fn of listeners) fn(what);
}

export async function loadMine() {
  room.mine = (await ek.loadDevice(room.db, ME.person)) || null;
  return room.mine;
}

/** Re-read the visit's keys and recompute trust (pins are stored as a side effect). */
export async function refreshKeys() {
  const listing = await api("GET", `/api/visits/${VISIT}/keys`);
  room.listing = listing;
  room.people = new Map(listing.people.map((p) => [p.person, p]));
  // This browser's device revoked (or gone) on the server: forget it here.
  if (room.mine) {
    const me = room.people.get(ME.person);
    const listed = me && me.devices.find((d) => d.id === room.mine.device);
    if (!listed || listed.revoked_at) {
      await forgetMine("revoked");
    }
  }
  room.trust = await ek.evaluateTrust(room.db, ME.person, listing);
  changed("keys");
}

export async function forgetMine(reason) {
  await ek.forgetDevice(room.db, ME.person);
  room.mine = null;
  room.revokedNotice = reason;
  changed("device");
}

/** The wire-form device the server lists for `id` ({id, person, sig_alg, sig_pub, enc_pub}). */
export function deviceById(id) {
  const entry = room.trust.get(id);
  if (!entry) return undefined;
  const d = entry.device;
  return { id: d.id, person: d.person, sig_alg: d.sig_alg, sig_pub: d.sig_pub, enc_pub: d.enc_pub };
}

export function personOf(personId) {
  return room.people.get(personId);
}

/** The trust entries of one person's devices, newest listing order. */
export function devicesOf(personId) {
  return [...room.trust.values()].filter((e) => e.person === personId);
}
