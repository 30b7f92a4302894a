// "Upload": files dropped or chosen, their session or agenda item, Convention articles
// and a description; the recipients shown before anything is sent (the secretariat
// locked in, the review team and the delegation by default, never interpreters,
// observers or stakeholders: the secretariat grants those later); then each file is
// encrypted here and sent chunk by chunk with its progress, resumable after a cut.

import { announce, clearError, el, formatSize, ME, page, progressBar, RECEIVING_ROLES, roleWord, setProgress, showError, t } from "./evidence_common.js";
import { deviceById, room } from "./evidence_state.js";
import { fileKey, unfinished, uploadFile } from "./evidence_uploads.js";

const section = () => document.getElementById("ev-upload");
const queue = []; // {file, row, bar}
const excludedHere = new Set(); // person ids the uploader took off the list
let busy = false;

/** The recipients as they stand: `{people: [{person, locked, included, devices, refused}], blocked}`.
 * `excluded`: the person ids taken off this list (the upload form's, or a new version's). */
export function recipientPlan(excluded = excludedHere) {
  const people = [];
  let blocked = null;
  for (const p of room.listing.people) {
    if (!RECEIVING_ROLES.has(p.role)) continue;
    const entries = p.devices.map((d) => room.trust.get(d.id)).filter((e) => e && !e.revoked);
    const locked = p.role === "secretariat" || p.person === ME.person;
    const included = locked || !excluded.has(p.person);
    const devices = entries.filter((e) => e.shareable);
    const refused = entries.filter((e) => !e.shareable);
    if (p.role === "secretariat" && entries.length > 0 && devices.length === 0) {
      blocked = t("secretariat_unverified", { name: p.name });
    }
    people.push({ ...p, locked, included, devices, refused });
  }
  return { people, blocked };
}

/** The recipients shown before sending, each a checkbox (the secretariat and oneself
 * locked in); `prefix` makes the ids unique on the page, `excluded` keeps the choices. */
export function recipientList({ prefix = "ev-rcpt", excluded = excludedHere, listId = "ev-recipient-list" } = {}) {
  const { people, blocked } = recipientPlan(excluded);
  const items = people.map((p) => {
    const box = el("input", {
      type: "checkbox", id: `${prefix}-${p.person}`, checked: p.included, disabled: p.locked,
      "data-person": p.person, class: "ev-recipient",
    });
    box.addEventListener("change", () => {
      if (box.checked) excluded.delete(p.person);
      else excluded.add(p.person);
    });
    const notes = [];
    if (p.locked && p.role === "secretariat") notes.push(el("span", { class: "muted", text: t("secretariat_locked") }));
    if (p.devices.length === 0 && p.refused.length === 0) notes.push(el("span", { class: "muted", text: t("no_device_yet") }));
    for (const r of p.refused) {
      notes.push(el("span", { class: "warn-text ev-refused", text: t(r.warning ? "refused_warning" : "refused_unverified", { code: r.safetyCode }) }));
    }
    return el("li", {},
      box, " ", el("label", { for: box.id, text: `${p.name} (${[roleWord(p.role), p.delegation].filter(Boolean).join(", ")})` }),
      " ", el("span", { class: "muted", text: t("devices_n", { n: p.devices.length }) }), " ", ...notes);
  });
  return el("div", { class: "ev-recipients" },
    el("h3", { text: t("recipients_title") }),
    el("p", { class: "muted", text: t("recipients_explain") }),
    el("ul", { id: listId, class: "ev-recipient-list" }, items),
    blocked ? el("p", { class: "error", text: blocked }) : null);
}

function placementSelect() {
  const select = el("select", { id: "ev-placement", name: "placement" },
    el("option", { value: "", text: t("no_session") }));
  for (const s of page.sessions) {
    const group = el("optgroup", { label: s.title });
    group.append(el("option", { value: `s:${s.id}`, text: s.title }));
    for (const i of s.items) group.append(el("option", { value: `i:${s.id}:${i.id}`, text: `${s.title} — ${i.title}` }));
    select.append(group);
  }
  return select;
}

function addFiles(files) {
  // What was sent before stays listed until new files come.
  for (let i = queue.length - 1; i >= 0; i--) if (queue[i].sent) queue.splice(i, 1);
  for (const file of files) {
    const bar = progressBar(t("progress_of", { name: file.name }));
    const state = el("span", { class: "ev-file-state muted", text: t("queued") });
    const row = el("li", { class: "ev-file", "data-name": file.name },
      el("span", { text: `${file.name} (${formatSize(file.size)})` }), " ", bar, " ", state);
    queue.push({ file, row, bar, state });
  }
  drawQueue();
}

function drawQueue() {
  const list = document.getElementById("ev-queue");
  if (list) list.replaceChildren(...queue.map((q) => q.row));
  const send = document.getElementById("ev-send");
  if (send) send.disabled = busy || !queue.some((q) => !q.sent) || !room.mine;
}

async function send() {
  clearError();
  const { people, blocked } = recipientPlan();
  if (!room.mine) return showError(t("need_device"));
  if (blocked) return showError(blocked);
  const recipients = people.filter((p) => p.included).flatMap((p) => p.devices.map((e) => deviceById(e.id))).filter(Boolean);
  const placementValue = document.getElementById("ev-placement").value;
  const placement = { articles: [] };
  if (placementValue.startsWith("s:")) placement.session = placementValue.slice(2);
  if (placementValue.startsWith("i:")) [, placement.session, placement.item] = placementValue.split(":");
  placement.articles = document.getElementById("ev-articles").value.split(",").map((a) => a.trim()).filter(Boolean);
  const description = document.getElementById("ev-description").value;
  busy = true;
  drawQueue();
  const batch = document.getElementById("ev-batch");
  const total = queue.filter((q) => !q.sent).reduce((n, q) => n + q.file.size, 0) || 1;
  let finished = 0;
  let failures = 0;
  batch.hidden = false;
  for (const item of queue.filter((q) => !q.sent)) {
    item.state.textContent = t("sending");
    try {
      const result = await uploadFile({
        file: item.file, description, mine: room.mine, recipients, placement, deviceById,
        recordKey: fileKey(ME.person, item.file),
        onProgress: (done, size) => {
          setProgress(item.bar, (100 * done) / size);
          setProgress(batch, (100 * (finished + (item.file.size * done) / size)) / total);
        },
      });
      setProgress(item.bar, 100);
      item.state.textContent = result.resumed ? t("sent_resumed", { n: result.sent }) : t("sent");
      item.row.dataset.state = "sent";
      item.sent = true;
    } catch (e) {
      failures += 1;
      item.state.textContent = t("failed", { message: e.message });
      item.row.dataset.state = "failed";
      showError(t("upload_cut", { name: item.file.name, message: e.message }));
    }
    finished += item.file.size;
    setProgress(batch, (100 * finished) / total);
  }
  busy = false;
  drawQueue();
  await drawUnfinished();
  announce(failures ? t("batch_failed", { n: failures }) : t("batch_done"));
  document.dispatchEvent(new CustomEvent("evidence:refresh"));
}

async function drawUnfinished() {
  const node = document.getElementById("ev-unfinished");
  if (!node) return;
  const rows = await unfinished(ME.person);
  node.replaceChildren(...(rows.length
    ? [el("p", { class: "muted", text: t("unfinished_explain") }),
      el("ul", {}, rows.map((r) => el("li", { text: `${r.name} (${formatSize(r.size)})` })))]
    : []));
}

export function render() {
  const node = section();
  if (!page.may.upload) {
    node.hidden = true;
    return;
  }
  const body = node.querySelector(".ev-body");
  if (!room.mine) {
    body.replaceChildren(el("p", { class: "muted", text: t("need_device_upload") }));
    return;
  }
  if (busy && document.getElementById("ev-queue")) return; // keep the progress on screen
  const input = el("input", { type: "file", id: "ev-files", multiple: true });
  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  const drop = el("div", { class: "ev-drop", id: "ev-drop" },
    el("p", { text: t("drop_here") }), el("label", { for: "ev-files", text: t("choose_files") }), " ", input);
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles([...e.dataTransfer.files]);
  });
  const sendButton = el("button", { type: "button", class: "primary", id: "ev-send", text: t("send") });
  sendButton.addEventListener("click", () => send());
  const old = {
    placement: document.getElementById("ev-placement")?.value,
    articles: document.getElementById("ev-articles")?.value,
    description: document.getElementById("ev-description")?.value,
  };
  const select = placementSelect();
  body.replaceChildren(
    drop,
    el("ul", { id: "ev-queue", class: "ev-queue" }),
    el("div", { class: "ev-fields" },
      el("label", { for: "ev-placement", text: t("placement") }), select,
      el("label", { for: "ev-articles", text: t("articles") }),
      el("input", { id: "ev-articles", type: "text", placeholder: t("articles_example") }),
      el("label", { for: "ev-description", text: t("description") }),
      el("textarea", { id: "ev-description", rows: "2" })),
    recipientList(),
    el("div", { class: "row" }, sendButton,
      progressBar(t("batch_progress"), { id: "ev-batch", hidden: true })),
    el("div", { id: "ev-unfinished" }),
  );
  if (old.placement !== undefined) select.value = old.placement;
  if (old.articles !== undefined) document.getElementById("ev-articles").value = old.articles;
  if (old.description !== undefined) document.getElementById("ev-description").value = old.description;
  drawQueue();
  drawUnfinished();
}
