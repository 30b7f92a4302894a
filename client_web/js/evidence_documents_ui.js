// "Documents": the visit's documents this person may see, by session and agenda item,
// each checked here before anything is shown (the key unwrapped for this device, the
// signed manifest, the key commitment, the sealed name), then downloaded decrypting as
// it streams into the origin private file system and saved from there, or viewed
// inline (images; PDFs with pdf.js). Any failure saves nothing and says why.

import * as ev from "./evidence_crypto.js";
import { announce, api, clearError, el, formatSize, formatTime, guarded, ME, page, progressBar, responseError, setProgress, t, VISIT } from "./evidence_common.js";
import { deviceById, room } from "./evidence_state.js";

const section = () => document.getElementById("ev-documents");
const TEMP_PREFIX = "parley-dl-";
const KEEP_SAVED_MS = 60_000; // the browser copies the saved file within this time

/** Check one listed document for this device: `{doc, ok, K?, manifest?, text?, meta?, problem?, trusted}`. */
async function check(doc) {
  const out = { doc, ok: false };
  const mine = room.mine;
  const v = doc.version;
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
  const name = `${TEMP_PREFIX}${item.doc.version.id}-${ev.b64u(ev.randomBytes(6))}`;
  const handle = await root.getFileHandle(name, { create: true });
  const remove = () => root.removeEntry(name).catch(() => {});
  let writable;
  try {
    writable = await handle.createWritable();
    const response = await fetch(`/api/versions/${item.doc.version.id}/content`, { credentials: "same-origin" });
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

const ACTIVITY_WORDS = {
  "evidence.uploaded": "activity_uploaded",
  "evidence.shared": "activity_shared",
  "evidence.downloaded": "activity_downloaded",
};

async function toggleActivity(doc, button, panel) {
  if (!panel.hidden) {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  await guarded(button, async () => {
    const { entries } = await api("GET", `/api/documents/${doc.id}/audit`);
    const rows = entries.map((e) => el("li", { class: "ev-activity-entry", "data-action": e.action },
      el("span", { class: "muted", text: formatTime(e.at) }), " ",
      el("strong", { text: (e.actor && e.actor.name) || t("activity_someone") }), " ",
      el("span", { text: ACTIVITY_WORDS[e.action] ? t(ACTIVITY_WORDS[e.action]) : e.action })));
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
    const signer = room.trust.get(item.manifest.uploader);
    const signerPerson = signer && signer.person !== uploader.person ? room.people.get(signer.person) : null;
    const vars = { name: uploader.name || "?", delegation: uploader.delegation || "" };
    const text = signerPerson
      ? t("verified_uploaded_rekeyed", { ...vars, by: signerPerson.name })
      : t("verified_uploaded_by", vars);
    lines.push(el("p", { class: "ev-verified ok-text", text }));
  } else {
    lines.push(el("p", { class: "ev-problem warn-text", role: "note", text: item.problem }));
  }
  if (item.meta && item.meta.description) lines.push(el("p", { class: "muted", text: item.meta.description }));
  const facts = [item.meta ? formatSize(item.meta.size) : formatSize(doc.version.size), formatTime(doc.version.completed_at || doc.version.created_at)];
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
  let panel = null;
  if (mayAudit(doc)) {
    panel = el("div", { class: "ev-activity-panel", id: `ev-activity-${doc.id}`, role: "region", "aria-label": t("activity_of", { name }), hidden: true });
    const ab = el("button", { type: "button", class: "ev-activity", "aria-expanded": "false", "aria-controls": panel.id, text: t("activity") });
    ab.addEventListener("click", () => toggleActivity(doc, ab, panel));
    buttons.push(ab);
  }
  const history = doc.versions && doc.versions.length > 1
    ? el("details", {}, el("summary", { text: t("versions_n", { n: doc.versions.length }) }),
      el("ul", {}, doc.versions.map((v, i) => el("li", { text: `${formatTime(v.created_at)}${i === 0 ? ` (${t("current")})` : ""}` }))))
    : null;
  return el("li", { class: "ev-doc", "data-document": doc.id, "data-state": item.ok ? "ok" : "problem" },
    el("div", { class: "row" }, title, el("span", { class: "muted", text: facts.join(" · ") })),
    ...lines, el("div", { class: "row" }, ...buttons, progress), panel, history);
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
