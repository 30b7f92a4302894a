// The agenda: which item is current or done; for those who may chair, Start per item
// and End item.

import { $, el, focusTarget, onAction, onClick } from "./room_ui.js";

export function createAgendaView({ S, conn }) {
  focusTarget("agenda-heading");
  onAction($("agenda-items"), (action, { item }) => {
    if (action === "start") conn.command(`start:${item}`, "item.start", { item_id: item });
  });
  onClick($("end-item"), () => conn.command("item.end", "item.end"));

  return {
    render({ state, may }) {
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
        let start = li.querySelector("button[data-action='start']");
        if (!start && may.chair) {
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
        if (start) start.hidden = isCurrent || !may.chair;
      }
      const endItem = $("end-item");
      endItem.dataset.focusKey = "end-item";
      endItem.hidden = !current || !may.chair;
    },
  };
}
