/**
 * The `failover` suite (row 5): 3 nodes on a 3-server NATS cluster (R3) and Cassandra, DM
 * traffic through the SDK with clients on every node (each pair's two users on different
 * nodes, every client given all node URLs so it fails over), then, N times, `kill -9` of a
 * node (n1, n2, n3, n1, ...): for every conversation it affected — the ones whose partition
 * it owned (read from the sb_epochs bucket just before the kill) and the ones with a member
 * connected to it — the time from the kill to that conversation's next ack of a message
 * committed after the kill. The node is then started again (same id and port) and the
 * cluster waits until its partitions settled and every conversation acks again, before the
 * next kill. Reported: p50 / p99 / max over all (kill, conversation) samples, the
 * failure-detection settings used (SB_HEARTBEAT_MS, SB_FAILURE_MS, SB_ACK_WAIT_MS) and
 * what the survivors logged: kill → the node declared gone, → its partitions taken over.
 *
 * `DmTraffic` (exported) is the SDK traffic the `join` suite uses too.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { SwitchboardClient } from '../src/client/index.js';
import { Auth } from '../src/gateway/auth.js';
import { dmId } from '../src/protocol/codes.js';
import { convKey, partitionOf } from '../src/cluster/partition.js';
import { Owners } from './chaos/faults.js';
import { stopChild } from './children.js';
import { type Row, errText, fmt, progress, sleep, waitHealthz } from './common.js';
import { type Encoding, round } from './loadgen.js';
import {
  type ClusterNode,
  type ClusterServers,
  clusterEnv,
  freePort,
  freshKeyspace,
  nodeAlive,
  startClusterNode,
  startClusterServers,
  startNodes,
  waitSettled,
} from './servers.js';
import type { Settings, SuiteContext, SuiteReport } from './suite.js';

// ------------------------------------------------------------------------------ traffic

export interface DmTrafficOptions {
  /** Node URLs; user i starts on urls[i mod N] (a pair's two users on different nodes) and fails over to the next. */
  urls: string[];
  secret: string;
  /** DM pairs (2 users each, both sending). */
  pairs: number;
  /** Each user sends to its partner every this many ms. */
  intervalMs: number;
  /** A user skips a tick while this many of its sends are unanswered. */
  maxInFlight: number;
  encoding: Encoding;
  prefix: string;
}

interface SendRec {
  user: string;
  conv: string;
  sentAt: number;
  ackAt?: number;
  /** The node's commit time of the acked message. */
  ts?: number;
  error?: string;
}

/** Client-visible trouble, with the time of each. */
export interface TrafficEvent {
  t: number;
  user: string;
  kind: 'err' | 'close' | 'send-failed';
  detail: string;
  /** An err frame's message. */
  msg?: string;
}

/**
 * DM traffic through the SDK (reconnects and resends as a real client does). Records every
 * send, the acks per conversation (arrival time, commit time), err frames, closes, and on which
 * node each client currently is (from its welcome).
 */
export class DmTraffic {
  readonly users: string[] = [];
  readonly clients: SwitchboardClient[] = [];
  /** user → the node of its current session (welcome.node). */
  readonly nodeOf = new Map<string, string>();
  readonly convs = new Map<string, [string, string]>();
  /** conv → [ack arrival, commit ts] in arrival order. */
  readonly acks = new Map<string, Array<[number, number]>>();
  readonly sends: SendRec[] = [];
  readonly events: TrafficEvent[] = [];
  private readonly inflight = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private welcomes = 0;
  /** Set when stop() closes the clients: their own closes are not trouble. */
  private closing = false;

  constructor(private readonly o: DmTrafficOptions) {}

  get reconnects(): number {
    return Math.max(0, this.welcomes - this.users.length);
  }

  get pending(): number {
    return this.sends.filter((s) => s.ackAt === undefined && s.error === undefined).length;
  }

  async start(): Promise<void> {
    const auth = new Auth(this.o.secret);
    const n = this.o.pairs * 2;
    const N = this.o.urls.length;
    // Random tails: sequential ids hash (FNV-1a, modulo a power of two) into very few partitions.
    for (let i = 0; i < n; i++) this.users.push(`${this.o.prefix}u${String(i).padStart(3, '0')}${randomBytes(3).toString('hex')}`);
    await Promise.all(
      this.users.map(async (user, i) => {
        // Pair k: users 2k and 2k+1 start on nodes k and k+1 (mod N).
        const first = (Math.floor(i / 2) + (i % 2)) % N;
        const urls = this.o.urls.map((_, j) => this.o.urls[(first + j) % N]!);
        const c = new SwitchboardClient({
          url: urls,
          token: () => auth.sign(user, 3600),
          encoding: this.o.encoding,
          reconnect: { minMs: 50, maxMs: 1000 },
          retry: { minMs: 50, maxMs: 1000 },
          requestTimeoutMs: 10_000,
          receivedLimit: 0,
        });
        c.on('welcome', (w) => {
          this.welcomes++;
          this.nodeOf.set(user, w.node);
        });
        c.on('frame', (f) => {
          if (f.t === 'err') this.events.push({ t: Date.now(), user, kind: 'err', detail: String(f.code ?? '?'), ...(typeof f.msg === 'string' ? { msg: f.msg } : {}) });
        });
        c.on('close', (x) => {
          this.nodeOf.delete(user);
          if (!this.closing) this.events.push({ t: Date.now(), user, kind: 'close', detail: `${x.code}${x.reason ? ` ${x.reason}` : ''}` });
        });
        c.on('error', () => {
          /* socket errors while a node is down: the close above counts */
        });
        this.clients[i] = c;
        await c.connect();
      }),
    );
    for (let k = 0; k < this.o.pairs; k++) {
      const a = this.users[2 * k]!;
      const b = this.users[2 * k + 1]!;
      this.convs.set(dmId(a, b), [a, b]);
      this.acks.set(dmId(a, b), []);
    }
    this.timer = setInterval(() => this.tick(), this.o.intervalMs);
  }

  private tick(): void {
    for (const [i, c] of this.clients.entries()) {
      const user = this.users[i]!;
      if ((this.inflight.get(user) ?? 0) >= this.o.maxInFlight) continue;
      const partner = this.users[i ^ 1]!;
      const conv = dmId(user, partner);
      const rec: SendRec = { user, conv, sentAt: Date.now() };
      this.sends.push(rec);
      this.inflight.set(user, (this.inflight.get(user) ?? 0) + 1);
      c.send({ to: partner, body: `${user} ${rec.sentAt}` })
        .then((ack) => {
          rec.ackAt = Date.now();
          rec.ts = ack.ts;
          this.acks.get(conv)?.push([rec.ackAt, ack.ts]);
        })
        .catch((err: unknown) => {
          rec.error = errText(err);
          this.events.push({ t: Date.now(), user, kind: 'send-failed', detail: rec.error });
        })
        .finally(() => this.inflight.set(user, (this.inflight.get(user) ?? 1) - 1));
    }
  }

  /** ms from `t` to the first ack in `conv` of a message committed at or after `t` (null: none yet). */
  nextAck(conv: string, t: number): number | null {
    for (const [at, ts] of this.acks.get(conv) ?? []) if (at >= t && ts >= t) return at - t;
    return null;
  }

  /** Wait (bounded) until every conversation in `convs` has an ack committed after `t`. */
  async waitAcks(convs: string[], t: number, timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (convs.every((c) => this.nextAck(c, t) !== null)) return true;
      await sleep(20);
    }
    return convs.every((c) => this.nextAck(c, t) !== null);
  }

  /** Stop sending; wait (bounded) for the sends in flight; close the clients. */
  async stop(drainMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const until = Date.now() + drainMs;
    while (this.pending > 0 && Date.now() < until) await sleep(100);
    this.closing = true;
    await Promise.all(this.clients.map((c) => c.close().catch(() => {})));
  }

  /** Sends since `t`: total, acked, failed, still unanswered; err frames, closes and failed sends since `t` by kind. */
  since(t: number) {
    const s = this.sends.filter((x) => x.sentAt >= t);
    const ev = this.events.filter((e) => e.t >= t);
    const byKind = (k: TrafficEvent['kind']) => ev.filter((e) => e.kind === k);
    const codes: Record<string, number> = {};
    const messages: Record<string, number> = {};
    for (const e of byKind('err')) {
      codes[e.detail] = (codes[e.detail] ?? 0) + 1;
      const k = `${e.detail}: ${e.msg ?? ''}`;
      messages[k] = (messages[k] ?? 0) + 1;
    }
    return {
      sent: s.length,
      acked: s.filter((x) => x.ackAt !== undefined).length,
      failed: s.filter((x) => x.error !== undefined).length,
      unacked: s.filter((x) => x.ackAt === undefined).length,
      errFrames: byKind('err').length,
      errCodes: codes,
      /** err frames by code and message (why the node refused). */
      errMessages: messages,
      closes: byKind('close').length,
    };
  }
}

// ------------------------------------------------------------------------------ shared set-up

export const quantile = (xs: number[], p: number): number | null => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]! : null;
};

/** The failure-detection settings of these suites' nodes (a deployment that wants fast failover). */
export function haEnv(s: Settings): Record<string, string> {
  return {
    SB_HEARTBEAT_MS: String(s.heartbeatMs),
    SB_FAILURE_MS: String(s.failureMs),
    SB_ACK_WAIT_MS: String(s.ackWaitMs),
  };
}

// ------------------------------------------------------------------------------ the suite

interface KillRecord {
  n: number;
  target: string;
  ownersFrom: 'epochs' | 'ring';
  /** Partitions it owned at the kill. */
  partitionsOwned: number;
  owned: string[];
  gateway: string[];
  /** conv → ms from the kill to its next ack (null: none within the bound). */
  recovery: Record<string, number | null>;
  /** kill → the first survivor logged the target gone; → the last survivor's rebalance that gained partitions. */
  detectMs: number | null;
  takeoverMs: number | null;
  /** The survivors' own figure for that rebalance (claim, the ack-wait pause, consumers bound), the longest. */
  rebalanceMs?: number | null;
  /** restart: spawn → healthy; → partitions settled again. */
  restartMs?: number;
  resettleMs?: number;
  error?: string;
}

export async function runFailoverSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const kills = s.failoverKills;
  const settingsText = `SB_HEARTBEAT_MS=${s.heartbeatMs} SB_FAILURE_MS=${s.failureMs} SB_ACK_WAIT_MS=${s.ackWaitMs}`;
  progress(`failover suite: 3 nodes (${s.haPartitions} partitions), ${s.haPairs} DM pairs sending every ${s.haIntervalMs} ms, ${kills} kill(s) -9 in rotation; ${settingsText}`);
  const versions: Record<string, string> = {};
  const records: KillRecord[] = [];
  const keyspace = freshKeyspace('fo');
  const dirs: string[] = [];
  const nodes: ClusterNode[] = [];
  let servers: ClusterServers | null = null;
  let traffic: DmTraffic | null = null;
  let owners: Owners | null = null;
  let runError: string | undefined;
  let totals: ReturnType<DmTraffic['since']> | null = null;
  try {
    servers = await startClusterServers('failover');
    const { nats, cass } = servers;
    versions.cassandra = cass.version;
    versions.natsServer = nats.version;
    await nats.reset();
    const secret = randomBytes(32).toString('hex');
    const env = clusterEnv(nats, cass, keyspace, s.haPartitions, secret, haEnv(s));
    // Fixed ports: a restarted node comes back where its clients look for it.
    const ports = [await freePort(), await freePort(), await freePort()];
    const st = await startNodes({ partitions: s.haPartitions }, 3, env, dirs, undefined, nodes, ports);
    progress(`[failover] 3 nodes healthy after ${(st.healthyMs / 1000).toFixed(1)} s, partitions settled after ${(st.settledMs / 1000).toFixed(1)} s`);
    traffic = new DmTraffic({ urls: nodes.map((n) => n.ws), secret, pairs: s.haPairs, intervalMs: s.haIntervalMs, maxInFlight: 20, encoding: s.encoding, prefix: `fo${Date.now().toString(36)}` });
    await traffic.start();
    const tr = traffic;
    const convs = [...tr.convs.keys()];
    owners = new Owners(nats.urls, s.haPartitions);
    await sleep(s.haWarmupSeconds * 1000);
    if (!(await tr.waitAcks(convs, Date.now() - 1, 20_000))) throw new Error('warm-up: not every conversation acks');
    const tStart = Date.now();
    for (let k = 0; k < kills; k++) {
      const idx = k % nodes.length;
      const target = nodes[idx]!;
      const label = `[failover kill ${k + 1}/${kills} ${target.id}]`;
      const live = nodes.filter(nodeAlive).map((n) => n.id);
      const own = await owners.owners(live);
      const owned = convs.filter((c) => own.owners[partitionOf(convKey(c), s.haPartitions)] === target.id);
      const gateway = convs.filter((c) => tr.convs.get(c)!.some((u) => tr.nodeOf.get(u) === target.id));
      const affected = [...new Set([...owned, ...gateway])];
      const partitionsOwned = own.owners.filter((o) => o === target.id).length;
      const rec: KillRecord = { n: k + 1, target: target.id, ownersFrom: own.from, partitionsOwned, owned, gateway, recovery: {}, detectMs: null, takeoverMs: null };
      records.push(rec);
      try {
        const exited = new Promise<void>((r) => (nodeAlive(target) ? target.child.proc.once('exit', () => r()) : r()));
        const tKill = Date.now();
        process.kill(target.child.pid, 'SIGKILL');
        await exited;
        const all = await tr.waitAcks(affected, tKill, 30_000);
        for (const c of affected) rec.recovery[c] = tr.nextAck(c, tKill);
        // Before the restart: the survivors must have declared it gone and taken its partitions
        // over (a restart inside the failure window would be another scenario).
        const survivors = nodes.filter((n) => n !== target);
        await waitSettled(survivors, s.haPartitions, 30_000, 200);
        const gone = survivors.flatMap((n) => n.events.filter((e) => e.t >= tKill && e.what === 'membership' && e.members && !e.members.includes(target.id)).map((e) => e.t));
        rec.detectMs = gone.length ? Math.min(...gone) - tKill : null;
        const taken = survivors.flatMap((n) => n.events.filter((e) => e.t >= tKill && e.what === 'rebalance' && (e.gained ?? 0) > 0).map((e) => e.t));
        rec.takeoverMs = taken.length ? Math.max(...taken) - tKill : null;
        const spans = survivors.flatMap((n) => n.events.filter((e) => e.t >= tKill && e.what === 'rebalance' && (e.gained ?? 0) > 0 && e.ms !== undefined).map((e) => e.ms!));
        rec.rebalanceMs = spans.length ? Math.max(...spans) : null;
        const rs = Object.values(rec.recovery);
        const ok = rs.filter((x): x is number => x !== null);
        progress(
          `${label} ${affected.length} conversation(s) affected (${owned.length} in its ${partitionsOwned} partitions [owners from ${own.from}], ${gateway.length} with a member on it): next ack after ` +
            `max ${fmt(ok.length ? Math.max(...ok) : null)} ms${all ? '' : `, ${rs.length - ok.length} WITHOUT an ack within 30 s`}; ` +
            `detected after ${fmt(rec.detectMs)} ms, taken over after ${fmt(rec.takeoverMs)} ms`,
        );
        // Restart it (same id and port), wait until it serves again.
        const tRestart = Date.now();
        // (Its port may have been taken meanwhile on a shared machine: then any free one.)
        const again = await startClusterNode({ id: target.id, env, dirs, port: target.port }).catch((err: unknown) => {
          progress(`${label} restart on port ${target.port} failed (${errText(err)}): on another port`);
          return startClusterNode({ id: target.id, env, dirs });
        });
        nodes[idx] = again;
        await waitHealthz(again.base, 60_000);
        rec.restartMs = Date.now() - tRestart;
        await waitSettled(nodes, s.haPartitions, 90_000, 1000);
        rec.resettleMs = Date.now() - tRestart;
        if (!(await tr.waitAcks(convs, Date.now(), 30_000))) throw new Error(`after the restart of ${target.id}: not every conversation acks within 30 s`);
        progress(`${label} ${target.id} back: healthy after ${fmt(rec.restartMs)} ms, partitions settled after ${fmt(rec.resettleMs)} ms; every conversation acks`);
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
        if (!nodes.every(nodeAlive)) throw err;
      }
    }
    await tr.stop(30_000);
    totals = tr.since(tStart);
  } catch (err) {
    runError = errText(err);
    progress(`[failover] FAILED: ${runError}`);
  } finally {
    await traffic?.stop(0).catch(() => {});
    await owners?.close().catch(() => {});
    await Promise.all(nodes.map((n) => stopChild(n.child, 10_000)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    await servers?.cass.dropKeyspace(keyspace);
    await servers?.stop();
  }

  const samples = records.flatMap((r) => Object.values(r.recovery));
  const got = samples.filter((x): x is number => x !== null);
  const noAck = samples.length - got.length;
  const ownedSamples = records.flatMap((r) => r.owned.map((c) => r.recovery[c])).filter((x): x is number => x !== null && x !== undefined);
  const gwOnly = records.flatMap((r) => r.gateway.filter((c) => !r.owned.includes(c)).map((c) => r.recovery[c])).filter((x): x is number => x !== null && x !== undefined);
  const done = records.filter((r) => !r.error && Object.keys(r.recovery).length > 0);
  const failed = records.filter((r) => r.error).length + (runError ? 1 : 0);
  const p50 = quantile(got, 0.5);
  const p99 = quantile(got, 0.99);
  const max = got.length ? Math.max(...got) : null;
  const perKillMax = records.map((r) => {
    const xs = Object.values(r.recovery).filter((x): x is number => x !== null);
    return xs.length ? Math.max(...xs) : null;
  });
  const med = (xs: Array<number | null | undefined>) => quantile(xs.filter((x): x is number => typeof x === 'number'), 0.5);
  const sec = (ms: number | null) => fmt(ms === null ? null : ms / 1000, 2);
  const rows: Row[] = [
    [`kill -9 → next ack in its conversations, p50 s (${got.length} samples over ${done.length} kills)`, sec(p50), '—', '—', '—'],
    ['kill -9 → next ack, p99 s', sec(p99), '—', '—', '≤ 3.00'],
    ['kill -9 → next ack, max s', sec(max), '—', '—', '—'],
    ['  of conversations whose partition the node owned: p50 / p99 s', `${sec(quantile(ownedSamples, 0.5))} / ${sec(quantile(ownedSamples, 0.99))}`, '—', '—', '—'],
    ['  of conversations with a member connected to it (only): p50 / p99 s', `${sec(quantile(gwOnly, 0.5))} / ${sec(quantile(gwOnly, 0.99))}`, '—', '—', '—'],
    ['per kill, the slowest conversation s', perKillMax.map((x) => sec(x)).join(', ') || 'n/a', '—', '—', '—'],
    ['kill → a survivor logs it gone (failure detection), median ms', fmt(med(records.map((r) => r.detectMs))), '—', '—', `≈ ${s.failureMs} + ≤ ${s.heartbeatMs}`],
    ['kill → its partitions taken over (last survivor rebalanced), median / max ms', `${fmt(med(records.map((r) => r.takeoverMs)))} / ${fmt(Math.max(...records.map((r) => r.takeoverMs ?? 0)))}`, '—', '—', `≈ detection + ${s.ackWaitMs}`],
    [`  of which the survivors' rebalance (epoch claims, ${s.ackWaitMs} ms ack-wait pause, consumers bound), median / max ms`, `${fmt(med(records.map((r) => r.rebalanceMs)))} / ${fmt(Math.max(...records.map((r) => r.rebalanceMs ?? 0)))}`, '—', '—', `≥ ${s.ackWaitMs}`],
    ['restart: spawn → healthy / → partitions settled again, median ms', `${fmt(med(records.map((r) => r.restartMs)))} / ${fmt(med(records.map((r) => r.resettleMs)))}`, '—', '—', '—'],
    ['failure detection settings', settingsText, '—', '—', 'SB_FAILURE_MS ≥ 2 × heartbeat'],
    ['affected conversations without an ack within 30 s', String(noAck), '—', '—', '0'],
    [
      'sends: total / acked / failed / unanswered after the drain',
      totals ? `${totals.sent} / ${totals.acked} / ${totals.failed} / ${totals.unacked}` : 'n/a',
      '—',
      '—',
      'failed 0, unanswered 0',
    ],
    ['client-visible: err frames (codes) / closes / reconnects (expected: the killed node\'s clients)', totals ? `${totals.errFrames} (${Object.entries(totals.errCodes).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}) / ${totals.closes} / ${traffic?.reconnects ?? 0}` : 'n/a', '—', '—', '—'],
    ['kills done / failed', `${done.length} / ${failed}`, '—', '—', `${kills} / 0`],
  ];
  const violations = failed + noAck + (totals ? totals.failed + totals.unacked : 0);
  return {
    suite: 'failover',
    header:
      `failover — 3 nodes on nats-server ${versions.natsServer ?? '?'} (3 servers, R3) + Cassandra ${versions.cassandra ?? '?'}, ${s.haPartitions} partitions, ` +
      `${s.haPairs} DM pairs (SDK clients on all nodes) sending every ${s.haIntervalMs} ms; ${kills} kill(s) -9 in rotation, each restarted after; ${settingsText}`,
    tables: [{ title: 'FAILOVER (kill -9 of a node → next ack in each conversation it affected)', rows }],
    summary: {
      medians: {
        p50Ms: p50,
        p99Ms: p99,
        maxMs: max,
        samples: got.length,
        kills: done.length,
        noAck,
        ownedP99Ms: quantile(ownedSamples, 0.99),
        gatewayOnlyP99Ms: quantile(gwOnly, 0.99),
        detectMsMedian: med(records.map((r) => r.detectMs)),
        takeoverMsMedian: med(records.map((r) => r.takeoverMs)),
        rebalanceMsMedian: med(records.map((r) => r.rebalanceMs)),
      },
      settings: { heartbeatMs: s.heartbeatMs, failureMs: s.failureMs, ackWaitMs: s.ackWaitMs, partitions: s.haPartitions, pairs: s.haPairs, intervalMs: s.haIntervalMs },
      totals,
      error: runError,
      table: rows,
    },
    runs: records.map((r) => ({ ...r, recovery: Object.fromEntries(Object.entries(r.recovery).map(([c, v]) => [c, v === null ? null : round(v, 1)])) })),
    violations,
    versions,
    profiles: [],
    ...(runError ? { error: runError } : {}),
  };
}
