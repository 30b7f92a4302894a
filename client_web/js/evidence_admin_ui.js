// The secretariat's evidence actions: share pending documents with entitled devices
// that have no key yet, grant a document to an interpreter, observer or stakeholder,
// and re-key a document (decrypt here, encrypt again as a new version with a new key
// for its current recipients; the server then deletes the old ciphertext and keys).
// Revoking a device is in the people list (evidence_people_ui.js).

import * as ev from "./evidence_crypto.js";
import { announce, api, el, guarded, page, RECEIVING_ROLES, roleWord, t, VISIT } from "./evidence_common.js";
import { decryptToPrivateFile, refreshDocuments, setDocumentActions } from "./evidence_documents_ui.js";
import { deviceById, room } from "./evidence_state.js";
import { uploadFile } from "./evidence_uploads.js";

const section = () => document.getElementById("ev-admin");

/** Wrap `item`'s key for `devices` (trust entries), sign the share, send it. */
async function shareTo(item, entries) {
  const mine = room.mine;
  const devices = entries.map((e) => deviceById(e.id));
  const body = await ev.makeShare({ manifestText: item.text, version: item.doc.version.id, by: mine.wire, recipients: devices });
  const signed = await ev.signStatement(mine.keys, body);
  const keys = [];
  for (const d of devices) keys.push(await ev.wrapForDevice(item.K, d, VISIT, item.doc.version.id));
  await api("POST", `/api/versions/${item.doc.version.id}/shares`, { body: signed.body, signature: signed.signature, keys });
}

async function sharePending(button) {
  await guarded(button, async () => {
    if (!room.mine) throw new Error(t("need_device"));
    const { pending } = await api("GET", `/api/visits/${VISIT}/pending`);
    const devices = new Set();
    let documents = 0;
    const skipped = new Map(); // person id -> "changed" (a key changed) or "unverified"
    for (const p of pending) {
      const item = room.documents.find((d) => d.doc.version.id === p.version);
      if (!item || !item.ok) continue;
      const entries = [];
      for (const r of p.recipients) {
        const entry = room.trust.get(r.device);
        if (entry && entry.shareable && entry.fp === r.fp) {
          entries.push(entry);
        } else if (skipped.get(r.person) !== "changed") {
          skipped.set(r.person, !entry || entry.warning || entry.fp !== r.fp ? "changed" : "unverified");
        }
      }
      if (!entries.length) continue;
      await shareTo(item, entries);
      for (const e of entries) devices.add(e.id);
      documents += 1;
    }
    await refreshDocuments();
    const node = document.getElementById("ev-admin-result");
    const shared = t("shared_n", { docs: documents, n: devices.size });
    // Name whoever was left out, and why: never a silent gap.
    const names = [...skipped].map(([person, why]) => {
      const name = (room.people.get(person) || {}).name || t("activity_someone");
      return t(why === "changed" ? "skipped_changed" : "skipped_unverified", { name });
    });
    node.textContent = names.length ? `${shared} ${t("shared_skipped", { names: names.join(", ") })}` : shared;
    announce(node.textContent);
  });
}

function grantControl(item) {
  const candidates = room.listing.people.filter((p) => !RECEIVING_ROLES.has(p.role));
  const select = el("select", { class: "ev-grant-to", "aria-label": t("grant_to") },
    el("option", { value: "", text: t("grant_to") }),
    candidates.map((p) => el("option", { value: p.person, text: `${p.name} (${roleWord(p.role)})` })));
  const button = el("button", { type: "button", class: "ev-grant", text: t("grant") });
  button.addEventListener("click", () => guarded(button, async () => {
    const person = select.value;
    if (!person) throw new Error(t("grant_choose"));
    const held = new Set((item.doc.version.shares || []).flatMap((s) => JSON.parse(s.body).recipients.map((r) => r.device)));
    for (const r of item.manifest.recipients) held.add(r.device);
    const entries = [...room.trust.values()].filter((e) => e.person === person && !e.revoked && !held.has(e.id));
    const ready = entries.filter((e) => e.shareable);
    if (!ready.length) throw new Error(entries.length ? t("grant_unverified") : t("grant_no_device"));
    await shareTo(item, ready);
    announce(t("granted"));
    await refreshDocuments();
  }));
  return el("span", { class: "ev-grant-box" }, select, button);
}

async function rekey(item, button) {
  if (!window.confirm(t("rekey_confirm"))) return;
  await guarded(button, async () => {
    const holders = new Set(item.manifest.recipients.map((r) => r.device));
    for (const s of item.doc.version.shares || []) for (const r of JSON.parse(s.body).recipients) holders.add(r.device);
    const live = [...holders].map((id) => room.trust.get(id)).filter((e) => e && !e.revoked);
    const recipients = live.filter((e) => e.shareable).map((e) => deviceById(e.id));
    const left = live.filter((e) => !e.shareable).length; // a key change to verify first
    const { file, remove } = await decryptToPrivateFile(item);
    try {
      await uploadFile({
        file, name: item.meta.name, description: item.meta.description, mine: room.mine, recipients,
        placement: { document: item.doc.id, rekey: true },
      });
    } finally {
      await remove();
    }
    announce(left ? t("rekeyed_skipped", { name: item.meta.name, n: left }) : t("rekeyed", { name: item.meta.name }));
    await refreshDocuments();
  });
}

export function install() {
  if (!page.may.manage) return;
  setDocumentActions((item) => {
    const b = el("button", { type: "button", class: "ev-rekey", text: t("rekey") });
    b.addEventListener("click", () => rekey(item, b));
    return [grantControl(item), b];
  });
}

export function render() {
  const node = section();
  if (!page.may.manage) {
    node.hidden = true;
    return;
  }
  node.hidden = false;
  const share = el("button", { type: "button", id: "ev-share-pending", text: t("share_pending") });
  share.disabled = !room.mine;
  share.addEventListener("click", () => sharePending(share));
  node.querySelector(".ev-body").replaceChildren(
    el("p", { class: "muted", text: t("share_pending_explain") }), share,
    el("p", { id: "ev-admin-result", role: "status" }));
}
