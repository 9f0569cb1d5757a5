/**
 * Continuous chat traffic through the SDK for cluster and failure tests, and an independent
 * checker that reads the store directly: every acked message stored exactly once, seqs
 * contiguous, one seq per cmid, every connection's pushes strictly increasing per
 * conversation, every member holding every message after a final sync.
 */
import { SwitchboardClient } from '../../src/client/index.js';
import type { Store } from '../../src/actors/ports/index.js';
import { dmId } from '../../src/protocol/codes.js';

export interface TrafficOptions {
  urls: string[];
  token(user: string): Promise<string>;
  users?: number;
  groupSize?: number;
  intervalMs?: number;
  prefix?: string;
}

interface Sent {
  conv: string;
  cmid: string;
  from: string;
  seq: number;
}

export interface TrafficReport {
  sent: number;
  acked: number;
  pending: number;
  sendErrors: string[];
  closes: number;
  violations: string[];
  convs: number;
}

export class Traffic {
  private readonly clients: SwitchboardClient[] = [];
  private readonly users: string[] = [];
  private readonly acks: Sent[] = [];
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly sendErrors: string[] = [];
  private readonly orderViolations: string[] = [];
  private readonly convMembers = new Map<string, string[]>();
  private timer: NodeJS.Timeout | null = null;
  private sent = 0;
  private closes = 0;

  constructor(private readonly o: TrafficOptions) {}

  async start(): Promise<void> {
    const n = this.o.users ?? 12;
    const prefix = this.o.prefix ?? `t${Date.now().toString(36)}`;
    for (let i = 0; i < n; i++) this.users.push(`${prefix}u${i}`);
    for (const [i, user] of this.users.entries()) {
      const urls = this.o.urls.map((_, k) => this.o.urls[(i + k) % this.o.urls.length]!);
      const c = new SwitchboardClient({ url: urls, token: () => this.o.token(user), reconnect: { minMs: 50, maxMs: 1000 }, retry: { minMs: 50, maxMs: 1000 }, requestTimeoutMs: 8000 });
      const last = new Map<string, number>();
      c.on('frame', (f, { socket }) => {
        if (f.t !== 'msg') return;
        const key = `${socket}|${f.conv as string}`;
        const seq = f.seq as number;
        const prev = last.get(key);
        if (prev !== undefined && seq <= prev) this.orderViolations.push(`${user} socket ${socket} ${f.conv as string}: ${seq} after ${prev}`);
        last.set(key, seq);
      });
      c.on('close', () => this.closes++);
      await c.connect();
      this.clients.push(c);
    }
    for (let i = 0; i + 1 < n; i += 2) this.convMembers.set(dmId(this.users[i]!, this.users[i + 1]!), [this.users[i]!, this.users[i + 1]!]);
    const gsize = this.o.groupSize ?? 6;
    for (let g = 0; g + gsize <= n; g += gsize) {
      const members = this.users.slice(g, g + gsize);
      const created = await this.clients[g]!.groupCreate({ title: `group ${g}`, members: members.slice(1) });
      this.convMembers.set(created.conv, members);
    }
    let tick = 0;
    this.timer = setInterval(() => {
      tick++;
      for (const [i, c] of this.clients.entries()) {
        const user = this.users[i]!;
        const convs = [...this.convMembers.entries()].filter(([, m]) => m.includes(user)).map(([conv]) => conv);
        const conv = convs[tick % convs.length]!;
        const cmid = `${user}-${tick}`;
        this.sent++;
        const members = this.convMembers.get(conv)!;
        const target = conv.startsWith('dm:') ? { to: members.find((u) => u !== user)! } : { conv };
        const p = c
          .send({ ...target, body: cmid, cmid })
          .then((ack) => this.acks.push({ conv: ack.conv, cmid, from: user, seq: ack.seq }))
          .catch((err: Error & { code?: string }) => this.sendErrors.push(`${cmid}: ${err.code ?? ''} ${err.message}`))
          .finally(() => this.inflight.delete(p));
        this.inflight.add(p);
      }
    }, this.o.intervalMs ?? 100);
  }

  get ackedCount(): number {
    return this.acks.length;
  }

  /** Stop sending, wait for every send to be answered, then check everything against the store. */
  async stop(store: Store, waitMs = 60_000): Promise<TrafficReport> {
    if (this.timer) clearInterval(this.timer);
    const until = Date.now() + waitMs;
    while (this.inflight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const violations = [...this.orderViolations];
    // One seq per cmid.
    const byCmid = new Map<string, number>();
    for (const a of this.acks) {
      const k = `${a.conv}|${a.from}|${a.cmid}`;
      const prev = byCmid.get(k);
      if (prev !== undefined && prev !== a.seq) violations.push(`${k} acked with ${prev} and ${a.seq}`);
      byCmid.set(k, a.seq);
    }
    // The store: contiguous, each acked message there once at its seq.
    for (const [conv, members] of this.convMembers) {
      const rows = await store.messages(conv, 1, Number.MAX_SAFE_INTEGER, 1_000_000);
      rows.forEach((m, i) => {
        if (m.seq !== i + 1) violations.push(`${conv}: seq ${m.seq} at position ${i + 1}`);
      });
      const keys = new Set<string>();
      for (const m of rows) {
        const k = `${m.from}|${m.cmid}`;
        if (keys.has(k)) violations.push(`${conv}: ${k} stored twice`);
        keys.add(k);
      }
      const bySeq = new Map(rows.map((m) => [m.seq, m]));
      for (const a of this.acks.filter((x) => x.conv === conv)) {
        const m = bySeq.get(a.seq);
        if (!m || m.cmid !== a.cmid || m.from !== a.from) violations.push(`${conv}: acked ${a.cmid} at ${a.seq} but stored ${m ? m.cmid : 'nothing'}`);
      }
      // Every member has every message (live, backlog or a final sync).
      const head = rows.length;
      for (const user of members) {
        const c = this.clients[this.users.indexOf(user)]!;
        const res = await c.sync({ [conv]: 0 }).catch(() => null);
        const have = new Set([...c.received(conv), ...(res?.msgs.filter((x) => x.conv === conv).map((x) => x.seq) ?? [])]);
        const own = new Set(this.acks.filter((x) => x.conv === conv && x.from === user).map((x) => x.seq));
        for (let s = 1; s <= head; s++) if (!have.has(s) && !own.has(s)) violations.push(`${user} lacks ${conv}#${s}`);
      }
    }
    const report: TrafficReport = {
      sent: this.sent,
      acked: this.acks.length,
      pending: this.inflight.size,
      sendErrors: this.sendErrors,
      closes: this.closes,
      violations,
      convs: this.convMembers.size,
    };
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
    return report;
  }
}
