// "This browser's device": set up encryption (keys made here, the recovery code shown
// once, the keys sealed with it for the server, the private keys kept non-extractable
// in IndexedDB), the own safety code, and restoring a device on a new browser from its
// recovery code or passphrase.

import * as ev from "./evidence_crypto.js";
import * as ek from "./evidence_keys.js";
import { announce, api, el, guarded, ME, t } from "./evidence_common.js";
import { refreshKeys, room } from "./evidence_state.js";

const section = () => document.getElementById("ev-device");

function browserLabel() {
  const ua = navigator.userAgent;
  const name = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrom/.test(ua) ? "Chromium" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "macOS" : /Android/.test(ua) ? "Android" : /Linux/.test(ua) ? "Linux" : "";
  return `${name}${os ? ` (${os})` : ""}`.slice(0, 80);
}

export const PASSPHRASE_MIN = 12;

/** The passphrase chosen instead of a recovery code, checked; null for a recovery code. */
function chosenPassphrase() {
  const use = document.getElementById("ev-use-passphrase");
  if (!use || !use.checked) return null;
  const first = document.getElementById("ev-passphrase").value;
  const again = document.getElementById("ev-passphrase-again").value;
  if ([...first].length < PASSPHRASE_MIN) throw new Error(t("passphrase_short", { n: PASSPHRASE_MIN }));
  if (first !== again) throw new Error(t("passphrase_differs"));
  return first;
}

async function setUp(button) {
  await guarded(button, async () => {
    const passphrase = chosenPassphrase();
    const { keys, encPriv, sigPriv } = await ev.generateDeviceKeys();
    const { device } = await api("POST", "/api/devices", {
      label: browserLabel(), sig_alg: keys.sigAlg, sig_pub: ev.b64u(keys.sigPub), enc_pub: ev.b64u(keys.encPub),
    });
    // The server's copy must be ours before anything is sealed for it.
    const wire = ev.deviceWire(ME.person, keys, device.id);
    if (device.sig_pub !== wire.sig_pub || device.enc_pub !== wire.enc_pub || device.person !== ME.person) {
      throw new ev.EvidenceError("device", t("device_mismatch"));
    }
    // A recovery code (shown once), or the person's passphrase (PBKDF2, 600,000 rounds).
    const recovery = passphrase === null ? ev.newRecoveryCode() : null;
    const secret = recovery ? { code: recovery.bytes } : { passphrase, iterations: ev.PBKDF2_ITERATIONS };
    const blob = await ev.sealRecovery(
      { person: ME.person, device: device.id, sigAlg: keys.sigAlg, encPriv, sigPriv }, secret,
    );
    encPriv.fill(0);
    sigPriv.fill(0);
    await api("PUT", `/api/devices/${device.id}/recovery`, blob);
    await ek.saveDevice(room.db, { person: ME.person, device: device.id, keys });
    if (recovery) recovery.bytes.fill(0);
    room.revokedNotice = null;
    room.mine = await ek.loadDevice(room.db, ME.person);
    if (recovery) showRecoveryCode(recovery.code);
    else announce(t("passphrase_done"));
    await refreshKeys();
    document.dispatchEvent(new CustomEvent("evidence:refresh"));
  });
}

let pendingCode = null; // the recovery code, until "I have saved it"

function showRecoveryCode(code) {
  pendingCode = code;
  render();
}

async function restore(form, button) {
  await guarded(button, async () => {
    const secretText = form.querySelector("[name=secret]").value.trim();
    if (!secretText) throw new Error(t("restore_empty"));
    const { blobs } = await api("GET", "/api/me/recovery");
    if (!blobs || blobs.length === 0) throw new Error(t("restore_none"));
    const looksLikeCode = (() => {
      try {
        ev.parseRecoveryCode(secretText);
        return true;
      } catch {
        return false;
      }
    })();
    let opened = null;
    let lastError = null;
    for (const blob of blobs) {
      const secret = blob.kdf === "hkdf-sha256" ? (looksLikeCode ? { code: secretText } : null) : { passphrase: secretText };
      if (!secret) continue;
      try {
        opened = await ev.openRecovery(blob, ME.person, secret);
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!opened) throw new Error(lastError && lastError.code === "recovery-code" ? lastError.message : t("restore_wrong"));
    const keys = await ev.importDeviceKeys({ sigAlg: opened.sigAlg, encPriv: opened.encPriv, sigPriv: opened.sigPriv });
    opened.encPriv.fill(0);
    opened.sigPriv.fill(0);
    await ek.saveDevice(room.db, { person: ME.person, device: opened.device, keys });
    room.revokedNotice = null;
    room.mine = await ek.loadDevice(room.db, ME.person);
    await refreshKeys();
    document.dispatchEvent(new CustomEvent("evidence:refresh"));
    announce(t("restored"));
  });
}

export function render() {
  const node = section();
  const body = [];
  if (room.revokedNotice) {
    body.push(el("p", { class: "error", role: "alert", text: t("device_revoked") }));
  }
  if (pendingCode) {
    const confirm = el("button", { type: "button", class: "primary", id: "ev-code-saved", text: t("code_saved") });
    confirm.addEventListener("click", () => {
      pendingCode = null;
      render();
      announce(t("device_ready"));
    });
    body.push(el("div", { class: "ev-recovery", role: "group", "aria-labelledby": "ev-code-title" },
      el("h3", { id: "ev-code-title", text: t("code_title") }),
      el("p", { text: t("code_explain") }),
      el("p", { class: "ev-code", id: "ev-recovery-code", text: pendingCode }),
      el("p", { class: "muted", text: t("code_once") }),
      confirm));
  } else if (room.mine) {
    const entry = room.trust.get(room.mine.device);
    const code = ev.safetyCode(room.mine.fp);
    body.push(el("p", {}, t("device_ready_here"), " ",
      el("span", { class: "badge ok", text: t("state_own") })));
    body.push(el("p", {}, `${t("own_safety_code")}: `, el("strong", { class: "ev-safety", id: "ev-own-code", text: code })));
    if (entry && entry.warning) body.push(el("p", { class: "error", text: t("own_changed") }));
  } else {
    const setup = el("button", { type: "submit", class: "primary", id: "ev-setup", text: t("setup") });
    const use = el("input", { type: "checkbox", id: "ev-use-passphrase", "aria-controls": "ev-passphrase-fields" });
    const fields = el("div", { id: "ev-passphrase-fields", class: "ev-fields", hidden: true },
      el("p", { class: "muted", id: "ev-passphrase-explain", text: t("passphrase_explain", { n: PASSPHRASE_MIN }) }),
      el("label", { for: "ev-passphrase", text: t("passphrase") }),
      el("input", { id: "ev-passphrase", type: "password", autocomplete: "new-password", "aria-describedby": "ev-passphrase-explain" }),
      el("label", { for: "ev-passphrase-again", text: t("passphrase_again") }),
      el("input", { id: "ev-passphrase-again", type: "password", autocomplete: "new-password" }));
    use.addEventListener("change", () => { fields.hidden = !use.checked; });
    const setupForm = el("form", { class: "ev-setup", id: "ev-setup-form" },
      el("p", {}, use, " ", el("label", { for: "ev-use-passphrase", text: t("use_passphrase") })), fields, setup);
    setupForm.addEventListener("submit", (e) => {
      e.preventDefault();
      setUp(setup);
    });
    const form = el("form", { class: "ev-restore", id: "ev-restore-form" },
      el("label", { for: "ev-restore-secret", text: t("restore_label") }),
      el("input", { id: "ev-restore-secret", name: "secret", type: "password", autocomplete: "off", spellcheck: "false" }),
      el("button", { type: "submit", id: "ev-restore", text: t("restore") }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      restore(form, form.querySelector("button"));
    });
    body.push(el("p", { text: t("setup_explain") }), setupForm,
      el("h3", { text: t("restore_title") }), el("p", { class: "muted", text: t("restore_explain") }), form);
  }
  node.querySelector(".ev-body").replaceChildren(...body);
}

export function hasPendingCode() {
  return pendingCode !== null;
}
