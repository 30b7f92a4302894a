// The live session room, entry module (loaded by server/templates/room.html).
//
// It reads the page data (#room-data: ids, language, zone, translated strings),
// opens the connection (room_connection.js: Socket.IO, joining, events applied in
// order to a RoomState from room_state.js) and redraws the views (room_view_*.js,
// one per panel) whenever the state or the permissions change.
//
// Permissions: what this person may do (speak, chat, chair; whether they chair) is
// the server's answer in the acknowledgement of every room.join, including the
// re-join after a reconnect or a room.reset. Nothing is decided from the page once
// loaded: each join's answer replaces `may` and every view redraws its controls.
//
// A later subscriber (media, for one) plugs in next to the views: it receives the
// same { state, may, live } on every change, and the connection for its commands.

import { connectRoom } from "./room_connection.js";
import { $, keepingFocus } from "./room_ui.js";
import { createAgendaView } from "./room_view_agenda.js";
import { createChatView } from "./room_view_chat.js";
import { createFloorView } from "./room_view_floor.js";
import { createLobbyView, createWaitingView } from "./room_view_lobby.js";
import { createMediaView } from "./room_view_media.js";
import { createPresenceView } from "./room_view_presence.js";
import { createStatusView } from "./room_view_status.js";

const data = JSON.parse($("room-data").textContent);
const S = data.strings;

// Until the server answers a join, nothing is offered.
const NOTHING = Object.freeze({ speak: false, chat: false, chair: false, isChair: false });
let may = NOTHING;

function permissionsFrom(ack) {
  const m = ack.may || {};
  return Object.freeze({
    speak: Boolean(m.speak),
    chat: Boolean(m.chat),
    chair: Boolean(m.chair),
    isChair: Boolean(ack.is_chair),
  });
}

const status = createStatusView(S);
let views = [];
let waiting = null;
let mediaView = null;

const conn = connectRoom({
  sessionId: data.session_id,
  strings: S,
  feedback: status,
  hooks: {
    joined(ack) {
      may = permissionsFrom(ack);
    },
    changed(_state, live) {
      render(live);
    },
    entered() {
      showRoom();
      // Every (re)join: the media state is asked anew, and the audio restored.
      mediaView.rejoined();
    },
    waiting(declined) {
      $("room").hidden = true;
      waiting.show(declined);
    },
    refused() {
      $("room").hidden = true;
    },
  },
});

const ctx = {
  S,
  me: data.me,
  sessionId: data.session_id,
  lang: data.lang,
  timezone: data.timezone,
  conn,
  feedback: status,
};
waiting = createWaitingView(ctx);
mediaView = createMediaView(ctx);
views = [
  status,
  createAgendaView(ctx),
  createFloorView(ctx),
  createLobbyView(ctx),
  createChatView(ctx),
  createPresenceView(ctx),
  mediaView, // after the presence view: it adds the chair's Unmute / Mute there
];

function render(live) {
  const state = conn.state;
  if (!state) return;
  const room = { state, may, live };
  keepingFocus(() => {
    for (const view of views) view.render(room);
  });
}

function showRoom() {
  waiting.hide();
  if ($("room").hidden) {
    render(false);
    $("room").hidden = false;
  }
}

status.status("connecting", "connecting");
