/**
 * The clients of a chaos run, all through the SDK over real sockets, each with the URL list
 * of every node (rotated per client, so they spread and fail over):
 *
 * - active users in direct pairs and small groups, each sending every `intervalMs` (jittered)
 *   with the SDK's retries and reconnects; a share of acked sends is sent again later with
 *   the same cmid (it must come back as the same seq with dup:true);
 * - one group at the size cap (default 200 members: every active user plus lightweight
 *   members that only receive), with `bigSenders` of them sending every `bigIntervalMs`;
 * - a churn group: its admin adds fresh users (they must get everything from their join on)
 *   and later removes them (they must get nothing after their removal).
 *
 * What every client saw is recorded from the SDK's raw `frame` event: per socket and
 * conversation the last pushed seq (a push at or below it is a violation: out of order or
 * twice), every (conv, seq) with its sender and cmid (two contents for one seq is a
 * violation), and every ack (one cmid acked with two seqs is a violation). Watermarks are
 * acknowledged every 2 s with `recv` of the contiguous prefix the client holds, as an app
 * would, so backlogs after reconnects stay small.
 */
import { SwitchboardClient, type SwitchboardError } from '../../src/client/index.js';
import { dmId } from '../../src/protocol/codes.js';

export interface FleetOptions {
  urls: string[];
  token(user: string): Promise<string>;
  prefix: string;
  users: number;
  groupSize: number;
  bigGroup: number;
  bigSenders: number;
  intervalMs: number;
  bigIntervalMs: number;
  resendRatio: number;
  churnEveryMs: number;
  churnJoins: number;
  requestTimeoutMs: number;
  rng(): number;
  log(line: string): void;
  /** Start of the run (epoch ms), for the times in violations. */
  t0: number;
}

export interface SendRec {
  user: string;
  conv: string;
  cmid: string;
  body: string;
  target: { to: string } | { conv: string };
  sentAt: number;
  /** A second send of an acked cmid (must be acked with the same seq and dup:true). */
  resendOf?: SendRec;
  ackAt?: number;
  seq?: number;
  ts?: number;
  dup?: boolean;
  /** The SDK gave up (a permanent error): the message was never acked. */
  error?: string;
}

export interface ConvInfo {
  conv: string;
  kind: 'direct' | 'group' | 'big' | 'churn';
  /** Members at creation (the store's log is what the checker trusts). */
  members: string[];
}

export type Phase = 'run' | 'check';

export interface Got {
  /** "from|cmid" */
  v: string;
  /** ms since the run started */
  at: number;
  socket: number;
  node: string;
}

export class Member {
  client!: SwitchboardClient;
  /** conv → seq → "from|cmid" of every msg frame this user got (live, backlog or sync), with when and where it first came. */
  readonly received = new Map<string, Map<number, Got>>();
  /** conv → seqs of this user's own acked messages. */
  readonly own = new Map<string, Set<number>>();
  /** socket|conv → last seq pushed on that socket (order check). */
  readonly lastBySocket = new Map<string, number>();
  /** conv → the seq from which this user acknowledges (its join). */
  readonly starts = new Map<string, number>();
  private readonly floors = new Map<string, number>();
  private readonly recvSent = new Map<string, number>();
  welcomes = 0;
  closes = 0;
  node = '';
  /** When the current socket got its welcome (epoch ms), and its number. */
  welcomeAt = 0;
  socket = 0;

  constructor(readonly user: string) {}

  /** The contiguous prefix (from the join) this user holds in `conv`. */
  floor(conv: string): number {
    const start = this.starts.get(conv);
    if (start === undefined) return 0;
    let f = Math.max(this.floors.get(conv) ?? 0, start - 1);
    const got = this.received.get(conv);
    const mine = this.own.get(conv);
    while (got?.has(f + 1) || mine?.has(f + 1)) f++;
    this.floors.set(conv, f);
    return f;
  }

  acknowledge(): void {
    if (this.client.state !== 'open') return;
    for (const conv of this.starts.keys()) {
      const f = this.floor(conv);
      if (f > (this.recvSent.get(conv) ?? 0)) {
        this.client.recv(conv, f);
        this.recvSent.set(conv, f);
      }
    }
  }
}

interface Joiner {
  user: string;
  state: 'out' | 'in' | 'removed';
}

export class Fleet {
  readonly members = new Map<string, Member>();
  readonly convs = new Map<string, ConvInfo>();
  readonly sends: SendRec[] = [];
  /** "conv|user|cmid" → every seq an ack frame carried for it. */
  readonly ackSeqs = new Map<string, Set<number>>();
  /** conv → [arrival ms, server ts] of every ack frame (recovery times). */
  readonly convAcks = new Map<string, Array<[number, number]>>();
  readonly violations: string[] = [];
  phase: Phase = 'run';
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly joiners: Joiner[] = [];
  private churnConv = '';
  private churnAdmin = '';
  private bigConv = '';
  private sending = false;
  private cmidCounter = 0;
  churnOps = { add: 0, remove: 0, failed: 0 };
  sendErrors = 0;
  ackCount = 0;
  resends = 0;
  private readonly t0: number;

  constructor(private readonly o: FleetOptions) {
    this.t0 = o.t0;
  }

  /** Live violations carry the time they were seen (s since the fleet started). */
  private violation(v: string): void {
    this.violations.push(`${v} (at ${((Date.now() - this.t0) / 1000).toFixed(1)} s)`);
  }

  get active(): string[] {
    return Array.from({ length: this.o.users }, (_, i) => `${this.o.prefix}a${i}`);
  }

  /** Connect every client (in batches) and create the groups. */
  async start(): Promise<void> {
    const active = this.active;
    const fillers = Array.from({ length: Math.max(0, this.o.bigGroup - active.length) }, (_, i) => `${this.o.prefix}m${i}`);
    const joiners = this.o.churnEveryMs > 0 ? Array.from({ length: this.o.churnJoins }, (_, i) => `${this.o.prefix}j${i}`) : [];
    const everyone = [...active, ...fillers, ...joiners];
    const urls = this.o.urls;
    everyone.forEach((user, i) => {
      const m = new Member(user);
      const rotated = urls.map((_, k) => urls[(i + k) % urls.length]!);
      m.client = new SwitchboardClient({
        url: rotated,
        token: () => this.o.token(user),
        reconnect: { minMs: 100, maxMs: 2000 },
        retry: { minMs: 100, maxMs: 2000 },
        requestTimeoutMs: this.o.requestTimeoutMs,
        receivedLimit: 0,
        dedupWindow: 4096,
      });
      this.watch(m);
      this.members.set(user, m);
    });
    for (let i = 0; i < everyone.length; i += 25) {
      await Promise.all(everyone.slice(i, i + 25).map((u) => this.members.get(u)!.client.connect()));
    }
    this.o.log(`clients: ${everyone.length} connected`);

    // Direct pairs and small groups of the active users.
    for (let i = 0; i + 1 < active.length; i += 2) {
      const conv = dmId(active[i]!, active[i + 1]!);
      this.addConv({ conv, kind: 'direct', members: [active[i]!, active[i + 1]!] });
    }
    const creates: Array<Promise<void>> = [];
    const gsize = Math.max(2, this.o.groupSize);
    for (let g = 0; g + gsize <= active.length; g += gsize) {
      const members = active.slice(g, g + gsize);
      const kind = g === 0 && joiners.length > 0 ? 'churn' : 'group';
      creates.push(
        this.members
          .get(members[0]!)!
          .client.groupCreate({ title: `${kind} ${g / gsize}`, members: members.slice(1), cmid: `create-${kind}-${g}` })
          .then((c) => {
            this.addConv({ conv: c.conv, kind, members });
            if (kind === 'churn') {
              this.churnConv = c.conv;
              this.churnAdmin = members[0]!;
            }
          }),
      );
    }
    if (this.o.bigGroup >= 2) {
      const members = [...active, ...fillers].slice(0, this.o.bigGroup);
      creates.push(
        this.members
          .get(members[0]!)!
          .client.groupCreate({ title: 'at the cap', members: members.slice(1), cmid: 'create-big' })
          .then((c) => {
            this.addConv({ conv: c.conv, kind: 'big', members });
            this.bigConv = c.conv;
          }),
      );
    }
    await Promise.all(creates);
    for (const u of joiners) this.joiners.push({ user: u, state: 'out' });
    this.o.log(`conversations: ${this.convs.size} (${[...this.convs.values()].filter((c) => c.kind === 'big').map((c) => `${c.members.length}-member group`).join(', ')})`);
  }

  private addConv(c: ConvInfo): void {
    this.convs.set(c.conv, c);
    for (const u of c.members) this.members.get(u)?.starts.set(c.conv, 1);
  }

  private watch(m: Member): void {
    const user = m.user;
    m.client.on('frame', (f, { socket }) => {
      if (f.t === 'msg') {
        const conv = f.conv as string;
        const seq = f.seq as number;
        const val = `${f.from as string}|${f.cmid as string}`;
        let got = m.received.get(conv);
        if (!got) m.received.set(conv, (got = new Map()));
        const prev = got.get(seq);
        if (prev !== undefined && prev.v !== val) this.violation(`content: ${user} got ${conv}#${seq} as ${prev.v} and as ${val}`);
        if (!prev) got.set(seq, { v: val, at: Date.now() - this.t0, socket, node: m.node });
        if (this.phase === 'run') {
          const key = `${socket}|${conv}`;
          const last = m.lastBySocket.get(key);
          if (last !== undefined && seq <= last) {
            this.violation(`order: ${user} socket ${socket} (${m.node}) ${conv}: seq ${seq} ${seq === last ? 'twice' : `after ${last}`}`);
          }
          if (last === undefined || seq > last) m.lastBySocket.set(key, seq);
        }
        const sys = f.sys as { op?: string; users?: string[] } | undefined;
        if (f.kind === 'system' && sys?.users?.includes(user)) {
          if (sys.op === 'add' && !m.starts.has(conv)) m.starts.set(conv, seq);
          if (sys.op === 'remove' || sys.op === 'leave') m.starts.delete(conv);
        }
      } else if (f.t === 'ack') {
        const conv = f.conv as string;
        const key = `${conv}|${user}|${f.cmid as string}`;
        let seqs = this.ackSeqs.get(key);
        if (!seqs) this.ackSeqs.set(key, (seqs = new Set()));
        seqs.add(f.seq as number);
        if (seqs.size === 2) this.violation(`cmid: ${key} acked with seqs ${[...seqs].join(' and ')}`);
        let acks = this.convAcks.get(conv);
        if (!acks) this.convAcks.set(conv, (acks = []));
        acks.push([Date.now(), f.ts as number]);
      } else if (f.t === 'welcome') {
        m.welcomes++;
        m.node = String(f.node);
        m.welcomeAt = Date.now();
        m.socket = socket;
      }
    });
    m.client.on('close', () => m.closes++);
  }

  /** Start sending (and acknowledging, and churning). */
  run(): void {
    this.sending = true;
    const active = this.active;
    const due = new Map<string, number>();
    const bigDue = new Map<string, number>();
    const now = Date.now();
    active.forEach((u, i) => {
      due.set(u, now + this.o.rng() * this.o.intervalMs);
      if (this.bigConv && i < this.o.bigSenders) bigDue.set(u, now + this.o.rng() * this.o.bigIntervalMs);
    });
    const rotation = new Map<string, string[]>();
    for (const u of active) rotation.set(u, [...this.convs.values()].filter((c) => c.kind !== 'big' && c.members.includes(u)).map((c) => c.conv));
    let tick = 0;
    this.timers.push(
      setInterval(() => {
        if (!this.sending) return;
        tick++;
        const t = Date.now();
        for (const u of active) {
          if (t >= due.get(u)!) {
            due.set(u, t + this.o.intervalMs * (0.5 + this.o.rng()));
            const convs = rotation.get(u)!;
            if (convs.length > 0) this.send(u, convs[tick % convs.length]!);
          }
          const b = bigDue.get(u);
          if (b !== undefined && t >= b) {
            bigDue.set(u, t + this.o.bigIntervalMs * (0.5 + this.o.rng()));
            this.send(u, this.bigConv);
          }
        }
      }, 50),
    );
    this.timers.push(
      setInterval(() => {
        for (const m of this.members.values()) m.acknowledge();
      }, 2000),
    );
    if (this.churnConv && this.o.churnEveryMs > 0) this.timers.push(setInterval(() => void this.churn(), this.o.churnEveryMs));
  }

  private send(user: string, conv: string, resendOf?: SendRec): void {
    const info = this.convs.get(conv)!;
    const cmid = resendOf ? resendOf.cmid : `${user}-${(this.cmidCounter++).toString(36)}`;
    const body = resendOf ? resendOf.body : `${cmid} ${'x'.repeat(Math.floor(this.o.rng() * 64))}`;
    const target = info.kind === 'direct' ? { to: info.members.find((x) => x !== user)! } : { conv };
    const rec: SendRec = { user, conv, cmid, body, target, sentAt: Date.now() };
    if (resendOf) {
      rec.resendOf = resendOf;
      this.resends++;
    }
    this.sends.push(rec);
    const m = this.members.get(user)!;
    const p = m.client
      .send({ ...target, body, cmid })
      .then((ack) => {
        rec.ackAt = Date.now();
        rec.seq = ack.seq;
        rec.ts = ack.ts;
        rec.dup = ack.dup === true;
        this.ackCount++;
        if (ack.conv !== conv) this.violation(`ack: ${user} ${cmid} sent to ${conv} acked for ${ack.conv}`);
        let own = m.own.get(conv);
        if (!own) m.own.set(conv, (own = new Set()));
        own.add(ack.seq);
        if (resendOf) {
          if (ack.seq !== resendOf.seq) this.violation(`dedup: ${conv} ${user} ${cmid} resent: seq ${ack.seq}, first acked ${resendOf.seq}`);
          if (ack.dup !== true) this.violation(`dedup: ${conv} ${user} ${cmid} resent: acked without dup:true`);
        } else if (this.sending && this.o.rng() < this.o.resendRatio) {
          const t = setTimeout(() => {
            if (this.sending) this.send(user, conv, rec);
          }, this.o.rng() * 3000);
          this.timers.push(t);
        }
      })
      .catch((err: SwitchboardError) => {
        rec.error = `${err.code ?? ''} ${err.message}`;
        this.sendErrors++;
      })
      .finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Add the next joiner, or remove the longest-standing one; failed requests are simply tried again next time. */
  private async churn(): Promise<void> {
    if (!this.sending) return;
    const admin = this.members.get(this.churnAdmin)!.client;
    const inside = this.joiners.filter((j) => j.state === 'in');
    const next = this.joiners.find((j) => j.state === 'out');
    const op: 'add' | 'remove' | null = next && inside.length < 2 ? 'add' : inside.length > 0 ? 'remove' : next ? 'add' : null;
    if (!op) return;
    const j = op === 'add' ? next! : inside[0]!;
    try {
      if (op === 'add') await admin.groupAdd(this.churnConv, [j.user]);
      else await admin.groupRemove(this.churnConv, [j.user]);
      j.state = op === 'add' ? 'in' : 'removed';
      this.churnOps[op]++;
    } catch {
      this.churnOps.failed++;
    }
  }

  get pending(): number {
    return this.inflight.size;
  }

  get firstSends(): SendRec[] {
    return this.sends.filter((s) => !s.resendOf);
  }

  get reconnects(): number {
    let n = 0;
    for (const m of this.members.values()) n += Math.max(0, m.welcomes - 1);
    return n;
  }

  /** Stop sending; wait (bounded) for every send to be answered. */
  async stop(drainMs: number): Promise<void> {
    this.sending = false;
    for (const t of this.timers) clearTimeout(t);
    const until = Date.now() + drainMs;
    while (this.inflight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  }

  async close(): Promise<void> {
    await Promise.all([...this.members.values()].map((m) => m.client.close().catch(() => {})));
  }
}
