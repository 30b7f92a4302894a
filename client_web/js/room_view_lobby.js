// Admission. For those who may chair: the lobby panel, who is waiting since when, with
// Admit and Decline. For the person waiting: the notice that replaces the room until
// they are admitted, and Ask again after a decline.

import { $, clockFormatter, el, fmt, focusTarget, onAction, onClick, peopleIn } from "./room_ui.js";

export function createLobbyView({ S, conn, lang, timezone }) {
  const clockTime = clockFormatter(lang, timezone);
  focusTarget("lobby-heading");
  onAction($("lobby-list"), (action, { member }) => {
    if (action === "admit") conn.command(`admit:${member}`, "lobby.admit", { membership_id: member });
    else if (action === "decline") conn.command(`decline:${member}`, "lobby.decline", { membership_id: member });
  });

  return {
    render({ state, may }) {
      $("lobby-panel").hidden = !may.chair;
      if (!may.chair) {
        $("lobby-list").replaceChildren();
        return;
      }
      const { nameOf, metaOf } = peopleIn(state, S);
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
      $("lobby-list").replaceChildren(...rows);
      $("lobby-empty").hidden = rows.length > 0;
    },
  };
}

/** The notice shown instead of the room while waiting for admission. */
export function createWaitingView({ S, conn, feedback }) {
  onClick($("ask-again"), () => {
    feedback.clearError();
    $("ask-again").hidden = true;
    $("lobby-notice-text").hidden = false;
    conn.join();
  });

  return {
    show(declined) {
      $("lobby-notice").hidden = false;
      $("lobby-notice-text").hidden = declined;
      $("ask-again").hidden = !declined;
      if (declined) feedback.error(S.declined);
      feedback.status("connected", "waiting");
    },
    hide() {
      $("lobby-notice").hidden = true;
    },
  };
}
