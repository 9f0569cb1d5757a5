/**
 * The `join` suite (row 6): 3 nodes on a 3-server NATS cluster (R3) and Cassandra under DM
 * traffic (SDK clients on the 3 nodes), then a 4th node starts. The partitions it gains are
 * known from the ring (src/cluster/ring.ts over n1..n4); each is "serving on it" when the node
 * announces the acquisition on `sb.acquired` (what the gateways re-attach on,
 * src/cluster/control.ts). Measured: the 4th node's spawn → the last gained partition served,
 * and the first old node seeing it as a member (the ring change) → the same; per partition,
 * ring change → served. Client-visible errors from its start until the traffic stopped:
 * err frames, closes, sends failed or unanswered after the drain. One fresh cluster (clean
 * JetStream, fresh keyspace) per run; medians over the runs.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { ownersOf } from '../src/cluster/ring.js';
import { stopChild } from './children.js';
import { type Row, errText, fmt, median, progress, sleep } from './common.js';
import { type ClusterNode, type ClusterServers, clusterEnv, freshKeyspace, natsConnect, startClusterNode, startClusterServers, startNodes } from './servers.js';
import { DmTraffic, haEnv, quantile } from './suite-failover.js';
import type { SuiteContext, SuiteReport } from './suite.js';

interface JoinRun {
  round: number;
  ok: boolean;
  error?: string;
  gained: number;
  /** 4th node: spawn → its ready line (HTTP listening). */
  readyMs?: number;
  /** spawn → the first old node saw it as a member. */
  ringMs?: number | null;
  /** spawn → every gained partition announced served. */
  fromStartMs?: number | null;
  /** first old node saw it → every gained partition served. */
  fromRingMs?: number | null;
  /** ring change → each partition served, p50 / max. */
  perPartitionP50Ms?: number | null;
  perPartitionMaxMs?: number | null;
  /** Gained partitions never announced within the bound. */
  notServed?: number;
  clientErrors?: ReturnType<DmTraffic['since']>;
  /** Warnings the nodes logged from the join on. */
  warnings?: Record<string, number>;
}

const JOINER = 'n4';

async function oneJoin(ctx: SuiteContext, rec: JoinRun, servers: ClusterServers, label: string): Promise<void> {
  const s = ctx.settings;
  const { nats, cass } = servers;
  const keyspace = freshKeyspace('jn');
  const dirs: string[] = [];
  const nodes: ClusterNode[] = [];
  let traffic: DmTraffic | null = null;
  const nc = await natsConnect(nats.urls, 'bench-join-observer');
  try {
    await nats.reset();
    const secret = randomBytes(32).toString('hex');
    const env = clusterEnv(nats, cass, keyspace, s.haPartitions, secret, haEnv(s));
    const st = await startNodes({ partitions: s.haPartitions }, 3, env, dirs, undefined, nodes);
    progress(`${label} 3 nodes settled after ${(st.settledMs / 1000).toFixed(1)} s`);
    traffic = new DmTraffic({ urls: nodes.map((n) => n.ws), secret, pairs: s.haPairs, intervalMs: s.haIntervalMs, maxInFlight: 20, encoding: s.encoding, prefix: `jn${Date.now().toString(36)}` });
    await traffic.start();
    await sleep(s.haWarmupSeconds * 1000);
    const convs = [...traffic.convs.keys()];
    if (!(await traffic.waitAcks(convs, Date.now() - 1, 20_000))) throw new Error('warm-up: not every conversation acks');

    const before = ownersOf(['n1', 'n2', 'n3'], s.haPartitions);
    const after = ownersOf(['n1', 'n2', 'n3', JOINER], s.haPartitions);
    const gained = after.flatMap((o, p) => (o === JOINER && before[p] !== JOINER ? [p] : []));
    rec.gained = gained.length;
    const served = new Map<number, number>();
    let tStart = Infinity;
    const sub = nc.subscribe('sb.acquired', {
      callback: (err, msg) => {
        if (err) return;
        const p = Number(msg.string());
        const t = Date.now();
        if (t >= tStart && gained.includes(p) && !served.has(p)) served.set(p, t);
      },
    });
    await nc.flush();
    tStart = Date.now();
    const joiner = await startClusterNode({ id: JOINER, env, dirs });
    nodes.push(joiner);
    rec.readyMs = Date.now() - tStart;
    const until = Date.now() + 30_000;
    while (served.size < gained.length && Date.now() < until) await sleep(20);
    sub.unsubscribe();
    rec.notServed = gained.length - served.size;
    const seen = nodes
      .filter((n) => n.id !== JOINER)
      .flatMap((n) => n.events.filter((e) => e.t >= tStart && e.what === 'membership' && e.members?.includes(JOINER)).map((e) => e.t));
    const tRing = seen.length ? Math.min(...seen) : null;
    const last = served.size ? Math.max(...served.values()) : null;
    rec.ringMs = tRing === null ? null : tRing - tStart;
    rec.fromStartMs = last === null || rec.notServed > 0 ? null : last - tStart;
    rec.fromRingMs = last === null || tRing === null || rec.notServed > 0 ? null : last - tRing;
    const per = tRing === null ? [] : [...served.values()].map((t) => t - tRing);
    rec.perPartitionP50Ms = quantile(per, 0.5);
    rec.perPartitionMaxMs = per.length ? Math.max(...per) : null;
    // Traffic through and after the join, then the drain: everything sent from the join on must be acked.
    await sleep(2000);
    await traffic.stop(30_000);
    rec.clientErrors = traffic.since(tStart);
    rec.warnings = {};
    for (const n of nodes) for (const w of n.warnings) if (w.t >= tStart) rec.warnings[w.msg] = (rec.warnings[w.msg] ?? 0) + 1;
    rec.ok = rec.notServed === 0;
  } finally {
    await traffic?.stop(0).catch(() => {});
    await nc.close().catch(() => {});
    await Promise.all(nodes.map((n) => stopChild(n.child, 10_000)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    await cass.dropKeyspace(keyspace);
  }
}

export async function runJoinSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  progress(`join suite: 3 nodes (${s.haPartitions} partitions) under ${s.haPairs} DM pairs every ${s.haIntervalMs} ms, then a 4th joins; ${s.runs} run(s)`);
  const versions: Record<string, string> = {};
  const runs: JoinRun[] = [];
  let servers: ClusterServers | null = null;
  let setupError: string | undefined;
  try {
    servers = await startClusterServers('join');
    versions.cassandra = servers.cass.version;
    versions.natsServer = servers.nats.version;
    for (let r = 1; r <= s.runs; r++) {
      const label = `[join ${r}/${s.runs}]`;
      const rec: JoinRun = { round: r, ok: false, gained: 0 };
      try {
        await oneJoin(ctx, rec, servers, label);
        const e = rec.clientErrors;
        progress(
          `${label} done: ${rec.gained} partitions gained by ${JOINER}; all serving ${fmt(rec.fromStartMs)} ms after its spawn (ready after ${fmt(rec.readyMs)} ms), ` +
            `${fmt(rec.fromRingMs)} ms after the ring change (${fmt(rec.ringMs)} ms after spawn); client-visible: ${e?.errFrames ?? '?'} err frames, ` +
            `${e?.closes ?? '?'} closes, ${e?.failed ?? '?'} failed + ${e?.unacked ?? '?'} unanswered sends of ${e?.sent ?? '?'}`,
        );
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
      }
      runs.push(rec);
    }
  } catch (err) {
    setupError = errText(err);
    progress(`join suite FAILED: ${setupError}`);
  } finally {
    await servers?.stop();
  }
  const ok = runs.filter((r) => r.ok);
  const m = (f: (r: JoinRun) => number | null | undefined) => median(ok.map((r) => f(r) ?? NaN));
  const sum = (f: (r: JoinRun) => number | undefined) => runs.reduce((a, r) => a + (f(r) ?? 0), 0);
  const errFrames = sum((r) => r.clientErrors?.errFrames);
  const closes = sum((r) => r.clientErrors?.closes);
  const failedSends = sum((r) => r.clientErrors?.failed);
  const unacked = sum((r) => r.clientErrors?.unacked);
  const clientErrors = errFrames + closes + unacked;
  const codes: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.clientErrors?.errCodes ?? {})) codes[k] = (codes[k] ?? 0) + n;
  const msgs: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.clientErrors?.errMessages ?? {})) msgs[k] = (msgs[k] ?? 0) + n;
  const warns: Record<string, number> = {};
  for (const r of runs) for (const [k, n] of Object.entries(r.warnings ?? {})) warns[k] = (warns[k] ?? 0) + n;
  const failed = runs.filter((r) => !r.ok).length + (setupError ? 1 : 0);
  const sec = (ms: number | null) => fmt(ms === null ? null : ms / 1000, 2);
  const rows: Row[] = [
    [`4th node: ring change → every partition it gains serving on it, s (gained: ${runs.map((r) => r.gained).join(', ')})`, sec(m((r) => r.fromRingMs)), '—', '—', '≤ 2.00'],
    ['4th node: process spawn → every gained partition serving, s', sec(m((r) => r.fromStartMs)), '—', '—', '—'],
    ['  spawn → ready (HTTP) / → the first old node sees it (ring change), s', `${sec(m((r) => r.readyMs))} / ${sec(m((r) => r.ringMs))}`, '—', '—', '—'],
    ['  ring change → a partition serving, p50 / max over partitions, s', `${sec(m((r) => r.perPartitionP50Ms))} / ${sec(m((r) => r.perPartitionMaxMs))}`, '—', '—', '—'],
    [
      'client-visible errors from the join on: err frames / closes / failed sends / unanswered sends (all runs)',
      `${errFrames}${Object.keys(codes).length ? ` (${Object.entries(codes).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''} / ${closes} / ${failedSends} / ${unacked}`,
      '—',
      '—',
      '0',
    ],
    ['  err frames by message', Object.entries(msgs).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${k} ×${n}`).join('; ') || 'none', '—', '—', '—'],
    ['sends from the join on, acked / sent (all runs)', `${sum((r) => r.clientErrors?.acked)} / ${sum((r) => r.clientErrors?.sent)}`, '—', '—', '—'],
    ['node warnings from the join on (all runs)', Object.entries(warns).map(([k, n]) => `${k} ×${n}`).join(', ') || 'none', '—', '—', '—'],
    ['gained partitions not served within 30 s (all runs)', String(sum((r) => r.notServed)), '—', '—', '0'],
    ['runs ok / failed', `${ok.length} / ${failed}`, '—', '—', `failed 0`],
  ];
  return {
    suite: 'join',
    header:
      `join — 3 nodes on nats-server ${versions.natsServer ?? '?'} (3 servers, R3) + Cassandra ${versions.cassandra ?? '?'}, ${s.haPartitions} partitions, ` +
      `${s.haPairs} DM pairs sending every ${s.haIntervalMs} ms, then a 4th node starts; SB_HEARTBEAT_MS=${s.heartbeatMs} SB_FAILURE_MS=${s.failureMs} ` +
      `SB_ACK_WAIT_MS=${s.ackWaitMs}; medians of ${s.runs} run(s)`,
    tables: [{ title: 'JOIN (a 4th node under load → its partitions serving on it)', rows }],
    summary: {
      medians: {
        fromRingMs: m((r) => r.fromRingMs),
        fromStartMs: m((r) => r.fromStartMs),
        readyMs: m((r) => r.readyMs),
        ringMs: m((r) => r.ringMs),
        perPartitionP50Ms: m((r) => r.perPartitionP50Ms),
        perPartitionMaxMs: m((r) => r.perPartitionMaxMs),
        gained: median(runs.map((r) => r.gained)),
      },
      clientErrors,
      errFrames,
      closes,
      failedSends,
      unacked,
      runsOk: ok.length,
      table: rows,
    },
    runs,
    // Correctness (exit 1, also in --quick): failed runs, sends failed or never answered. err
    // frames the SDK retried and closes are the row's target (0), judged in the targets table.
    violations: failed + failedSends + unacked,
    versions,
    profiles: [],
    ...(setupError ? { error: setupError } : {}),
  };
}
