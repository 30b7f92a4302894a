// What every part of the evidence room shares: the page's data (rendered by the server:
// who is looking, the sessions they may see, the words in their language), the HTTP
// helper, small DOM helpers and the status line. No cryptography here.

export const page = JSON.parse(document.getElementById("evidence-data").textContent);
export const VISIT = page.visit;
export const ME = page.me;

/** The page's text for `key` (translated by the server), `{name}` placeholders filled. */
export function t(key, vars = {}) {
  const text = page.strings[key];
  if (text === undefined) throw new Error(`no text for ${key}`);
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function failure(response) {
  let code = "http";
  let message = t("server_error", { status: response.status });
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the generic message
  }
  return new ApiError(response.status, code, message);
}

/** A JSON API call; throws ApiError with the server's message on any failure. */
export async function api(method, path, body = undefined, { raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body instanceof Uint8Array) {
    init.body = body;
    init.headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", t("network_error"));
  }
  if (!response.ok) throw await failure(response);
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export { failure as responseError };

/** An element: `el("p", {class: "muted", text: "..."}, child, ...)`. Attributes named
 * `on<event>` are listeners; text goes through textContent only (never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const statusLine = () => document.getElementById("ev-status");
const errorLine = () => document.getElementById("ev-error");

/** Say something in the polite live region (cleared first so repeats are announced). */
export function announce(text) {
  const node = statusLine();
  node.textContent = "";
  window.setTimeout(() => { node.textContent = text; }, 30);
}

export function showError(error) {
  const node = errorLine();
  node.textContent = typeof error === "string" ? error : error && error.message ? error.message : String(error);
  node.hidden = false;
}

export function clearError() {
  const node = errorLine();
  node.textContent = "";
  node.hidden = true;
}

/** Run an action from a button: disables it meanwhile, shows any error. */
export async function guarded(button, action) {
  if (button) button.disabled = true;
  clearError();
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A progress bar (0 to 100) named `label`, its value also in ARIA attributes for
 * assistive technology that reads those rather than the native element's state. */
export function progressBar(label, attrs = {}) {
  const bar = el("progress", {
    max: 100, value: 0, role: "progressbar", "aria-label": label,
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0, ...attrs,
  });
  return bar;
}

export function setProgress(bar, percent) {
  const value = Math.max(0, Math.min(100, Math.round(percent)));
  bar.value = value;
  bar.setAttribute("aria-valuenow", String(value));
}

/** Show a notice (news for this person, such as a document shared with them). */
export function notify(text) {
  const node = document.getElementById("ev-news");
  if (!node) return;
  node.textContent = text;
  node.hidden = false;
}

export function formatSize(bytes) {
  if (bytes < 1024) return t("size_bytes", { n: bytes });
  if (bytes < 1024 * 1024) return t("size_kib", { n: (bytes / 1024).toFixed(1) });
  if (bytes < 1024 * 1024 * 1024) return t("size_mib", { n: (bytes / 1024 / 1024).toFixed(1) });
  return t("size_gib", { n: (bytes / 1024 / 1024 / 1024).toFixed(2) });
}

export function formatTime(iso) {
  if (!iso) return "";
  try {
    return new Intl.DateTimeFormat(page.lang, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso));
  } catch {
    return iso;
  }
}

export function roleWord(role) {
  return page.roles[role] || role;
}

/** Roles that receive documents without a grant (docs/evidence.md "Who may receive"). */
export const RECEIVING_ROLES = new Set(["secretariat", "expert", "delegate"]);
