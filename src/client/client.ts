/**
 * SwitchboardClient: the SDK's public face (PROTOCOL.md §3). The connection, requests and
 * outbox live in session.ts; this file turns frames into typed calls and events, drops
 * repeated (conv, seq) pushes, collects `sync` results, and keeps the per-session extras
 * (watermarks queued while offline, presence subscriptions renewed after reconnects).
 */
import type { ChatMessage, MediaRef } from '../protocol/frames.js';
import type { WireFrame } from './codec.js';
import { SeqDedup } from './dedup.js';
import { Emitter, type Listener } from './emitter.js';
import { SwitchboardError } from './errors.js';
import { randomId } from './ids.js';
import type { OutboxItem } from './outbox.js';
import { SeqLog } from './received.js';
import { Session, type OutgoingFrame } from './session.js';
import type {
  Ack,
  ClientEvents,
  ConnectionState,
  ConvInfo,
  ErrPush,
  GroupCreated,
  GroupCreateInput,
  GroupInfo,
  MediaGet,
  MediaPut,
  Pong,
  Presence,
  ReceiptInfo,
  SendInput,
  SwitchboardClientOptions,
  SyncResult,
  Welcome,
} from './types.js';

/** Users per presence frame (the frame schema's bound). */
const PRESENCE_CHUNK = 1000;

export class SwitchboardClient {
  private readonly emitter = new Emitter<ClientEvents>();
  private readonly session: Session;
  private readonly dedup: SeqDedup;
  private readonly log: SeqLog;
  /** recv/read watermarks asked for while disconnected: the highest per conversation. */
  private readonly marks = new Map<string, { recv: number; read: number }>();
  /** Users subscribed (and not denied), renewed after each reconnect. */
  private readonly presenceUsers = new Set<string>();
  /** The last `presence` push of each subscribed user. */
  private readonly presenceState = new Map<string, Presence>();

  constructor(private readonly opts: SwitchboardClientOptions) {
    this.dedup = new SeqDedup({ window: opts.dedupWindow ?? 512 });
    this.log = new SeqLog(opts.receivedLimit ?? 10_000);
    this.session = new Session(opts, this.emitter, {
      welcome: () => this.afterWelcome(),
      push: (f) => this.onPush(f),
      shutdown: () => {
        this.marks.clear();
        this.presenceUsers.clear();
        this.presenceState.clear();
      },
    });
  }

  // ---- events and state -----------------------------------------------------------------

  on<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): () => void {
    return this.emitter.on(event, fn);
  }

  once<K extends keyof ClientEvents>(event: K, fn: Listener<ClientEvents[K]>): () => void {
    return this.emitter.once(event, fn);
  }

  /** The first payload of `event` (from now on) that satisfies `predicate`; rejects with `timeout`. */
  waitFor<K extends keyof ClientEvents>(
    event: K,
    predicate?: (...args: ClientEvents[K]) => boolean,
    timeoutMs = 5_000,
  ): Promise<ClientEvents[K][0]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new SwitchboardError('timeout', `waitFor('${String(event)}'): nothing matched within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.emitter.on(event, (...args: ClientEvents[K]) => {
        let hit: boolean;
        try {
          hit = predicate ? predicate(...args) : true;
        } catch (e) {
          clearTimeout(timer);
          off();
          reject(e);
          return;
        }
        if (!hit) return;
        clearTimeout(timer);
        off();
        resolve(args[0]);
      });
    });
  }

  get state(): ConnectionState {
    return this.session.state;
  }

  /** The user id of the last welcome. */
  get user(): string | undefined {
    return this.session.welcome?.user;
  }

  get welcome(): Welcome | undefined {
    return this.session.welcome;
  }

  /** Ascending seqs of `conv` that reached this client (live, backlog or sync), the newest `receivedLimit`. */
  received(conv: string): number[] {
    return this.log.get(conv);
  }

  /** Sends and group creates not yet answered for good, oldest first. */
  outboxItems(): ReadonlyArray<Readonly<OutboxItem<OutgoingFrame>>> {
    return this.session.outboxItems();
  }

  // ---- connection -------------------------------------------------------------------------

  /** Opens the session (if not open) and resolves with the welcome. Rejects on 4001 or close(). */
  connect(): Promise<Welcome> {
    return this.session.connect();
  }

  /** Closes for good (no reconnect): pending requests and unsent sends reject with `closed`. */
  close(): Promise<void> {
    return this.session.close();
  }

  private afterWelcome(): void {
    const users = [...this.presenceUsers];
    for (let i = 0; i < users.length; i += PRESENCE_CHUNK) {
      this.presenceSub(users.slice(i, i + PRESENCE_CHUNK)).catch(() => {
        // best effort; the app can subscribe again
      });
    }
    const marks = [...this.marks];
    this.marks.clear();
    for (const [conv, m] of marks) {
      if (m.recv > m.read) this.session.write({ t: 'recv', conv, seq: m.recv });
      if (m.read > 0) this.session.write({ t: 'read', conv, seq: m.read });
    }
  }

  private onPush(f: WireFrame): void {
    const { t, ...rest } = f;
    switch (t) {
      case 'msg':
        this.onMsg(rest as unknown as ChatMessage);
        return;
      case 'synced':
        this.emitter.emit('synced');
        return;
      case 'err':
        this.emitter.emit('err', rest as unknown as ErrPush);
        return;
      case 'presence': {
        const p = rest as unknown as Presence;
        if (this.presenceUsers.has(p.user)) this.presenceState.set(p.user, p);
        this.emitter.emit('presence', p);
        return;
      }
      case 'receipt':
      case 'typing':
        (this.emitter.emit as (e: string, p: unknown) => void).call(this.emitter, t, rest);
        return;
      default:
        return; // replies after their deadline, frames of later protocol versions
    }
  }

  private onMsg(m: ChatMessage): void {
    if (typeof m.conv !== 'string' || typeof m.seq !== 'number') {
      this.emitter.emit('error', new Error('msg push without conv/seq'));
      return;
    }
    const fresh = this.dedup.add(m.conv, m.seq);
    if (fresh) this.log.add(m.conv, m.seq);
    const collectors = this.session.collectors;
    const syncing = collectors.length > 0;
    for (const c of collectors) c.push(m);
    // A repeat outside sync means the node did not get our recv: acknowledge it again.
    if (this.opts.autoRecv && m.from !== this.user && (fresh || !syncing)) this.recv(m.conv, m.seq);
    if (fresh || syncing) this.emitter.emit('msg', m, { sync: syncing, dup: !fresh });
  }

  private mark(kind: 'recv' | 'read', conv: string, seq: number): void {
    if (this.session.write({ t: kind, conv, seq }) || this.session.ended) return;
    const m = this.marks.get(conv) ?? { recv: 0, read: 0 };
    m[kind] = Math.max(m[kind], seq);
    this.marks.set(conv, m);
  }

  // ---- messages ---------------------------------------------------------------------------

  /**
   * Sends a message. Kept in the outbox (same cmid) until acked: written after reconnects and
   * retried after unavailable/internal/rate_limited; rejected on a permanent error. A second
   * send of a cmid still pending joins it (same content) or is refused (other content).
   */
  send(input: SendInput): Promise<Ack> {
    const cmid = input.cmid ?? randomId();
    if ((input.to === undefined) === (input.conv === undefined)) {
      return Promise.reject(new SwitchboardError('bad_request', 'send needs exactly one of to and conv'));
    }
    if (input.body === undefined && input.media === undefined) {
      return Promise.reject(new SwitchboardError('bad_request', 'send needs a body or media'));
    }
    const frame: OutgoingFrame = { t: 'send', cmid };
    if (input.to !== undefined) frame.to = input.to;
    if (input.conv !== undefined) frame.conv = input.conv;
    if (input.body !== undefined) frame.body = input.body;
    if (input.media !== undefined) frame.media = input.media;
    if (input.reply !== undefined) frame.reply = input.reply;
    // Keyed by cmid alone: one connection never carries two copies of a cmid.
    const key = `send\u0000${cmid}`;
    return this.session.enqueue(key, frame).then((f) => ({
      conv: String(f.conv),
      seq: Number(f.seq),
      cmid: typeof f.cmid === 'string' ? f.cmid : cmid,
      ts: Number(f.ts),
      ...(f.dup === true ? { dup: true } : {}),
    }));
  }

  /** Delivered watermark (queued while disconnected; the highest per conversation is sent on reconnect). */
  recv(conv: string, seq: number): void {
    this.mark('recv', conv, seq);
  }

  /** Read watermark (queued like recv). */
  read(conv: string, seq: number): void {
    this.mark('read', conv, seq);
  }

  /** True when written; typing is not queued while disconnected. */
  typing(conv: string, on: boolean): boolean {
    return this.session.write({ t: 'typing', conv, on });
  }

  /** Marks the user active (presence). True when written. */
  active(): boolean {
    return this.session.write({ t: 'active' });
  }

  async history(conv: string, opts: { before?: number; limit?: number } = {}): Promise<ChatMessage[]> {
    const frame: OutgoingFrame = { t: 'history', conv };
    if (opts.before !== undefined) frame.before = opts.before;
    if (opts.limit !== undefined) frame.limit = opts.limit;
    const ok = await this.session.request(frame);
    return (Array.isArray(ok.msgs) ? ok.msgs : []).map((m: unknown) => payload(m) as unknown as ChatMessage);
  }

  /**
   * Asks for the messages above `since[conv]` (else above the delivered watermark). Resolves
   * with the msg pushes that arrived before the ok; each is also emitted as 'msg' with
   * `{ sync: true }`, even when seen before.
   */
  async sync(since?: Record<string, number>): Promise<SyncResult> {
    const msgs: ChatMessage[] = [];
    const frame: OutgoingFrame = { t: 'sync' };
    if (since !== undefined) frame.since = since;
    const ok = await this.session.request(frame, msgs);
    return { msgs, convs: (ok.convs ?? {}) as Record<string, number> };
  }

  async info(conv: string, seq: number): Promise<ReceiptInfo> {
    const ok = await this.session.request({ t: 'info', conv, seq });
    return { delivered: (ok.delivered ?? []) as string[], read: (ok.read ?? []) as string[] };
  }

  async convs(): Promise<ConvInfo[]> {
    const ok = await this.session.request({ t: 'convs' });
    return (ok.convs ?? []) as ConvInfo[];
  }

  // ---- groups -----------------------------------------------------------------------------

  /** Creates a group; retried like send until ok (idempotent by cmid). */
  groupCreate(input: GroupCreateInput): Promise<GroupCreated> {
    const cmid = input.cmid ?? randomId();
    const frame: OutgoingFrame = { t: 'group.create', cmid, title: input.title, members: input.members };
    return this.session
      .enqueue(`group.create\u0000${cmid}`, frame)
      .then((f) => ({ conv: String(f.conv), seq: Number(f.seq), cmid }));
  }

  async groupAdd(conv: string, users: string[]): Promise<{ seq: number }> {
    const ok = await this.session.request({ t: 'group.add', conv, users });
    return { seq: Number(ok.seq) };
  }

  async groupRemove(conv: string, users: string[]): Promise<{ seq: number }> {
    const ok = await this.session.request({ t: 'group.remove', conv, users });
    return { seq: Number(ok.seq) };
  }

  async groupLeave(conv: string): Promise<{ seq: number }> {
    const ok = await this.session.request({ t: 'group.leave', conv });
    return { seq: Number(ok.seq) };
  }

  async groupInfo(conv: string): Promise<GroupInfo> {
    const ok = await this.session.request({ t: 'group.info', conv });
    return payload(ok) as unknown as GroupInfo;
  }

  // ---- presence ---------------------------------------------------------------------------

  /** Subscribes (and re-subscribes after each reconnect) to the users not denied. */
  async presenceSub(users: string[]): Promise<{ denied: string[] }> {
    const ok = await this.session.request({ t: 'presence.sub', users });
    const denied = Array.isArray(ok.denied) ? (ok.denied as string[]) : [];
    const no = new Set(denied);
    for (const u of users) if (!no.has(u)) this.presenceUsers.add(u);
    for (const u of denied) this.presenceUsers.delete(u);
    return { denied };
  }

  async presenceUnsub(users: string[]): Promise<void> {
    for (const u of users) {
      this.presenceUsers.delete(u);
      this.presenceState.delete(u);
    }
    await this.session.request({ t: 'presence.unsub', users });
  }

  /** The last `presence` pushed for a subscribed user (undefined before the first push). */
  presenceOf(user: string): Presence | undefined {
    return this.presenceState.get(user);
  }

  // ---- media ------------------------------------------------------------------------------

  async mediaPut(input: { mime: string; size: number; name?: string }): Promise<MediaPut> {
    const frame: OutgoingFrame = { t: 'media.put', mime: input.mime, size: input.size };
    if (input.name !== undefined) frame.name = input.name;
    const ok = await this.session.request(frame);
    return payload(ok) as unknown as MediaPut;
  }

  async mediaGet(media: string | { id: string }): Promise<MediaGet> {
    const ok = await this.session.request({ t: 'media.get', media: typeof media === 'string' ? media : media.id });
    return { url: String(ok.url), expires: Number(ok.expires) };
  }

  /**
   * media.put, then the upload of exactly these bytes with `fetch` to the signed URL; resolves
   * with the ref to put in a send (`send({ conv, media: ref })`). A refused upload rejects with
   * a SwitchboardError: `too_large` (HTTP 413), `forbidden` (403), `unavailable` (5xx, network).
   */
  async upload(data: Uint8Array | Blob, input: { mime: string; name?: string }): Promise<MediaRef> {
    const size = data instanceof Uint8Array ? data.byteLength : data.size;
    const put = await this.mediaPut({ mime: input.mime, size, ...(input.name !== undefined ? { name: input.name } : {}) });
    const res = await httpFetch('upload', put.url, { method: put.method || 'PUT', headers: put.headers ?? {}, body: data as unknown as BodyInit });
    await res.arrayBuffer().catch(() => undefined);
    const ref: MediaRef = { id: put.media, mime: input.mime, size };
    if (input.name !== undefined) ref.name = input.name;
    return ref;
  }

  /** media.get, then the bytes with `fetch`: resolves with them and their content type. */
  async download(media: string | { id: string }): Promise<{ data: Uint8Array; mime: string }> {
    const { url } = await this.mediaGet(media);
    const res = await httpFetch('download', url);
    return { data: new Uint8Array(await res.arrayBuffer()), mime: res.headers.get('content-type') ?? 'application/octet-stream' };
  }

  // ---- misc -------------------------------------------------------------------------------

  async ping(): Promise<Pong> {
    const started = Date.now();
    const f = await this.session.request({ t: 'ping' });
    return { time: Number(f.time), rttMs: Date.now() - started };
  }
}

/** `fetch` whose failures are SwitchboardErrors (HTTP status mapped to a wire-like code). */
async function httpFetch(what: string, url: string, init?: RequestInit): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new SwitchboardError('unavailable', `${what} failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (res.ok) return res;
  await res.arrayBuffer().catch(() => undefined);
  const s = res.status;
  const code = s === 413 ? 'too_large' : s === 403 ? 'forbidden' : s === 404 ? 'not_found' : s >= 500 ? 'unavailable' : 'bad_request';
  throw new SwitchboardError(code, `${what} failed: HTTP ${s}`);
}

/** A reply or message without the wire-only fields `t` and `re`. */
function payload(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return {};
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (k !== 't' && k !== 're') out[k] = x;
  return out;
}
