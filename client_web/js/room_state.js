// Room state as a fold over the session event log: the browser's copy of
// server/room/state.py. Pure (no DOM, no network) so that node can run it in
// tests/room/test_state_parity.py against the Python fold on the same events.
// Keep the two in step: a rule changed on one side must change on the other.

// Chat messages a state keeps (CHAT_WINDOW in state.py); older ones load on demand.
export const CHAT_WINDOW = 100;

const has = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

export class RoomState {
  constructor() {
    this.seq = 0;
    this.people = new Map(); // membership -> public info {membership_id, name, role, delegation}
    this.connections = new Map(); // membership -> Set of connection ids
    this.lobby = new Map(); // membership -> waiting since (insertion order = arrival order)
    this.admitted = new Set();
    this.currentItem = null; // {item_id, since}
    this.items = new Map(); // item id -> {started, ended}
    this.queue = [];
    this.floor = null; // {membership_id, since}
    this.chat = []; // the last CHAT_WINDOW messages
    this.chatMore = false; // older messages than those in chat exist
    this.unmuted = new Set(); // whom a chair let speak on the floor
    this.boothFloor = new Map(); // booth language -> carries the floor
    this.channels = new Set(); // channels someone is heard on now
  }

  /** Rebuild from the JSON form the server sends (RoomState.snapshot()). */
  static fromSnapshot(snap) {
    const s = new RoomState();
    s.seq = snap.seq;
    for (const [m, info] of Object.entries(snap.people || {})) s.people.set(m, info);
    if (snap.connections) {
      for (const [m, conns] of Object.entries(snap.connections)) s.connections.set(m, new Set(conns));
    } else {
      // An older server: we know who is present, not through how many connections.
      for (const m of snap.present || []) s.connections.set(m, new Set([""]));
    }
    for (const entry of snap.lobby || []) s.lobby.set(entry.membership_id, entry.since);
    s.currentItem = snap.current_item ? { ...snap.current_item } : null;
    for (const [id, item] of Object.entries(snap.items || {})) s.items.set(id, { ...item });
    s.queue = [...(snap.queue || [])];
    s.floor = snap.floor ? { ...snap.floor } : null;
    s.chat = (snap.chat || []).map((c) => ({ ...c }));
    s.chatMore = Boolean(snap.chat_more);
    s.unmuted = new Set(snap.unmuted || []);
    s.boothFloor = new Map(Object.entries(snap.booth_floor || {}));
    s.channels = new Set(snap.channels || []);
    return s;
  }

  get present() {
    const out = [];
    for (const [m, conns] of this.connections) if (conns.size) out.push(m);
    return out;
  }

  presentHas(who) {
    const conns = this.connections.get(who);
    return Boolean(conns && conns.size);
  }

  /** Apply one serialised event; events arrive in seq order. */
  apply(event) {
    const kind = event.type;
    const who = event.membership_id ?? null;
    const data = event.payload || {};
    const at = event.at;
    this.seq = event.seq;
    if (has(data, "person") && who) this.people.set(who, data.person);
    switch (kind) {
      case "join":
        if (who) {
          if (!this.connections.has(who)) this.connections.set(who, new Set());
          this.connections.get(who).add(has(data, "conn") ? data.conn : "");
          this.lobby.delete(who);
        }
        break;
      case "leave":
        if (who) {
          const conns = this.connections.get(who);
          // A request for the floor survives a reload or a dropped connection.
          if (conns) conns.delete(has(data, "conn") ? data.conn : "");
        }
        break;
      case "lobby.wait":
        if (who && !this.lobby.has(who)) this.lobby.set(who, at);
        break;
      case "lobby.admit":
        this.lobby.delete(data.target);
        this.admitted.add(data.target);
        break;
      case "lobby.decline":
        this.lobby.delete(data.target);
        break;
      case "item.start": {
        this.currentItem = { item_id: data.item_id, since: at };
        if (!this.items.has(data.item_id)) this.items.set(data.item_id, { started: at, ended: null });
        this.items.get(data.item_id).ended = null;
        break;
      }
      case "item.end":
        if (this.currentItem) {
          const id = this.currentItem.item_id;
          if (!this.items.has(id)) this.items.set(id, { started: at });
          this.items.get(id).ended = at;
        }
        this.currentItem = null;
        break;
      case "floor.request":
        if (who && !this.queue.includes(who)) this.queue.push(who);
        break;
      case "floor.withdraw":
        if (who) this.dropRequest(who);
        break;
      case "floor.give":
        this.dropRequest(data.target);
        this.floor = { membership_id: data.target, since: at };
        this.boothFloor.clear(); // an interpreter's switch holds for one speaker
        break;
      case "floor.end":
        this.floor = null;
        this.boothFloor.clear();
        break;
      case "media.publish_granted":
        this.unmuted.add(data.target);
        break;
      case "media.publish_revoked":
        this.unmuted.delete(data.target);
        break;
      case "booth.floor":
        this.boothFloor.set(data.language, Boolean(data.carries_floor));
        break;
      case "channel.open":
        this.channels.add(data.channel);
        break;
      case "channel.close":
        this.channels.delete(data.channel);
        break;
      case "chat":
        if (who) {
          this.chat.push({ seq: event.seq, membership_id: who, text: data.text, at });
          if (this.chat.length > CHAT_WINDOW) {
            this.chat.splice(0, this.chat.length - CHAT_WINDOW);
            this.chatMore = true;
          }
        }
        break;
      default:
        break; // a newer server's event: only its seq matters here
    }
  }

  dropRequest(who) {
    const i = this.queue.indexOf(who);
    if (i >= 0) this.queue.splice(i, 1);
  }

  /** The same JSON form as the Python RoomState.snapshot(). */
  snapshot() {
    const connections = {};
    for (const [m, conns] of this.connections) if (conns.size) connections[m] = [...conns].sort();
    return {
      seq: this.seq,
      people: Object.fromEntries(this.people),
      present: this.present.sort(),
      connections,
      lobby: [...this.lobby].map(([m, since]) => ({ membership_id: m, since })),
      current_item: this.currentItem ? { ...this.currentItem } : null,
      items: Object.fromEntries([...this.items].map(([id, v]) => [id, { ...v }])),
      queue: [...this.queue],
      floor: this.floor ? { ...this.floor } : null,
      chat: this.chat.map((c) => ({ ...c })),
      chat_more: this.chatMore,
      unmuted: [...this.unmuted].sort(),
      booth_floor: Object.fromEntries(this.boothFloor),
      channels: [...this.channels].sort(),
    };
  }
}

/** Format a duration in milliseconds as mm:ss (minutes keep counting past 59). */
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `${String(minutes).padStart(2, "0")}:${String(seconds).padStart(2, "0")}`;
}
