/**
 * The load generator: raw `ws` clients (no SDK) driving either the echo server (N
 * connections, W frames in flight each) or a node (N sender → recipient DM pairs, W unacked
 * sends per sender, a `recv` for every message). Each run: connect, warm up, measure for a
 * fixed window, stop sending, drain (bounded), check. Correctness is checked while it runs.
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { Packr, Unpackr } from 'msgpackr';

export type Encoding = 'json' | 'msgpack';
type Frame = Record<string, unknown>;

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

export interface Codec {
  protocol: string;
  encode(f: Frame): string | Buffer;
  decode(data: Buffer, isBinary: boolean): Frame;
}

export function codec(encoding: Encoding): Codec {
  return encoding === 'json'
    ? { protocol: 'sb.v1.json', encode: (f) => JSON.stringify(f), decode: (d) => JSON.parse(d.toString('utf8')) as Frame }
    : { protocol: 'sb.v1.msgpack', encode: (f) => packr.pack(f), decode: (d) => unpackr.unpack(d) as Frame };
}

/** The message body of every send (and echo frame): 100 bytes of ASCII. */
export const BODY = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. 0123456789abcd';
/** User ids of pair i (fixed width so every frame of a run has the same size). */
export const sender = (i: number) => `a${String(i).padStart(5, '0')}`;
export const recipient = (i: number) => `b${String(i).padStart(5, '0')}`;
/** The send frame; the echo baseline sends exactly this too. */
export const sendFrame = (id: number, i: number, n: number): Frame => ({ t: 'send', id, to: recipient(i), cmid: `c${String(n).padStart(9, '0')}`, body: BODY });

/** Latency samples kept per metric (bounded memory); later samples are counted but not kept. */
const MAX_SAMPLES = 1_000_000;

export class Samples {
  private readonly buf: Float64Array;
  n = 0;
  dropped = 0;
  constructor(cap = MAX_SAMPLES) {
    this.buf = new Float64Array(cap);
  }
  add(ms: number): void {
    if (this.n < this.buf.length) this.buf[this.n++] = ms;
    else this.dropped++;
  }
  summary(): { p50: number | null; p99: number | null; max: number | null; n: number } {
    if (this.n === 0) return { p50: null, p99: null, max: null, n: 0 };
    const s = this.buf.slice(0, this.n).sort();
    const q = (p: number) => s[Math.min(this.n - 1, Math.max(0, Math.ceil(p * this.n) - 1))]!;
    return { p50: round(q(0.5), 3), p99: round(q(0.99), 3), max: round(s[this.n - 1]!, 3), n: this.n };
  }
}

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const now = () => performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Phases {
  warmupMs: number;
  measureMs: number;
  /** Longest wait for in-flight work after the window closes. */
  drainMs: number;
  /** A progress line (every second). */
  progress(line: string): void;
  /** Called at the start and the end of the measuring window (CPU sampling). */
  onWindow?(edge: 'start' | 'end'): void;
}

/** Counts events only inside the measuring window. */
export class Window {
  start = Infinity;
  end = Infinity;
  in(t: number): boolean {
    return t >= this.start && t < this.end;
  }
  get seconds(): number {
    return (this.end - this.start) / 1000;
  }
}

export function connect(url: string, protocol: string, timeoutMs: number, localAddress?: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocol, { perMessageDeflate: false, handshakeTimeout: timeoutMs, ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`connect ${url}${localAddress ? ` from ${localAddress}` : ''}: timeout`));
    }, timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      // Later socket errors end in 'close', which the runs watch; never an uncaught 'error'.
      ws.on('error', () => {});
      resolve(ws);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A frame from a server: binary in the codec's encoding; text is JSON (raw baselines may send either). */
export const decode = (c: Codec, data: Buffer, isBinary: boolean): Record<string, unknown> =>
  isBinary ? c.decode(data, true) : (JSON.parse(data.toString('utf8')) as Record<string, unknown>);

/**
 * Send hello and wait for `synced`: resolves with the ms it took; frames before it go to
 * `onFrame` (a backlog), an `err` rejects.
 */
export function hello(ws: WebSocket, c: Codec, user: string, token: string, timeoutMs: number, onFrame?: (f: Record<string, unknown>) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => {
      ws.off('message', onMsg);
      reject(new Error(`${user}: no synced within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMsg = (data: Buffer, isBinary: boolean) => {
      const f = decode(c, data, isBinary);
      if (f.t === 'synced') {
        clearTimeout(timer);
        ws.off('message', onMsg);
        resolve(performance.now() - t0);
      } else if (f.t === 'err') {
        clearTimeout(timer);
        ws.off('message', onMsg);
        reject(new Error(`${user}: hello refused: ${String(f.code)} ${String(f.msg)}`));
      } else onFrame?.(f);
    };
    ws.on('message', onMsg);
    ws.send(c.encode({ t: 'hello', token, device: 'bench' }));
  });
}

/** Run `f` over `items` with at most `limit` at a time. */
export async function pool<T, R>(items: T[], limit: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

/** Warm-up, window, stop, bounded drain; progress once a second. */
export async function drive(
  label: string,
  p: Phases,
  win: Window,
  counters: () => { done: number; inflight: number },
  unit: string,
  stop: () => void,
  drained: () => boolean,
  broken: () => string | null,
): Promise<{ drainMs: number; drainedOk: boolean }> {
  const t0 = now();
  let last = { t: t0, done: counters().done };
  const tick = setInterval(() => {
    const t = now();
    const c = counters();
    const phase = t < win.start ? 'warm-up' : t < win.end ? 'measure' : 'drain';
    const rate = ((c.done - last.done) * 1000) / (t - last.t);
    p.progress(`${label} ${((t - t0) / 1000).toFixed(1).padStart(5)}s ${phase.padEnd(7)} ${Math.round(rate).toLocaleString('en-US').padStart(7)} ${unit}/s  in flight ${c.inflight}`);
    last = { t, done: c.done };
  }, 1000);
  try {
    win.start = t0 + p.warmupMs;
    win.end = win.start + p.measureMs;
    await sleepUntil(win.start, broken);
    p.onWindow?.('start');
    await sleepUntil(win.end, broken);
    p.onWindow?.('end');
    stop();
    const tStop = now();
    const deadline = tStop + p.drainMs;
    while (!drained() && now() < deadline && broken() === null) await sleep(10);
    return { drainMs: round(now() - tStop), drainedOk: drained() };
  } finally {
    clearInterval(tick);
  }
}

async function sleepUntil(t: number, broken: () => string | null): Promise<void> {
  for (let i = 0; i < 100_000 && now() < t; i++) {
    const why = broken();
    if (why) throw new Error(why);
    await sleep(Math.min(50, Math.max(1, t - now())));
  }
}

// ------------------------------------------------------------------------------ echo

export interface EchoOptions extends Phases {
  url: string;
  encoding: Encoding;
  connections: number;
  window: number;
}

export interface EchoResult {
  roundTripsPerSec: number;
  framesPerSec: number;
  rtt: ReturnType<Samples['summary']>;
  frameBytes: number;
  seconds: number;
  drainMs: number;
  violations: { lost: number; unexpected: number };
}

export async function runEcho(o: EchoOptions, label: string): Promise<EchoResult> {
  const c = codec(o.encoding);
  const win = new Window();
  const rtt = new Samples();
  let stopped = false;
  let done = 0;
  let inWindow = 0;
  let inflight = 0;
  let unexpected = 0;
  let closedEarly: string | null = null;
  const socks = await pool(Array.from({ length: o.connections }, (_, i) => i), 50, () => connect(o.url, c.protocol, 10_000));
  try {
    socks.forEach((ws, i) => {
      const sentAt = new Map<number, number>();
      let nextId = 1;
      const send = () => {
        const id = nextId++;
        sentAt.set(id, now());
        inflight++;
        ws.send(c.encode(sendFrame(id, i, id)));
      };
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const t = now();
        const f = c.decode(data, isBinary);
        const t0 = sentAt.get(f.id as number);
        if (t0 === undefined) {
          unexpected++;
          return;
        }
        sentAt.delete(f.id as number);
        inflight--;
        done++;
        if (win.in(t)) {
          inWindow++;
          rtt.add(t - t0);
        }
        if (!stopped) send();
      });
      ws.on('close', () => {
        if (!stopped) closedEarly ??= `echo socket ${i} closed during the run`;
      });
      for (let k = 0; k < o.window; k++) send();
    });
    const d = await drive(
      label,
      o,
      win,
      () => ({ done, inflight }),
      'round trips',
      () => (stopped = true),
      () => inflight === 0,
      () => closedEarly,
    );
    return {
      roundTripsPerSec: round(inWindow / win.seconds),
      framesPerSec: round((2 * inWindow) / win.seconds),
      rtt: rtt.summary(),
      frameBytes: Buffer.byteLength(c.encode(sendFrame(1, 0, 1))),
      seconds: win.seconds,
      drainMs: d.drainMs,
      violations: { lost: inflight, unexpected },
    };
  } finally {
    stopped = true;
    for (const ws of socks) ws.terminate();
  }
}

// ------------------------------------------------------------------------------ node, end to end

export interface E2EOptions extends Phases {
  url: string;
  /** Where a user connects (cluster runs spread users over nodes); default `url`. */
  urlFor?(user: string, role: 'sender' | 'recipient', i: number): string;
  encoding: Encoding;
  pairs: number;
  window: number;
  token(user: string): Promise<string>;
}

export interface E2EViolations {
  /** An ack whose seq was acked before in the conversation. */
  ackSeqRepeated: number;
  /** Seqs in 1..max of a conversation that no ack carried (after the drain). */
  ackSeqGaps: number;
  /** Acks with dup:true (every cmid is sent once). */
  ackDup: number;
  /** Acked messages the recipient did not receive (after the drain). */
  msgMissing: number;
  /** A (conv, seq) pushed to the recipient more than once. */
  msgDuplicated: number;
  /** A push whose seq is not above the previous one of the conversation. */
  msgOutOfOrder: number;
  /** A push that does not match its ack (cmid ↔ seq), or with wrong conv / from / body. */
  msgMismatch: number;
  /** Receipts for the wrong user, conv or kind, and conversations whose last receipt never came. */
  receiptBad: number;
  /** Receipts at or below the previous one: a receipt pushed again (e.g. a command handled twice after a redelivery). */
  receiptRepeated: number;
  /**
   * A second ack for a request already acked (the client sent it once) that is not the
   * idempotent answer (dup:true, the same seq): a command handled twice as a new message.
   * (The idempotent answer to a redelivered command is counted in `acksRedelivered`.)
   */
  ackExtra: number;
  /** err frames, sends never acked, unexpected frames. */
  errors: number;
}

export interface E2EResult {
  msgsPerSec: number;
  acksPerSec: number;
  receiptsPerSec: number;
  /** Frames through the node (client-side count of both directions) per second. */
  framesPerSec: number;
  framesPerMsg: number;
  sendToMsg: ReturnType<Samples['summary']>;
  sendToAck: ReturnType<Samples['summary']>;
  sendToReceipt: ReturnType<Samples['summary']>;
  frameBytes: number;
  seconds: number;
  drainMs: number;
  /** Everything sent was acked, pushed and receipted before the drain's bound. */
  drained: boolean;
  /** Acks in seq order per conversation? (Not required by the protocol; reported.) */
  acksOutOfOrder: number;
  /** Idempotent re-answers (dup:true, same seq) to a request acked before: a bus redelivery, not a client retry. */
  acksRedelivered: number;
  totals: { sent: number; acked: number; received: number; receipts: number };
  violations: E2EViolations;
  errorCodes: Record<string, number>;
  /** Frames no check expected (counted in violations.errors), by `<socket role>:<frame type>`. */
  unexpected: Record<string, number>;
}

interface Pair {
  i: number;
  a: WebSocket;
  b: WebSocket;
  conv: string;
  nextId: number;
  sent: number;
  /** id → [cmid number, send time] of sends without an ack. */
  unacked: Map<number, { n: number; t: number }>;
  /** Request ids acked so far. */
  /** Acked request ids → the seq of their ack. */
  ackedIds: Map<number, number>;
  /** cmid → what is known of it until both its ack and its push are seen. */
  open: Map<string, { t: number; ackSeq?: number; msgSeq?: number }>;
  acked: Set<number>;
  maxAck: number;
  lastAck: number;
  received: Set<number>;
  lastMsg: number;
  /** seq → send time, until its receipt. */
  awaitingReceipt: Map<number, number>;
  lastReceipt: number;
}

export async function runE2E(o: E2EOptions, label: string): Promise<E2EResult> {
  const c = codec(o.encoding);
  const win = new Window();
  const lat = { msg: new Samples(), ack: new Samples(), receipt: new Samples() };
  const v: E2EViolations = { ackSeqRepeated: 0, ackSeqGaps: 0, ackDup: 0, ackExtra: 0, msgMissing: 0, msgDuplicated: 0, msgOutOfOrder: 0, msgMismatch: 0, receiptBad: 0, receiptRepeated: 0, errors: 0 };
  const errorCodes: Record<string, number> = {};
  const unexpected: Record<string, number> = {};
  const unexpectedFrame = (role: string, f: Frame) => {
    v.errors++;
    const k = `${role}:${String(f.t)}`;
    unexpected[k] = (unexpected[k] ?? 0) + 1;
  };
  const w = { msgs: 0, acks: 0, receipts: 0, framesIn: 0, framesOut: 0 };
  const total = { sent: 0, acked: 0, received: 0, receipts: 0 };
  let acksOutOfOrder = 0;
  let acksRedelivered = 0;
  let stopped = false;
  let closedEarly: string | null = null;
  const all: WebSocket[] = [];

  const users = Array.from({ length: o.pairs }, (_, i) => [sender(i), recipient(i)]).flat();
  const tokens = new Map<string, string>();
  await pool(users, 16, async (u) => void tokens.set(u, await o.token(u)));

  /** Connect, hello, wait for synced; backlog pushes (none for fresh users) are ignored. */
  const open = (user: string, role: 'sender' | 'recipient', i: number): Promise<WebSocket> =>
    session(o.urlFor?.(user, role, i) ?? o.url, c, user, tokens.get(user)!, all);

  try {
    const pairs: Pair[] = await pool(Array.from({ length: o.pairs }, (_, i) => i), 25, async (i) => {
      const [a, b] = await Promise.all([open(sender(i), 'sender', i), open(recipient(i), 'recipient', i)]);
      return {
        i,
        a,
        b,
        conv: `dm:${sender(i)}:${recipient(i)}`,
        nextId: 1,
        sent: 0,
        unacked: new Map(),
        ackedIds: new Map(),
        open: new Map(),
        acked: new Set(),
        maxAck: 0,
        lastAck: 0,
        received: new Set(),
        lastMsg: 0,
        awaitingReceipt: new Map(),
        lastReceipt: 0,
      };
    });

    const error = (f: Frame) => {
      v.errors++;
      const code = String(f.code);
      errorCodes[code] = (errorCodes[code] ?? 0) + 1;
    };

    const starters: Array<() => void> = [];
    for (const p of pairs) {
      const send = () => {
        const id = p.nextId++;
        const n = ++p.sent;
        const t = now();
        p.unacked.set(id, { n, t });
        p.open.set(`c${String(n).padStart(9, '0')}`, { t });
        total.sent++;
        p.a.send(c.encode(sendFrame(id, p.i, n)));
        if (win.in(t)) w.framesOut++;
      };
      /** Both the ack and the push of a cmid are in: compare them. */
      const settle = (cmid: string, e: { ackSeq?: number; msgSeq?: number }) => {
        if (e.ackSeq === undefined || e.msgSeq === undefined) return;
        if (e.ackSeq !== e.msgSeq) v.msgMismatch++;
        p.open.delete(cmid);
      };

      p.a.on('message', (data: Buffer, isBinary: boolean) => {
        const t = now();
        const inWin = win.in(t);
        if (inWin) w.framesIn++;
        const f = c.decode(data, isBinary);
        if (f.t === 'ack') {
          const u = p.unacked.get(f.re as number);
          const seq = f.seq as number;
          if (!u) {
            const first = p.ackedIds.get(f.re as number);
            if (first === undefined) v.errors++;
            else if (f.dup === true && f.seq === first) acksRedelivered++;
            else v.ackExtra++;
            return;
          }
          p.unacked.delete(f.re as number);
          p.ackedIds.set(f.re as number, f.seq as number);
          total.acked++;
          if (f.dup === true) v.ackDup++;
          if (p.acked.has(seq)) v.ackSeqRepeated++;
          p.acked.add(seq);
          if (seq !== p.lastAck + 1) acksOutOfOrder++;
          p.lastAck = seq;
          p.maxAck = Math.max(p.maxAck, seq);
          if (f.conv !== p.conv) v.msgMismatch++;
          const cmid = f.cmid as string;
          const e = p.open.get(cmid);
          if (e) {
            e.ackSeq = seq;
            settle(cmid, e);
          } else v.msgMismatch++;
          p.awaitingReceipt.set(seq, u.t);
          if (inWin) {
            w.acks++;
            lat.ack.add(t - u.t);
          }
          if (!stopped) send();
        } else if (f.t === 'receipt') {
          const seq = f.seq as number;
          total.receipts++;
          if (f.kind !== 'delivered' || f.user !== recipient(p.i) || f.conv !== p.conv) {
            v.receiptBad++;
            return;
          }
          if (seq <= p.lastReceipt) {
            v.receiptRepeated++;
            return;
          }
          for (let s = p.lastReceipt + 1; s <= seq; s++) {
            const t0 = p.awaitingReceipt.get(s);
            if (t0 === undefined) continue;
            p.awaitingReceipt.delete(s);
            if (inWin) lat.receipt.add(t - t0);
          }
          p.lastReceipt = seq;
          if (inWin) w.receipts++;
        } else if (f.t === 'err') error(f);
        else unexpectedFrame('sender', f);
      });

      p.b.on('message', (data: Buffer, isBinary: boolean) => {
        const t = now();
        const inWin = win.in(t);
        if (inWin) w.framesIn++;
        const f = c.decode(data, isBinary);
        if (f.t !== 'msg') {
          if (f.t === 'err') error(f);
          else unexpectedFrame('recipient', f);
          return;
        }
        const seq = f.seq as number;
        total.received++;
        if (p.received.has(seq)) v.msgDuplicated++;
        else if (seq <= p.lastMsg) v.msgOutOfOrder++;
        p.received.add(seq);
        p.lastMsg = Math.max(p.lastMsg, seq);
        if (f.conv !== p.conv || f.from !== sender(p.i) || f.body !== BODY) v.msgMismatch++;
        const cmid = f.cmid as string;
        const e = p.open.get(cmid);
        if (e) {
          e.msgSeq = seq;
          if (inWin) {
            w.msgs++;
            lat.msg.add(t - e.t);
          }
          settle(cmid, e);
        } else v.msgMismatch++;
        p.b.send(c.encode({ t: 'recv', conv: f.conv as string, seq }));
        if (inWin) w.framesOut++;
      });

      starters.push(send);
      for (const ws of [p.a, p.b]) {
        ws.on('close', (code) => {
          if (!stopped) closedEarly ??= `pair ${p.i}: socket closed during the run (code ${code})`;
        });
      }
    }

    // The first window of every sender; later sends follow acks (see the handler above).
    for (const start of starters) for (let k = 0; k < o.window; k++) start();

    const drainedAll = () =>
      pairs.every((p) => p.unacked.size === 0 && p.received.size >= p.acked.size && p.lastReceipt >= p.maxAck);
    const d = await drive(
      label,
      o,
      win,
      () => ({ done: total.received, inflight: total.sent - total.acked }),
      'msgs',
      () => (stopped = true),
      drainedAll,
      () => closedEarly,
    );

    // After the drain: what never arrived.
    for (const p of pairs) {
      v.errors += p.unacked.size;
      for (let s = 1; s <= p.maxAck; s++) if (!p.acked.has(s)) v.ackSeqGaps++;
      for (const s of p.acked) if (!p.received.has(s)) v.msgMissing++;
      if (p.lastReceipt < p.maxAck) v.receiptBad++;
    }
    const frames = w.framesIn + w.framesOut;
    return {
      msgsPerSec: round(w.msgs / win.seconds),
      acksPerSec: round(w.acks / win.seconds),
      receiptsPerSec: round(w.receipts / win.seconds),
      framesPerSec: round(frames / win.seconds),
      framesPerMsg: w.msgs > 0 ? round(frames / w.msgs, 2) : 0,
      sendToMsg: lat.msg.summary(),
      sendToAck: lat.ack.summary(),
      sendToReceipt: lat.receipt.summary(),
      frameBytes: Buffer.byteLength(c.encode(sendFrame(1, 0, 1))),
      seconds: win.seconds,
      drainMs: d.drainMs,
      drained: d.drainedOk,
      acksOutOfOrder,
      acksRedelivered,
      totals: total,
      violations: v,
      errorCodes,
      unexpected,
    };
  } finally {
    stopped = true;
    for (const ws of all) ws.terminate();
  }
}

// ------------------------------------------------------------------------------ busy groups

export interface GroupOptions extends Phases {
  url: string;
  /** Where a user connects (cluster runs spread users over nodes); default `url`. */
  urlFor?(user: string, role: 'sender' | 'reader', group: number, k: number): string;
  encoding: Encoding;
  groups: number;
  /** Senders per group (each also receives the others' messages). */
  senders: number;
  /** Unacked sends per sender: a group has up to senders × window messages in flight. */
  window: number;
  token(user: string): Promise<string>;
}

export interface GroupResult extends E2EResult {
  /** `msg` pushes to every member per second (each message goes to every member but its sender). */
  pushesPerSec: number;
  membersPerGroup: number;
}

const pad = (n: number, w: number) => String(n).padStart(w, '0');
export const groupSender = (g: number, k: number) => `g${pad(g, 3)}s${pad(k, 3)}`;
export const groupReader = (g: number) => `g${pad(g, 3)}rdr`;

interface Member {
  user: string;
  ws: WebSocket;
  reader: boolean;
  received: Set<number>;
  last: number;
  lastReceipt: number;
  /** Highest seq pushed to this member; senders acknowledge it at most every RECV_COALESCE_MS. */
  maxSeen: number;
  recvTimer: NodeJS.Timeout | null;
}

interface GroupSender extends Member {
  k: number;
  nextId: number;
  sent: number;
  unacked: Map<number, { n: number; t: number }>;
  /** Acked request ids → the seq of their ack. */
  ackedIds: Map<number, number>;
}

interface BusyGroup {
  g: number;
  conv: string | null;
  created: boolean;
  members: Member[];
  senders: GroupSender[];
  reader: Member;
  /** `${from}/${cmid}` → send time, the seq its ack carried, the seq its pushes carried. */
  sends: Map<string, { t: number; ackSeq?: number; pushSeq?: number }>;
  /** seq → sender, from the acks. */
  acked: Map<number, string>;
  /** seq → send time, until the reader's receipt covers it. */
  awaitingReceipt: Map<number, number>;
  maxAck: number;
}

const RECV_COALESCE_MS = 20;

/** Connect, hello, wait for synced (fresh users have no backlog). */
async function session(url: string, c: Codec, user: string, token: string, all: WebSocket[]): Promise<WebSocket> {
  const ws = await connect(url, c.protocol, 10_000);
  all.push(ws);
  await hello(ws, c, user, token, 10_000);
  return ws;
}

/**
 * Many senders in a few busy groups: each group has `senders` members sending with a window
 * and one reader (its creator) that only receives and acknowledges. Every member gets every
 * message it did not send; all of them are checked (order, duplicates, missing), the reader's
 * pushes give the message rate and latency.
 */
export async function runGroups(o: GroupOptions, label: string): Promise<GroupResult> {
  const c = codec(o.encoding);
  const win = new Window();
  const lat = { msg: new Samples(), ack: new Samples(), receipt: new Samples() };
  const v: E2EViolations = { ackSeqRepeated: 0, ackSeqGaps: 0, ackDup: 0, ackExtra: 0, msgMissing: 0, msgDuplicated: 0, msgOutOfOrder: 0, msgMismatch: 0, receiptBad: 0, receiptRepeated: 0, errors: 0 };
  const errorCodes: Record<string, number> = {};
  const unexpected: Record<string, number> = {};
  const unexpectedFrame = (role: string, f: Frame) => {
    v.errors++;
    const k = `${role}:${String(f.t)}`;
    unexpected[k] = (unexpected[k] ?? 0) + 1;
  };
  const w = { msgs: 0, acks: 0, receipts: 0, pushes: 0, framesIn: 0, framesOut: 0 };
  const total = { sent: 0, acked: 0, received: 0, receipts: 0 };
  let acksOutOfOrder = 0;
  let acksRedelivered = 0;
  let stopped = false;
  let closedEarly: string | null = null;
  const all: WebSocket[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const users: Array<{ user: string; g: number; k: number; reader: boolean }> = [];
  for (let g = 0; g < o.groups; g++) {
    users.push({ user: groupReader(g), g, k: -1, reader: true });
    for (let k = 0; k < o.senders; k++) users.push({ user: groupSender(g, k), g, k, reader: false });
  }
  const tokens = new Map<string, string>();
  await pool(users, 16, async (u) => void tokens.set(u.user, await o.token(u.user)));

  const error = (f: Frame) => {
    v.errors++;
    const code = String(f.code);
    errorCodes[code] = (errorCodes[code] ?? 0) + 1;
  };

  try {
    const socks = await pool(users, 25, (u) =>
      session(o.urlFor?.(u.user, u.reader ? 'reader' : 'sender', u.g, u.k) ?? o.url, c, u.user, tokens.get(u.user)!, all),
    );
    const groups: BusyGroup[] = [];
    users.forEach((u, i) => {
      const base: Member = { user: u.user, ws: socks[i]!, reader: u.reader, received: new Set(), last: 0, lastReceipt: 0, maxSeen: 0, recvTimer: null };
      if (u.reader) {
        groups[u.g] = { g: u.g, conv: null, created: false, members: [base], senders: [], reader: base, sends: new Map(), acked: new Map(), awaitingReceipt: new Map(), maxAck: 0 };
      } else {
        const s: GroupSender = Object.assign(base, { k: u.k, nextId: 1, sent: 0, unacked: new Map<number, { n: number; t: number }>(), ackedIds: new Map<number, number>() });
        groups[u.g]!.members.push(s);
        groups[u.g]!.senders.push(s);
      }
    });

    for (const grp of groups) {
      for (const m of grp.members) {
        const sendRecv = () => {
          if (m.recvTimer) timers.delete(m.recvTimer);
          m.recvTimer = null;
          if (grp.conv === null || closedEarly) return;
          m.ws.send(c.encode({ t: 'recv', conv: grp.conv, seq: m.maxSeen }));
          if (win.in(now())) w.framesOut++;
        };
        m.ws.on('message', (data: Buffer, isBinary: boolean) => {
          const t = now();
          const inWin = win.in(t);
          if (inWin) w.framesIn++;
          const f = c.decode(data, isBinary);
          switch (f.t) {
            case 'msg': {
              if (grp.conv === null && f.kind === 'system') grp.conv = f.conv as string;
              if (f.conv !== grp.conv) {
                v.msgMismatch++;
                return;
              }
              const seq = f.seq as number;
              total.received++;
              if (m.received.has(seq)) v.msgDuplicated++;
              else if (seq <= m.last) v.msgOutOfOrder++;
              m.received.add(seq);
              m.last = Math.max(m.last, seq);
              m.maxSeen = Math.max(m.maxSeen, seq);
              if (f.kind !== 'system') {
                if (inWin) w.pushes++;
                if (f.from === m.user || f.body !== BODY) v.msgMismatch++;
                const e = grp.sends.get(`${String(f.from)}/${String(f.cmid)}`);
                if (!e) v.msgMismatch++;
                else {
                  if ((e.ackSeq !== undefined && e.ackSeq !== seq) || (e.pushSeq !== undefined && e.pushSeq !== seq)) v.msgMismatch++;
                  e.pushSeq = seq;
                  if (m.reader && inWin) {
                    w.msgs++;
                    lat.msg.add(t - e.t);
                  }
                }
              }
              if (!grp.created) return; // the create's own push: no acknowledgements yet
              if (m.reader) {
                m.ws.send(c.encode({ t: 'recv', conv: grp.conv, seq }));
                if (inWin) w.framesOut++;
              } else if (m.recvTimer === null) {
                m.recvTimer = setTimeout(sendRecv, RECV_COALESCE_MS);
                timers.add(m.recvTimer);
              }
              return;
            }
            case 'ack': {
              const s = m as GroupSender;
              const u = m.reader ? undefined : s.unacked.get(f.re as number);
              if (!u) {
                const first = m.reader ? undefined : s.ackedIds.get(f.re as number);
                if (first === undefined) v.errors++;
                else if (f.dup === true && f.seq === first) acksRedelivered++;
                else v.ackExtra++;
                return;
              }
              s.unacked.delete(f.re as number);
              s.ackedIds.set(f.re as number, f.seq as number);
              const seq = f.seq as number;
              total.acked++;
              if (f.dup === true) v.ackDup++;
              if (grp.acked.has(seq)) v.ackSeqRepeated++;
              grp.acked.set(seq, m.user);
              if (seq < grp.maxAck) acksOutOfOrder++;
              grp.maxAck = Math.max(grp.maxAck, seq);
              if (f.conv !== grp.conv) v.msgMismatch++;
              const e = grp.sends.get(`${m.user}/${String(f.cmid)}`);
              if (!e) v.msgMismatch++;
              else {
                if (e.pushSeq !== undefined && e.pushSeq !== seq) v.msgMismatch++;
                e.ackSeq = seq;
              }
              grp.awaitingReceipt.set(seq, u.t);
              if (inWin) {
                w.acks++;
                lat.ack.add(t - u.t);
              }
              if (!stopped) sendOne(grp, s);
              return;
            }
            case 'receipt': {
              const seq = f.seq as number;
              if (f.user !== '*' || f.kind !== 'delivered' || f.conv !== grp.conv) {
                v.receiptBad++;
                return;
              }
              if (seq <= m.lastReceipt) {
                v.receiptRepeated++;
                return;
              }
              if (m.reader) {
                total.receipts++;
                for (let q = m.lastReceipt + 1; q <= seq; q++) {
                  const t0 = grp.awaitingReceipt.get(q);
                  if (t0 === undefined) continue;
                  grp.awaitingReceipt.delete(q);
                  if (inWin) lat.receipt.add(t - t0);
                }
                if (inWin) w.receipts++;
              }
              m.lastReceipt = seq;
              return;
            }
            case 'ok':
              if (m.reader && f.re === 'create' && typeof f.conv === 'string') {
                grp.conv ??= f.conv;
                if (grp.conv !== f.conv) v.msgMismatch++;
                grp.created = true;
              } else unexpectedFrame(m.reader ? 'reader' : 'sender', f);
              return;
            case 'err':
              error(f);
              return;
            default:
              if (f.t !== 'typing' && f.t !== 'presence') unexpectedFrame(m.reader ? 'reader' : 'sender', f);
          }
        });
        m.ws.on('close', (code) => {
          if (!stopped) closedEarly ??= `${m.user}: socket closed during the run (code ${code})`;
        });
      }
    }

    const sendOne = (grp: BusyGroup, s: GroupSender) => {
      const id = s.nextId++;
      const n = ++s.sent;
      const t = now();
      const cmid = `c${pad(n, 9)}`;
      s.unacked.set(id, { n, t });
      grp.sends.set(`${s.user}/${cmid}`, { t });
      total.sent++;
      s.ws.send(c.encode({ t: 'send', id, conv: grp.conv!, cmid, body: BODY }));
      if (win.in(t)) w.framesOut++;
    };

    // Create the groups (the reader is the creator) and wait until every member has the create.
    for (const grp of groups) {
      grp.reader.ws.send(c.encode({ t: 'group.create', id: 'create', cmid: 'create', title: `bench ${grp.g}`, members: grp.senders.map((s) => s.user) }));
    }
    const until = now() + 20_000;
    while (!groups.every((g) => g.created && g.members.every((m) => m.received.has(1)))) {
      if (closedEarly) throw new Error(closedEarly);
      if (v.errors > 0) throw new Error(`group.create failed: ${JSON.stringify(errorCodes)}`);
      if (now() > until) throw new Error('groups: not created (or the create not pushed to every member) within 20 s');
      await sleep(20);
    }

    for (const grp of groups) for (const s of grp.senders) for (let k = 0; k < o.window; k++) sendOne(grp, s);

    const drainedAll = () =>
      groups.every(
        (g) =>
          g.senders.every((s) => s.unacked.size === 0) &&
          g.members.every((m) => m.received.size >= g.acked.size + 1 - [...g.acked.values()].filter((u) => u === m.user).length) &&
          g.reader.lastReceipt >= g.maxAck,
      );
    const d = await drive(
      label,
      o,
      win,
      () => ({ done: groups.reduce((s, g) => s + g.reader.received.size, 0), inflight: total.sent - total.acked }),
      'msgs',
      () => (stopped = true),
      drainedAll,
      () => closedEarly,
    );

    for (const g of groups) {
      for (const s of g.senders) v.errors += s.unacked.size;
      for (let q = 2; q <= g.maxAck; q++) if (!g.acked.has(q)) v.ackSeqGaps++;
      for (const [q, from] of g.acked) for (const m of g.members) if (m.user !== from && !m.received.has(q)) v.msgMissing++;
      if (g.reader.lastReceipt < g.maxAck) v.receiptBad++;
    }
    const frames = w.framesIn + w.framesOut;
    return {
      msgsPerSec: round(w.msgs / win.seconds),
      acksPerSec: round(w.acks / win.seconds),
      receiptsPerSec: round(w.receipts / win.seconds),
      pushesPerSec: round(w.pushes / win.seconds),
      membersPerGroup: o.senders + 1,
      framesPerSec: round(frames / win.seconds),
      framesPerMsg: w.msgs > 0 ? round(frames / w.msgs, 2) : 0,
      sendToMsg: lat.msg.summary(),
      sendToAck: lat.ack.summary(),
      sendToReceipt: lat.receipt.summary(),
      frameBytes: Buffer.byteLength(c.encode({ t: 'send', id: 1, conv: groups[0]?.conv ?? 'g:x', cmid: 'c000000001', body: BODY })),
      seconds: win.seconds,
      drainMs: d.drainMs,
      drained: d.drainedOk,
      acksOutOfOrder,
      acksRedelivered,
      totals: total,
      violations: v,
      errorCodes,
      unexpected,
    };
  } finally {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    for (const ws of all) ws.terminate();
  }
}
