/**
 * The connection core of the SDK: one logical session over a reconnecting WebSocket.
 *
 * Dial → `hello {token, device}` → `welcome` (state 'open'). Any close except `close()` and
 * 4001 reconnects with backoff; 4001 stops unless the token is a provider, which is asked for
 * a fresh token once (again after every welcome).
 *
 * Requests carry an incrementing integer `id` and are matched by `re`. Idempotent requests
 * (send, group.create) go through the outbox (see outbox.ts) and survive reconnects; the
 * others are written once and rejected when their socket closes or their deadline passes.
 * Frames that answer no pending request go to `hooks.push`.
 */
import { CLOSE } from '../protocol/codes.js';
import type { ChatMessage, ClientFrame } from '../protocol/frames.js';
import { Backoff } from './backoff.js';
import { byteLength, createCodec, type Codec, type WireData, type WireFrame } from './codec.js';
import type { Emitter } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { Outbox, type OutboxItem } from './outbox.js';
import { defaultWebSocket, detach, WS_OPEN, type WebSocketCtor, type WebSocketLike } from './socket.js';
import type { ClientEvents, ConnectionState, SwitchboardClientOptions, Welcome } from './types.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A client frame before the session gives it an id. */
export type OutgoingFrame = DistributiveOmit<ClientFrame, 'id'>;

/** Close code the client uses when it gives up on a socket (no welcome, no pong). */
export const CLOSE_CLIENT_TIMEOUT = 4000;

export interface SessionHooks {
  /** After each welcome, before queued requests and the outbox are written. */
  welcome(): void;
  /** A frame that is not a reply to a pending request (msg, synced, receipt, …, err without re). */
  push(f: WireFrame): void;
  /** The session stopped for good (close(), 4001, reconnect off). */
  shutdown(): void;
}

interface Pending {
  id: number;
  t: string;
  frame: OutgoingFrame;
  resolve: (f: WireFrame) => void;
  reject: (e: SwitchboardError) => void;
  timer?: ReturnType<typeof setTimeout>;
  /** For `sync`: the msg pushes that arrive while it is pending. */
  collect?: ChatMessage[];
  /** For outbox items: the key the reply settles. */
  outboxKey?: string;
}

type WriteResult = 'ok' | 'closed' | 'too_large' | 'invalid';

export class Session {
  private readonly codec: Codec;
  private readonly outbox: Outbox<OutgoingFrame, WireFrame>;
  private readonly reconnectBackoff: Backoff | null;
  readonly timeoutMs: number;
  private readonly maxFrame: number;

  private ws: WebSocketLike | null = null;
  private welcomed = false;
  private currentState: ConnectionState = 'closed';
  /** connect() was called and the session has not shut down since. */
  private running = false;
  /** Shut down (close(), 4001, no reconnect) and connect() not called again. */
  private stopped = false;
  private everOpen = false;
  private gen = 0;
  private nextId = 0;
  private token: string | undefined;
  private refreshedToken = false;
  private lastWelcome: Welcome | undefined;
  private helloTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private probing: WebSocketLike | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly waiting = new Set<Pending>();
  private readonly syncs = new Set<Pending>();
  private connectWaiters: { resolve: (w: Welcome) => void; reject: (e: SwitchboardError) => void }[] = [];

  constructor(
    private readonly opts: SwitchboardClientOptions,
    private readonly events: Emitter<ClientEvents>,
    private readonly hooks: SessionHooks,
  ) {
    this.codec = createCodec(opts.encoding ?? 'json');
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.maxFrame = opts.maxFrameBytes ?? 65_536;
    this.reconnectBackoff =
      opts.reconnect === false
        ? null
        : new Backoff({ minMs: opts.reconnect?.minMs ?? 250, maxMs: opts.reconnect?.maxMs ?? 10_000 });
    this.outbox = new Outbox<OutgoingFrame, WireFrame>({
      transmit: (item) => this.transmit(item),
      sameFrame: (a, b) => JSON.stringify(a) === JSON.stringify(b),
      retry: { minMs: opts.retry?.minMs ?? 100, maxMs: opts.retry?.maxMs ?? 5_000 },
    });
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  get welcome(): Welcome | undefined {
    return this.lastWelcome;
  }

  /** Shut down and not reconnected since: new work is refused with `closed`. */
  get ended(): boolean {
    return this.stopped;
  }

  /** The msg collectors of the `sync` requests in flight on this connection. */
  get collectors(): ReadonlyArray<ChatMessage[]> {
    const out: ChatMessage[][] = [];
    for (const p of this.syncs) if (p.collect) out.push(p.collect);
    return out;
  }

  isOpen(): boolean {
    return this.welcomed && this.ws !== null && this.ws.readyState === WS_OPEN;
  }

  outboxItems(): ReadonlyArray<Readonly<OutboxItem<OutgoingFrame>>> {
    return this.outbox.items();
  }

  // ---- lifecycle --------------------------------------------------------------------------

  connect(): Promise<Welcome> {
    if (this.running && this.welcomed && this.lastWelcome) return Promise.resolve(this.lastWelcome);
    const p = new Promise<Welcome>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.running) {
      this.running = true;
      this.stopped = false;
      this.everOpen = false;
      this.refreshedToken = false;
      if (typeof this.opts.token === 'function') this.token = undefined;
      this.reconnectBackoff?.reset();
      void this.dial();
    }
    return p;
  }

  async close(): Promise<void> {
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    const err = new SwitchboardError('closed', 'client closed');
    this.abortInflight(err);
    this.shutdown(err);
    if (!ws) return;
    await new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number, reason: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        detach(ws);
        resolve();
        this.events.emit('close', { code, reason, reconnect: false });
      };
      const timer = setTimeout(() => finish(CLOSE.normal, 'client close'), 1_000);
      detach(ws);
      ws.onclose = (ev: { code?: number; reason?: string }) => finish(ev?.code ?? CLOSE.normal, ev?.reason ?? '');
      try {
        ws.close(CLOSE.normal, 'client close');
      } catch {
        finish(CLOSE.normal, 'client close');
      }
    });
  }

  /** With several node URLs, each dial tries the next one. */
  private url(gen: number): string {
    const u = this.opts.url;
    return typeof u === 'string' ? u : u[(gen - 1) % u.length]!;
  }

  private async dial(): Promise<void> {
    const gen = ++this.gen;
    this.reconnectTimer = undefined;
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    let token: string;
    try {
      token = await this.getToken();
    } catch (e) {
      if (!this.current(gen)) return;
      this.events.emit('error', asError(e, 'token provider failed'));
      this.retryLater();
      return;
    }
    let Ctor: WebSocketCtor;
    try {
      Ctor = this.opts.WebSocket ?? (await defaultWebSocket());
    } catch (e) {
      if (this.current(gen)) this.fatal(asError(e, 'no WebSocket implementation'));
      return;
    }
    if (!this.current(gen)) return;
    let ws: WebSocketLike;
    try {
      ws = new Ctor(this.url(gen), [this.codec.subprotocol]);
    } catch (e) {
      this.fatal(asError(e, `cannot open ${this.url(gen)}`));
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.binaryType = 'arraybuffer';
    this.helloTimer = setTimeout(() => {
      if (this.ws === ws && !this.welcomed) this.drop(ws, 'no welcome in time');
    }, this.timeoutMs);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      const proto = ws.protocol;
      if (proto && proto !== this.codec.subprotocol) {
        this.events.emit('error', new Error(`server chose subprotocol '${proto}', asked for '${this.codec.subprotocol}'`));
        this.drop(ws, 'wrong subprotocol');
        return;
      }
      const hello: OutgoingFrame = { t: 'hello', token };
      if (this.opts.device !== undefined) hello.device = this.opts.device;
      this.writeRaw(ws, hello);
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (this.ws === ws) this.onData(ws, ev.data as WireData);
    };
    ws.onerror = (ev: unknown) => {
      if (this.ws === ws) this.events.emit('error', socketError(ev));
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (this.ws === ws) this.onSocketClose(ev?.code ?? 1006, ev?.reason ?? '');
    };
  }

  private current(gen: number): boolean {
    return gen === this.gen && this.running;
  }

  private async getToken(): Promise<string> {
    if (this.token !== undefined) return this.token;
    const src = this.opts.token;
    const t = typeof src === 'function' ? await src() : src;
    if (typeof t !== 'string' || t === '') throw new Error('token provider returned no token');
    this.token = t;
    return t;
  }

  private retryLater(delayMs?: number): void {
    if (!this.running) return;
    if (!this.reconnectBackoff) {
      this.shutdown(new SwitchboardError('disconnected', 'connection lost and reconnect is off'));
      return;
    }
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.dial(), delayMs ?? this.reconnectBackoff.next());
  }

  /** Gives up on a socket without waiting for its closing handshake. */
  private drop(ws: WebSocketLike, reason: string): void {
    if (this.ws !== ws) return;
    detach(ws);
    try {
      ws.close(CLOSE_CLIENT_TIMEOUT, reason.slice(0, 100));
    } catch {
      // already closing
    }
    this.onSocketClose(CLOSE_CLIENT_TIMEOUT, reason);
  }

  private onSocketClose(code: number, reason: string): void {
    this.ws = null;
    this.welcomed = false;
    clearTimeout(this.helloTimer);
    this.abortInflight(new SwitchboardError('disconnected', `connection closed (${code}${reason ? ` ${reason}` : ''})`));
    if (code === CLOSE.unauthorized) {
      if (typeof this.opts.token === 'function' && !this.refreshedToken) {
        this.refreshedToken = true;
        this.token = undefined;
        this.events.emit('close', { code, reason, reconnect: true });
        this.setState(this.everOpen ? 'reconnecting' : 'connecting');
        this.retryLater(0);
        return;
      }
      this.events.emit('close', { code, reason, reconnect: false });
      this.shutdown(new SwitchboardError('unauthorized', reason || 'unauthorized (close 4001)'));
      return;
    }
    const reconnect = this.running && this.reconnectBackoff !== null;
    this.events.emit('close', { code, reason, reconnect });
    if (!reconnect) {
      this.shutdown(new SwitchboardError('disconnected', `connection closed (${code}) and reconnect is off`));
      return;
    }
    this.setState(this.everOpen ? 'reconnecting' : 'connecting');
    this.retryLater();
  }

  /** The socket is gone: in-flight requests reject, in-flight outbox items go back to the queue. */
  private abortInflight(err: SwitchboardError): void {
    const inflight = [...this.pending.values()];
    this.pending.clear();
    this.syncs.clear();
    this.probing = null;
    this.outbox.disconnected();
    for (const p of inflight) {
      clearTimeout(p.timer);
      if (p.outboxKey === undefined) p.reject(err);
    }
  }

  /** Stops for good until the next connect(): everything waiting rejects with `err`. */
  private shutdown(err: SwitchboardError): void {
    this.running = false;
    this.stopped = true;
    this.gen++;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.helloTimer);
    this.reconnectTimer = undefined;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const p of waiting) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.outbox.rejectAll(err);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
    this.hooks.shutdown();
    this.setState('closed');
  }

  private fatal(e: Error): void {
    this.events.emit('error', e);
    this.shutdown(new SwitchboardError('closed', e.message));
  }

  private setState(s: ConnectionState): void {
    if (s === this.currentState) return;
    this.currentState = s;
    this.events.emit('state', s);
  }

  // ---- inbound ----------------------------------------------------------------------------

  private onData(ws: WebSocketLike, data: WireData): void {
    let f: WireFrame;
    try {
      f = this.codec.decode(data);
    } catch (e) {
      this.events.emit('error', asError(e, 'undecodable frame'));
      return;
    }
    this.events.emit('frame', f as Record<string, unknown> & { t: string }, { socket: this.gen });
    switch (f.t) {
      case 'welcome':
        this.onWelcome(ws, f);
        return;
      case 'ack':
      case 'ok':
      case 'pong': {
        const p = this.takePending(f.re);
        if (!p) return; // a reply after its deadline
        clearTimeout(p.timer);
        p.resolve(f);
        return;
      }
      case 'err': {
        const p = f.re === undefined ? undefined : this.takePending(f.re);
        if (!p) break;
        clearTimeout(p.timer);
        p.reject(SwitchboardError.fromFrame(f));
        return;
      }
    }
    this.hooks.push(f);
  }

  private takePending(re: unknown): Pending | undefined {
    const id = typeof re === 'number' ? re : typeof re === 'string' ? Number(re) : NaN;
    const p = this.pending.get(id);
    if (p) {
      this.pending.delete(id);
      this.syncs.delete(p);
    }
    return p;
  }

  private onWelcome(ws: WebSocketLike, f: WireFrame): void {
    if (this.welcomed) return;
    clearTimeout(this.helloTimer);
    this.welcomed = true;
    this.everOpen = true;
    this.refreshedToken = false;
    this.reconnectBackoff?.reset();
    const w: Welcome = { user: String(f.user), node: String(f.node), time: Number(f.time) };
    this.lastWelcome = w;
    this.setState('open');
    if (this.ws !== ws || !this.welcomed) return; // a state listener closed the client
    this.hooks.welcome();
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const p of waiting) this.writeRequest(p);
    this.outbox.flush();
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const c of waiters) c.resolve(w);
    this.events.emit('welcome', w);
  }

  // ---- outbound ---------------------------------------------------------------------------

  /** Writes a frame without id on the open session; false when not open (nothing is queued). */
  write(frame: OutgoingFrame): boolean {
    const ws = this.ws;
    return !!ws && this.isOpen() && this.writeRaw(ws, frame) === 'ok';
  }

  /** A request: written now when open, else at the next welcome; rejects on err, timeout or close. */
  request(frame: OutgoingFrame, collect?: ChatMessage[]): Promise<WireFrame> {
    if (this.stopped) return Promise.reject(new SwitchboardError('closed', 'client is closed'));
    return new Promise<WireFrame>((resolve, reject) => {
      const p: Pending = { id: ++this.nextId, t: frame.t, frame, resolve, reject };
      if (collect) p.collect = collect;
      p.timer = setTimeout(() => {
        this.waiting.delete(p);
        if (this.pending.get(p.id) === p) this.pending.delete(p.id);
        this.syncs.delete(p);
        reject(new SwitchboardError('timeout', `${p.t}: no reply within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      if (this.isOpen()) this.writeRequest(p);
      else this.waiting.add(p);
    });
  }

  /** An idempotent request kept in the outbox under `key` until answered for good. */
  enqueue(key: string, frame: OutgoingFrame): Promise<WireFrame> {
    if (this.stopped) return Promise.reject(new SwitchboardError('closed', 'client is closed'));
    const tooBig = this.checkSize(frame);
    if (tooBig) return Promise.reject(tooBig);
    return this.outbox.add(key, frame);
  }

  private writeRaw(ws: WebSocketLike, frame: object): WriteResult {
    if (ws.readyState !== WS_OPEN) return 'closed';
    let data: string | Uint8Array;
    try {
      data = this.codec.encode(frame);
    } catch {
      return 'invalid';
    }
    if (byteLength(data) > this.maxFrame) return 'too_large';
    try {
      ws.send(data);
    } catch (e) {
      this.events.emit('error', asError(e, 'send failed'));
      return 'closed';
    }
    return 'ok';
  }

  private writeRequest(p: Pending): void {
    const ws = this.ws;
    const r: WriteResult = ws && this.isOpen() ? this.writeRaw(ws, { ...p.frame, id: p.id }) : 'closed';
    if (r === 'ok') {
      this.pending.set(p.id, p);
      if (p.collect) this.syncs.add(p);
    } else if (r === 'closed') {
      this.waiting.add(p);
    } else {
      clearTimeout(p.timer);
      p.reject(localError(r, p.t, this.maxFrame));
    }
  }

  /** Writes one outbox item on the open connection (called by the outbox). */
  private transmit(item: OutboxItem<OutgoingFrame>): boolean {
    const ws = this.ws;
    if (!ws || !this.isOpen()) return false;
    const id = ++this.nextId;
    const r = this.writeRaw(ws, { ...item.frame, id });
    if (r === 'closed') return false;
    if (r !== 'ok') {
      this.outbox.fail(item.key, localError(r, item.frame.t, this.maxFrame));
      return true;
    }
    const p: Pending = {
      id,
      t: item.frame.t,
      frame: item.frame,
      outboxKey: item.key,
      resolve: (f) => this.outbox.settle(item.key, f),
      reject: (e) => this.outbox.fail(item.key, e),
    };
    this.pending.set(id, p);
    this.armOutboxTimer(p, ws);
    return true;
  }

  /**
   * A missing reply to an outbox item: the session pings. If the ping goes unanswered too, it
   * drops the connection and the item is written again on the next one. If the ping is
   * answered, the reply itself was lost on the way (a node died between commit and ack) and
   * the same item (same cmid, same id) is written again on this connection: the node answers
   * a repeat with its first seq, so this never makes a second message.
   */
  private armOutboxTimer(p: Pending, ws: WebSocketLike): void {
    p.timer = setTimeout(() => {
      if (this.pending.get(p.id) !== p) return;
      this.probe(ws, () => {
        if (this.pending.get(p.id) === p && this.ws === ws && this.isOpen()) this.writeRaw(ws, { ...p.frame, id: p.id });
      });
      this.armOutboxTimer(p, ws);
    }, this.timeoutMs);
  }

  private probe(ws: WebSocketLike, alive?: () => void): void {
    if (this.probing === ws || this.ws !== ws || !this.welcomed) return;
    this.probing = ws;
    this.request({ t: 'ping' }).then(
      () => {
        if (this.probing === ws) this.probing = null;
        alive?.();
      },
      (e: SwitchboardError) => {
        if (this.probing === ws) this.probing = null;
        if (e.code === 'timeout') this.drop(ws, 'server stopped answering');
      },
    );
  }

  /** A local too_large (or bad_request) for a frame that cannot go on the wire. */
  checkSize(frame: OutgoingFrame): SwitchboardError | undefined {
    let size: number;
    try {
      size = byteLength(this.codec.encode({ ...frame, id: Number.MAX_SAFE_INTEGER }));
    } catch {
      return localError('invalid', frame.t, this.maxFrame);
    }
    return size > this.maxFrame ? localError('too_large', frame.t, this.maxFrame) : undefined;
  }
}

function localError(r: 'too_large' | 'invalid', t: string, maxFrame: number): SwitchboardError {
  return r === 'too_large'
    ? new SwitchboardError('too_large', `${t}: frame over ${maxFrame} bytes`)
    : new SwitchboardError('bad_request', `${t}: frame cannot be encoded`);
}

export function asError(e: unknown, context: string): Error {
  if (e instanceof Error) return e;
  return new Error(`${context}: ${String(e)}`);
}

function socketError(ev: unknown): Error {
  const o = ev as { error?: unknown; message?: unknown } | null;
  if (o && o.error instanceof Error) return o.error;
  if (o && typeof o.message === 'string' && o.message) return new Error(o.message);
  return new Error('WebSocket error');
}
