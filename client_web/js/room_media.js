// The room's audio: WebRTC peer connections and their signalling over the room's
// Socket.IO connection (docs/realtime.md, "Audio and interpretation").
//
// A connection has at most one publishing peer connection (our microphone, into one
// channel) and one listening peer connection (the engine's offer: the floor plus the
// chosen channel). The server decides who may publish where; this module asks
// (media.info on every join, media.state pushes) and does what the answers allow.
//
// Listening: media.listen answers the engine's offer (or none while nobody speaks on
// what we hear; a media.offer follows). Every offer is answered with media.answer;
// `fresh: true` means a new RTCPeerConnection (the old one is closed), false means the
// one we have is renegotiated. Local ICE candidates trickle through media.candidate
// once the server has the matching description.
//
// Talk-back (interpreters only): a second publishing peer connection (`pc:
// "talkback"`) beside the booth publication, heard by the booth partner only, as an
// extra track labelled "talkback" in their listening connection. While the line is
// open the microphone's own publication is held off the air (as with Cough), so the
// audience never hears an aside. Received talk-back plays at full level, and only on
// an interpreter's page (the server never sends it to anyone else; this page drops it
// too if it ever came).
//
// Reconnection, with no user action: after every room (re)join (a socket reconnect, a
// room.reset) and whenever a peer connection fails (ICE failed, or disconnected for
// more than 2 s, or closed under us), we listen again to the remembered channel and
// publish again if we were publishing.
//
// Playback and the browser's autoplay policy: everything heard plays through one
// AudioContext (received tracks also go through muted media elements, which Chromium
// needs to pull them into WebAudio). Joined without a user gesture (the automatic
// re-join after a reload), the browser may keep the context suspended, or refuse an
// element's play(): then `blocked` is true until `resumePlayback()` is called from a
// click (the page's "Resume audio" button); it is never left silent without a word.
//
// Mixing: every received track goes through a WebAudio gain node. `tracks` ({mid:
// channel}) of each offer tells floor tracks from a booth's; while listening to a
// booth, the floor plays quietly under it at the "original audio" level.
//
// Video (the floor only): with the Camera on, the floor publication carries the
// camera as a second, VP8, m-line (a new media.publish replaces the previous one,
// audio only again when the Camera goes off). A listener asks for video with
// `media.listen {video: true}` ("Audio only" off); each received video track whose
// mid maps to the floor plays in a muted <video> element the page shows (`videos`),
// dropped when the track ends or its transceiver stops receiving.
//
// No DOM here, except the muted media elements Chromium needs to pull remote audio
// into WebAudio, and the floor's <video> elements (the page places them). What the
// page shows is room_view_media.js's business, through `onChange()`.

const FLOOR = "floor";
const TALKBACK = "talkback";
const DISCONNECTED_GRACE_MS = 2000;
const WATCH_MS = 500;
const SILENT_DB = -75; // an analyser peak below this is silence
const SPEAKING_LEVEL = 0.06; // RMS level above which someone is talking
const PLAYBACK_GRACE_MS = 1000; // how long a new AudioContext may take to start running

function candidateJson(candidate) {
  if (!candidate || !candidate.candidate) return null;
  return { candidate: candidate.candidate, sdpMid: candidate.sdpMid, sdpMLineIndex: candidate.sdpMLineIndex };
}

function ignore() {}

/** The peak of an analyser: {frequency (Hz) or null when silent, db}. */
function dominant(analyser, sampleRate) {
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let best = -Infinity;
  let index = -1;
  for (let i = 1; i < bins.length; i += 1) {
    if (bins[i] > best) {
      best = bins[i];
      index = i;
    }
  }
  if (index < 0 || !(best > SILENT_DB)) return { frequency: null, db: Number.isFinite(best) ? best : null };
  return { frequency: Math.round((index * sampleRate) / analyser.fftSize), db: Math.round(best) };
}

/** RMS level (0..1) of an analyser's current time-domain window. */
function rms(analyser) {
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  let sum = 0;
  for (const v of samples) sum += v * v;
  return Math.sqrt(sum / samples.length);
}

/**
 * The room's media. `conn` is room_connection.js's; `onChange()` is called whenever
 * something the page shows changed; `onProblem(message)` for a refusal worth showing;
 * `onSignal(msg)` for the room's ephemeral signals (room.signal).
 */
export function createMedia({ sessionId, conn, onChange, onProblem, onSignal }) {
  let info = null; // media.info's engine facts: {engine, ceiling, ice_servers}
  let unavailable = null; // why media.info failed (the message), or null
  let state = null; // the latest media state
  let joined = false; // the person pressed "Join audio" (and not "Leave audio")
  let ctx = null; // AudioContext, made on the Join audio press
  let master = null; // GainNode all received audio goes through
  let outputId = "";
  let inputId = "";
  let micStream = null; // getUserMedia's stream (only for someone who may publish)
  let micAnalyser = null;
  let micSource = null;
  let blocked = false; // the autoplay policy stopped playback: wait for a click

  // Listening.
  let listenChannel = FLOOR; // what the person chose (remembered across reconnects)
  let listenPc = null; // {pc, sub, ready, queued, badSince}
  let tracks = {}; // mid -> channel, from the latest offer
  const received = new Map(); // mid -> {track, element, source, gain, analyser}
  const videos = new Map(); // mid -> {track, element}: the floor speakers' cameras
  let listenVideo = false; // "Audio only" off: media.listen asks for video
  let originalLevel = 0.2;
  let listenChain = Promise.resolve();
  let listenWaiting = false; // nobody publishes on what we hear yet
  let listenEpoch = 0; // bumped by each listen from scratch (media.stop, media.listen)
  let offersEpoch = 0; // the epoch of media.offer pushes arriving now

  // Publishing.
  let publishPc = null; // {pc, channel, ready, queued, badSince, sender}
  let wantPublish = false; // the person turned their microphone on (until they leave)
  let localMuted = false; // microphone turned off while the publication stays
  let coughing = false;
  let publishChain = Promise.resolve();
  let publishing = false; // a media.publish is in flight
  let wantCamera = false; // the person turned their Camera on (floor only)
  let camStream = null; // getUserMedia's camera stream, while the Camera is on
  let publishedVideo = false; // the current publication carries the camera

  // Talk-back.
  let talkbackPc = null; // {pc, ready, queued, badSince, track}
  let wantTalkback = false; // the person opened the line (until they close it or leave)
  let talkbackChain = Promise.resolve();
  let talkbackInFlight = false;

  const changed = () => onChange();

  async function ask(event, fields = {}) {
    let ack;
    try {
      ack = await conn.ask(event, { session_id: sessionId, ...fields });
    } catch {
      return { error: { code: "timeout", message: "" } };
    }
    return ack || { error: { code: "invalid", message: "" } };
  }

  function iceServers() {
    return (info && Array.isArray(info.ice_servers) && info.ice_servers) || [];
  }

  // ---- media state -----------------------------------------------------------------

  function applyState(next, fresh = false) {
    if (!next || (next.session_id && next.session_id !== sessionId)) return;
    state = next;
    // The server dropped our publication (we lost the right to publish): close ours.
    // (Not on a fresh media.info after a re-join: there we publish again.)
    if (!fresh && !next.publishing && publishPc && publishPc.ready && !publishing) {
      closePublish();
      closeCamera();
      wantPublish = false;
      localMuted = false;
    }
    // Likewise the talk-back line, and for someone no longer in a booth.
    if (wantTalkback && !next.booth) closeTalkback(true);
    else if (!fresh && !next.talkback && talkbackPc && talkbackPc.ready && !talkbackInFlight) closeTalkback(false);
    remix();
    changed();
  }

  /** media.info: the engine facts and the state now. Called after every room join. */
  async function refresh() {
    const ack = await ask("media.info");
    if (ack.error) {
      unavailable = ack.error.message || "unavailable";
      changed();
      return false;
    }
    unavailable = null;
    info = { engine: ack.engine, ceiling: ack.ceiling, ice_servers: ack.ice_servers };
    const { ok: _ok, engine: _e, ceiling: _c, ice_servers: _i, ...rest } = ack;
    applyState(rest, true);
    return true;
  }

  /** The room was (re)joined: ask the state, then restore what we had. */
  async function rejoined() {
    const ok = await refresh();
    if (!ok || !joined) return;
    if (listenPc) closeListen();
    listenAgain();
    if (wantPublish) {
      if (publishPc) closePublish();
      publishAgain();
    }
    if (wantTalkback) {
      if (talkbackPc) dropTalkbackPc();
      talkbackAgain();
    }
  }

  // ---- audio output ----------------------------------------------------------------

  function ensureContext() {
    if (!ctx) {
      ctx = new AudioContext();
      master = ctx.createGain();
      master.connect(ctx.destination);
      if (outputId) applyOutput();
      const made = ctx;
      made.addEventListener("statechange", () => {
        if (made.state === "running" && blocked) {
          blocked = false;
          changed();
        }
      });
    }
    if (ctx.state === "suspended") ctx.resume().catch(notePlaybackBlocked);
    return ctx;
  }

  function notePlaybackBlocked() {
    if (!joined || blocked) return;
    blocked = true;
    changed();
  }

  /** After joining: if the context is still not running a moment later (the browser
   * waits for a user gesture), say so rather than stay silent. */
  function watchPlayback() {
    window.setTimeout(() => {
      if (joined && ctx && ctx.state !== "running") notePlaybackBlocked();
    }, PLAYBACK_GRACE_MS);
  }

  /** From a click (a user gesture): start the context and every element again. */
  async function resumePlayback() {
    const audio = ensureContext();
    let refused = false;
    try {
      await audio.resume();
    } catch {
      refused = true;
    }
    const plays = [...received.values()].map((node) => node.element.play().catch(() => {
      refused = true;
    }));
    await Promise.all(plays);
    blocked = refused || audio.state !== "running";
    changed();
    return !blocked;
  }

  function outputSelectable() {
    return typeof AudioContext !== "undefined" && typeof AudioContext.prototype.setSinkId === "function";
  }

  function applyOutput() {
    if (ctx && outputSelectable()) ctx.setSinkId(outputId || "").catch(() => onProblem(null));
  }

  function floorGain() {
    if (listenChannel === FLOOR) return 1;
    const chosen = state && (state.channels || []).find((c) => c.id === listenChannel);
    // The booth carries the floor, or nobody interprets now: the floor at full level.
    if (!chosen || chosen.carries_floor || !chosen.live) return 1;
    return originalLevel;
  }

  function remix() {
    if (!ctx) return;
    const level = floorGain();
    for (const [mid, node] of received) {
      const channel = tracks[mid];
      let value = channel === FLOOR ? level : 1;
      if (channel === TALKBACK && !(state && state.booth)) value = 0;
      node.gain.gain.setTargetAtTime(value, ctx.currentTime, 0.05);
    }
  }

  function addTrack(mid, track) {
    dropTrack(mid);
    const audio = ensureContext();
    const stream = new MediaStream([track]);
    // Chromium pulls a remote track into WebAudio only while a media element plays it.
    const element = new Audio();
    element.muted = true;
    element.srcObject = stream;
    element.play().catch((err) => {
      if (err && err.name === "NotAllowedError") notePlaybackBlocked();
    });
    const source = audio.createMediaStreamSource(stream);
    const gain = audio.createGain();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 4096;
    analyser.smoothingTimeConstant = 0.2;
    source.connect(gain);
    gain.connect(analyser);
    gain.connect(master);
    received.set(mid, { track, element, source, gain, analyser });
    track.addEventListener("ended", () => {
      if (received.get(mid) && received.get(mid).track === track) dropTrack(mid);
    });
    remix();
    changed();
  }

  function dropTrack(mid) {
    const node = received.get(mid);
    if (!node) return;
    received.delete(mid);
    node.source.disconnect();
    node.gain.disconnect();
    node.element.srcObject = null;
    changed();
  }

  function addVideo(mid, track) {
    dropVideo(mid);
    const element = document.createElement("video");
    element.muted = true;
    element.autoplay = true;
    element.playsInline = true;
    element.setAttribute("playsinline", "");
    element.srcObject = new MediaStream([track]);
    element.play().catch(ignore);
    videos.set(mid, { track, element });
    const gone = () => {
      if (videos.get(mid) && videos.get(mid).track === track) dropVideo(mid);
    };
    track.addEventListener("ended", gone);
    changed();
  }

  function dropVideo(mid) {
    const node = videos.get(mid);
    if (!node) return;
    videos.delete(mid);
    node.element.srcObject = null;
    node.element.remove();
    changed();
  }

  // ---- listening -------------------------------------------------------------------

  function closeListen() {
    if (!listenPc) return;
    const { pc } = listenPc;
    listenPc = null;
    pc.close();
    for (const mid of [...received.keys()]) dropTrack(mid);
    for (const mid of [...videos.keys()]) dropVideo(mid);
  }

  function newListenPc() {
    const pc = new RTCPeerConnection({ iceServers: iceServers() });
    const entry = { pc, sub: null, ready: false, queued: [], badSince: null };
    pc.addEventListener("track", (e) => {
      const mid = e.transceiver && e.transceiver.mid;
      if (mid === null || mid === undefined) return;
      if (e.track.kind === "audio") addTrack(mid, e.track);
      else if (e.track.kind === "video" && tracks[mid] === FLOOR && listenVideo) addVideo(mid, e.track);
    });
    pc.addEventListener("icecandidate", (e) => trickle(entry, "listen", e.candidate));
    pc.addEventListener("iceconnectionstatechange", () => {
      if (listenPc !== entry) return;
      if (pc.iceConnectionState === "failed") listenAgain();
      changed();
    });
    return entry;
  }

  function trickle(entry, which, candidate) {
    const json = candidateJson(candidate);
    if (candidate && !json) return;
    if (!entry.ready) {
      entry.queued.push(json);
      return;
    }
    ask("media.candidate", { pc: which, candidate: json }).catch(ignore);
  }

  function flushCandidates(entry, which) {
    entry.ready = true;
    const queued = entry.queued;
    entry.queued = [];
    for (const json of queued) ask("media.candidate", { pc: which, candidate: json }).catch(ignore);
  }

  /** Answer one engine offer ({sub, sdp, fresh, tracks}). */
  async function takeOffer(offer) {
    if (!joined || !offer) return;
    if (!offer.sdp) {
      // Nothing to hear now (the last speaker, or a partner's talk-back, went): close
      // the peer connection; an offer follows when someone speaks.
      closeListen();
      listenWaiting = true;
      changed();
      return;
    }
    listenWaiting = false;
    if (!offer.fresh && !listenPc) {
      // A renegotiation of a peer connection we no longer have: start over.
      scheduleListenAgain();
      return;
    }
    if (offer.fresh) {
      closeListen();
      listenPc = newListenPc();
    }
    const entry = listenPc;
    tracks = offer.tracks || {};
    const { pc } = entry;
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
    } catch {
      if (listenPc === entry) closeListen();
      onProblem(null);
      return;
    }
    entry.sub = offer.sub;
    // Tracks whose transceiver stopped receiving are gone from the mix.
    for (const t of pc.getTransceivers()) {
      if (t.mid === null || !(t.currentDirection === "inactive" || t.stopped)) continue;
      if (received.has(t.mid)) dropTrack(t.mid);
      if (videos.has(t.mid)) dropVideo(t.mid);
    }
    // Video no longer asked for, or a mid that no longer carries the floor: gone.
    for (const mid of [...videos.keys()]) if (!listenVideo || tracks[mid] !== FLOOR) dropVideo(mid);
    const ack = await ask("media.answer", { sub: offer.sub, sdp: pc.localDescription.sdp });
    if (listenPc !== entry) return;
    if (ack.error) {
      // conflict: a newer offer is on its way; anything else: start over.
      if (ack.error.code !== "conflict") scheduleListenAgain();
      return;
    }
    flushCandidates(entry, "listen");
    remix();
    changed();
  }

  function onListenAck(ack) {
    if (ack.error) {
      // Not answered, or asked between a reconnect and its re-join ("Join the room
      // first."): the re-join listens again by itself.
      if (ack.error.code === "timeout" || ack.error.code === "unavailable") scheduleListenAgain();
      // Too many negotiations in a short time: try again when the server says.
      else if (ack.error.code === "rate_limited") scheduleListenAgain(retryMs(ack.error));
      else if (ack.error.code !== "conflict") onProblem(ack.error.message);
      return null;
    }
    if (!ack.sdp) {
      closeListen();
      listenWaiting = true;
      changed();
      return null;
    }
    return ack;
  }

  let retryTimer = null;
  function retryMs(error) {
    const seconds = Number(error && error.retry_after);
    return Number.isFinite(seconds) && seconds > 0 ? Math.min(30_000, seconds * 1000) : 1000;
  }

  function scheduleListenAgain(delay = 1000) {
    if (retryTimer !== null || !joined) return;
    retryTimer = window.setTimeout(() => {
      retryTimer = null;
      listenAgain();
    }, delay);
  }

  function listenStep(step) {
    listenChain = listenChain.then(() => (joined ? step() : null)).catch(ignore);
    return listenChain;
  }

  /** Listen from scratch (after a failure, a re-join, or on joining): the server drops
   * what it had for us, and the engine's next offer is for a new peer connection. */
  function listenAgain() {
    return listenStep(async () => {
      listenEpoch += 1;
      const mine = listenEpoch;
      closeListen();
      await ask("media.stop");
      offersEpoch = mine; // offers pushed from now on are for the new listener
      const offer = onListenAck(await ask("media.listen", { channel: listenChannel, video: listenVideo }));
      if (offer) await takeOffer(offer);
    });
  }

  /** Choose what to hear: the floor or a booth's channel (the peer connection we have
   * is renegotiated, or replaced when the engine says so). */
  function listen(channel) {
    listenChannel = channel;
    remix();
    changed();
    if (!listenPc) return listenAgain();
    return listenStep(async () => {
      const offer = onListenAck(await ask("media.listen", { channel, video: listenVideo }));
      if (offer) await takeOffer(offer);
    });
  }

  /** "Audio only" off (`on`: true) or on: the same channel, with or without video. */
  function setVideo(on) {
    listenVideo = Boolean(on);
    if (!listenVideo) for (const mid of [...videos.keys()]) dropVideo(mid);
    changed();
    if (!joined) return Promise.resolve();
    return listen(listenChannel);
  }

  function queueOffer(offer) {
    if (!offer || offer.session_id !== sessionId) return;
    // Pushed before our last media.stop was answered: for the listener the server
    // dropped since (a null one would close the new peer connection).
    const epoch = offersEpoch;
    listenChain = listenChain.then(() => (epoch === listenEpoch ? takeOffer(offer) : null)).catch(ignore);
  }

  // ---- publishing ------------------------------------------------------------------

  async function openMic() {
    if (micStream && micStream.getAudioTracks().some((t) => t.readyState === "live")) return micStream;
    const audio = inputId ? { deviceId: { exact: inputId } } : true;
    micStream = await navigator.mediaDevices.getUserMedia({ audio, video: false });
    const context = ensureContext();
    if (micSource) micSource.disconnect();
    micSource = context.createMediaStreamSource(micStream);
    micAnalyser = context.createAnalyser();
    micAnalyser.fftSize = 1024;
    micSource.connect(micAnalyser);
    return micStream;
  }

  function closeMic() {
    if (micSource) micSource.disconnect();
    micSource = null;
    micAnalyser = null;
    if (micStream) for (const t of micStream.getTracks()) t.stop();
    micStream = null;
  }

  function closePublish() {
    if (!publishPc) return;
    const { pc, track, videoTrack } = publishPc;
    publishPc = null;
    publishedVideo = false;
    pc.close();
    if (track) track.stop();
    if (videoTrack) videoTrack.stop();
  }

  async function openCamera() {
    if (camStream && camStream.getVideoTracks().some((t) => t.readyState === "live")) return camStream;
    camStream = await navigator.mediaDevices.getUserMedia({ audio: false, video: true });
    return camStream;
  }

  function closeCamera() {
    if (camStream) for (const t of camStream.getTracks()) t.stop();
    camStream = null;
  }

  /** The engines take VP8 only: offer it alone when the browser lets us say so. */
  function preferVp8(transceiver) {
    if (typeof transceiver.setCodecPreferences !== "function" || !window.RTCRtpSender) return;
    const caps = RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
    const vp8 = caps ? caps.codecs.filter((c) => /^video\/(vp8|rtx)$/i.test(c.mimeType)) : [];
    if (!vp8.some((c) => /vp8/i.test(c.mimeType))) return;
    try {
      transceiver.setCodecPreferences(vp8);
    } catch {
      // The browser's own choice then; the server answers VP8 or refuses.
    }
  }

  /** What goes out: a copy of the microphone's track, so the level meter (and the
   * "You are muted" hint) keeps hearing the microphone while the copy is off. */
  function sendTrack(stream) {
    const track = stream.getAudioTracks()[0].clone();
    track.enabled = !localMuted;
    return track;
  }

  function publishChannel() {
    if (!state) return null;
    if (state.booth) return state.booth.language;
    const may = state.may_publish || [];
    return may.includes(FLOOR) ? FLOOR : may[0] || null;
  }

  async function publishOnce() {
    const channel = publishChannel();
    if (!joined || !channel) return false;
    let stream;
    try {
      stream = await openMic();
    } catch {
      onProblem(null);
      return false;
    }
    // The camera goes out on the floor only (booths carry audio only).
    let videoTrack = null;
    if (wantCamera && channel === FLOOR) {
      try {
        videoTrack = (await openCamera()).getVideoTracks()[0].clone();
      } catch {
        wantCamera = false;
        onProblem(null);
      }
    }
    closePublish();
    const pc = new RTCPeerConnection({ iceServers: iceServers() });
    const track = sendTrack(stream);
    const entry = { pc, channel, ready: false, queued: [], badSince: null, sender: null, track, videoTrack };
    publishPc = entry;
    pc.addEventListener("icecandidate", (e) => trickle(entry, "publish", e.candidate));
    pc.addEventListener("iceconnectionstatechange", () => {
      if (publishPc === entry && pc.iceConnectionState === "failed") publishAgain();
      changed();
    });
    entry.sender = pc.addTransceiver(track, { direction: "sendonly" }).sender;
    if (videoTrack) preferVp8(pc.addTransceiver(videoTrack, { direction: "sendonly" }));
    publishing = true;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const ack = await ask("media.publish", { channel, sdp: pc.localDescription.sdp });
      if (publishPc !== entry) return false;
      if (ack.error) {
        closePublish();
        // A conflict ("Join the room first.") is a reconnect under way: the re-join
        // publishes again. Too many negotiations: again when the server says.
        if (ack.error.code === "rate_limited") window.setTimeout(publishAgain, retryMs(ack.error));
        else if (ack.error.code !== "timeout" && ack.error.code !== "conflict") onProblem(ack.error.message);
        return false;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      publishedVideo = Boolean(ack.video);
      flushCandidates(entry, "publish");
      if (offAir()) await ask("media.cough", { on: true });
      return true;
    } catch {
      if (publishPc === entry) closePublish();
      onProblem(null);
      return false;
    } finally {
      publishing = false;
      changed();
    }
  }

  function publishAgain() {
    publishChain = publishChain
      .then(() => (wantPublish && joined ? publishOnce() : false))
      .catch(ignore);
    return publishChain;
  }

  /** The Microphone toggle. */
  async function setMicrophone(on) {
    if (on) {
      wantPublish = true;
      localMuted = false;
      if (publishPc) publishPc.track.enabled = true;
      if (!publishPc) {
        await publishAgain();
      } else if (!offAir()) {
        await ask("media.cough", { on: false });
      }
    } else {
      localMuted = true;
      if (publishPc) publishPc.track.enabled = false;
      if (publishPc) await ask("media.cough", { on: true });
    }
    changed();
  }

  /** The Camera toggle (floor publishers only): the floor publication is made again,
   * with the camera or without it (the server takes the new offer in place of the
   * old one). Off the air (no publication yet), the choice waits for the Microphone. */
  async function setCamera(on) {
    wantCamera = Boolean(on);
    changed();
    if (publishPc && wantPublish) await publishAgain();
    if (!wantCamera) closeCamera();
    changed();
  }

  /** The interpreter's Cough button: held, the publication is not forwarded. */
  function cough(on) {
    if (coughing === on) return;
    coughing = on;
    changed();
    if (!publishPc) return;
    // Releasing Cough does not undo a microphone the person turned off (or an open
    // talk-back line).
    if (!on && offAir()) return;
    ask("media.cough", { on }).catch(ignore);
  }

  /** Is the microphone's publication to be held at the engine? */
  function offAir() {
    return localMuted || coughing || wantTalkback;
  }

  // ---- talk-back -------------------------------------------------------------------

  function dropTalkbackPc() {
    if (!talkbackPc) return;
    const { pc, track } = talkbackPc;
    talkbackPc = null;
    pc.close();
    if (track) track.stop();
  }

  /** Close the line (`tell`: and tell the server). */
  function closeTalkback(tell) {
    const had = Boolean(talkbackPc);
    wantTalkback = false;
    dropTalkbackPc();
    if (tell && had) ask("media.unpublish", { channel: TALKBACK }).catch(ignore);
    changed();
  }

  async function talkbackOnce() {
    if (!joined || !wantTalkback || !(state && state.booth)) return false;
    let stream;
    try {
      stream = await openMic();
    } catch {
      onProblem(null);
      return false;
    }
    dropTalkbackPc();
    const pc = new RTCPeerConnection({ iceServers: iceServers() });
    const track = stream.getAudioTracks()[0].clone();
    const entry = { pc, ready: false, queued: [], badSince: null, track, sender: null };
    talkbackPc = entry;
    pc.addEventListener("icecandidate", (e) => trickle(entry, TALKBACK, e.candidate));
    pc.addEventListener("iceconnectionstatechange", () => {
      if (talkbackPc === entry && pc.iceConnectionState === "failed") talkbackAgain();
      changed();
    });
    entry.sender = pc.addTransceiver(track, { direction: "sendonly" }).sender;
    talkbackInFlight = true;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const ack = await ask("media.publish", { channel: TALKBACK, sdp: pc.localDescription.sdp });
      if (talkbackPc !== entry) return false;
      if (ack.error) {
        dropTalkbackPc();
        if (ack.error.code === "rate_limited") {
          window.setTimeout(talkbackAgain, retryMs(ack.error));
        } else if (ack.error.code !== "timeout" && ack.error.code !== "conflict") {
          wantTalkback = false;
          onProblem(ack.error.message);
        }
        return false;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
      flushCandidates(entry, TALKBACK);
      return true;
    } catch {
      if (talkbackPc === entry) dropTalkbackPc();
      onProblem(null);
      return false;
    } finally {
      talkbackInFlight = false;
      changed();
    }
  }

  function talkbackAgain() {
    talkbackChain = talkbackChain.then(() => (wantTalkback && joined ? talkbackOnce() : false)).catch(ignore);
    return talkbackChain;
  }

  /** The console's Talk-back toggle: open the line to the booth partner, or close it.
   * While it is open, the microphone's publication is held off the air. */
  async function setTalkback(on) {
    if (on === wantTalkback) return;
    if (on) {
      wantTalkback = true;
      changed();
      if (publishPc && !localMuted && !coughing) ask("media.cough", { on: true }).catch(ignore);
      await talkbackAgain();
    } else {
      closeTalkback(true);
      if (publishPc && !offAir()) await ask("media.cough", { on: false });
    }
    changed();
  }

  // ---- join and leave --------------------------------------------------------------

  /** Join the audio. `restoring`: the automatic re-join after a reload (no click):
   * the microphone is not opened (see room_view_media.js), and playback is watched
   * for the autoplay policy. */
  async function join({ channel, restoring = false } = {}) {
    ensureContext();
    joined = true;
    if (channel) listenChannel = channel;
    changed();
    if (restoring) watchPlayback();
    // The microphone opens only for someone who may publish now (for the level meter
    // and the "You are muted" hint); it goes out only when they turn it on.
    if (!restoring && state && (state.may_publish || []).length) {
      localMuted = true;
      try {
        await openMic();
      } catch {
        onProblem(null);
      }
    }
    await listenAgain();
    changed();
  }

  async function leave() {
    joined = false;
    wantPublish = false;
    wantCamera = false;
    closeCamera();
    localMuted = false;
    coughing = false;
    listenWaiting = false;
    blocked = false;
    closeTalkback(true);
    if (publishPc) {
      closePublish();
      ask("media.unpublish").catch(ignore);
    }
    if (listenPc) closeListen();
    ask("media.stop").catch(ignore);
    closeMic();
    changed();
  }

  // ---- devices ---------------------------------------------------------------------

  async function setInput(deviceId) {
    inputId = deviceId || "";
    if (!micStream) return;
    const old = micStream;
    micStream = null;
    try {
      const stream = await openMic();
      if (publishPc && publishPc.sender) {
        const track = sendTrack(stream);
        await publishPc.sender.replaceTrack(track);
        publishPc.track.stop();
        publishPc.track = track;
      }
      if (talkbackPc && talkbackPc.sender) {
        const track = stream.getAudioTracks()[0].clone();
        await talkbackPc.sender.replaceTrack(track);
        talkbackPc.track.stop();
        talkbackPc.track = track;
      }
    } catch {
      micStream = old;
      onProblem(null);
      return;
    }
    for (const t of old.getTracks()) t.stop();
  }

  function setOutput(deviceId) {
    outputId = deviceId || "";
    applyOutput();
  }

  /** A short tone through WebAudio on the chosen output (the speaker test). */
  async function testTone() {
    const audio = ensureContext();
    await audio.resume().catch(ignore);
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 440;
    const t = audio.currentTime;
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(0.2, t + 0.05);
    gain.gain.setValueAtTime(0.2, t + 0.6);
    gain.gain.linearRampToValueAtTime(0, t + 0.7);
    osc.connect(gain);
    gain.connect(audio.destination);
    osc.start(t);
    osc.stop(t + 0.75);
    osc.addEventListener("ended", () => gain.disconnect());
  }

  // ---- health: peer connections that failed or were closed under us ----------------

  function unhealthy(entry, now) {
    if (!entry) return false;
    const s = entry.pc.iceConnectionState;
    if (s === "closed" || s === "failed" || entry.pc.connectionState === "closed") return true;
    if (s === "disconnected") {
      if (entry.badSince === null) entry.badSince = now;
      return now - entry.badSince > DISCONNECTED_GRACE_MS;
    }
    entry.badSince = null;
    return false;
  }

  window.setInterval(() => {
    if (!joined) return;
    const now = Date.now();
    if (unhealthy(listenPc, now)) {
      listenPc = null;
      listenAgain();
    }
    if (unhealthy(publishPc, now) && !publishing) {
      publishPc = null;
      publishAgain();
    }
    if (unhealthy(talkbackPc, now) && !talkbackInFlight) {
      talkbackPc = null;
      talkbackAgain();
    }
  }, WATCH_MS);

  // ---- server pushes ---------------------------------------------------------------

  conn.on("media.state", (msg) => applyState(msg));
  conn.on("media.offer", queueOffer);
  conn.on("room.signal", (msg) => {
    if (msg && msg.session_id === sessionId) onSignal(msg);
  });

  // ---- what the page reads ---------------------------------------------------------

  function micLevel() {
    return micAnalyser ? rms(micAnalyser) : 0;
  }

  const api = {
    get info() {
      return info;
    },
    get unavailable() {
      return unavailable;
    },
    get state() {
      return state;
    },
    get joined() {
      return joined;
    },
    get listening() {
      return listenChannel;
    },
    get waiting() {
      return listenWaiting;
    },
    get micOpen() {
      return Boolean(micStream);
    },
    get publishingLocally() {
      return Boolean(publishPc && publishPc.ready);
    },
    get localMuted() {
      return localMuted;
    },
    get coughing() {
      return coughing;
    },
    /** The Camera is on (asked for by the person). */
    get camera() {
      return wantCamera;
    },
    /** The publication now carries the camera (the server said so). */
    get sendingVideo() {
      return Boolean(publishPc && publishPc.ready && publishedVideo);
    },
    /** "Audio only" is off: the floor's video is asked for. */
    get video() {
      return listenVideo;
    },
    /** The floor's received cameras: [{mid, element}]. */
    get videos() {
      return [...videos].map(([mid, node]) => ({ mid, element: node.element }));
    },
    /** The talk-back line is open (asked for by the person). */
    get talking() {
      return wantTalkback;
    },
    /** A talk-back track from the booth partner is being received. */
    get hearingTalkback() {
      return [...received.keys()].some((mid) => tracks[mid] === TALKBACK);
    },
    /** The browser's autoplay policy holds playback until a click. */
    get blocked() {
      return blocked;
    },
    get originalLevel() {
      return originalLevel;
    },
    get inputId() {
      return inputId;
    },
    get outputId() {
      return outputId;
    },
    outputSelectable,
    /** Live: publishing and forwarded per the server, and not muted here. */
    get live() {
      return Boolean(
        publishPc && publishPc.ready && state && state.publishing && state.publishing.forwarded && !localMuted,
      );
    },
    micLevel,
    speaking: () => micLevel() > SPEAKING_LEVEL,
    refresh,
    rejoined,
    join,
    leave,
    listen,
    setMicrophone,
    setCamera,
    setVideo,
    cough,
    setTalkback,
    setInput,
    setOutput,
    testTone,
    resumePlayback,
    setOriginalLevel(value) {
      originalLevel = Math.min(1, Math.max(0, Number(value) || 0));
      remix();
    },
    ask,
    openMic,
    closeMic,
  };

  // For tests and support: what is being received, by channel, and its dominant tone.
  window.parleyMedia = Object.freeze({
    tracks() {
      if (!ctx) return [];
      return [...received].map(([mid, node]) => ({
        mid,
        channel: tracks[mid] || null,
        ...dominant(node.analyser, ctx.sampleRate),
        gain: node.gain.gain.value,
      }));
    },
    state: () => state,
    listening: () => listenChannel,
    contextState: () => (ctx ? ctx.state : null),
    micOpen: () => Boolean(micStream),
    iceState: () => (listenPc ? listenPc.pc.iceConnectionState : null),
    /** The floor's cameras shown: [{mid, width, height, playing}]. */
    videos: () =>
      [...videos].map(([mid, node]) => ({
        mid,
        width: node.element.videoWidth,
        height: node.element.videoHeight,
        playing: !node.element.paused,
      })),
    /** Live video tracks the listening peer connection receives (shown or not). */
    videoTracks: () =>
      listenPc
        ? listenPc.pc
            .getTransceivers()
            .filter((t) => t.receiver.track.kind === "video" && t.receiver.track.readyState === "live"
              && (t.currentDirection === "recvonly" || t.currentDirection === "sendrecv")).length
        : 0,
    /** Send a raw media event through the page's socket (answers the server's ack). */
    ask: (event, payload) => conn.ask(event, payload),
    /** Close the listening peer connection without telling anyone (a lost path). */
    dropListening() {
      if (listenPc) listenPc.pc.close();
    },
  });

  return api;
}
