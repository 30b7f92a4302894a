// The visit page, live: watches the visit over Socket.IO and, when the agenda changes
// (a scheduler proposal was accepted), re-reads the server-rendered agenda list in the
// zone the page shows (?tz=) and swaps it in, saying so in a polite live region. When
// evidence is shared with this person (`evidence.shared`), it shows the notice with the
// way to the evidence room (the document's name is sealed: only that page opens it).
//
// The server renders every time (in the viewer's zone, with the offset); this script
// only moves HTML the server produced. A reconnected socket watches again and re-reads
// the agenda, since news may have been missed while it was away.

import { io } from "/static/vendor/socket.io.esm.min.js";

const data = JSON.parse(document.getElementById("visit-data").textContent);
const body = document.getElementById("agenda-body");
const status = document.getElementById("agenda-status");
const VISIT = data.visit_id;

let fetching = false;
let again = null; // ids to mark once the fetch in flight is done (a newer change arrived)
let watchedOnce = false;

function fragmentUrl() {
  const tz = new URLSearchParams(window.location.search).get("tz") || data.tz || "mine";
  return `/visits/${encodeURIComponent(VISIT)}/agenda-fragment?tz=${encodeURIComponent(tz)}`;
}

function announce(text) {
  // Cleared first so the same words are announced again on a second change.
  status.textContent = "";
  window.setTimeout(() => { status.textContent = text; }, 50);
}

function markMoved(ids) {
  for (const id of ids) {
    const item = body.querySelector(`li.session[data-session-id="${CSS.escape(id)}"]`);
    if (!item || item.querySelector(".moved-badge")) continue;
    item.classList.add("moved");
    const badge = document.createElement("span");
    badge.className = "badge moved-badge";
    badge.textContent = data.strings.moved;
    const badges = item.querySelector(".row.spread > span");
    (badges || item).prepend(badge);
  }
}

async function refresh(movedIds, message) {
  if (fetching) {
    again = [...(again || []), ...movedIds];
    return;
  }
  fetching = true;
  try {
    const response = await fetch(fragmentUrl(), { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (response.redirected || !response.ok) {
      // Signed out or no longer a member: the full page says what to do.
      window.location.reload();
      return;
    }
    const html = await response.text();
    const doc = new DOMParser().parseFromString(html, "text/html");
    body.replaceChildren(...Array.from(doc.body.childNodes));
    markMoved(movedIds);
    if (message) announce(message);
  } catch {
    // Offline for a moment: the next reconnect re-reads the agenda.
  } finally {
    fetching = false;
    if (again !== null) {
      const ids = again;
      again = null;
      refresh(ids, data.strings.changed);
    }
  }
}

// Exponential back-off from 1 s to 30 s, jittered by ±50 %: the clients of a restarted
// server do not all come back in the same second.
const socket = io({ transports: ["websocket"], reconnectionDelay: 1000, reconnectionDelayMax: 30_000, randomizationFactor: 0.5 });

socket.on("connect", () => {
  socket.timeout(10000).emit("visit.watch", { visit_id: VISIT }, (err, ack) => {
    if (err || !ack || !ack.ok) return;
    if (watchedOnce) refresh([], null); // back after a disconnect: catch up quietly
    watchedOnce = true;
    body.dataset.live = "on";
  });
});

socket.on("disconnect", () => {
  body.dataset.live = "off";
});

socket.on("agenda.changed", (event) => {
  if (!event || event.visit_id !== VISIT) return;
  refresh((event.sessions || []).map((s) => s.id), data.strings.changed);
});

socket.on("evidence.shared", (event) => {
  if (!event || event.visit !== VISIT) return;
  const news = document.getElementById("evidence-news");
  if (news) news.hidden = false;
});
