// "People and keys": every participant's devices with their safety codes and the trust
// this browser computes (verified, pinned, warning, revoked); "Verify" shows both codes
// to compare and signs a verify statement; "Vouch" cross-signs a new device of one's
// own; "Revoke" for one's own devices, and for the secretariat any device.

import * as ev from "./evidence_crypto.js";
import { announce, api, el, guarded, ME, page, roleWord, t } from "./evidence_common.js";
import { deviceById, refreshKeys, room } from "./evidence_state.js";

const section = () => document.getElementById("ev-people");

export function trustBadge(entry) {
  if (!entry) return el("span", { class: "badge", text: t("state_unknown") });
  if (entry.revoked) return el("span", { class: "badge danger", text: t("state_revoked") });
  if (entry.warning) return el("span", { class: "badge warn", text: t("state_warning") });
  if (entry.own) return el("span", { class: "badge ok", text: t("state_own") });
  if (entry.verified) return el("span", { class: "badge ok", text: t("state_verified") });
  if (entry.pinned) return el("span", { class: "badge", text: t("state_pinned") });
  return el("span", { class: "badge", text: t("state_unknown") });
}

let comparing = null; // {entry, kind}

async function sign(entry, kind, button) {
  await guarded(button, async () => {
    const mine = room.mine;
    if (!mine) throw new Error(t("need_device"));
    const body = await ev.makeTrustStatement(kind, {
      by: mine.device, byDevice: mine.wire, subject: entry.id, subjectDevice: deviceById(entry.id),
    });
    const statement = await ev.signStatement(mine.keys, body);
    await api("POST", "/api/statements", { kind, body: statement.body, signature: statement.signature });
    comparing = null;
    await refreshKeys();
    announce(t(kind === "verify" ? "verified_done" : "vouched_done"));
  });
}

async function revoke(entry, button) {
  if (!window.confirm(t("revoke_confirm"))) return;
  await guarded(button, async () => {
    await api("DELETE", `/api/devices/${entry.id}`);
    await refreshKeys();
    announce(t("revoked_done"));
  });
}

function compareBox(entry, kind) {
  const mine = room.mine;
  const match = el("button", { type: "button", class: "primary", text: t("codes_match") });
  match.addEventListener("click", () => sign(entry, kind, match));
  const cancel = el("button", { type: "button", text: t("cancel") });
  cancel.addEventListener("click", () => {
    comparing = null;
    render();
  });
  return el("div", { class: "ev-compare", role: "group", "aria-label": t("compare_title") },
    el("p", { text: t(kind === "verify" ? "compare_explain" : "vouch_explain") }),
    el("dl", {},
      el("dt", { text: t("their_code") }), el("dd", {}, el("strong", { class: "ev-safety ev-their-code", text: entry.safetyCode })),
      el("dt", { text: t("your_code") }), el("dd", {}, el("strong", { class: "ev-safety", text: ev.safetyCode(mine.fp) }))),
    el("div", { class: "row" }, match, cancel));
}

function deviceRow(person, entry) {
  const actions = [];
  const mine = room.mine;
  if (mine && !entry.revoked && !entry.own) {
    if (entry.person !== ME.person && !entry.verified) {
      const b = el("button", { type: "button", class: "ev-verify", text: t("verify") });
      b.addEventListener("click", () => { comparing = { id: entry.id, kind: "verify" }; render(); });
      actions.push(b);
    }
    if (entry.person === ME.person && !entry.verified) {
      const b = el("button", { type: "button", class: "ev-vouch", text: t("vouch") });
      b.addEventListener("click", () => { comparing = { id: entry.id, kind: "cross-sign" }; render(); });
      actions.push(b);
    }
  }
  if (!entry.revoked && (entry.person === ME.person || page.may.manage)) {
    const b = el("button", { type: "button", class: "link ev-revoke", text: t("revoke") });
    b.addEventListener("click", () => revoke(entry, b));
    actions.push(b);
  }
  const li = el("li", { class: "ev-device", "data-device": entry.id },
    el("div", { class: "row" },
      el("span", { text: entry.device.label || t("device") }),
      trustBadge(entry),
      el("span", { class: "ev-safety", text: entry.safetyCode }),
      ...actions));
  if (entry.warning) li.append(el("p", { class: "warn-text", text: t("warning_" + entry.warning) }));
  if (comparing && comparing.id === entry.id) li.append(compareBox(entry, comparing.kind));
  return li;
}

export function render() {
  const node = section().querySelector(".ev-body");
  const rows = [];
  if (page.may.manage) rows.push(el("p", { class: "hint", text: t("read_aloud_hint") }));
  if (!room.mine) rows.push(el("p", { class: "muted", text: t("need_device_verify") }));
  for (const person of room.listing.people) {
    const entries = person.devices.map((d) => room.trust.get(d.id)).filter(Boolean);
    rows.push(el("li", { class: "ev-person", "data-person": person.person },
      el("div", { class: "row" }, el("strong", { text: person.name }),
        el("span", { class: "muted", text: [roleWord(person.role), person.delegation].filter(Boolean).join(" · ") })),
      entries.length
        ? el("ul", { class: "ev-devices" }, entries.map((e) => deviceRow(person, e)))
        : el("p", { class: "muted", text: t("no_device_yet") })));
  }
  node.replaceChildren(...rows.filter((r) => r.tagName !== "LI"), el("ul", { class: "ev-people" }, rows.filter((r) => r.tagName === "LI")));
}
