// The speakers' panel: who has the floor with a running timer (on the server's clock),
// the speakers' list, Request / Withdraw for those who may speak, and Give the floor /
// End the floor for those who may chair.

import { formatElapsed } from "./room_state.js";
import { $, announce, el, fmt, focusTarget, onAction, onClick, peopleIn } from "./room_ui.js";

export function createFloorView({ S, me, conn }) {
  let lastFloor; // undefined until the first render, then the holder (or null)
  let timerHandle = null;

  focusTarget("speakers-heading");
  onClick($("request-floor"), () => conn.command("floor.request", "floor.request"));
  onClick($("withdraw-floor"), () => conn.command("floor.withdraw", "floor.withdraw"));
  onClick($("end-floor"), () => conn.command("floor.end", "floor.end"));
  onAction($("queue"), (action, { member }) => {
    if (action === "give") conn.command(`give:${member}`, "floor.give", { membership_id: member });
  });

  function tick() {
    const state = conn.state;
    if (!state || !state.floor) return;
    const since = Date.parse(state.floor.since);
    const text = formatElapsed(conn.serverNow() - since);
    const timer = $("floor-timer");
    if (timer.textContent !== text) timer.textContent = text;
  }

  function renderFloor(state, may, live, { nameOf, metaOf }) {
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
    endFloor.dataset.focusKey = "end-floor";
    endFloor.hidden = !holder || !may.chair;
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

  function renderQueue(state, may, { nameOf, metaOf }) {
    $("queue").replaceChildren(
      ...state.queue.map((m, i) => {
        const nameId = `queue-name-${m}`;
        const li = el(
          "li",
          { "data-member": m, class: m === me ? "me" : undefined },
          el("span", { class: "pos", "aria-hidden": "true", text: `${i + 1}.` }),
          " ",
          el("span", { class: "name", id: nameId, text: nameOf(m) }),
          " ",
          el("span", { class: "muted", text: metaOf(m) }),
        );
        if (may.chair) {
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
    $("floor-controls").hidden = !may.speak;
    const request = $("request-floor");
    const withdraw = $("withdraw-floor");
    const position = state.queue.indexOf(me);
    const holding = Boolean(state.floor && state.floor.membership_id === me);
    request.dataset.focusKey = "request-floor";
    withdraw.dataset.focusKey = "withdraw-floor";
    request.hidden = position >= 0 || holding;
    withdraw.hidden = position < 0;
    $("my-position").textContent = position >= 0 ? fmt(S.your_turn, { n: position + 1 }) : "";
  }

  return {
    render({ state, may, live }) {
      const names = peopleIn(state, S);
      renderFloor(state, may, live, names);
      renderQueue(state, may, names);
    },
  };
}
