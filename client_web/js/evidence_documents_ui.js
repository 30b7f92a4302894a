// "Documents": the visit's documents this person may see, by session and agenda item,
// each checked here before anything is shown (the key unwrapped for this device, the
// signed manifest, the key commitment, the sealed name), then downloaded decrypting as
// it streams into the origin private file system and saved from there, or viewed
// inline (images; PDFs with pdf.js). Any failure saves nothing and says why.

import * as ev from "./evidence_crypto.js";
import { announce, api, clearError, el, formatSize, formatTime, guarded, ME, page, progressBar, responseError, setProgress, t, VISIT } from "./evidence_common.js";
import { deviceById, room } from "./evidence_state.js";
import { newVersionControls } from "./evidence_versions_ui.js";

const section = () => document.getElementById("ev-documents");
const TEMP_PREFIX = "parley-dl-";
const KEEP_SAVED_MS = 60_000; // the browser copies the saved file within this time

/** Check one version of a listed document (the current one unless `v` names another)
 * for this device: `{doc, version, ok, K?, manifest?, text?, meta?, problem?}`. */
export async function check(doc, v = doc.version) {
  const out = { doc, version: v, ok: false };
  const mine = room.mine;
  if (!mine) return { ...out, problem: t("need_device_read") };
  const key = (v.keys || []).find((k) => k.device === mine.device);
  if (!key) return { ...out, problem: t("no_key") };
  try {
    const K = await ev.unwrapKey(ev.unb64u(key.wrapped), mine.keys, ev.wrapInfo(VISIT, v.id, mine.device));
    const uploaderEntry = room.trust.get(JSON.parse(v.manifest).uploader);
    const trusted = Boolean(uploaderEntry && uploaderEntry.shareable);
    const metaCiphertext = ev.unb64u(v.meta);
    const checked = await ev.checkManifest({ manifest: v.manifest, signature: v.signature }, {
      me: { device: mine.device, fp: mine.fp }, deviceById, shares: v.shares || [],
      expect: { visit: VISIT, document: doc.id, version: v.id }, K, metaCiphertext, uploaderTrusted: trusted,
    });
    const meta = await ev.openMeta(K, v.id, metaCiphertext, checked.manifest);
    if (!checked.uploaderVerified) {
      return { ...out, K, manifest: checked.manifest, text: checked.text, meta, problem: t("unverified_uploader") };
    }
    return { ...out, ok: true, K, manifest: checked.manifest, text: checked.text, meta };
  } catch (e) {
    return { ...out, problem: e instanceof ev.EvidenceError ? e.message : t("check_failed", { message: e.message }) };
  }
}

export async function refreshDocuments() {
  const { documents } = await api("GET", `/api/visits/${VISIT}/documents`);
  const checked = [];
  for (const doc of documents) checked.push(await check(doc));
  room.documents = checked;
  render();
}

async function tempDir() {
  return navigator.storage.getDirectory();
}

/** Remove decrypted copies left behind by an earlier page (a crash, a closed tab). */
export async function sweepTemp() {
  try {
    const root = await tempDir();
    for await (const [name] of root.entries()) {
      if (name.startsWith(TEMP_PREFIX)) await root.removeEntry(name).catch(() => {});
    }
  } catch {
    // no private file system here: downloads will say so
  }
}

/** Decrypt a checked document into a new private file; returns `{file, remove}`.
 * On any failure the partial file is deleted and the error thrown. */
export async function decryptToPrivateFile(item, onProgress) {
  const root = await tempDir();
  const version = item.version || item.doc.version;
  const name = `${TEMP_PREFIX}${version.id}-${ev.b64u(ev.randomBytes(6))}`;
  const handle = await root.getFileHandle(name, { create: true });
  const remove = () => root.removeEntry(name).catch(() => {});
  let writable;
  try {
    writable = await handle.createWritable();
    const response = await fetch(`/api/versions/${version.id}/content`, { credentials: "same-origin" });
    if (!response.ok) throw await responseError(response);
    let done = 0;
    for await (const plain of ev.decryptStream(response.body, item.manifest, item.K)) {
      await writable.write(plain);
      done += plain.length;
      if (onProgress) onProgress(done, item.meta.size);
    }
    await writable.close();
    writable = null;
    const file = await handle.getFile();
    if (file.size !== item.meta.size) throw new ev.EvidenceError("size", t("size_mismatch"));
    return { file, remove };
  } catch (e) {
    if (writable) await writable.abort().catch(() => {});
    await remove();
    throw e;
  }
}

function saveFile(file, name, remove) {
  const url = URL.createObjectURL(file);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  window.setTimeout(() => {
    URL.revokeObjectURL(url);
    remove();
  }, KEEP_SAVED_MS);
}

async function download(item, button, progress) {
  return guarded(button, async () => {
    if (!item.ok) throw new Error(item.problem);
    progress.hidden = false;
    setProgress(progress, 0);
    try {
      const { file, remove } = await decryptToPrivateFile(item, (done, size) => {
        setProgress(progress, size ? (100 * done) / size : 100);
      });
      saveFile(file, item.meta.name, remove);
      announce(t("downloaded", { name: item.meta.name }));
    } catch (e) {
      throw new Error(t("download_failed", { name: item.meta.name, message: e.message }));
    } finally {
      progress.hidden = true;
    }
  });
}

async function bulk(items, button) {
  clearError();
  for (const item of items) {
    const row = document.querySelector(`.ev-doc[data-document="${CSS.escape(item.doc.id)}"]`);
    const progress = row ? row.querySelector("progress") : progressBar(t("download_progress"));
    await download(item, button, progress);
    if (!document.getElementById("ev-error").hidden) return; // stop at the first failure
  }
}

let viewer = null; // {url?, task?, remove}: what closing the viewer releases

function closeViewer() {
  const node = document.getElementById("ev-viewer");
  if (viewer) {
    if (viewer.url) URL.revokeObjectURL(viewer.url);
    if (viewer.task) viewer.task.destroy(); // the document and its worker with it
    viewer.remove();
  }
  viewer = null;
  if (node) {
    node.replaceChildren();
    node.hidden = true;
  }
}

async function renderPdfPage(pdf, number, canvas, label) {
  const pdfPage = await pdf.getPage(number);
  const viewport = pdfPage.getViewport({ scale: 1.25 });
  canvas.width = Math.floor(viewport.width);
  canvas.height = Math.floor(viewport.height);
  await pdfPage.render({ canvas, canvasContext: canvas.getContext("2d"), viewport }).promise;
  label.textContent = t("page_of", { n: number, total: pdf.numPages });
  canvas.dataset.page = String(number); // drawn
}

async function view(item, button) {
  await guarded(button, async () => {
    if (!item.ok) throw new Error(item.problem);
    closeViewer();
    const node = document.getElementById("ev-viewer");
    const progress = progressBar(t("progress_of", { name: item.meta.name }));
    node.hidden = false;
    node.replaceChildren(el("h3", { text: item.meta.name }), progress);
    let decrypted;
    try {
      decrypted = await decryptToPrivateFile(item, (done, size) => { setProgress(progress, (100 * done) / (size || 1)); });
    } catch (e) {
      node.hidden = true;
      throw new Error(t("download_failed", { name: item.meta.name, message: e.message }));
    }
    viewer = { remove: decrypted.remove };
    const close = el("button", { type: "button", id: "ev-viewer-close", text: t("close") });
    close.addEventListener("click", closeViewer);
    const type = item.meta.type || "";
    if (type.startsWith("image/")) {
      viewer.url = URL.createObjectURL(decrypted.file);
      node.replaceChildren(el("div", { class: "row spread" }, el("h3", { text: item.meta.name }), close),
        el("img", { src: viewer.url, alt: item.meta.name, class: "ev-image" }));
    } else if (type === "application/pdf") {
      const pdfjs = await import("/static/vendor/pdf.min.mjs");
      pdfjs.GlobalWorkerOptions.workerSrc = "/static/vendor/pdf.worker.min.mjs";
      const data = new Uint8Array(await decrypted.file.arrayBuffer());
      // Everything pdf.js fetches comes from Parley (script-src and connect-src 'self'):
      // its standard fonts (never the viewer's system fonts, so a page looks the same
      // everywhere), CMaps, and JavaScript image decoders instead of WebAssembly.
      viewer.task = pdfjs.getDocument({
        data, isEvalSupported: false, enableXfa: false, useSystemFonts: false, useWasm: false,
        standardFontDataUrl: "/static/vendor/pdfjs/fonts/", cMapUrl: "/static/vendor/pdfjs/cmaps/", cMapPacked: true,
        wasmUrl: "/static/vendor/pdfjs/wasm/",
      });
      const pdf = await viewer.task.promise;
      const canvas = el("canvas", { class: "ev-pdf", "aria-label": item.meta.name });
      const label = el("span", { class: "muted", id: "ev-pdf-page" });
      let current = 1;
      const prev = el("button", { type: "button", text: t("previous_page") });
      const next = el("button", { type: "button", text: t("next_page") });
      const go = async (n) => {
        if (n < 1 || n > pdf.numPages) return;
        current = n;
        await renderPdfPage(pdf, current, canvas, label);
      };
      prev.addEventListener("click", () => go(current - 1));
      next.addEventListener("click", () => go(current + 1));
      node.replaceChildren(el("div", { class: "row spread" }, el("h3", { text: item.meta.name }), close),
        el("div", { class: "row" }, prev, label, next), canvas);
      await go(1);
    } else {
      node.replaceChildren(el("div", { class: "row spread" }, el("h3", { text: item.meta.name }), close),
        el("p", { class: "muted", text: t("no_preview") }));
    }
  });
}

function viewable(item) {
  const type = (item.meta && item.meta.type) || "";
  return type.startsWith("image/") || type === "application/pdf";
}

/** The secretariat, and the uploading delegation for its own documents, see who did
 * what with a document (the server's audit trail, with names). */
function mayAudit(doc) {
  if (page.may.manage) return true;
  const uploader = doc.uploader || {};
  return Boolean(page.may.audit && ME.delegation && uploader.delegation === ME.delegation);
}

/** "Expert Person (2 devices), Interpreter Person (1 device)": whose devices a share or
 * an upload named (device ids, as the audit trail keeps them). */
export function recipientNames(deviceIds) {
  const counts = new Map(); // person id ("" when this browser does not know the device) -> devices
  for (const id of deviceIds || []) {
    const entry = room.trust.get(id);
    const person = entry ? entry.person : "";
    counts.set(person, (counts.get(person) || 0) + 1);
  }
  return [...counts].map(([person, n]) => {
    const known = person && room.people.get(person);
    const name = known ? known.name : t("activity_someone");
    return t(n === 1 ? "activity_devices_one" : "activity_devices_n", { name, n });
  }).join(", ");
}

function activityText(entry, earlierUploads) {
  const data = entry.data || {};
  if (entry.action === "evidence.shared") {
    return data.recipients && data.recipients.length
      ? t("activity_shared_with", { names: recipientNames(data.recipients) })
      : t("activity_shared");
  }
  if (entry.action === "evidence.uploaded") {
    if (data.rekey) return t("activity_rekeyed");
    return earlierUploads ? t("activity_new_version") : t("activity_uploaded");
  }
  if (entry.action === "evidence.downloaded") return t("activity_downloaded");
  return entry.action;
}

async function toggleActivity(doc, button, panel) {
  if (!panel.hidden) {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  await guarded(button, async () => {
    const { entries } = await api("GET", `/api/documents/${doc.id}/audit`);
    let uploads = 0;
    const rows = entries.map((e) => {
      const text = activityText(e, uploads);
      if (e.action === "evidence.uploaded") uploads += 1;
      return el("li", { class: "ev-activity-entry", "data-action": e.action },
        el("span", { class: "muted", text: formatTime(e.at) }), " ",
        el("strong", { text: (e.actor && e.actor.name) || t("activity_someone") }), " ",
        el("span", { text }));
    });
    panel.replaceChildren(el("h4", { text: t("activity") }),
      rows.length ? el("ul", { class: "ev-activity-list" }, rows) : el("p", { class: "muted", text: t("activity_none") }));
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
  });
}

function documentRow(item, actions) {
  const doc = item.doc;
  const uploader = doc.uploader || {};
  const name = item.meta ? item.meta.name : t("sealed_name");
  const progress = progressBar(t("progress_of", { name }), { hidden: true });
  const title = el("strong", { class: "ev-doc-name", text: name });
  const lines = [];
  if (item.ok) {
    // The signed version may be a re-key by someone else than the document's uploader.
    // Or a new version by someone else of the uploader's delegation, or the secretariat.
    const signer = room.trust.get(item.manifest.uploader);
    const signerPerson = signer && signer.person !== uploader.person ? room.people.get(signer.person) : null;
    const vars = { name: uploader.name || "?", delegation: uploader.delegation || "" };
    let text = t("verified_uploaded_by", vars);
    if (signerPerson) {
      text = t(item.version.rekey ? "verified_uploaded_rekeyed" : "verified_uploaded_version", { ...vars, by: signerPerson.name });
    }
    lines.push(el("p", { class: "ev-verified ok-text", text }));
  } else {
    lines.push(el("p", { class: "ev-problem warn-text", role: "note", text: item.problem }));
  }
  if (item.meta && item.meta.description) lines.push(el("p", { class: "muted", text: item.meta.description }));
  const facts = [item.meta ? formatSize(item.meta.size) : formatSize(doc.version.size), formatTime(doc.version.completed_at || doc.version.created_at)];
  const versions = doc.versions || [];
  if (versions.length > 1) facts.push(t("version_of", { n: versions.length, total: versions.length }));
  if (doc.articles && doc.articles.length) facts.push(t("articles_list", { list: doc.articles.join(", ") }));
  const buttons = [];
  if (item.ok) {
    const dl = el("button", { type: "button", class: "ev-download", text: t("download") });
    dl.addEventListener("click", () => download(item, dl, progress));
    buttons.push(dl);
    if (viewable(item)) {
      const vb = el("button", { type: "button", class: "ev-view", text: t("view") });
      vb.addEventListener("click", () => view(item, vb));
      buttons.push(vb);
    }
    buttons.push(...actions(item));
  }
  const addVersion = newVersionControls(item);
  if (addVersion.button) buttons.push(addVersion.button);
  let panel = null;
  if (mayAudit(doc)) {
    panel = el("div", { class: "ev-activity-panel", id: `ev-activity-${doc.id}`, role: "region", "aria-label": t("activity_of", { name }), hidden: true });
    const ab = el("button", { type: "button", class: "ev-activity", "aria-expanded": "false", "aria-controls": panel.id, text: t("activity") });
    ab.addEventListener("click", () => toggleActivity(doc, ab, panel));
    buttons.push(ab);
  }
  return el("li", { class: "ev-doc", "data-document": doc.id, "data-state": item.ok ? "ok" : "problem" },
    el("div", { class: "row" }, title, el("span", { class: "muted", text: facts.join(" · ") })),
    ...lines, el("div", { class: "row" }, ...buttons, progress), addVersion.panel, panel, historyBlock(item));
}

const openHistories = new Set(); // document ids whose history is unfolded (kept across redraws)

/** Every kept version with its date and uploader, newest first, each downloadable on a
 * device that holds its key (checked like the current version when asked for). */
function historyBlock(item) {
  const doc = item.doc;
  const versions = doc.versions || [];
  if (versions.length < 2) return null;
  const mine = room.mine;
  const rows = versions.map((v, i) => {
    const number = versions.length - i;
    const who = v.uploader ? [v.uploader.name, v.uploader.delegation].filter(Boolean).join(", ") : "";
    const progress = progressBar(t("version_progress", { n: number }), { hidden: true });
    let action;
    if (mine && (v.keys || []).some((k) => k.device === mine.device)) {
      action = el("button", { type: "button", class: "ev-version-download", text: t("download_version", { n: number }) });
      action.addEventListener("click", async () => {
        const checked = v.id === item.version.id ? item : await check(doc, v);
        await download(checked, action, progress);
      });
    } else {
      action = el("span", { class: "muted ev-version-no-key", text: t("version_no_key") });
    }
    return el("li", { class: "ev-version", "data-version": v.id, "data-number": String(number) },
      el("strong", { text: t("version_n", { n: number }) }), i === 0 ? ` (${t("current")})` : "",
      " · ", el("span", { class: "ev-version-date", text: formatTime(v.completed_at || v.created_at) }),
      who ? ` · ${t("version_by", { name: who })}` : "", " ", action, " ", progress);
  });
  const details = el("details", { class: "ev-history", open: openHistories.has(doc.id) },
    el("summary", { text: t("history_n", { n: versions.length }) }), el("ul", { class: "ev-versions" }, rows));
  details.addEventListener("toggle", () => {
    if (details.open) openHistories.add(doc.id);
    else openHistories.delete(doc.id);
  });
  return details;
}

let extraActions = () => [];

/** The secretariat's per-document actions (evidence_admin_ui.js) add buttons here. */
export function setDocumentActions(fn) {
  extraActions = fn;
}

export function render() {
  const body = section().querySelector(".ev-body");
  if (!room.documents.length) {
    body.replaceChildren(el("p", { class: "muted", id: "ev-no-documents", text: t("no_documents") }));
    return;
  }
  const groups = new Map();
  const titleOf = new Map(page.sessions.map((s) => [s.id, s]));
  for (const item of room.documents) {
    const key = item.doc.session || "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  const blocks = [];
  for (const [key, items] of groups) {
    const session = titleOf.get(key);
    const heading = key ? (session ? session.title : t("other_session")) : t("no_session");
    const bulkButton = el("button", { type: "button", class: "ev-bulk", text: t("download_all") });
    const ready = items.filter((i) => i.ok);
    bulkButton.disabled = ready.length === 0;
    bulkButton.addEventListener("click", () => bulk(ready, bulkButton));
    const byItem = new Map();
    for (const item of items) {
      const k = item.doc.item || "";
      if (!byItem.has(k)) byItem.set(k, []);
      byItem.get(k).push(item);
    }
    const lists = [];
    for (const [itemId, docs] of byItem) {
      const agendaItem = session && session.items.find((i) => i.id === itemId);
      if (itemId) lists.push(el("h4", { text: agendaItem ? agendaItem.title : t("other_item") }));
      lists.push(el("ul", { class: "ev-docs" }, docs.map((d) => documentRow(d, extraActions))));
    }
    blocks.push(el("section", { class: "ev-group", "data-session": key },
      el("div", { class: "row spread" }, el("h3", { text: heading }), bulkButton), ...lists));
  }
  body.replaceChildren(...blocks);
}

export { closeViewer };
