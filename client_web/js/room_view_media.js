// The audio panel: device check, Join / Leave audio, the Microphone toggle with its
// level meter and "You are muted" hint, what to listen to with the original audio
// under it, device choice, the interpreter console, the chair's Unmute / Mute in the
// presence list, the floor speaker's "Slow down" notice, the Camera (floor publishers
// only) and "Audio only" toggles, and the floor's received video.
//
// Channel names: the server names booth channels in English ("Spanish"); the page
// shows each booth's language in its own language (Intl.DisplayNames on the page's
// `lang`), falling back to the server's name. "Floor" is a translated string.
//
// Every permission shown here comes from the server's media state (media.info after
// each join, media.state pushes) and the join's `may`; nothing is decided once at load.
// The person's choices (channel, original audio level, devices, and whether they are
// in the audio at all) are remembered per membership in localStorage and restored on
// reload: someone who had joined the audio (and not pressed Leave audio) is back in it
// as soon as the room is joined, listening to the remembered channel, with no click.
//
// Privacy: after a reload the microphone stays off, whatever it was before, and the
// capture device is not even opened (no recording indicator, no permission prompt)
// until the person turns the Microphone on; the reason line says so. A page reload is
// often a reaction to a problem, and nobody should find themselves on the air again
// without having asked. If the browser holds playback for want of a click (autoplay
// policy), a "Resume audio" button shows, and the status says why nothing is heard.

import { createMedia } from "./room_media.js";
import { $, announce, el, fmt, onAction, onClick, peopleIn } from "./room_ui.js";

const FLOOR = "floor";
const CHECK_MS = 5000;
const HINT_HOLD_MS = 1500;
const SLOWDOWN_SHOW_MS = 8000;
// Roles that can never take the floor: a chair gets no Unmute next to them.
const NEVER_ON_FLOOR = new Set(["interpreter", "observer"]);

let displayNames; // Intl.DisplayNames for the page's language, or null
function languageName(tag) {
  if (displayNames === undefined) {
    try {
      displayNames = new Intl.DisplayNames([document.documentElement.lang || "en"], { type: "language" });
    } catch {
      displayNames = null;
    }
  }
  if (!displayNames || !tag) return null;
  try {
    const name = displayNames.of(tag);
    return name && name !== tag ? name : null;
  } catch {
    return null; // not a language tag
  }
}

function loadChoices(key) {
  try {
    return JSON.parse(window.localStorage.getItem(key) || "{}") || {};
  } catch {
    return {};
  }
}

function saveChoices(key, choices) {
  try {
    window.localStorage.setItem(key, JSON.stringify(choices));
  } catch {
    // Private mode or storage full: the choice lasts for this page only.
  }
}

function setPressed(button, on) {
  button.setAttribute("aria-pressed", on ? "true" : "false");
}

export function createMediaView({ S: strings, me, sessionId, conn }) {
  const S = strings.audio;
  const storeKey = `parley.audio.${me}`;
  const choices = loadChoices(storeKey);
  let room = null; // the latest { state, may, live } of the room
  let lastLive = null; // channel id -> live, to announce changes
  let lastMicLive = false;
  let hintUntil = 0;
  let checkTimer = null;
  let slowdownTimer = null;
  let restored = false; // re-joined by itself after a reload; the microphone stayed off
  let lastBlocked = false;

  const media = createMedia({
    sessionId,
    conn,
    onChange: draw,
    onProblem: problem,
    onSignal: signal,
  });
  if (typeof choices.original === "number") media.setOriginalLevel(choices.original / 100);
  if (choices.video === true) media.setVideo(true);
  if (choices.input) media.setInput(choices.input);
  if (choices.output) media.setOutput(choices.output);

  function remember(change) {
    Object.assign(choices, change);
    saveChoices(storeKey, choices);
  }

  function problem(message) {
    const node = $("audio-problem");
    node.textContent = message || S.failed;
    node.hidden = false;
  }

  function clearProblem() {
    $("audio-problem").hidden = true;
  }

  // ---- names of channels ------------------------------------------------------------

  function channelName(id) {
    if (id === FLOOR) return S.floor;
    const c = media.state && (media.state.channels || []).find((x) => x.id === id);
    return languageName(id) || (c ? c.name : id);
  }

  function channelLabel(c) {
    const name = channelName(c.id) || c.name;
    return c.live ? fmt(S.live, { name }) : name;
  }

  function fillSelect(select, ids, chosen) {
    const channels = (media.state && media.state.channels) || [];
    const options = ids.map((id) => {
      const c = channels.find((x) => x.id === id) || { id, name: id, live: false };
      return el("option", { value: id, "data-live": c.live ? "true" : "false", text: channelLabel(c) });
    });
    const same =
      select.options.length === options.length &&
      options.every((o, i) => select.options[i].value === o.value && select.options[i].textContent === o.textContent);
    if (!same) select.replaceChildren(...options);
    if (ids.includes(chosen)) select.value = chosen;
  }

  // ---- controls ---------------------------------------------------------------------

  onClick($("join-audio"), async () => {
    clearProblem();
    remember({ joined: true });
    const channel = choices.listen || FLOOR;
    await media.join({ channel: validChannel(channel) });
    announce(S.joined);
    refreshDevices();
  });

  onClick($("leave-audio"), async () => {
    remember({ joined: false });
    restored = false;
    await media.leave();
    announce(S.left);
    $("join-audio").focus();
  });

  onClick($("resume-audio"), async () => {
    clearProblem();
    if (await media.resumePlayback()) {
      announce(fmt(S.listening, { name: channelName(media.listening) }));
      $("leave-audio").focus();
    }
  });

  onClick($("microphone"), async () => {
    clearProblem();
    restored = false;
    if (!media.joined) {
      remember({ joined: true });
      await media.join({ channel: validChannel(choices.listen || FLOOR) });
      refreshDevices();
    }
    await media.setMicrophone(!(media.publishingLocally && !media.localMuted));
  });

  onClick($("camera"), async () => {
    clearProblem();
    const on = !media.camera;
    await media.setCamera(on);
    announce(on ? S.camera_on_said : S.camera_off_said);
  });

  onClick($("audio-only"), async () => {
    clearProblem();
    const video = !media.video;
    remember({ video });
    await media.setVideo(video);
  });

  /** Back in the audio by itself after a reload (the room was just joined). */
  async function restore() {
    if (!choices.joined || media.joined || !media.state || media.unavailable) return;
    restored = true;
    await media.join({ channel: validChannel(choices.listen || FLOOR), restoring: true });
    announce(S.rejoined);
    refreshDevices();
  }

  $("listen-to").addEventListener("change", (e) => chooseListen(e.target.value));
  $("listen-source").addEventListener("change", (e) => chooseListen(e.target.value));

  function chooseListen(channel) {
    remember({ listen: channel });
    if (media.joined) media.listen(channel);
    else draw();
    announce(fmt(S.listening, { name: channelName(channel) }));
  }

  function validChannel(channel) {
    const state = media.state;
    if (!state) return channel;
    const ids = state.booth ? state.booth.listen_sources || [] : (state.channels || []).map((c) => c.id);
    return ids.includes(channel) ? channel : ids[0] || FLOOR;
  }

  $("original-audio").value = String(Math.round(media.originalLevel * 100));
  $("original-audio").addEventListener("input", (e) => {
    const value = Number(e.target.value);
    media.setOriginalLevel(value / 100);
    remember({ original: value });
  });

  $("audio-input").addEventListener("change", (e) => {
    remember({ input: e.target.value });
    media.setInput(e.target.value);
  });
  $("audio-output").addEventListener("change", (e) => {
    remember({ output: e.target.value });
    media.setOutput(e.target.value);
  });

  onClick($("check-input"), async () => {
    clearProblem();
    try {
      await media.openMic();
    } catch {
      problem(S.mic_failed);
      return;
    }
    refreshDevices();
    const meter = $("check-level");
    if (checkTimer !== null) window.clearInterval(checkTimer);
    const until = Date.now() + CHECK_MS;
    checkTimer = window.setInterval(() => {
      meter.value = Math.min(1, media.micLevel() * 4);
      if (Date.now() > until) {
        window.clearInterval(checkTimer);
        checkTimer = null;
        meter.value = 0;
        if (!media.joined) media.closeMic();
      }
    }, 100);
  });

  onClick($("play-tone"), () => {
    media.testTone().catch(() => problem(S.failed));
  });

  // The interpreter console.
  async function boothCommand(event, fields, done) {
    const ack = await media.ask(event, fields);
    if (ack.error) {
      if (ack.error.code !== "timeout") problem(ack.error.message);
      return;
    }
    clearProblem();
    if (done) announce(done);
  }

  onClick($("handover"), () => boothCommand("booth.handover", {}, S.handed_over));
  onClick($("slowdown"), () => boothCommand("booth.slowdown", {}, S.slowdown_sent));
  onClick($("carries-floor"), () => {
    const carries = $("carries-floor").getAttribute("aria-pressed") !== "true";
    boothCommand("booth.floor", { carries_floor: carries }, carries ? S.carries_floor : S.carries_floor_off);
  });

  // Talk-back: a toggle (aria-pressed), not push-to-talk: each opening is a new peer
  // connection and a renegotiation at the partner, so the first second of a held press
  // would be lost. While it is open the microphone is off the air (room_media.js).
  onClick($("talkback"), async () => {
    clearProblem();
    const on = !media.talking;
    await media.setTalkback(on);
    announce(on ? S.talkback_open : S.talkback_closed);
  });

  // Cough: held down with the pointer, or with Space / Enter.
  const coughButton = $("cough");
  coughButton.addEventListener("pointerdown", (e) => {
    if (coughButton.disabled) return;
    coughButton.setPointerCapture(e.pointerId);
    media.cough(true);
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    coughButton.addEventListener(type, () => media.cough(false));
  }
  coughButton.addEventListener("keydown", (e) => {
    if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    if (!e.repeat) media.cough(true);
  });
  coughButton.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") media.cough(false);
  });
  coughButton.addEventListener("blur", () => media.cough(false));

  // The chair's Unmute / Mute next to each person in the room.
  onAction($("presence"), (action, { member }) => {
    if (action !== "media-unmute" && action !== "media-mute") return;
    const event = action === "media-unmute" ? "media.unmute" : "media.mute";
    boothCommand(event, { membership_id: member }, null);
  });

  // ---- devices ----------------------------------------------------------------------

  async function refreshDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      return;
    }
    fillDevices($("audio-input"), devices.filter((d) => d.kind === "audioinput"), S.input_n, media.inputId);
    fillDevices($("audio-output"), devices.filter((d) => d.kind === "audiooutput"), S.output_n, media.outputId);
  }

  function fillDevices(select, devices, nameTemplate, chosen) {
    const options = [el("option", { value: "", text: S.default_device })];
    devices.forEach((d, i) => {
      if (!d.deviceId || d.deviceId === "default") return;
      options.push(el("option", { value: d.deviceId, text: d.label || fmt(nameTemplate, { n: i + 1 }) }));
    });
    select.replaceChildren(...options);
    select.value = options.some((o) => o.value === chosen) ? chosen : "";
  }

  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", refreshDevices);
  }
  refreshDevices();
  const selectable = media.outputSelectable();
  $("audio-output").disabled = !selectable;
  $("output-note").hidden = selectable;

  // ---- the meter and the "You are muted" hint ----------------------------------------

  window.setInterval(() => {
    const meter = $("mic-level");
    if (!media.micOpen) {
      if (meter.value !== 0) meter.value = 0;
      $("muted-hint").hidden = true;
      return;
    }
    meter.value = Math.min(1, media.micLevel() * 4);
    const mayPublish = Boolean(media.state && (media.state.may_publish || []).length);
    const now = Date.now();
    if (mayPublish && !media.live && media.speaking()) hintUntil = now + HINT_HOLD_MS;
    $("muted-hint").hidden = !(mayPublish && !media.live && now < hintUntil);
  }, 100);

  // ---- signals ----------------------------------------------------------------------

  function signal(msg) {
    if (msg.type !== "slowdown") return;
    const state = conn.state;
    const holder = state && state.floor ? state.floor.membership_id : null;
    if (holder !== me) return;
    const language = channelName((msg.data && msg.data.language) || "");
    const notice = $("slowdown-notice");
    notice.textContent = fmt(S.slowdown, { language });
    notice.hidden = false;
    if (slowdownTimer !== null) window.clearTimeout(slowdownTimer);
    slowdownTimer = window.setTimeout(() => {
      notice.hidden = true;
      slowdownTimer = null;
    }, SLOWDOWN_SHOW_MS);
  }

  // ---- drawing ----------------------------------------------------------------------

  /** What a chair may do for `member` now: "unmute", "mute" or null. */
  function chairAction(member) {
    const state = conn.state;
    if (!state) return null;
    if (state.unmuted && state.unmuted.has(member)) return "mute";
    const person = state.people.get(member);
    if (!person || NEVER_ON_FLOOR.has(person.role)) return null;
    return state.presentHas(member) ? "unmute" : null;
  }

  function drawChairControls() {
    const may = room ? room.may : null;
    const chair = Boolean(may && may.chair) && Boolean(media.state);
    const list = $("presence");
    for (const li of list.querySelectorAll("li[data-member]")) {
      const member = li.dataset.member;
      let box = li.querySelector(".media-chair");
      const action = chair && member !== me ? chairAction(member) : null;
      if (box && box.dataset.chair === action) continue;
      if (box) box.remove();
      if (!action) continue;
      const { nameOf } = peopleIn(conn.state, strings);
      const name = nameOf(member);
      const unmute = action === "unmute";
      box = el(
        "span",
        { class: "media-chair" },
        el("button", {
          type: "button",
          class: "small",
          "data-action": unmute ? "media-unmute" : "media-mute",
          "data-member": member,
          "data-focus-key": `media-chair:${member}`, // the same for both: focus stays
          title: fmt(unmute ? S.unmute_for : S.mute_for, { name }),
          "aria-label": `${unmute ? S.unmute : S.mute} ${name}`,
          text: unmute ? S.unmute : S.mute,
        }),
      );
      box.dataset.chair = action;
      li.append(" ", box);
    }
  }

  /** The floor's received cameras, in the video area. */
  function drawVideos() {
    const area = $("video-area");
    const shown = media.videos;
    const keep = new Set(shown.map((v) => v.element));
    for (const node of [...area.children]) if (!keep.has(node)) node.remove();
    for (const { element } of shown) {
      if (element.parentNode !== area) {
        element.setAttribute("aria-label", S.video_of_floor);
        area.append(element);
        element.play().catch(() => {});
      }
    }
    area.hidden = shown.length === 0;
  }

  function announceLiveChanges(channels) {
    const now = new Map(channels.map((c) => [c.id, Boolean(c.live)]));
    if (lastLive && media.joined) {
      const heard = new Set([FLOOR, media.listening]);
      for (const [id, live] of now) {
        if (heard.has(id) && lastLive.has(id) && lastLive.get(id) !== live) {
          announce(fmt(live ? S.channel_live : S.channel_quiet, { name: channelName(id) }));
        }
      }
    }
    lastLive = now;
  }

  /** The Camera and "Audio only" toggles, and the floor's video. */
  function drawVideo(state, ready) {
    const camera = $("camera");
    camera.dataset.focusKey = "camera";
    const floorOk = Boolean(ready && (state.may_publish || []).includes(FLOOR));
    const on = media.camera;
    camera.disabled = !floorOk && !on;
    setPressed(camera, on);
    let reason;
    if (!ready) reason = "";
    else if (state.booth) reason = S.camera_booth;
    else if (!floorOk) reason = state.publish_reason || S.camera_not_floor;
    else if (!on) reason = S.camera_off;
    else reason = media.sendingVideo ? S.camera_on : S.camera_waits;
    $("camera-reason").textContent = reason;

    const audioOnly = $("audio-only");
    audioOnly.dataset.focusKey = "audio-only";
    audioOnly.disabled = !ready;
    setPressed(audioOnly, !media.video);
    $("audio-only-note").textContent = media.video ? S.audio_only_off : S.audio_only_on;
    drawVideos();
  }

  function draw() {
    const state = media.state;
    const joined = media.joined;
    const ready = Boolean(state) && !media.unavailable;

    // Engine facts.
    const info = media.info;
    const ceiling = $("audio-ceiling");
    if (info && info.engine === "embedded" && typeof info.ceiling === "number") {
      ceiling.textContent = fmt(S.ceiling, { n: info.ceiling });
      ceiling.hidden = false;
    } else {
      ceiling.hidden = true;
    }

    // Join / leave.
    const join = $("join-audio");
    join.hidden = joined;
    join.disabled = !ready;
    $("leave-audio").hidden = !joined;
    const blocked = joined && media.blocked;
    $("resume-audio").hidden = !blocked;
    if (blocked && !lastBlocked) announce(S.blocked);
    lastBlocked = blocked;
    $("audio-check").hidden = joined;
    let status;
    if (media.unavailable) status = S.unavailable;
    else if (!joined) status = S.not_joined;
    else if (media.blocked) status = S.blocked;
    else if (media.waiting) status = fmt(S.waiting, { name: channelName(media.listening) });
    else status = fmt(S.listening, { name: channelName(media.listening) });
    $("audio-state").textContent = status;
    $("audio-panel").dataset.joined = joined ? "true" : "false";

    drawVideo(state, ready);

    const controls = $("audio-controls");
    controls.hidden = !ready;
    if (!ready) {
      $("booth-console").hidden = true;
      drawChairControls();
      return;
    }

    // Microphone.
    const mayPublish = state.may_publish || [];
    const mic = $("microphone");
    const live = media.live;
    mic.dataset.focusKey = "microphone";
    setPressed(mic, live);
    mic.disabled = mayPublish.length === 0 && !media.publishingLocally;
    const reason = $("mic-reason");
    if (mayPublish.length === 0) {
      reason.textContent = state.publish_reason || "";
    } else if (!joined) {
      reason.textContent = S.join_first;
    } else if (media.talking && media.publishingLocally) {
      reason.textContent = S.talkback_open;
    } else if (media.publishingLocally && state.publishing && !state.publishing.forwarded && !media.localMuted) {
      reason.textContent = S.mic_standby;
    } else if (restored && !live && !media.publishingLocally) {
      reason.textContent = S.mic_off_restored;
    } else {
      reason.textContent = live ? S.mic_live : S.mic_off;
    }
    if (live !== lastMicLive) announce(live ? S.mic_live : S.mic_off);
    lastMicLive = live;

    // Listening.
    const channels = state.channels || [];
    announceLiveChanges(channels);
    const booth = state.booth;
    const chosen = joined ? media.listening : validChannel(choices.listen || FLOOR);
    $("listen-row").hidden = Boolean(booth);
    fillSelect($("listen-to"), channels.map((c) => c.id), chosen);
    $("original-row").hidden = Boolean(booth) || chosen === FLOOR;

    // The interpreter console.
    const consoleBox = $("booth-console");
    consoleBox.hidden = !booth;
    $("room").classList.toggle("interpreting", Boolean(booth));
    if (booth) {
      $("booth-heading").textContent = fmt(S.booth, { language: channelName(booth.language) });
      const role = booth.active ? S.booth_active : S.booth_standby;
      $("booth-role").textContent = booth.active && !booth.standby ? `${role} ${S.no_standby}` : role;
      fillSelect($("listen-source"), booth.listen_sources || [], chosen);
      const own = channels.find((c) => c.id === booth.language);
      setPressed($("carries-floor"), Boolean(own && own.carries_floor));
      $("carries-floor").disabled = !booth.active;
      $("handover").disabled = !booth.active || !booth.standby;
      $("cough").disabled = !media.publishingLocally;
      setPressed($("cough"), media.coughing);
      $("talkback").disabled = !joined;
      setPressed($("talkback"), media.talking);
      $("talkback-heard").hidden = !media.hearingTalkback;
    }
    drawChairControls();
  }

  return {
    media,
    /** The room was (re)joined: the media state is asked again, the audio restored
     * (after a reload: joined again if it was). */
    async rejoined() {
      try {
        await media.rejoined();
        await restore();
      } catch {
        problem(null);
      }
    },
    render(next) {
      room = next;
      draw();
    },
  };
}
