// Types for switchboard.js (the browser client of switchboard.realtime).

export type Unsubscribe = () => void;

declare class Emitter<Events extends Record<string, (...args: any[]) => void>> {
  /** Add a listener; returns a function removing it. */
  on<E extends keyof Events>(event: E, fn: Events[E]): Unsubscribe;
  off<E extends keyof Events>(event: E, fn: Events[E]): void;
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void;
}

export interface Position {
  epoch: string;
  offset: number;
}

export interface SubscribeOptions {
  /** On a fresh subscribe (or a failed recovery), also receive the last `history` publications. */
  history?: number;
  /** Resume from a saved position (for instance `subscription.position` kept across a reload). */
  since?: Position;
}

export interface SubscribedInfo extends Position {
  /** Present when a recovery was asked for: true (nothing missed) or false (resync). */
  recovered?: boolean;
}

export interface PublicationInfo extends Position {
  /** The event name of a signed stream's publication, when it was given one. */
  event?: string;
}

export type SubscriptionEvents = {
  publication: (data: any, position: PublicationInfo) => void;
  subscribed: (info: SubscribedInfo) => void;
  /** Publications were lost for good: rebuild your view (history follows if asked for). */
  resync: (position: Position) => void;
  error: (error: string) => void;
};

export declare class Subscription extends Emitter<SubscriptionEvents> {
  readonly client: Switchboard;
  readonly topic: string;
  readonly history: number;
  epoch: string | null;
  offset: number | null;
  active: boolean;
  /** The last publication handled, or null before the first subscribe is answered. */
  readonly position: Position | null;
  unsubscribe(): void;
}

/** One connection's metadata: whatever the server tracked, plus its `ref`. */
export interface PresenceMeta {
  ref: string;
  [field: string]: any;
}

export interface PresenceMember {
  key: string;
  metas: PresenceMeta[];
}

export type PresenceEvents = {
  /** `first`: the key had no connection before (the user came online). */
  join: (key: string, metas: PresenceMeta[], joined: PresenceMeta[], first: boolean) => void;
  /** `last`: the key has no connection left (the user went offline). */
  leave: (key: string, metas: PresenceMeta[], left: PresenceMeta[], last: boolean) => void;
  sync: (members: PresenceMember[]) => void;
  error: (error: string) => void;
};

export declare class Presence extends Emitter<PresenceEvents> {
  readonly client: Switchboard;
  readonly topic: string;
  readonly state: Map<string, PresenceMeta[]>;
  /** True once the first full state arrived. */
  synced: boolean;
  list(): PresenceMember[];
  get(key: string): PresenceMeta[];
  close(): void;
}

export type StreamEvents = {
  message: (payload: any) => void;
};

/** A demultiplexer stream: frames `{"stream": name, "payload": ...}`. */
export declare class Stream extends Emitter<StreamEvents> {
  readonly client: Switchboard;
  readonly name: string;
  send(payload: any): boolean;
  close(): void;
}

export type ConnectionState = "connecting" | "open" | "disconnected" | "offline" | "closed";

export interface SwitchboardOptions {
  /** First reconnect delay in ms (default 500); doubles per failed attempt, with jitter. */
  minDelay?: number;
  /** Longest reconnect delay in ms (default 30000). */
  maxDelay?: number;
  /** Most sends kept while disconnected (default 1000); the oldest beyond are dropped. */
  queueLimit?: number;
  /** WebSocket subprotocols. */
  protocols?: string | string[];
  /** Connect at once (default true). */
  autoConnect?: boolean;
  /** A WebSocket implementation (default: the global one). */
  WebSocket?: typeof WebSocket;
  /** An EventSource implementation (default: the global one). */
  EventSource?: typeof EventSource;
  /**
   * Transports to try, in order (default all three). One that fails before it ever opened
   * passes to the next at once; the one that opened is tried first next time in this tab
   * (sessionStorage `"switchboard.transport:" + url`).
   */
  transports?: TransportName[];
  /** Milliseconds a transport may take to open before it counts as failed (default 5000). */
  openTimeout?: number;
}

/** WebSocket; Server-Sent Events with POSTs; long-polling with POSTs. */
export type TransportName = "websocket" | "sse" | "poll";

/** What `close` gives for the HTTP transports (a WebSocket gives its CloseEvent). */
export interface TransportCloseEvent {
  code: number;
  reason: string;
  wasClean: boolean;
  transport: TransportName;
}

export interface DisconnectedDetail {
  code: number;
  reason: string;
  /** Milliseconds until the next attempt. */
  delay: number;
}

export type SwitchboardEvents = {
  state: (
    state: ConnectionState,
    detail?: DisconnectedDetail | CloseEvent | TransportCloseEvent,
  ) => void;
  open: () => void;
  close: (event: CloseEvent | TransportCloseEvent) => void;
  /** Application data: every JSON frame that is not a control frame or a known stream's. */
  message: (data: any) => void;
  /** A send dropped from the full queue. */
  drop: (data: any) => void;
  error: (frame: { sb: "error"; error: string; topic?: string }) => void;
};

export declare class Switchboard extends Emitter<SwitchboardEvents> {
  constructor(url: string, options?: SwitchboardOptions);
  readonly url: string;
  state: ConnectionState;
  /** The transport of the current (or last) connection; null before the first attempt. */
  readonly transport: TransportName | null;
  /** Failed attempts since the last successful open. */
  attempt: number;
  /** Serialized sends waiting for the connection. */
  queue: string[];
  connect(): this;
  close(code?: number, reason?: string): void;
  /** Send JSON data now, or queue it while disconnected; true if it left at once. */
  send(data: any): boolean;
  subscribe(topic: string, options?: SubscribeOptions): Subscription;
  presence(topic: string): Presence;
  stream(name: string): Stream;
}

export default Switchboard;
