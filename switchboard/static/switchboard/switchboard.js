// switchboard.js: the browser client for Switchboard's realtime protocol (switchboard.realtime).
// ES module, no dependencies, no build step. Reconnects with jittered backoff, follows
// online/offline, queues sends while disconnected, recovers subscriptions from their last
// offset, tracks presence and carries demultiplexer streams ({"stream", "payload"} frames).

class Emitter {
  constructor() { this._l = new Map(); }
  // Returns a function that removes the listener.
  on(event, fn) {
    if (!this._l.has(event)) this._l.set(event, new Set());
    this._l.get(event).add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) { const s = this._l.get(event); if (s) s.delete(fn); }
  emit(event, ...args) {
    for (const fn of [...(this._l.get(event) || [])]) {
      try { fn(...args); } catch (err) { setTimeout(() => { throw err; }); }
    }
  }
}

// One reliable group: publications in order, recovered after reconnects.
export class Subscription extends Emitter {
  constructor(client, topic, opts) {
    super();
    this.client = client;
    this.topic = topic;
    this.history = opts.history || 0;
    this.epoch = opts.since ? opts.since.epoch : null;
    this.offset = opts.since ? opts.since.offset : null;
    this.active = true;
  }
  // Where this subscription stands: give it back as `since` to resume elsewhere (a reload).
  get position() { return this.epoch === null ? null : { epoch: this.epoch, offset: this.offset }; }
  _frame() {
    const f = { sb: "sub", topic: this.topic };
    if (this.epoch !== null) { f.epoch = this.epoch; f.offset = this.offset; }
    if (this.history) f.history = this.history;
    return f;
  }
  _handle(f) {
    if (f.sb === "subscribed") {
      this.epoch = f.epoch;
      this.offset = f.offset;
      if (f.recovered === false) this.emit("resync", { epoch: f.epoch, offset: f.offset });
      this.emit("subscribed", { recovered: f.recovered, epoch: f.epoch, offset: f.offset });
    } else if (f.sb === "pub") {
      if (f.epoch === this.epoch && f.offset <= this.offset) return; // already handled
      this.epoch = f.epoch;
      this.offset = f.offset;
      this.emit("publication", f.data, { epoch: f.epoch, offset: f.offset });
    } else if (f.sb === "resync") {
      this.epoch = f.epoch;
      this.offset = f.offset;
      this.emit("resync", { epoch: f.epoch, offset: f.offset });
    } else if (f.sb === "error") {
      this.emit("error", f.error);
    }
  }
  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.client._subs.delete(this.topic);
    this.client._control({ sb: "unsub", topic: this.topic });
  }
}

// Who is in a topic: {key: [meta, ...]}, one meta per connection (each with its `ref`).
export class Presence extends Emitter {
  constructor(client, topic) {
    super();
    this.client = client;
    this.topic = topic;
    this.state = new Map();
    this.synced = false;
  }
  // [{key, metas}] for everyone present now.
  list() { return [...this.state].map(([key, metas]) => ({ key, metas })); }
  get(key) { return this.state.get(key) || []; }
  _join(key, metas) {
    const had = this.state.get(key) || [];
    const added = metas.filter((m) => !had.some((h) => h.ref === m.ref));
    if (!added.length) return;
    const now = had.concat(added);
    this.state.set(key, now);
    this.emit("join", key, now, added, had.length === 0);
  }
  _leave(key, metas) {
    const had = this.state.get(key);
    if (!had) return;
    const refs = new Set(metas.map((m) => m.ref));
    const left = had.filter((m) => refs.has(m.ref));
    if (!left.length) return;
    const now = had.filter((m) => !refs.has(m.ref));
    if (now.length) this.state.set(key, now); else this.state.delete(key);
    this.emit("leave", key, now, left, now.length === 0);
  }
  _handle(f) {
    if (f.sb === "presence_state") {
      // A full state (first watch or after a reconnect): diff it against what we showed.
      for (const [key, metas] of [...this.state]) {
        const keep = new Set(((f.state[key] || {}).metas || []).map((m) => m.ref));
        this._leave(key, metas.filter((m) => !keep.has(m.ref)));
      }
      for (const key in f.state) this._join(key, f.state[key].metas);
      this.synced = true;
      this.emit("sync", this.list());
    } else if (f.sb === "presence_diff") {
      for (const key in f.leaves) this._leave(key, f.leaves[key].metas);
      for (const key in f.joins) this._join(key, f.joins[key].metas);
      this.emit("sync", this.list());
    } else if (f.sb === "error") {
      this.emit("error", f.error);
    }
  }
  close() {
    this.client._presences.delete(this.topic);
    this.client._control({ sb: "presence_off", topic: this.topic });
  }
}

// One stream of a demultiplexed socket: {"stream": name, "payload": ...} frames.
export class Stream extends Emitter {
  constructor(client, name) { super(); this.client = client; this.name = name; }
  send(payload) { return this.client.send({ stream: this.name, payload }); }
  close() { this.client._streams.delete(this.name); }
}

// States: "connecting", "open", "disconnected" (waiting to retry), "offline", "closed".
export class Switchboard extends Emitter {
  constructor(url, opts = {}) {
    super();
    this.url = url;
    this.opts = Object.assign({ minDelay: 500, maxDelay: 30000, queueLimit: 1000 }, opts);
    this.state = "closed";
    this.attempt = 0;
    this.queue = [];
    this.ws = null;
    this._subs = new Map();
    this._presences = new Map();
    this._streams = new Map();
    this._timer = null;
    this._stopped = true;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", () => {
        if (!this._stopped && this.state !== "open") { this.attempt = 0; this._open(); }
      });
      window.addEventListener("offline", () => {
        if (this._stopped) return;
        this._setState("offline");
        if (this.ws) this.ws.close(4000, "offline");
      });
    }
    // Deferred, so listeners added right after construction see "connecting" too.
    if (opts.autoConnect !== false) queueMicrotask(() => { if (!this._closed) this.connect(); });
  }
  _setState(state, detail) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", state, detail);
  }
  connect() {
    this._stopped = this._closed = false;
    if (!this.ws) this._open();
    return this;
  }
  close(code = 1000, reason = "") {
    this._stopped = this._closed = true;
    clearTimeout(this._timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(code, reason);
    this._setState("closed");
  }
  _online() { return typeof navigator === "undefined" || navigator.onLine !== false; }
  _open() {
    clearTimeout(this._timer);
    if (this._stopped) return;
    if (!this._online()) { this._setState("offline"); return; }
    if (this.ws) return;
    this._setState("connecting");
    const WS = this.opts.WebSocket || WebSocket;
    const ws = (this.ws = new WS(this.url, this.opts.protocols));
    ws.onopen = () => {
      this.attempt = 0;
      // Control frames first: subscriptions recover before queued sends go out.
      for (const sub of this._subs.values()) ws.send(JSON.stringify(sub._frame()));
      for (const topic of this._presences.keys()) ws.send(JSON.stringify({ sb: "presence", topic }));
      const queued = this.queue;
      this.queue = [];
      for (const text of queued) ws.send(text);
      this._setState("open");
      this.emit("open");
    };
    ws.onmessage = (event) => this._receive(event.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.emit("close", event);
      if (this._stopped) return;
      if (this.state === "offline" || !this._online()) { this._setState("offline", event); return; }
      const o = this.opts;
      const delay = Math.min(o.maxDelay, o.minDelay * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this._setState("disconnected", { code: event.code, reason: event.reason, delay });
      this._timer = setTimeout(() => this._open(), delay);
    };
  }
  _receive(text) {
    let f;
    try { f = JSON.parse(text); } catch (err) { this.emit("message", text); return; }
    if (f && typeof f.sb === "string") {
      const sub = this._subs.get(f.topic);
      const pres = this._presences.get(f.topic);
      if (f.sb.startsWith("presence")) { if (pres) pres._handle(f); }
      else if (f.sb === "error") {
        if (sub) sub._handle(f);
        if (pres) pres._handle(f);
        this.emit("error", f);
      } else if (sub) sub._handle(f);
      return;
    }
    if (f && typeof f.stream === "string" && "payload" in f && this._streams.has(f.stream)) {
      this._streams.get(f.stream).emit("message", f.payload);
      return;
    }
    this.emit("message", f);
  }
  // Send JSON data: now if connected, else queued (oldest dropped beyond queueLimit).
  // True when it left at once.
  send(data) {
    const text = JSON.stringify(data);
    if (this.ws && this.state === "open") { this.ws.send(text); return true; }
    this.queue.push(text);
    if (this.queue.length > this.opts.queueLimit) this.emit("drop", JSON.parse(this.queue.shift()));
    return false;
  }
  _control(frame) { if (this.ws && this.state === "open") this.ws.send(JSON.stringify(frame)); }
  // opts: {history: n} (last n publications on a fresh subscribe),
  // {since: {epoch, offset}} (resume from a saved position).
  subscribe(topic, opts = {}) {
    let sub = this._subs.get(topic);
    if (sub) return sub;
    sub = new Subscription(this, topic, opts);
    this._subs.set(topic, sub);
    this._control(sub._frame());
    return sub;
  }
  presence(topic) {
    let pres = this._presences.get(topic);
    if (pres) return pres;
    pres = new Presence(this, topic);
    this._presences.set(topic, pres);
    this._control({ sb: "presence", topic });
    return pres;
  }
  stream(name) {
    let stream = this._streams.get(name);
    if (!stream) this._streams.set(name, (stream = new Stream(this, name)));
    return stream;
  }
}

export default Switchboard;
