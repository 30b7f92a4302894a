// "In the room": who is present, sorted by name, with the count.

import { $, el, peopleIn } from "./room_ui.js";

export function createPresenceView({ S, me, lang }) {
  return {
    render({ state }) {
      const { nameOf, metaOf } = peopleIn(state, S);
      const present = state.present.sort((a, b) => nameOf(a).localeCompare(nameOf(b), lang));
      $("presence").replaceChildren(
        ...present.map((m) =>
          el(
            "li",
            { "data-member": m, class: m === me ? "me" : undefined },
            el("span", { class: "name", text: m === me ? `${nameOf(m)} (${S.you})` : nameOf(m) }),
            " ",
            el("span", { class: "muted", text: metaOf(m) }),
          ),
        ),
      );
      $("presence-count").textContent = `(${present.length})`;
      if (!present.length) $("presence").append(el("li", { class: "muted", text: S.nobody_here }));
    },
  };
}
