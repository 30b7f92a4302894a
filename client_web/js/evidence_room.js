// The evidence room's page: wires this browser's device, people and keys, upload,
// documents and the secretariat's actions (evidence_*_ui.js), and keeps them live over
// Socket.IO: `evidence.shared` re-reads the documents, `evidence.revoked` of this
// browser's device forgets it here and says why.

import { io } from "/static/vendor/socket.io.esm.min.js";
import * as ek from "./evidence_keys.js";
import * as admin from "./evidence_admin_ui.js";
import { announce, notify, showError, t, VISIT } from "./evidence_common.js";
import * as deviceUi from "./evidence_device_ui.js";
import * as documentsUi from "./evidence_documents_ui.js";
import * as peopleUi from "./evidence_people_ui.js";
import { forgetMine, loadMine, onChange, refreshKeys, room } from "./evidence_state.js";
import * as uploadUi from "./evidence_upload_ui.js";

function renderAll() {
  deviceUi.render();
  peopleUi.render();
  uploadUi.render();
  admin.render();
  documentsUi.render();
}

let refreshing = null;
let again = false;

/** Re-read the keys and the documents (one at a time; a request meanwhile runs once more). */
async function refresh() {
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      do {
        again = false;
        await refreshKeys();
        await documentsUi.refreshDocuments();
      } while (again);
    } catch (e) {
      showError(e);
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

onChange((what) => {
  if (what === "keys" || what === "device") renderAll();
});

/** Tell this person about a document shared with them (by name once it opens here). */
function announceShared(event) {
  const item = room.documents.find((d) => d.doc.id === event.document);
  if (!item) return;
  const uploadedHere = item.manifest && room.mine && item.manifest.uploader === room.mine.device &&
    item.doc.version.id === event.version;
  if (uploadedHere) return; // this browser sent it
  const name = item.meta ? item.meta.name : t("sealed_name");
  notify(t("news_shared", { name }));
  announce(t("news_shared", { name }));
}

function live() {
  const socket = io({ transports: ["websocket"], reconnectionDelay: 1000, reconnectionDelayMax: 30_000, randomizationFactor: 0.5 });
  let watchedOnce = false;
  socket.on("connect", () => {
    socket.timeout(10000).emit("visit.watch", { visit_id: VISIT }, (err, ack) => {
      if (err || !ack || !ack.ok) return;
      document.body.dataset.evidenceLive = "on";
      if (watchedOnce) refresh(); // news may have been missed while away
      watchedOnce = true;
    });
  });
  socket.on("disconnect", () => {
    document.body.dataset.evidenceLive = "off";
  });
  socket.on("evidence.shared", async (event) => {
    if (!event || event.visit !== VISIT) return;
    await refresh();
    announceShared(event);
  });
  socket.on("evidence.revoked", async (event) => {
    if (!event || !room.mine || event.device !== room.mine.device) {
      refresh();
      return;
    }
    await forgetMine("revoked");
    await refresh();
  });
}

async function main() {
  room.db = await ek.openKeyStore();
  await loadMine();
  document.addEventListener("evidence:refresh", () => refresh());
  admin.install();
  renderAll();
  await documentsUi.sweepTemp();
  await refresh();
  document.body.dataset.evidenceReady = "yes";
  live();
}

main().catch((e) => showError(e));
