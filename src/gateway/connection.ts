/**
 * One client WebSocket: the hello handshake, decoding and validation of every frame, the
 * limits of PROTOCOL.md §5 (frame and body size, bad-frame budget, send rate), and the
 * mapping of each frame to an actor command or a query. Replies and pushes come back
 * through `send`, which also bounds what a slow reader may have queued.
 *
 * Presence: `send`, `read`, `typing` and `active` are activity; it is forwarded to the user
 * actor at most once per min(1 s, online window / 10) per connection, so presence
 * costs one command per active connection per second at most, never one per message. The
 * connection remembers whose presence it subscribed to and unsubscribes on close.
 * Typing frames are limited to TYPING_RATE a second (burst TYPING_BURST) per connection;
 * the excess is dropped silently (typing is a hint; it has no reply to carry an error).
 *
 * Memory: an idle signed-in connection is this object and little else. What only some
 * connections need (rate-limit state, the bad-frame counter, frames that arrive while the
 * token is checked, unacked sends, watched users, the delivery order) is made on first use;
 * the hello deadline is the gateway's (one timer for all sockets), and the socket hands its
 * events to the connection without listeners (see server.ts).
 */
import type { WebSocket } from 'ws';
import type { Encoding } from '../protocol/codes.js';
import { CLOSE, convKind, dmId } from '../protocol/codes.js';
import { type ClientFrame, type ClientFrameOf, type ReqId, type ServerFrame, clientFrameSchema, msgFrame, CLIENT_FRAME_TYPES } from '../protocol/frames.js';
import { type Origin, RequestError, wireError } from '../actors/ports/index.js';
import { DecodeError, decodeFrame } from './codec.js';
import { TokenBucket, WindowCounter } from './rate-limit.js';
import type { GatewayContext } from './context.js';
import type { Delivery } from './delivery-order.js';

const BAD_FRAME_LIMIT = 20;

interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** The sockets corked in this event-loop turn, uncorked together by ONE setImmediate (not one per socket). */
let corkedNow: Array<[ClientConnection, CorkableSocket]> = [];

function uncorkAtTurnEnd(conn: ClientConnection, socket: CorkableSocket): void {
  if (corkedNow.length === 0) {
    setImmediate(() => {
      const list = corkedNow;
      corkedNow = [];
      for (const [c, s] of list) {
        c.uncorked();
        s.uncork();
      }
    });
  }
  corkedNow.push([conn, socket]);
}
/** Typing frames a second per connection, and the burst; the excess is dropped silently. */
export const TYPING_RATE = 3;
export const TYPING_BURST = 6;

export class ClientConnection {
  user: string | null = null;
  alive = true;
  /** The gateway's delivery state for this connection (made at its first push). */
  delivery: Delivery | null = null;
  private corked = false;
  private state: 'hello' | 'authenticating' | 'open' | 'closed' = 'hello';
  /** Sends of this connection not yet acked (conv, cmid): their messages are never pushed back to it. */
  private unacked: Set<string> | null = null;
  /** Frames that arrived while the hello's token was being checked. */
  private early: Array<[Buffer, boolean]> | null = null;
  private bucket: TokenBucket | null = null;
  private typingBucket: TokenBucket | null = null;
  private badFrames: WindowCounter | null = null;
  /** Users whose presence this connection subscribed to. */
  private watching: Set<string> | null = null;
  private lastActivity = 0;

  constructor(
    readonly id: string,
    private readonly ws: WebSocket,
    readonly encoding: Encoding,
    private readonly ctx: GatewayContext,
    /** The http(s) origin the client reached the node by (for URLs the node serves itself). */
    readonly httpOrigin: string | undefined,
    /** The remote address (counted per address by the gateway). */
    readonly address: string,
  ) {}

  get open(): boolean {
    return this.state !== 'closed';
  }

  /** The hello deadline passed (called by the gateway, which keeps the deadlines of all sockets). */
  helloExpired(): void {
    if (this.state === 'hello' || this.state === 'authenticating') this.unauthorized('no hello in time');
  }

  /** The socket reported an error (it closes next). */
  socketError(err: Error): void {
    this.ctx.log.debug({ conn: this.id, err: String(err) }, 'socket error');
    this.closed();
  }

  /** Called by the gateway's ping timer: a socket that missed the last pong is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.ws.terminate();
      this.closed();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  // ------------------------------------------------------------ outbound

  send(frame: ServerFrame, encoded?: string | Buffer): void {
    if (this.state === 'closed' || this.ws.readyState !== this.ws.OPEN) return;
    this.cork();
    this.ws.send(encoded ?? this.ctx.encode(frame, this.encoding));
    this.ctx.metrics.countFrameOut();
    if (this.ws.bufferedAmount > this.ctx.config.maxQueuedBytes) {
      this.ctx.log.warn({ conn: this.id, user: this.user, queued: this.ws.bufferedAmount }, 'slow consumer closed');
      this.close(CLOSE.slowConsumer, 'slow consumer');
      setTimeout(() => this.ws.terminate(), 1000).unref();
    }
  }

  /** Whether a message is one this connection sent and has not had the ack of yet. */
  sentHere(conv: string, cmid: string): boolean {
    return this.unacked !== null && this.unacked.has(`${conv}\u0000${cmid}`);
  }

  /** The ack of a send went out: the message is the connection's own from now on (by seq). */
  acked(conv: string, cmid: string): void {
    if (this.unacked === null) return;
    this.unacked.delete(`${conv}\u0000${cmid}`);
    if (this.unacked.size === 0) this.unacked = null;
  }

  /** Bytes queued for this socket and not yet written. */
  get queuedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /** Resolves once the queue is below `bytes` (or the socket closed): flow control for bulk pushes. */
  async drained(bytes: number): Promise<void> {
    while (this.open && this.ws.bufferedAmount > bytes) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Frames sent to this socket in the same event-loop turn (an ack and a receipt, a batch of
   * pushes) leave in one write: the TCP socket is corked until the turn ends.
   */
  private cork(): void {
    if (this.corked) return;
    const socket = (this.ws as unknown as { _socket?: CorkableSocket })._socket;
    if (!socket) return;
    this.corked = true;
    socket.cork();
    uncorkAtTurnEnd(this, socket);
  }

  /** Called once per corked turn (see uncorkAtTurnEnd). */
  uncorked(): void {
    this.corked = false;
  }

  private error(re: ReqId | undefined, err: unknown): void {
    const e = wireError(err);
    if (e.code === 'internal') this.ctx.log.error({ conn: this.id, err: String(err) }, 'request failed');
    this.ctx.metrics.errors.inc({ code: e.code });
    this.send(re === undefined ? { t: 'err', ...e } : { t: 'err', re, ...e });
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.ctx.metrics.closes.inc({ code: String(code) });
    this.ws.close(code, reason);
    this.closed();
  }

  /** The socket is gone (either side): release everything. */
  closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.early = null;
    this.ctx.forget(this);
    if (this.user) {
      this.ctx.router.toUser({ type: 'detach', user: this.user, conn: { node: this.ctx.node, conn: this.id } }).catch(() => {});
      const watcher = { node: this.ctx.node, conn: this.id };
      for (const user of this.watching ?? []) this.ctx.router.toUser({ type: 'unwatch', user, watcher }).catch(() => {});
      this.watching = null;
    }
  }

  private unauthorized(why: string): void {
    if (this.state === 'closed') return;
    this.ctx.log.info({ conn: this.id, why }, 'unauthorized');
    this.send({ t: 'err', code: 'unauthorized', msg: why });
    this.close(CLOSE.unauthorized, 'unauthorized');
  }

  // ------------------------------------------------------------ inbound

  onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (this.state === 'authenticating') {
      (this.early ??= []).push([data, isBinary]);
      return;
    }
    let raw: unknown;
    try {
      raw = decodeFrame(data, isBinary, this.encoding);
    } catch (err) {
      if (this.state === 'hello') return this.unauthorized('the first frame must be hello');
      return this.bad(undefined, err instanceof DecodeError ? err.message : 'undecodable frame');
    }
    const re = requestId(raw);
    const parsed = clientFrameSchema.safeParse(raw);
    if (this.state === 'hello') {
      if (!parsed.success || parsed.data.t !== 'hello') return this.unauthorized('the first frame must be hello');
      void this.hello(parsed.data);
      return;
    }
    if (!parsed.success) {
      const t = raw !== null && typeof raw === 'object' ? (raw as { t?: unknown }).t : undefined;
      const why = typeof t !== 'string' ? 'frame needs a string field t' : !CLIENT_FRAME_TYPES.has(t) ? `unknown frame type "${t}"` : describe(parsed.error);
      return this.bad(re, why);
    }
    this.ctx.metrics.countFrameIn(parsed.data.t);
    try {
      this.dispatch(parsed.data);
    } catch (err) {
      this.error(re, err);
    }
  }

  private bad(re: ReqId | undefined, why: string): void {
    this.ctx.metrics.badFrames.inc();
    this.error(re, new RequestError('bad_request', why));
    if ((this.badFrames ??= new WindowCounter(60_000)).hit() > BAD_FRAME_LIMIT) this.close(CLOSE.policy, 'too many bad frames');
  }

  private async hello(frame: ClientFrameOf<'hello'>): Promise<void> {
    this.state = 'authenticating';
    let user: string;
    try {
      user = await this.ctx.auth.verify(frame.token);
    } catch (err) {
      this.state = 'hello';
      return this.unauthorized(`bad token: ${err instanceof Error ? err.message : 'invalid'}`);
    }
    if (this.state !== 'authenticating') return;
    this.ctx.signedIn(this);
    this.user = user;
    this.state = 'open';
    this.send({ t: 'welcome', user, node: this.ctx.node, time: Date.now() });
    this.ctx.router.toUser({ type: 'attach', user, conn: { node: this.ctx.node, conn: this.id } }).catch((err) => {
      this.ctx.log.error({ conn: this.id, err: String(err) }, 'attach failed');
      this.close(CLOSE.goingAway, 'unavailable');
    });
    const early = this.early;
    this.early = null;
    for (const [data, isBinary] of early ?? []) this.onMessage(data, isBinary);
  }

  private origin(re: ReqId | undefined): Origin {
    return re === undefined ? { node: this.ctx.node, conn: this.id } : { node: this.ctx.node, conn: this.id, re };
  }

  /** Hand a command to a conversation actor; a bus failure becomes `unavailable`. */
  private route(re: ReqId | undefined, publish: Promise<void>): void {
    publish.catch((err) => this.error(re, new RequestError('unavailable', `try again: ${err instanceof Error ? err.message : String(err)}`)));
  }

  /** Run a query and send its `ok` (or the error). */
  private answer(re: ReqId, work: Promise<Record<string, unknown>>): void {
    work.then(
      (fields) => this.send({ t: 'ok', re, ...fields }),
      (err) => this.error(re, err),
    );
  }

  private conv(conv: string): string {
    if (convKind(conv) === null) throw new RequestError('not_found', 'no such conversation');
    return conv;
  }

  /** Activity for presence: forwarded at most once per min(1 s, online window / 10). */
  private activity(): void {
    const now = Date.now();
    const every = Math.max(10, Math.min(1000, Math.floor(this.ctx.config.onlineWindowMs / 10)));
    if (now - this.lastActivity < every) return;
    this.lastActivity = now;
    const conn = { node: this.ctx.node, conn: this.id };
    this.ctx.router.toUser({ type: 'activity', user: this.user!, conn, at: now }).catch((err) => {
      this.ctx.log.debug({ conn: this.id, err: String(err) }, 'activity not forwarded');
    });
  }

  /** `ok {denied}` first, then each allowed user's actor pushes the current state and later changes. */
  private presenceSub(re: ReqId, user: string, users: string[]): void {
    this.ctx.queries.presenceAllowed(user, users).then(
      ({ allowed, denied }) => {
        if (this.state === 'closed') return;
        this.send({ t: 'ok', re, denied });
        const watcher = { node: this.ctx.node, conn: this.id };
        for (const u of allowed) {
          (this.watching ??= new Set()).add(u);
          this.ctx.router.toUser({ type: 'watch', user: u, watcher }).catch((err) => {
            this.ctx.log.warn({ conn: this.id, user: u, err: String(err) }, 'presence watch failed');
          });
        }
      },
      (err) => this.error(re, err),
    );
  }

  /**
   * Subscribe again to the watched users for which `moved` is true (their actor moved to
   * another node and lost its watchers); each pushes its current state again.
   */
  rewatch(moved: (user: string) => boolean): void {
    if (this.state === 'closed' || !this.watching) return;
    const watcher = { node: this.ctx.node, conn: this.id };
    for (const u of this.watching) {
      if (moved(u)) this.ctx.router.toUser({ type: 'watch', user: u, watcher }).catch(() => {});
    }
  }

  private media(): NonNullable<GatewayContext['media']> {
    if (!this.ctx.media) throw new RequestError('unavailable', 'media is not served by this node');
    return this.ctx.media;
  }

  private dispatch(f: ClientFrame): void {
    const user = this.user!;
    const router = this.ctx.router;
    switch (f.t) {
      case 'hello':
        throw new RequestError('bad_request', 'already signed in');
      case 'send': {
        this.activity();
        const wait = (this.bucket ??= new TokenBucket(this.ctx.config.rate, this.ctx.config.rate * 2)).take();
        if (wait > 0) throw new RequestError('rate_limited', `more than ${this.ctx.config.rate} sends a second`, wait);
        if ((f.to === undefined) === (f.conv === undefined)) throw new RequestError('bad_request', 'send needs exactly one of to, conv');
        if (f.body === undefined && f.media === undefined) throw new RequestError('bad_request', 'send needs body or media');
        if (f.body !== undefined && Buffer.byteLength(f.body, 'utf8') > this.ctx.config.maxBody) {
          throw new RequestError('too_large', `body over ${this.ctx.config.maxBody} bytes`);
        }
        if (f.to === user) throw new RequestError('bad_request', 'cannot send to yourself');
        const conv = f.to !== undefined ? dmId(user, f.to) : this.conv(f.conv!);
        const cmd: Parameters<typeof router.toConversation>[0] = { type: 'send', conv, from: user, origin: this.origin(f.id), cmid: f.cmid };
        // Bounded: a client that never waits for acks cannot grow it past the limit.
        const unacked = (this.unacked ??= new Set());
        if (unacked.size < 10_000) unacked.add(`${conv}\u0000${f.cmid}`);
        if (f.to !== undefined) cmd.to = f.to;
        if (f.body !== undefined) cmd.body = f.body;
        if (f.media) cmd.media = f.media;
        if (f.reply) cmd.reply = f.reply;
        return this.route(f.id, router.toConversation(cmd));
      }
      case 'recv':
      case 'read':
        if (f.t === 'read') this.activity();
        return this.route(f.id, router.toConversation({ type: f.t, conv: this.conv(f.conv), user, origin: this.origin(f.id), seq: f.seq }));
      case 'typing':
        this.activity();
        if ((this.typingBucket ??= new TokenBucket(TYPING_RATE, TYPING_BURST)).take() > 0) return;
        return this.route(f.id, router.toConversation({ type: 'typing', conv: this.conv(f.conv), user, origin: this.origin(f.id), on: f.on }));
      case 'active':
        this.activity();
        return;
      case 'group.create': {
        const conv = this.ctx.groupId(user, f.cmid);
        const cmd = { type: 'group.create' as const, conv, by: user, origin: this.origin(f.id), cmid: f.cmid, title: f.title, members: f.members };
        return this.route(f.id, router.toConversation(cmd));
      }
      case 'group.add':
      case 'group.remove':
        return this.route(f.id, router.toConversation({ type: f.t, conv: this.conv(f.conv), by: user, origin: this.origin(f.id), users: f.users }));
      case 'group.leave':
      case 'group.info':
        return this.route(f.id, router.toConversation({ type: f.t, conv: this.conv(f.conv), by: user, origin: this.origin(f.id) }));
      case 'info':
        return this.route(f.id, router.toConversation({ type: 'info', conv: this.conv(f.conv), by: user, origin: this.origin(f.id), seq: f.seq }));
      case 'convs':
        return this.answer(f.id, this.ctx.queries.convs(user).then((convs) => ({ convs })));
      case 'history':
        return this.answer(f.id, this.ctx.queries.history(user, this.conv(f.conv), f.before, f.limit).then((msgs) => ({ msgs })));
      case 'sync':
        return this.answer(
          f.id,
          this.ctx.queries.sync(user, f.since, (m) => this.send(msgFrame(m))).then((convs) => ({ convs })),
        );
      case 'presence.sub':
        return this.presenceSub(f.id, user, f.users);
      case 'presence.unsub': {
        const watcher = { node: this.ctx.node, conn: this.id };
        for (const u of new Set(f.users)) {
          if (this.watching?.delete(u)) router.toUser({ type: 'unwatch', user: u, watcher }).catch(() => {});
        }
        return this.send({ t: 'ok', re: f.id });
      }
      case 'media.put': {
        const media = this.media();
        const input: { mime: string; size: number; name?: string } = { mime: f.mime, size: f.size };
        if (f.name !== undefined) input.name = f.name;
        return this.answer(f.id, media.put(user, input, this.httpOrigin).then((r) => ({ ...r })));
      }
      case 'media.get':
        return this.answer(f.id, this.media().get(user, f.media, this.httpOrigin).then((r) => ({ ...r })));
      case 'ping':
        return this.send({ t: 'pong', re: f.id, time: Date.now() });
    }
  }
}

function requestId(raw: unknown): ReqId | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const id = (raw as { id?: unknown }).id;
  if (typeof id === 'string' && id.length > 0 && id.length <= 64) return id;
  if (typeof id === 'number' && Number.isSafeInteger(id)) return id;
  return undefined;
}

function describe(error: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
  const first = error.issues[0];
  if (!first) return 'invalid frame';
  const path = first.path.map(String).join('.');
  return path ? `${path}: ${first.message}` : first.message;
}
