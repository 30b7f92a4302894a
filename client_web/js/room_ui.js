// Small DOM helpers shared by the room's views (room_view_*.js).
//
// Rendering uses DOM APIs and textContent only; nothing a participant typed is
// ever parsed as HTML.

export const $ = (id) => document.getElementById(id);

/** Fill {name} placeholders of a translated template. */
export function fmt(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function onClick(node, handler) {
  if (node) node.addEventListener("click", handler);
}

/** Click on a button[data-action] inside `container`: handler(action, dataset). */
export function onAction(container, handler) {
  onClick(container, (e) => {
    const button = e.target.closest("button[data-action]");
    if (button) handler(button.dataset.action, button.dataset);
  });
}

/** A heading that keyboard focus can be moved to when a pressed button goes away. */
export function focusTarget(id) {
  const heading = $(id);
  if (heading) heading.tabIndex = -1;
}

/** Tell screen readers (the page's polite live region). */
export function announce(text) {
  const node = $("announce");
  node.textContent = "";
  // A fresh text node after clearing makes screen readers repeat equal messages.
  window.setTimeout(() => {
    node.textContent = text;
  }, 50);
}

/** hh:mm of an ISO time in the user's zone and language. */
export function clockFormatter(lang, timeZone) {
  let format;
  try {
    format = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone });
  } catch {
    format = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
  return (iso) => {
    const when = new Date(iso);
    return Number.isNaN(when.getTime()) ? "" : format.format(when);
  };
}

/** Name and "role · delegation" of the people in a state. */
export function peopleIn(state, S) {
  const person = (m) => (state && state.people.get(m)) || null;
  return {
    nameOf(m) {
      const p = person(m);
      return p ? p.name : S.unknown;
    },
    metaOf(m) {
      const p = person(m);
      if (!p) return "";
      const role = S.roles[p.role] || p.role;
      return p.delegation ? `${role} · ${p.delegation}` : role;
    },
  };
}

function visible(node) {
  return Boolean(node && node.isConnected && !node.hidden && node.getClientRects().length > 0);
}

// Where focus goes when the control it was on went away (across panels: ending the
// floor in the floor box leads to the next Give button in the speakers' list).
const FOCUS_FALLBACKS = {
  "request-floor": ["withdraw-floor", "speakers-heading"],
  "withdraw-floor": ["request-floor", "speakers-heading"],
  "end-floor": ["[data-focus-key^='give:']", "speakers-heading"],
  give: ["end-floor", "[data-focus-key^='give:']", "speakers-heading"],
  start: ["end-item", "agenda-heading"],
  "end-item": ["[data-focus-key^='start:']", "agenda-heading"],
  admit: ["[data-focus-key^='admit:']", "lobby-heading"],
  decline: ["[data-focus-key^='admit:']", "lobby-heading"],
};

/** Run `update` (which may replace controls); keep keyboard focus on the control the
 * user was on (found again by its data-focus-key), or the next sensible one. */
export function keepingFocus(update) {
  const previous = document.activeElement;
  const key = previous && previous.dataset ? previous.dataset.focusKey : undefined;
  update();
  if (!key || visible(previous)) return;
  const same = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
  if (visible(same)) {
    same.focus();
    return;
  }
  const fallbacks = FOCUS_FALLBACKS[key] || FOCUS_FALLBACKS[key.split(":")[0]] || [];
  for (const ref of fallbacks) {
    const node = ref.startsWith("[") ? document.querySelector(ref) : $(ref);
    if (visible(node)) {
      node.focus();
      return;
    }
  }
}
