// Chat: the log (which keeps what it has shown, beyond the state's window), loading
// earlier messages on demand (chat.history), and the message form for those who may
// chat. A message that was not stored goes back into the field.
//
// The state keeps the last CHAT_WINDOW messages; the log on the page keeps what it
// has shown and loads older messages on demand.

import { CHAT_WINDOW } from "./room_state.js";
import { $, clockFormatter, el, onClick, peopleIn } from "./room_ui.js";

export function createChatView({ S, me, sessionId, conn, feedback, lang, timezone }) {
  const clockTime = clockFormatter(lang, timezone);
  let chatShown = 0; // highest chat seq already in the log
  let chatMore = false; // the log on the page has older messages still to load
  let loadingEarlier = false;

  function chatItem(msg) {
    const { nameOf } = peopleIn(conn.state, S);
    return el(
      "li",
      { class: msg.membership_id === me ? "me" : undefined, "data-seq": msg.seq },
      el("p", { class: "chat-meta" },
        el("strong", { text: nameOf(msg.membership_id) }),
        " ",
        el("time", { datetime: msg.at, class: "muted", text: clockTime(msg.at) }),
      ),
      el("p", { class: "chat-text", text: msg.text }),
    );
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
      ack = await conn.ask("chat.history", { session_id: sessionId, before: oldest, limit: CHAT_WINDOW });
    } catch {
      ack = { error: { message: S.not_sent } };
    } finally {
      loadingEarlier = false;
      button.disabled = false;
    }
    if (ack.error) {
      feedback.error(ack.error.message);
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

  onClick($("chat-earlier"), loadEarlier);
  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("chat-text");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    const ack = await conn.send("chat.send", { text });
    if (!ack && !input.value) input.value = text; // not stored: let the user try again
  });

  return {
    render({ state, may }) {
      $("chat-form").hidden = !may.chat;
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
        mine = mine || msg.membership_id === me;
      }
      $("chat-empty").hidden = log.childElementCount > 0;
      $("chat-earlier").hidden = !chatMore;
      if (nearBottom || mine) log.scrollTop = log.scrollHeight;
    },
  };
}
