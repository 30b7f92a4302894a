// "Upload a new version" of a document: for the uploader's delegation and the
// secretariat (as the server allows: service.py `_may_add_version`). The panel shows
// the recipients first, with the same policy as a new upload (the secretariat and
// oneself locked in, the review team and the delegation by default); choosing a file
// encrypts it here with a new content key and sends it as the document's next version,
// with its progress. Everyone keeps the older versions they held keys to.

import { announce, clearError, el, formatSize, ME, page, progressBar, setProgress, showError, t } from "./evidence_common.js";
import { deviceById, room } from "./evidence_state.js";
import { recipientList, recipientPlan } from "./evidence_upload_ui.js";
import { uploadFile } from "./evidence_uploads.js";

const panels = new Map(); // document id -> {open, busy, excluded, node, parts, item}

/** Whether this person may add a version of `doc` (mirrors the server's rule). */
export function mayAddVersion(doc) {
  if (!page.may.upload) return false;
  if (page.may.manage) return true;
  const uploader = doc.uploader || {};
  if (uploader.person === ME.person) return true;
  return Boolean(ME.delegation && uploader.delegation === ME.delegation);
}

function stateOf(doc) {
  if (!panels.has(doc.id)) panels.set(doc.id, { open: false, busy: false, excluded: new Set(), node: null, parts: null, item: null });
  return panels.get(doc.id);
}

async function send(item, state, file) {
  clearError();
  const doc = item.doc;
  const { people, blocked } = recipientPlan(state.excluded);
  if (!room.mine) return showError(t("need_device"));
  if (blocked) return showError(blocked);
  const recipients = people.filter((p) => p.included).flatMap((p) => p.devices.map((e) => deviceById(e.id))).filter(Boolean);
  const { bar, status, input } = state.parts;
  state.busy = true;
  input.disabled = true;
  bar.hidden = false;
  setProgress(bar, 0);
  status.textContent = t("new_version_sending", { name: file.name, size: formatSize(file.size) });
  try {
    await uploadFile({
      file, description: item.meta ? item.meta.description : "", mine: room.mine, recipients, deviceById,
      placement: { document: doc.id },
      onProgress: (done, size) => setProgress(bar, (100 * done) / (size || 1)),
    });
    setProgress(bar, 100);
    status.textContent = t("new_version_sent", { name: file.name });
    announce(status.textContent); // the panel stays open with its full bar until closed
  } catch (e) {
    status.textContent = t("failed", { message: e.message });
    showError(t("new_version_failed", { name: file.name, message: e.message }));
  } finally {
    state.busy = false;
    input.disabled = false;
    input.value = "";
  }
  document.dispatchEvent(new CustomEvent("evidence:refresh"));
  return undefined;
}

function drawPanel(item, state) {
  const doc = item.doc;
  state.item = item; // the latest check of the document
  if (!state.node) {
    const inputId = `ev-new-version-file-${doc.id}`;
    const input = el("input", { type: "file", id: inputId, class: "ev-new-version-file" });
    const bar = progressBar(t("new_version_progress"), { hidden: true, class: "ev-new-version-progress" });
    const status = el("span", { class: "muted ev-new-version-state", role: "status" });
    const recipients = el("div", { class: "ev-new-version-recipients" });
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      if (file) send(state.item, state, file);
    });
    state.parts = { input, bar, status, recipients };
    state.node = el("div", {
      class: "ev-new-version-panel", id: `ev-new-version-${doc.id}`, role: "region",
      "aria-label": t("new_version_of", { name: item.meta ? item.meta.name : t("sealed_name") }),
    },
    el("p", { class: "muted", text: t("new_version_explain") }),
    recipients,
    el("p", {}, el("label", { for: inputId, text: t("new_version_choose") }), " ", input),
    el("p", {}, bar, " ", status));
  }
  // The recipients follow the keys listing, except while a version is being sent.
  if (!state.busy) {
    state.parts.recipients.replaceChildren(recipientList({ prefix: `ev-vrcpt-${doc.id}`, excluded: state.excluded, listId: null }));
  }
  state.node.hidden = !state.open;
  return state.node;
}

/** The "Upload a new version" button and its panel for a checked document (both null
 * when this person may not add versions of it or has no device here). */
export function newVersionControls(item) {
  const doc = item.doc;
  if (!room.mine || !mayAddVersion(doc)) return { button: null, panel: null };
  const state = stateOf(doc);
  const panel = drawPanel(item, state);
  const button = el("button", {
    type: "button", class: "ev-new-version", "aria-expanded": state.open ? "true" : "false", "aria-controls": panel.id,
    text: t("new_version"),
  });
  button.addEventListener("click", () => {
    state.open = !state.open || state.busy;
    panel.hidden = !state.open;
    button.setAttribute("aria-expanded", state.open ? "true" : "false");
  });
  return { button, panel };
}
