// switchboard.js: the browser client for Switchboard's realtime protocol (switchboard.realtime).
// ES module, no dependencies, no build step. Reconnects with jittered backoff, follows
// online/offline, queues sends while disconnected, recovers subscriptions from their last
// offset, tracks presence and carries demultiplexer streams ({"stream", "payload"} frames).
// Where a WebSocket cannot get through, the same session runs over Server-Sent Events or
// long-polling (switchboard.transports): frames to the server then go by POST.

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
      // `event`: the name a signed stream's publication was given (switchboard.streams).
      const position = { epoch: f.epoch, offset: f.offset };
      if (typeof f.event === "string") position.event = f.event;
      this.emit("publication", f.data, position);
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

// Transports: one interface so the client only deals with reconnecting, queueing and
// subscriptions. open(); send(text); close(code, reason); the client sets onopen(),
// onmessage(data) and onclose(code, reason, opened, event); unsent() gives back the frames
// that surely never reached the server (to send again on the next connection).
class WebSocketTransport {
  constructor(url, opts) { this.url = url; this.opts = opts; }
  open() {
    const ws = (this.ws = new (this.opts.WebSocket || WebSocket)(this.url, this.opts.protocols));
    let opened = false;
    ws.onopen = () => { opened = true; this.onopen(); };
    ws.onmessage = (event) => this.onmessage(event.data);
    ws.onclose = (event) => this.onclose(event.code, event.reason, opened, event);
  }
  send(text) { this.ws.send(text); }
  close(code, reason) { this.ws.close(code, reason); }
  unsent() { return []; }
}

// Base64 (SSE `sb.binary` events, poll `{"b": ...}` frames) -> a Blob, as a WebSocket gives.
const blob = (b64) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]);

// The session over HTTP: the WebSocket URL as http(s), frames to the server by POST, one
// POST in flight, what is sent meanwhile batched into the next one, in order.
class HttpTransport {
  constructor(url, opts) {
    const u = new URL(url, typeof location === "undefined" ? undefined : location.href);
    u.protocol = { "ws:": "http:", "wss:": "https:" }[u.protocol] || u.protocol;
    u.hash = "";
    this.base = u.href;
    this.opts = opts;
    this.session = null;
    this.outbox = [];
    this.failed = []; // a batch the server refused with 410: never delivered
    this.posting = false;
    this.opened = this.ended = false;
  }
  _url(params) {
    const q = Object.entries(params).map(([k, v]) => k + "=" + encodeURIComponent(v));
    return this.base + (this.base.includes("?") ? "&" : "?") + q.join("&");
  }
  _opened(session) {
    this.opened = true;
    this.onopen(); // what it sends is batched: the session is not set yet
    this.session = session;
    this._flush();
  }
  send(text) { this.outbox.push(text); this._flush(); }
  _flush() {
    if (this.posting || this.ended || !this.session || !this.outbox.length) return;
    const frames = this.outbox;
    this.outbox = [];
    this.posting = true;
    const url = this._url({ sb_transport: this.name, sb_session: this.session });
    // text/plain: a "simple" request, no CORS preflight.
    const body = JSON.stringify({ frames });
    fetch(url, { method: "POST", headers: { "content-type": "text/plain" }, body }).then((r) => {
      this.posting = false;
      if (r.ok) return this._flush();
      if (r.status === 410) this.failed = frames; // the session is gone, not these frames
      this._end(r.status === 413 ? 1009 : 1006, r.status === 410 ? "" : "POST " + r.status);
    }, () => this._end(1006, "")); // maybe delivered: not sent again
  }
  unsent() { return this.failed.concat(this.outbox); }
  close(code = 1000, reason = "") { this._end(code, reason); }
  // Ends once; onclose comes later, as a WebSocket's close event does.
  _end(code, reason) {
    if (this.ended) return;
    this.ended = true;
    this._stop();
    setTimeout(() => this.onclose(code, reason, this.opened));
  }
}

// Server -> client on one EventSource; never its own reconnects (the client's backoff and
// subscription recovery apply, as for a WebSocket).
class EventSourceTransport extends HttpTransport {
  get name() { return "sse"; }
  open() {
    const ES = this.opts.EventSource || EventSource;
    const es = (this.es = new ES(this._url({ sb_transport: "sse" })));
    const on = (type, fn) => es.addEventListener(type, (e) => { if (!this.ended) fn(e.data); });
    on("sb.session", (data) => this._opened(JSON.parse(data).session));
    on("message", (data) => this.onmessage(data));
    on("sb.binary", (data) => this.onmessage(blob(data)));
    on("sb.close", (data) => { const c = JSON.parse(data); this._end(c.code, c.reason); });
    on("error", () => this._end(1006, ""));
  }
  _stop() { this.es.close(); }
}

// Long-polling: a POST opens the session, then one GET at a time waits for frames. Each GET
// acknowledges the last frame seen (sb_ack), so a lost answer comes again and a repeated
// frame is dropped here.
class PollTransport extends HttpTransport {
  get name() { return "poll"; }
  open() {
    this.seq = 0;
    this._fetch(this._url({ sb_transport: "poll" }), { method: "POST" }, 30, (d) => {
      this.timeout = d.timeout || 25;
      this._opened(d.session);
      this._poll(false);
    });
  }
  // A fetch abandoned after `limit` s (a silently dead network must not hang the session).
  _fetch(url, init, limit, done, retry) {
    const ctl = (this.ctl = new AbortController());
    const timer = setTimeout(() => ctl.abort(), limit * 1000);
    fetch(url, Object.assign({ signal: ctl.signal, cache: "no-store" }, init))
      .then((r) => {
        if (!r.ok) throw r.status;
        return r.json();
      })
      .then((d) => { clearTimeout(timer); if (!this.ended) done(d); })
      .catch((err) => {
        clearTimeout(timer);
        if (this.ended) return;
        // A dropped connection loses nothing while the session lives: ask again once.
        if (retry && typeof err !== "number") retry();
        else this._end(1006, typeof err === "number" && err !== 410 ? "HTTP " + err : "");
      });
  }
  _poll(retried) {
    const url = this._url({ sb_transport: "poll", sb_session: this.session, sb_ack: this.seq });
    this._fetch(url, {}, this.timeout + 10, (d) => {
      const frames = d.frames || [];
      let n = d.seq - frames.length;
      for (const f of frames) {
        n += 1;
        if (n <= this.seq) continue; // seen already
        this.seq = n;
        this.onmessage(typeof f === "string" ? f : blob(f.b));
        if (this.ended) return;
      }
      if (d.close) this._end(d.close.code, d.close.reason);
      else this._poll(false);
    }, retried ? null : () => this._poll(true));
  }
  // Closed by this page (not by the server, nor after a 410): tell the server, so the session
  // ends now rather than after its idle time (keepalive: even while the page unloads).
  close(code = 1000, reason = "") {
    if (this.session && !this.ended) {
      const url = this._url({ sb_transport: "poll", sb_session: this.session });
      const init = { method: "POST", keepalive: true, headers: { "content-type": "text/plain" } };
      fetch(url, Object.assign(init, { body: '{"close": true}' })).catch(() => {});
    }
    super.close(code, reason);
  }
  _stop() { if (this.ctl) this.ctl.abort(); }
}

const TRANSPORTS = { websocket: WebSocketTransport, sse: EventSourceTransport, poll: PollTransport };

// sessionStorage, when the page may use it (not in some sandboxed frames).
function memory(key, value) {
  try {
    if (value === undefined) return sessionStorage.getItem(key);
    sessionStorage.setItem(key, value);
  } catch (err) { return null; }
}

// States: "connecting", "open", "disconnected" (waiting to retry), "offline", "closed".
export class Switchboard extends Emitter {
  constructor(url, opts = {}) {
    super();
    this.url = url;
    const defaults = { minDelay: 500, maxDelay: 30000, queueLimit: 1000, openTimeout: 5000 };
    this.opts = Object.assign(defaults, opts);
    this.state = "closed";
    this.attempt = 0;
    this.queue = [];
    this.ws = null; // the current transport
    this._subs = new Map();
    this._presences = new Map();
    this._streams = new Map();
    this._timer = null;
    this._stopped = true;
    // Transports to try in order, the one that worked last in this tab first; a transport that
    // fails before it ever opened passes to the next at once.
    const order = (this.opts.transports || ["websocket", "sse", "poll"]).filter((n) => TRANSPORTS[n]);
    const last = memory("switchboard.transport:" + url);
    this._order = order.includes(last) ? [last, ...order.filter((n) => n !== last)] : order;
    this._next = 0;
    this._worked = new Set();
    this._transport = null;
    if (typeof window !== "undefined" && window.addEventListener) {
      window.addEventListener("online", () => {
        if (!this._stopped && this.state !== "open") { this.attempt = 0; this._open(); }
      });
      // Leaving the page: a poll session ends at once instead of after its idle time (a
      // WebSocket or an EventSource closes with the page by itself).
      window.addEventListener("pagehide", () => {
        if (this.ws instanceof PollTransport) this.ws.close(1001, "page hidden");
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
  // "websocket", "sse" or "poll": the transport of the current (or last) connection.
  get transport() { return this._transport; }
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
    const name = (this._transport = this._order[this._next]);
    const t = (this.ws = new TRANSPORTS[name](this.url, this.opts));
    const timeout = setTimeout(() => t.close(4000, "open timeout"), this.opts.openTimeout);
    t.onopen = () => {
      clearTimeout(timeout);
      this.attempt = 0;
      this._worked.add(name);
      memory("switchboard.transport:" + this.url, name);
      // Control frames first: subscriptions recover before queued sends go out.
      for (const sub of this._subs.values()) t.send(JSON.stringify(sub._frame()));
      for (const topic of this._presences.keys()) t.send(JSON.stringify({ sb: "presence", topic }));
      const queued = this.queue;
      this.queue = [];
      for (const text of queued) t.send(text);
      this._setState("open");
      this.emit("open");
    };
    t.onmessage = (data) => this._receive(data);
    t.onclose = (code, reason, opened, event) => {
      clearTimeout(timeout);
      if (this.ws !== t) return;
      this.ws = null;
      this.queue = t.unsent().concat(this.queue);
      while (this.queue.length > this.opts.queueLimit) this.emit("drop", JSON.parse(this.queue.shift()));
      // A WebSocket's own CloseEvent; the same fields for the other transports.
      event = event || { code, reason, wasClean: false, transport: name };
      this.emit("close", event);
      if (this._stopped) return;
      if (this.state === "offline" || !this._online()) { this._setState("offline", event); return; }
      if (!opened && !this._worked.has(name)) {
        this._next = (this._next + 1) % this._order.length;
        if (this._next) { this._open(); return; } // the next transport, at once
      }
      const o = this.opts;
      const delay = Math.min(o.maxDelay, o.minDelay * 2 ** this.attempt) * (0.5 + Math.random() / 2);
      this.attempt += 1;
      this._setState("disconnected", { code, reason, delay });
      this._timer = setTimeout(() => this._open(), delay);
    };
    try { t.open(); } catch (err) { clearTimeout(timeout); this.ws = null; throw err; }
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
