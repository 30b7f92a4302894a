// The live session room: joins over Socket.IO, folds the session event log into a
// RoomState (room_state.js, the same rules as the server) and renders it.
//
// Ordering: every room.event carries the session's sequence number. Events are
// applied strictly in order; one that arrives early waits in `pending`, a gap is
// filled with room.sync, and a reconnect re-joins with `since` so nothing is missed
// and nothing is applied twice. Every command carries an idempotency key and is
// resent with the same key when no acknowledgement arrives: the server stores it once.
// A room.beacon names the newest seq: a client behind it (a broadcast lost on the way)
// asks room.sync.
//
// The state keeps the last CHAT_WINDOW messages; the chat log on the page keeps what
// it has shown and loads older messages on demand (chat.history).
//
// Rendering uses DOM APIs and textContent only; nothing a participant typed is
// ever parsed as HTML.

import { io } from "/static/vendor/socket.io.esm.min.js";
import { CHAT_WINDOW, RoomState, formatElapsed } from "/static/js/room_state.js";

const ACK_TIMEOUT_MS = 8000;
const MAX_ATTEMPTS = 6;
const GAP_GRACE_MS = 300;
// Reconnection: exponential back-off from 1 s to 30 s, each delay jittered by ±50 %,
// so that the clients of a restarted server do not all come back in the same second.
const BACKOFF = { reconnectionDelay: 1000, reconnectionDelayMax: 30_000, randomizationFactor: 0.5 };

const data = JSON.parse(document.getElementById("room-data").textContent);
const S = data.strings;
const SESSION = data.session_id;
const ME = data.me;
const CHAIR = Boolean(data.is_chair);
const $ = (id) => document.getElementById(id);

let state = null; // RoomState once the server answered a join
let joined = false; // in the room on the current connection
let catchingUp = false; // a join or sync is in flight: hold live events
const pending = new Map(); // seq -> event that arrived ahead of its turn
let gapTimer = null;
let clockOffset = 0; // estimated server clock minus local clock, in ms
let joinWaiters = [];
let chatShown = 0; // highest chat seq already in the log
let chatMore = false; // the log on the page has older messages still to load
let loadingEarlier = false;
let waitHandle = null; // counts down a rate limit's retry_after
let lastFloor; // undefined until the first render, then the holder (or null)
let timerHandle = null;
const busy = new Set(); // commands waiting for their acknowledgement

// ---- small helpers ----------------------------------------------------------------

function fmt(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
}

function el(tag, props = {}, ...children) {
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

function newKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Plain-HTTP deployments are not a secure context: no randomUUID there.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const timeFormat = (() => {
  try {
    return new Intl.DateTimeFormat(data.lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: data.timezone });
  } catch {
    return new Intl.DateTimeFormat(data.lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
})();

function clockTime(iso) {
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? "" : timeFormat.format(when);
}

function serverNow() {
  return Date.now() + clockOffset;
}

// Every server timestamp that reaches us is a lower bound of the server clock at
// arrival (server_now is truncated to the second; a live event's at_ms is exact):
// the largest recent bound is the best estimate, off by the network latency only.
let clockBound = { offset: -Infinity, at: 0 };

function noteServerTime(serverMs) {
  if (!Number.isFinite(serverMs)) return;
  const now = Date.now();
  const offset = serverMs - now;
  // Old bounds expire so that a local clock adjustment is followed.
  if (offset > clockBound.offset || now - clockBound.at > 60_000) clockBound = { offset, at: now };
  clockOffset = clockBound.offset;
}

function noteServerClock(serverNowIso) {
  noteServerTime(Date.parse(serverNowIso || ""));
}

function setStatus(text, kind) {
  const node = $("conn-status");
  node.textContent = text;
  node.dataset.state = kind;
}

function showError(message) {
  const node = $("room-error");
  node.textContent = message;
  node.hidden = false;
}

function clearError() {
  if (waitHandle !== null) {
    window.clearInterval(waitHandle);
    waitHandle = null;
  }
  const node = $("room-error");
  node.hidden = true;
  node.textContent = "";
}

/** A rate limit: say how long to wait, counting down, then clear the message. */
function showWait(retryAfter) {
  clearError();
  let left = Math.max(1, Math.ceil(Number(retryAfter) || 1));
  showError(fmt(S.rate_limited, { n: left }));
  waitHandle = window.setInterval(() => {
    left -= 1;
    if (left > 0) $("room-error").textContent = fmt(S.rate_limited, { n: left });
    else clearError();
  }, 1000);
}

function announce(text) {
  const node = $("announce");
  node.textContent = "";
  // A fresh text node after clearing makes screen readers repeat equal messages.
  window.setTimeout(() => {
    node.textContent = text;
  }, 50);
}

function person(m) {
  return (state && state.people.get(m)) || null;
}

function nameOf(m) {
  const p = person(m);
  return p ? p.name : S.unknown;
}

function metaOf(m) {
  const p = person(m);
  if (!p) return "";
  const role = S.roles[p.role] || p.role;
  return p.delegation ? `${role} · ${p.delegation}` : role;
}

// ---- the connection ----------------------------------------------------------------

// WebSocket only: the server checks the Origin header, which polling GETs do not carry.
const socket = io({ transports: ["websocket"], ...BACKOFF });

// Reconnects socket.io leaves to us (the server closed the connection, or refused it)
// back off the same way; a connection that comes up resets the count.
let manualAttempts = 0;

function reconnectLater() {
  const base = Math.min(BACKOFF.reconnectionDelayMax, BACKOFF.reconnectionDelay * 2 ** manualAttempts);
  const jitter = 1 + BACKOFF.randomizationFactor * (2 * Math.random() - 1);
  manualAttempts += 1;
  window.setTimeout(() => {
    if (!socket.connected) socket.connect();
  }, base * jitter);
}

function whenJoined() {
  if (joined && socket.connected) return Promise.resolve();
  return new Promise((resolve) => joinWaiters.push(resolve));
}

function markJoined() {
  joined = true;
  const waiters = joinWaiters;
  joinWaiters = [];
  for (const resolve of waiters) resolve();
}

async function ask(event, payload) {
  // Rejects when no acknowledgement arrives in time or the connection drops.
  return socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
}

/** Send a command; resend with the same idempotency key until acknowledged. */
async function send(event, fields = {}) {
  const payload = { session_id: SESSION, idem: newKey(), ...fields };
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
    await whenJoined();
    let ack;
    try {
      ack = await ask(event, payload);
    } catch {
      continue; // no answer: the same key again, so it is stored once
    }
    if (ack && ack.error) {
      if (ack.error.code === "rate_limited") showWait(ack.error.retry_after);
      else showError(ack.error.message);
      return null;
    }
    clearError();
    return ack;
  }
  showError(S.not_sent);
  return null;
}

let joinInFlight = false;
let joinAgain = false;

async function join() {
  if (!socket.connected) return;
  if (joinInFlight) {
    // e.g. an admission that overtook the "waiting" answer: ask once more after it.
    joinAgain = true;
    return;
  }
  joinInFlight = true;
  try {
    await joinOnce();
  } finally {
    joinInFlight = false;
  }
  if (joinAgain) {
    joinAgain = false;
    if (!joined) join();
  }
}

async function joinOnce() {
  catchingUp = true;
  const payload = { session_id: SESSION };
  if (state) payload.since = state.seq;
  let ack;
  try {
    ack = await ask("room.join", payload);
  } catch {
    catchingUp = false;
    if (socket.connected) window.setTimeout(join, 1000);
    return;
  }
  catchingUp = false;
  if (ack.error) {
    showError(ack.error.message);
    setStatus(S.connected, "error");
    // No longer admitted under the current rules: show nothing of the room.
    if (ack.error.code === "not_found" || ack.error.code === "forbidden") {
      document.getElementById("room").hidden = true;
    }
    return;
  }
  if (ack.status === "waiting") {
    showWaiting(false);
    return;
  }
  if (permissionsChanged(ack.may)) {
    // The controls on this page came from older rules: let the server draw them anew.
    window.location.reload();
    return;
  }
  noteServerClock(ack.server_now);
  absorbCatchUp(ack);
  showRoom();
  markJoined();
}

// What this person may do comes with every join (the policy's answer now), not only
// with the page: a chair or access change shows the right controls after re-joining.
function permissionsChanged(may) {
  if (!may || !data.may) return false;
  return ["speak", "chat", "chair"].some((k) => Boolean(may[k]) !== Boolean(data.may[k]));
}

async function sync() {
  if (catchingUp || !joined || !state) return;
  catchingUp = true;
  let ack;
  try {
    ack = await ask("room.sync", { session_id: SESSION, since: state.seq });
  } catch {
    catchingUp = false;
    if (socket.connected) scheduleGapCheck();
    return;
  }
  catchingUp = false;
  if (ack.error) {
    showError(ack.error.message);
    return;
  }
  noteServerClock(ack.server_now);
  absorbCatchUp(ack);
}

function absorbCatchUp(ack) {
  if (ack.state && (!state || ack.state.seq >= state.seq)) {
    state = RoomState.fromSnapshot(ack.state);
  } else if (ack.events) {
    if (!state) state = new RoomState();
    for (const event of ack.events) if (event.seq > state.seq) pending.set(event.seq, event);
  }
  drain();
}

function onEvent(event) {
  if (!event || event.session_id !== SESSION) return;
  noteServerTime(event.at_ms); // live: just written by the server
  if (state && event.seq <= state.seq) return; // already have it
  pending.set(event.seq, event);
  if (!catchingUp && state) drain();
}

/** Apply whatever is next in order; ask for anything missing. */
function drain() {
  if (!state) return;
  for (const seq of pending.keys()) if (seq <= state.seq) pending.delete(seq);
  let applied = false;
  while (pending.has(state.seq + 1)) {
    const event = pending.get(state.seq + 1);
    pending.delete(event.seq);
    state.apply(event);
    applied = true;
  }
  if (pending.size) scheduleGapCheck();
  render(applied);
}

function scheduleGapCheck() {
  if (gapTimer) return;
  // Events from different server processes may overtake each other briefly.
  gapTimer = window.setTimeout(() => {
    gapTimer = null;
    if (pending.size) sync();
  }, GAP_GRACE_MS);
}

socket.on("connect", () => {
  manualAttempts = 0;
  setStatus(S.connected, "ok");
  join();
});

socket.on("disconnect", (reason) => {
  joined = false;
  setStatus(S.reconnecting, "lost");
  // socket.io leaves reconnecting to us when the server closed the connection; if the
  // login has ended, the next attempt says so (connect_error below).
  if (reason === "io server disconnect") reconnectLater();
});

socket.on("connect_error", (err) => {
  const code = err && err.data && err.data.code;
  if (code === "unauthenticated") {
    setStatus(S.signed_out, "error");
    showError(S.signed_out);
  } else if (!socket.active) {
    // Refused by the server: socket.io does not retry by itself.
    setStatus(S.reconnecting, "error");
    reconnectLater();
  } else {
    setStatus(S.reconnecting, "lost");
  }
});

socket.on("room.event", onEvent);

// The server's periodic word on the newest seq: a broadcast lost on the way (a message
// queue gap) would otherwise go unnoticed until the next event arrives.
socket.on("room.beacon", (msg) => {
  if (!msg || msg.session_id !== SESSION || !state || !joined) return;
  if (Number.isInteger(msg.seq) && msg.seq > state.seq) sync();
});

// The secretariat changed who may be here (access, chair, roles): ask again.
socket.on("room.reset", (msg) => {
  if (!msg || msg.session_id !== SESSION) return;
  joined = false;
  join();
});

socket.on("room.admission", (msg) => {
  if (!msg || msg.session_id !== SESSION) return;
  if (msg.status === "admitted") join();
  else if (msg.status === "declined") showWaiting(true);
});

// ---- showing the room --------------------------------------------------------------

function showWaiting(declined) {
  $("room").hidden = true;
  $("lobby-notice").hidden = false;
  $("lobby-notice-text").hidden = declined;
  $("ask-again").hidden = !declined;
  if (declined) showError(S.declined);
  setStatus(S.connected, "waiting");
}

function showRoom() {
  $("lobby-notice").hidden = true;
  if ($("room").hidden) {
    render(false);
    $("room").hidden = false;
  }
}

function render(live) {
  if (!state) return;
  const active = document.activeElement;
  const focusKey = active && active.dataset ? active.dataset.focusKey : undefined;
  renderAgenda();
  renderFloor(live);
  renderQueue();
  renderLobby();
  renderChat();
  renderPresence();
  if (focusKey) restoreFocus(focusKey, active);
}

function visible(node) {
  return Boolean(node && node.isConnected && !node.hidden && node.getClientRects().length > 0);
}

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

/** Keep keyboard focus on the control the user was on, or the next sensible one. */
function restoreFocus(key, previous) {
  if (previous && visible(previous)) return;
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

function renderAgenda() {
  const current = state.currentItem ? state.currentItem.item_id : null;
  for (const li of $("agenda-items").querySelectorAll("li[data-item-id]")) {
    const id = li.dataset.itemId;
    const info = state.items.get(id);
    const isCurrent = id === current;
    li.classList.toggle("current", isCurrent);
    li.classList.toggle("done", Boolean(info && info.ended && !isCurrent));
    if (isCurrent) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
    let badge = li.querySelector(".item-status");
    if (!badge) {
      badge = el("span", { class: "item-status badge" });
      li.querySelector(".item-title").after(badge);
    }
    const label = isCurrent ? S.current : info && info.ended ? S.done : "";
    badge.textContent = label;
    badge.hidden = !label;
    if (CHAIR) {
      let start = li.querySelector("button[data-action='start']");
      if (!start) {
        const title = li.querySelector(".item-title");
        start = el("button", {
          type: "button",
          class: "small",
          "data-action": "start",
          "data-item": id,
          "data-focus-key": `start:${id}`,
          "aria-describedby": title.id,
          text: S.start,
        });
        li.append(start);
      }
      start.hidden = isCurrent;
    }
  }
  const endItem = $("end-item");
  if (endItem) {
    endItem.dataset.focusKey = "end-item";
    endItem.hidden = !current;
  }
}

function renderFloor(live) {
  const holder = state.floor ? state.floor.membership_id : null;
  const name = $("floor-holder");
  const box = $("floor-box");
  box.classList.toggle("held", Boolean(holder));
  if (holder) {
    name.textContent = nameOf(holder);
    let meta = box.querySelector(".floor-meta");
    if (!meta) {
      meta = el("span", { class: "floor-meta muted" });
      name.after(" ", meta);
    }
    meta.textContent = metaOf(holder);
    meta.hidden = false;
  } else {
    name.textContent = S.nobody;
    const meta = box.querySelector(".floor-meta");
    if (meta) meta.hidden = true;
  }
  $("floor-timer").hidden = !holder;
  const endFloor = $("end-floor");
  if (endFloor) {
    endFloor.dataset.focusKey = "end-floor";
    endFloor.hidden = !holder;
  }
  if (lastFloor !== undefined && live && holder !== lastFloor) {
    announce(holder ? fmt(S.has_floor, { name: nameOf(holder) }) : S.floor_ended);
  }
  lastFloor = holder;
  tick();
  if (holder && timerHandle === null) timerHandle = window.setInterval(tick, 250);
  if (!holder && timerHandle !== null) {
    window.clearInterval(timerHandle);
    timerHandle = null;
  }
}

function tick() {
  if (!state || !state.floor) return;
  const since = Date.parse(state.floor.since);
  const text = formatElapsed(serverNow() - since);
  const timer = $("floor-timer");
  if (timer.textContent !== text) timer.textContent = text;
}

function renderQueue() {
  const list = $("queue");
  list.replaceChildren(
    ...state.queue.map((m, i) => {
      const nameId = `queue-name-${m}`;
      const li = el(
        "li",
        { "data-member": m, class: m === ME ? "me" : undefined },
        el("span", { class: "pos", "aria-hidden": "true", text: `${i + 1}.` }),
        " ",
        el("span", { class: "name", id: nameId, text: nameOf(m) }),
        " ",
        el("span", { class: "muted", text: metaOf(m) }),
      );
      if (CHAIR) {
        li.append(
          " ",
          el("button", {
            type: "button",
            class: "small",
            "data-action": "give",
            "data-member": m,
            "data-focus-key": `give:${m}`,
            "aria-describedby": nameId,
            text: S.give,
          }),
        );
      }
      return li;
    }),
  );
  $("queue-empty").hidden = state.queue.length > 0;
  const request = $("request-floor");
  if (request) {
    const position = state.queue.indexOf(ME);
    const holding = Boolean(state.floor && state.floor.membership_id === ME);
    request.dataset.focusKey = "request-floor";
    $("withdraw-floor").dataset.focusKey = "withdraw-floor";
    request.hidden = position >= 0 || holding;
    $("withdraw-floor").hidden = position < 0;
    $("my-position").textContent = position >= 0 ? fmt(S.your_turn, { n: position + 1 }) : "";
  }
}

function renderLobby() {
  const list = $("lobby-list");
  if (!list) return;
  const rows = [...state.lobby].map(([m, since]) => {
    const nameId = `lobby-name-${m}`;
    return el(
      "li",
      { "data-member": m },
      el("span", { class: "name", id: nameId, text: nameOf(m) }),
      " ",
      el("span", { class: "muted", text: `${metaOf(m)} · ${fmt(S.waiting_since, { time: clockTime(since) })}` }),
      " ",
      el("span", { class: "actions" },
        el("button", {
          type: "button", class: "small primary", "data-action": "admit", "data-member": m,
          "data-focus-key": `admit:${m}`, "aria-describedby": nameId, text: S.admit,
        }),
        " ",
        el("button", {
          type: "button", class: "small", "data-action": "decline", "data-member": m,
          "data-focus-key": `decline:${m}`, "aria-describedby": nameId, text: S.decline,
        }),
      ),
    );
  });
  list.replaceChildren(...rows);
  $("lobby-empty").hidden = rows.length > 0;
}

function chatItem(msg) {
  return el(
    "li",
    { class: msg.membership_id === ME ? "me" : undefined, "data-seq": msg.seq },
    el("p", { class: "chat-meta" },
      el("strong", { text: nameOf(msg.membership_id) }),
      " ",
      el("time", { datetime: msg.at, class: "muted", text: clockTime(msg.at) }),
    ),
    el("p", { class: "chat-text", text: msg.text }),
  );
}

function renderChat() {
  const log = $("chat-log");
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  const first = state.chat.length ? state.chat[0].seq : 0;
  if (chatShown && first > chatShown && state.chat.length === CHAT_WINDOW && state.chatMore) {
    // A catch-up brought a full window past what the log shows: messages in between
    // may be missing. Start again from the window; older ones load on demand.
    log.replaceChildren();
    chatShown = 0;
  }
  if (!chatShown) chatMore = state.chatMore; // the log starts from this window
  let i = state.chat.length;
  while (i > 0 && state.chat[i - 1].seq > chatShown) i -= 1;
  let mine = false;
  for (; i < state.chat.length; i += 1) {
    const msg = state.chat[i];
    log.append(chatItem(msg));
    chatShown = msg.seq;
    mine = mine || msg.membership_id === ME;
  }
  $("chat-empty").hidden = log.childElementCount > 0;
  $("chat-earlier").hidden = !chatMore;
  if (nearBottom || mine) log.scrollTop = log.scrollHeight;
}

/** Prepend the page of messages before the oldest shown, keeping the view still. */
async function loadEarlier() {
  const log = $("chat-log");
  const oldest = log.firstElementChild ? Number(log.firstElementChild.dataset.seq) : chatShown + 1;
  if (loadingEarlier || !chatMore || !oldest) return;
  loadingEarlier = true;
  const button = $("chat-earlier");
  button.disabled = true;
  let ack;
  try {
    ack = await ask("chat.history", { session_id: SESSION, before: oldest, limit: CHAT_WINDOW });
  } catch {
    ack = { error: { message: S.not_sent } };
  } finally {
    loadingEarlier = false;
    button.disabled = false;
  }
  if (ack.error) {
    showError(ack.error.message);
    return;
  }
  const older = (ack.messages || []).filter((m) => m.seq < oldest);
  // Anchored to the bottom: what the reader was looking at stays where it was.
  const fromBottom = log.scrollHeight - log.scrollTop;
  log.prepend(...older.map(chatItem));
  log.scrollTop = log.scrollHeight - fromBottom;
  chatMore = Boolean(ack.more);
  button.hidden = !chatMore;
  $("chat-empty").hidden = log.childElementCount > 0;
  if (!chatMore) log.focus(); // the button went away: keep keyboard focus nearby
}

function renderPresence() {
  const present = state.present.sort((a, b) => nameOf(a).localeCompare(nameOf(b), data.lang));
  $("presence").replaceChildren(
    ...present.map((m) =>
      el(
        "li",
        { "data-member": m, class: m === ME ? "me" : undefined },
        el("span", { class: "name", text: m === ME ? `${nameOf(m)} (${S.you})` : nameOf(m) }),
        " ",
        el("span", { class: "muted", text: metaOf(m) }),
      ),
    ),
  );
  $("presence-count").textContent = `(${present.length})`;
  if (!present.length) $("presence").append(el("li", { class: "muted", text: S.nobody_here }));
}

// ---- controls ----------------------------------------------------------------------

async function command(key, event, fields) {
  if (busy.has(key)) return; // a second press while the first is on its way
  busy.add(key);
  try {
    await send(event, fields);
  } finally {
    busy.delete(key);
  }
}

function onClick(node, handler) {
  if (node) node.addEventListener("click", handler);
}

// One key per control: a second press of the same control while its first is on the
// way is ignored; a different control (Withdraw right after Request) goes through.
onClick($("request-floor"), () => command("floor.request", "floor.request"));
onClick($("withdraw-floor"), () => command("floor.withdraw", "floor.withdraw"));
onClick($("end-floor"), () => command("floor.end", "floor.end"));
onClick($("end-item"), () => command("item.end", "item.end"));
onClick($("chat-earlier"), loadEarlier);
onClick($("ask-again"), () => {
  clearError();
  $("ask-again").hidden = true;
  $("lobby-notice-text").hidden = false;
  join();
});

for (const containerId of ["queue", "lobby-list", "agenda-items"]) {
  onClick($(containerId), (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    const { action, member, item } = button.dataset;
    if (action === "give") command(`give:${member}`, "floor.give", { membership_id: member });
    else if (action === "admit") command(`admit:${member}`, "lobby.admit", { membership_id: member });
    else if (action === "decline") command(`decline:${member}`, "lobby.decline", { membership_id: member });
    else if (action === "start") command(`start:${item}`, "item.start", { item_id: item });
  });
}

const chatForm = $("chat-form");
if (chatForm) {
  chatForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const ack = await send("chat.send", { text });
    if (!ack && !input.value) input.value = text; // not stored: let the user try again
  });
}

for (const id of ["agenda-heading", "speakers-heading", "lobby-heading"]) {
  const heading = $(id);
  if (heading) heading.tabIndex = -1; // focus targets when a pressed button goes away
}

setStatus(S.connecting, "connecting");
