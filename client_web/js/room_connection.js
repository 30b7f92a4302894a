// The room's connection: Socket.IO with its back-off, joining, and applying the
// session event log to a RoomState (room_state.js) strictly in sequence order.
//
// Ordering: every room.event carries the session's sequence number. Events are
// applied strictly in order; one that arrives early waits in `pending`, a gap is
// filled with room.sync, and a reconnect re-joins with `since` so nothing is missed
// and nothing is applied twice. Every command carries an idempotency key and is
// resent with the same key when no acknowledgement arrives: the server stores it once.
// A room.beacon names the newest seq: a client behind it (a broadcast lost on the way)
// asks room.sync.
//
// No DOM here. What the page shows is the caller's business, through `feedback` (the
// status banner: status(key, kind), error(message), clearError(), wait(seconds)) and
// `hooks`:
//   joined(ack)          a join was answered "joined": the ack carries the server's
//                        permissions now (`may`, `is_chair`); called before the state
//                        it brings is applied, on every join and re-join
//   changed(state, live) the state moved on (live: events were applied one by one)
//   entered()            the room is open to this person on this connection
//   waiting(declined)    in the lobby, or declined by the chair
//   refused(error)       no longer admitted under the current rules
// Further subscribers (media, for one) can take the same hooks from the entry module.

import { io } from "/static/vendor/socket.io.esm.min.js";
import { RoomState } from "./room_state.js";

const ACK_TIMEOUT_MS = 8000;
// A join on a live connection is answered, however busy the server is (after a restart
// a thousand people re-join at once): sending it again meanwhile only doubles the work
// that delays the answer. Waited for longer; a dropped connection ends the wait anyway.
const JOIN_ACK_TIMEOUT_MS = 30000;
const MAX_ATTEMPTS = 6;
const GAP_GRACE_MS = 300;
// Reconnection: exponential back-off from 1 s to 30 s, each delay jittered by ±50 %,
// so that the clients of a restarted server do not all come back in the same second.
const BACKOFF = { reconnectionDelay: 1000, reconnectionDelayMax: 30_000, randomizationFactor: 0.5 };

function newKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Plain-HTTP deployments are not a secure context: no randomUUID there.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The server's clock as seen from here, estimated from the timestamps it sends. */
function serverClock() {
  let offset = 0; // estimated server clock minus local clock, in ms
  // Every server timestamp that reaches us is a lower bound of the server clock at
  // arrival (server_now is truncated to the second; a live event's at_ms is exact):
  // the largest recent bound is the best estimate, off by the network latency only.
  let bound = { offset: -Infinity, at: 0 };
  return {
    now: () => Date.now() + offset,
    note(serverMs) {
      if (!Number.isFinite(serverMs)) return;
      const now = Date.now();
      const seen = serverMs - now;
      // Old bounds expire so that a local clock adjustment is followed.
      if (seen > bound.offset || now - bound.at > 60_000) bound = { offset: seen, at: now };
      offset = bound.offset;
    },
  };
}

/**
 * Connect to one session's room. Returns { state, serverNow, join, ask, send, command,
 * on }: `on(event, handler)` subscribes to a server push on this connection (media).
 */
export function connectRoom({ sessionId, strings, feedback, hooks }) {
  const S = strings;
  const clock = serverClock();
  let state = null; // RoomState once the server answered a join
  let joined = false; // in the room on the current connection
  let catchingUp = false; // a join or sync is in flight: hold live events
  const pending = new Map(); // seq -> event that arrived ahead of its turn
  let gapTimer = null;
  let joinWaiters = [];
  let joinInFlight = false;
  let joinAgain = false;
  const busy = new Set(); // commands waiting for their acknowledgement

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

  async function ask(event, payload, timeoutMs = ACK_TIMEOUT_MS) {
    // Rejects when no acknowledgement arrives in time or the connection drops.
    return socket.timeout(timeoutMs).emitWithAck(event, payload);
  }

  /** Send a command; resend with the same idempotency key until acknowledged. */
  async function send(event, fields = {}) {
    const payload = { session_id: sessionId, idem: newKey(), ...fields };
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt += 1) {
      await whenJoined();
      let ack;
      try {
        ack = await ask(event, payload);
      } catch {
        continue; // no answer: the same key again, so it is stored once
      }
      if (ack && ack.error) {
        if (ack.error.code === "rate_limited") feedback.wait(ack.error.retry_after);
        else feedback.error(ack.error.message);
        return null;
      }
      feedback.clearError();
      return ack;
    }
    feedback.error(S.not_sent);
    return null;
  }

  // One key per control: a second press of the same control while its first is on the
  // way is ignored; a different control (Withdraw right after Request) goes through.
  async function command(key, event, fields) {
    if (busy.has(key)) return;
    busy.add(key);
    try {
      await send(event, fields);
    } finally {
      busy.delete(key);
    }
  }

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
    const payload = { session_id: sessionId };
    if (state) payload.since = state.seq;
    let ack;
    try {
      ack = await ask("room.join", payload, JOIN_ACK_TIMEOUT_MS);
    } catch {
      catchingUp = false;
      if (socket.connected) window.setTimeout(join, 1000);
      return;
    }
    catchingUp = false;
    if (ack.error && ack.error.code === "unavailable") {
      // Overloaded for now: join again after the time the server names, spread out so
      // that everyone told to wait does not come back in the same instant.
      const wait = (ack.error.retry_after || 1) * (1 + Math.random());
      feedback.error(ack.error.message);
      window.setTimeout(join, wait * 1000);
      return;
    }
    if (ack.error) {
      feedback.error(ack.error.message);
      feedback.status("connected", "error");
      // No longer admitted under the current rules: show nothing of the room.
      if (ack.error.code === "not_found" || ack.error.code === "forbidden") hooks.refused(ack.error);
      return;
    }
    if (ack.status === "waiting") {
      hooks.waiting(false);
      return;
    }
    feedback.clearError(); // e.g. an earlier "busy, joining again" answer
    // What this person may do comes with every join (the policy's answer now), not only
    // with the page: a chair or access change shows the right controls after re-joining.
    hooks.joined(ack);
    clock.note(Date.parse(ack.server_now || ""));
    absorbCatchUp(ack);
    hooks.entered();
    markJoined();
  }

  async function sync() {
    if (catchingUp || !joined || !state) return;
    catchingUp = true;
    let ack;
    try {
      ack = await ask("room.sync", { session_id: sessionId, since: state.seq });
    } catch {
      catchingUp = false;
      if (socket.connected) scheduleGapCheck();
      return;
    }
    catchingUp = false;
    if (ack.error) {
      feedback.error(ack.error.message);
      return;
    }
    clock.note(Date.parse(ack.server_now || ""));
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
    if (!event || event.session_id !== sessionId) return;
    clock.note(event.at_ms); // live: just written by the server
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
    hooks.changed(state, applied);
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
    feedback.status("connected", "ok");
    join();
  });

  socket.on("disconnect", (reason) => {
    joined = false;
    feedback.status("reconnecting", "lost");
    // socket.io leaves reconnecting to us when the server closed the connection; if the
    // login has ended, the next attempt says so (connect_error below).
    if (reason === "io server disconnect") reconnectLater();
  });

  socket.on("connect_error", (err) => {
    const code = err && err.data && err.data.code;
    if (code === "unauthenticated") {
      feedback.status("signed_out", "error");
      feedback.error(S.signed_out);
    } else if (!socket.active) {
      // Refused by the server: socket.io does not retry by itself.
      feedback.status("reconnecting", "error");
      reconnectLater();
    } else {
      feedback.status("reconnecting", "lost");
    }
  });

  socket.on("room.event", onEvent);

  // The server's periodic word on the newest seq: a broadcast lost on the way (a message
  // queue gap) would otherwise go unnoticed until the next event arrives.
  socket.on("room.beacon", (msg) => {
    if (!msg || msg.session_id !== sessionId || !state || !joined) return;
    if (Number.isInteger(msg.seq) && msg.seq > state.seq) sync();
  });

  // The secretariat changed who may be here (access, chair, roles): ask again. The new
  // join's acknowledgement carries the new permissions (hooks.joined).
  socket.on("room.reset", (msg) => {
    if (!msg || msg.session_id !== sessionId) return;
    joined = false;
    join();
  });

  socket.on("room.admission", (msg) => {
    if (!msg || msg.session_id !== sessionId) return;
    if (msg.status === "admitted") join();
    else if (msg.status === "declined") hooks.waiting(true);
  });

  return {
    get state() {
      return state;
    },
    serverNow: clock.now,
    join,
    ask,
    send,
    command,
    on(event, handler) {
      socket.on(event, handler);
    },
  };
}
