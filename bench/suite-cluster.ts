/**
 * The `cluster` suite: a 3-server NATS JetStream cluster (R3, file storage) and Cassandra,
 * started (or, for Cassandra, reused) by the bench; then, alternated per round:
 *
 *   raw     JetStream alone: async publish (a window of unacked publishes, fixed payload) to
 *           an R3 file stream and a durable pull consumer consuming and acking, one
 *           connection (bench/jetstream-raw.ts);
 *   1 node  Switchboard end to end, one node (SB_NATS_REPLICAS=3, CQL store);
 *   3 nodes the same with three nodes, clients spread over all of them, each pair's sender
 *           and recipient on different nodes.
 *
 * Every Switchboard run has a fresh keyspace and a clean JetStream (all streams deleted
 * before it), waits for every node's /healthz and for the partitions to settle (every node
 * sees every member, the nodes' owned partitions add up to the partition count, no
 * rebalance for a while), then warms up before measuring.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { stopChild } from './children.js';
import { BODY, type E2EResult, runE2E } from './loadgen.js';
import { unexpectedText } from './suite-cql.js';
import {
  type GroupCpu,
  type NodeMetrics,
  type Row,
  devToken,
  errText,
  fmt,
  groupCpuMeter,
  median,
  mergeMetrics,
  progress,
  ratio,
  ratioNum,
  scrape,
} from './common.js';
import { type RawResult, runRawJetStream } from './jetstream-raw.js';
import { type Cassandra, type ClusterNode, type ClusterServers, type NatsCluster, clusterEnv, freshKeyspace, natsConnect, startClusterServers, startNodes } from './servers.js';
import { type ProfileSummary, summariseProfile } from './profile.js';
import type { Settings, SuiteContext, SuiteReport } from './suite.js';

type Kind = 'raw' | 'node1' | 'node3';
const KIND_LABEL: Record<Kind, string> = { raw: 'raw JetStream', node1: '1 node', node3: '3 nodes' };

interface ClusterRun {
  round: number;
  kind: Kind;
  ok: boolean;
  error?: string;
  keyspace?: string;
  /** Node processes start → all healthy, and → partitions settled. */
  healthyMs?: number;
  settledMs?: number;
  raw?: RawResult;
  e2e?: E2EResult;
  cpu?: GroupCpu | null;
  metrics?: NodeMetrics | undefined;
  perNode?: Array<{ node: string; metrics: NodeMetrics | undefined; owned: number | null }>;
  /** Commands published to SB_CMDS in the run (its last sequence) and per committed message. */
  busCommands?: number | null;
  busCommandsPerMessage?: number | null;
  /** Commands left in SB_CMDS after the drain (work-queue: should be 0). */
  busLeft?: number | null;
  childExits?: Array<{ code: number | null; signal: string | null }>;
  /** SB_CMDS consumers during the window (about one sample a second). */
  bus?: BusSample[];
  /** Membership changes and rebalances the nodes logged after the partitions settled (e.g. a starved node taken for dead). */
  churn?: Array<{ node: string; ms: number; what: string; detail: string }>;
  /** Warnings and errors the nodes logged after the partitions settled: message → count. */
  warnings?: Record<string, number>;
  /** Nodes started again after exiting at start (see startNodes). */
  startRetries?: string[];
  profileDir?: string;
}

/** JetStream's view of the nodes' commands, sampled about once a second in the measuring window. */
export interface BusSample {
  /** Commands in SB_CMDS not yet delivered to a node (summed over the partition consumers). */
  pending: number;
  /** Delivered to a node, not yet acked (the node is working on them, or they sit in its pull buffer). */
  ackPending: number;
  redelivered: number;
}

function busSampler(urls: string[]) {
  const samples: BusSample[] = [];
  let timer: NodeJS.Timeout | null = null;
  let nc: Awaited<ReturnType<typeof natsConnect>> | null = null;
  let busy = false;
  const take = async () => {
    if (busy || !nc) return;
    busy = true;
    try {
      const jsm = await jetstreamManager(nc);
      const x: BusSample = { pending: 0, ackPending: 0, redelivered: 0 };
      for await (const ci of jsm.consumers.list('SB_CMDS')) {
        x.pending += ci.num_pending;
        x.ackPending += ci.num_ack_pending;
        x.redelivered += ci.num_redelivered;
      }
      samples.push(x);
    } catch {
      /* a missed sample */
    } finally {
      busy = false;
    }
  };
  return {
    async open() {
      nc = await natsConnect(urls, 'bench-sampler');
    },
    onWindow(edge: 'start' | 'end') {
      if (edge === 'start') {
        void take();
        timer = setInterval(() => void take(), 1000);
      }
      else if (timer) clearInterval(timer);
    },
    async close(): Promise<BusSample[]> {
      if (timer) clearInterval(timer);
      await nc?.close().catch(() => {});
      nc = null;
      return samples;
    },
  };
}

async function streamSeq(urls: string[]): Promise<{ last: number; left: number } | null> {
  const nc = await natsConnect(urls, 'bench-stats');
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('SB_CMDS');
    return { last: info.state.last_seq, left: info.state.messages };
  } catch {
    return null;
  } finally {
    await nc.close().catch(() => {});
  }
}

async function nodesRun(s: Settings, nats: NatsCluster, cass: Cassandra, rec: ClusterRun, count: number, label: string, profDir: string | null): Promise<void> {
  rec.keyspace = freshKeyspace('cl');
  const env = clusterEnv(nats, cass, rec.keyspace, s.partitions, randomBytes(32).toString('hex'));
  const dirs: string[] = [];
  const nodes: ClusterNode[] = [];
  if (profDir) {
    rec.profileDir = join(profDir, `cluster-${rec.kind}-r${rec.round}`);
    mkdirSync(rec.profileDir, { recursive: true });
  }
  try {
    await nats.reset();
    const t0 = Date.now();
    const t = await startNodes(s, count, env, dirs, rec.profileDir, nodes);
    rec.healthyMs = t.healthyMs;
    rec.settledMs = t.settledMs;
    rec.startRetries = t.retries;
    progress(`${label} ${count} node(s) healthy after ${(t.healthyMs / 1000).toFixed(1)} s, partitions settled after ${(t.settledMs / 1000).toFixed(1)} s (owned: ${nodes.map((n) => `${n.id} ${n.owned}`).join(', ')})`);
    const before = await streamSeq(nats.urls);
    const pids = nodes.map((n) => n.child.pid);
    const meter = groupCpuMeter({ nodes: pids, nats: nats.pids, cassandra: [cass.pid] }, pids);
    const sampler = busSampler(nats.urls);
    await sampler.open();
    rec.e2e = await runE2E(
      {
        url: nodes[0]!.ws,
        // Sender i on node i mod N, its recipient on the next node: every message crosses nodes (N > 1).
        urlFor: (_user, role, i) => nodes[(i + (role === 'recipient' ? 1 : 0)) % nodes.length]!.ws,
        encoding: s.encoding,
        pairs: s.pairs,
        window: s.window,
        warmupMs: s.clusterWarmupSeconds * 1000,
        measureMs: s.seconds * 1000,
        // Redeliveries come back after the ack wait with backoff: give them time, so that
        // "missing" after the drain means lost, not late.
        drainMs: s.clusterDrainSeconds * 1000,
        progress,
        onWindow: (edge) => {
          meter.onWindow(edge);
          sampler.onWindow(edge);
        },
        token: devToken(nodes[0]!.base),
      },
      label,
    ).finally(() => sampler.close().then((x) => (rec.bus = x)));
    rec.cpu = meter.get();
    // Anything the nodes logged after the partitions settled (the load ran from then on).
    const settledAt = t0 + t.settledMs;
    rec.churn = nodes.flatMap((n) => n.events.filter((e) => e.t > settledAt).map((e) => ({ node: n.id, ms: e.t - settledAt, what: e.what, detail: e.detail })));
    rec.warnings = {};
    for (const n of nodes) for (const w of n.warnings) if (w.t > settledAt) rec.warnings[w.msg] = (rec.warnings[w.msg] ?? 0) + 1;
    if (rec.churn.length) progress(`${label} WARNING: membership changed during the run: ${rec.churn.map((c) => `${c.node} +${(c.ms / 1000).toFixed(1)} s ${c.what}: ${c.detail}`).join('; ')}`);
    const per = await Promise.all(nodes.map(async (n) => ({ node: n.id, metrics: await scrape(n.base), owned: n.owned })));
    rec.perNode = per;
    rec.metrics = mergeMetrics(per.map((p) => p.metrics));
    const after = await streamSeq(nats.urls);
    if (after) {
      rec.busCommands = after.last - (before?.last ?? 0);
      rec.busLeft = after.left;
      const committed = rec.metrics?.committed ?? 0;
      rec.busCommandsPerMessage = committed > 0 ? Math.round((100 * after.last) / committed) / 100 : null;
    }
    rec.childExits = await Promise.all(nodes.map((n) => stopChild(n.child, 20_000)));
    nodes.length = 0;
    rec.ok = true;
  } finally {
    await Promise.all(nodes.map((n) => stopChild(n.child, 20_000)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    await cass.dropKeyspace(rec.keyspace);
  }
}

async function rawRun(s: Settings, nats: NatsCluster, rec: ClusterRun, label: string): Promise<void> {
  await nats.reset();
  const meter = groupCpuMeter({ nats: nats.pids });
  rec.raw = await runRawJetStream(
    {
      urls: nats.urls,
      replicas: nats.replicas,
      window: s.rawWindow,
      payloadBytes: s.rawPayload,
      pullBatch: s.rawPullBatch,
      warmupMs: s.clusterWarmupSeconds * 1000,
      measureMs: s.seconds * 1000,
      drainMs: Math.max(30, s.drainSeconds * 3) * 1000,
      progress,
      onWindow: meter.onWindow,
    },
    label,
  );
  rec.cpu = meter.get();
  rec.ok = true;
}

function summarise(s: Settings, runs: ClusterRun[]) {
  const ok = (k: Kind) => runs.filter((r) => r.kind === k && r.ok);
  const raw = ok('raw');
  const n1 = ok('node1');
  const n3 = ok('node3');
  const failed = runs.filter((r) => !r.ok).length;
  const m = (rs: ClusterRun[], f: (r: ClusterRun) => number | null | undefined) => median(rs.map((r) => f(r) ?? NaN));
  const rawRate = m(raw, (r) => r.raw?.pipelinePerSec);
  const rawPub = m(raw, (r) => r.raw?.publishPerSec);
  const rawCons = m(raw, (r) => r.raw?.consumePerSec);
  const e1 = m(n1, (r) => r.e2e?.msgsPerSec);
  const e3 = m(n3, (r) => r.e2e?.msgsPerSec);
  const rawP50 = m(raw, (r) => r.raw?.pipelineLatency.p50);
  const rawP99 = m(raw, (r) => r.raw?.pipelineLatency.p99);
  const lat = (name: string, f: (r: E2EResult) => number | null, base: number | null): Row[] => [
    [`${name} (1 node)`, fmt(m(n1, (r) => (r.e2e ? f(r.e2e) : null)), 2), fmt(base, 2), ratio(m(n1, (r) => (r.e2e ? f(r.e2e) : null)), base), '—'],
    [`${name} (3 nodes)`, fmt(m(n3, (r) => (r.e2e ? f(r.e2e) : null)), 2), fmt(base, 2), ratio(m(n3, (r) => (r.e2e ? f(r.e2e) : null)), base), '—'],
  ];
  const pair = (name: string, f: (r: ClusterRun) => number | null | undefined, digits = 0): Row => [
    name,
    `${fmt(m(n1, f), digits)} / ${fmt(m(n3, f), digits)}`,
    '—',
    '—',
    '—',
  ];
  const cpu = (name: string, f: (c: GroupCpu) => number | null | undefined): Row => [
    name,
    `${fmt(m(raw, (r) => (r.cpu ? f(r.cpu) : null)))} / ${fmt(m(n1, (r) => (r.cpu ? f(r.cpu) : null)))} / ${fmt(m(n3, (r) => (r.cpu ? f(r.cpu) : null)))}`,
    '—',
    '—',
    '—',
  ];
  const e2eRuns = [...n1, ...n3];
  const viol = e2eRuns.reduce((a, r) => a + Object.values(r.e2e!.violations).reduce((x, y) => x + y, 0), 0);
  const sums: Record<string, number> = {};
  for (const r of e2eRuns) for (const [k, n] of Object.entries(r.e2e!.violations)) if (n > 0) sums[k] = (sums[k] ?? 0) + n;
  const vText = Object.keys(sums).length ? `${viol} (${Object.entries(sums).map(([k, n]) => `${k} ${n}`).join(', ')})` : String(viol);
  const rawViol = raw.reduce((a, r) => a + r.raw!.violations.duplicates + r.raw!.violations.lost, 0);
  const rawPubErr = raw.reduce((a, r) => a + r.raw!.violations.publishErrors, 0);
  const codes: Record<string, number> = {};
  for (const r of e2eRuns) for (const [k, n] of Object.entries(r.e2e!.errorCodes)) codes[k] = (codes[k] ?? 0) + n;
  const warns: Record<string, number> = {};
  for (const r of e2eRuns) for (const [k, n] of Object.entries(r.warnings ?? {})) warns[k] = (warns[k] ?? 0) + n;
  const warnText = Object.keys(warns).length ? Object.entries(warns).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ') : 'none';
  // Each round runs raw, 1 node and 3 nodes back to back: ratios within a round cancel slow drifts.
  const rounds = [...new Set(runs.map((r) => r.round))].sort((a, b) => a - b);
  const perRound = (k: Kind) =>
    rounds.map((round) => {
      const base = raw.find((r) => r.round === round)?.raw?.pipelinePerSec;
      const e = (k === 'node1' ? n1 : n3).find((r) => r.round === round)?.e2e?.msgsPerSec;
      return base && e !== undefined ? e / base : NaN;
    });
  const pr1 = perRound('node1');
  const pr3 = perRound('node3');
  const rows: Row[] = [
    [`raw JetStream pipeline msgs/s: publish + pull consume + ack (R3 file work queue, ≤ ${s.rawWindow} in flight, ${s.rawPayload} B)`, fmt(rawRate), '—', '—', '—'],
    ['raw JetStream publish only: publish acks/s (async, window) vs REFERENCE.md', fmt(rawPub), '15,500', ratio(rawPub, 15_500), '—'],
    ['raw JetStream consume only: backlog consumed + acked/s vs REFERENCE.md', fmt(rawCons), '34,000', ratio(rawCons, 34_000), '—'],
    ['e2e msgs/s, 1 node (send → recipient push) vs raw JetStream', fmt(e1), fmt(rawRate), ratio(e1, rawRate), '≥ 0.50'],
    ['e2e msgs/s, 3 nodes vs raw JetStream', fmt(e3), fmt(rawRate), ratio(e3, rawRate), '≥ 0.50'],
    ['e2e msgs/s, 3 nodes vs 1 node', fmt(e3), fmt(e1), ratio(e3, e1), '—'],
    [`e2e / raw within each round, 1 node: median (rounds: ${pr1.map((x) => fmt(x, 3)).join(', ')})`, fmt(median(pr1), 3), '—', '—', '≥ 0.50'],
    [`e2e / raw within each round, 3 nodes: median (rounds: ${pr3.map((x) => fmt(x, 3)).join(', ')})`, fmt(median(pr3), 3), '—', '—', '≥ 0.50'],
    ['raw JetStream pipeline: publish → ack p50 / p99 ms', `${fmt(m(raw, (r) => r.raw?.pipelinePublishAck.p50), 2)} / ${fmt(m(raw, (r) => r.raw?.pipelinePublishAck.p99), 2)}`, '—', '—', '—'],
    ...lat('send → push p50 ms vs raw pipeline publish → consume p50', (r) => r.sendToMsg.p50, rawP50),
    ...lat('send → push p99 ms vs raw pipeline publish → consume p99', (r) => r.sendToMsg.p99, rawP99),
    pair('send → ack p50 ms (1 node / 3 nodes)', (r) => r.e2e?.sendToAck.p50, 2),
    pair('send → ack p99 ms (1 node / 3 nodes)', (r) => r.e2e?.sendToAck.p99, 2),
    pair('send → receipt p50 ms (1 node / 3 nodes)', (r) => r.e2e?.sendToReceipt.p50, 2),
    pair('send → receipt p99 ms (1 node / 3 nodes)', (r) => r.e2e?.sendToReceipt.p99, 2),
    pair('JetStream commands (SB_CMDS publishes) per committed message (1 / 3 nodes)', (r) => r.busCommandsPerMessage, 2),
    pair('JetStream, in the window (median of ~1/s samples): commands not yet delivered to a node (1 / 3 nodes)', (r) => median((r.bus ?? []).map((b) => b.pending))),
    pair('JetStream, in the window: commands delivered, not yet acked by the node (1 / 3 nodes)', (r) => median((r.bus ?? []).map((b) => b.ackPending))),
    pair('node /metrics: messages per commit, mean (1 / 3 nodes)', (r) => r.metrics?.messagesPerConvCommit, 2),
    pair('node /metrics: commit latency ms, mean (1 / 3 nodes)', (r) => r.metrics?.convCommitMeanMs, 2),
    pair('node /metrics: event-loop lag p99 ms, median node (1 / 3 nodes)', (r) => r.metrics?.eventLoopLagP99Ms, 2),
    pair('node /metrics: bus redeliveries + dead letters (1 / 3 nodes)', (r) => (r.metrics ? r.metrics.redeliveries + r.metrics.deadLetters : null)),
    cpu('CPU % of one core: Switchboard nodes (raw / 1 node / 3 nodes)', (c) => c.groups.nodes ?? null),
    cpu('CPU % of one core: 3 nats-servers (raw / 1 / 3)', (c) => c.groups.nats),
    cpu('CPU % of one core: Cassandra (raw / 1 / 3)', (c) => c.groups.cassandra ?? null),
    cpu('CPU % of one core: load generator / raw client (raw / 1 / 3)', (c) => c.loadgenPct),
    cpu(`CPU % of one core: all of these (raw / 1 / 3; the machine has ${availableParallelism() * 100})`, (c) => c.totalPct),
    pair('node main threads: % of wall on a CPU, summed (1 / 3 nodes)', (r) => r.cpu?.mainOnCpuPct),
    pair('node main threads: % of wall waiting for a CPU, summed (1 / 3 nodes)', (r) => r.cpu?.mainRunqueuePct),
    pair('start → all nodes healthy s (1 node / 3 nodes)', (r) => (r.healthyMs ?? NaN) / 1000, 1),
    pair('start → partitions settled s (1 node / 3 nodes)', (r) => (r.settledMs ?? NaN) / 1000, 1),
    [
      'membership changes + rebalances logged during the runs, e.g. a starved node taken for dead (all 1-node / 3-node runs)',
      `${n1.reduce((a, r) => a + (r.churn?.length ?? 0), 0)} / ${n3.reduce((a, r) => a + (r.churn?.length ?? 0), 0)}`,
      '—',
      '—',
      '0',
    ],
    ['node warnings logged during the runs (all runs)', warnText, '—', '—', '—'],
    ['violations e2e (acks, msgs, receipts, errors; all runs)', vText, '—', '—', '0'],
    [
      'redelivered commands answered again: ack dup:true with the first seq (at-least-once bus under overload; all runs)',
      String(e2eRuns.reduce((a, r) => a + (r.e2e?.acksRedelivered ?? 0), 0)),
      '—',
      '—',
      '—',
    ],
    [`e2e runs whose drain did not finish within ${s.clusterDrainSeconds} s`, String(e2eRuns.filter((r) => !r.e2e!.drained).length), '—', '—', '0'],
    ['raw JetStream: lost or duplicated / failed publishes', `${rawViol} / ${rawPubErr}`, '—', '—', '0'],
    ['node start retries (exited at start: "no responders" from a new R3 KV bucket)', String(e2eRuns.reduce((a, r) => a + (r.startRetries?.length ?? 0), 0)), '—', '—', '0'],
    ['unexpected frames, socket:type (counted in errors above)', unexpectedText(e2eRuns.map((r) => r.e2e!)), '—', '—', '0'],
    ['err codes seen', Object.keys(codes).length ? Object.entries(codes).map(([k, n]) => `${k} ${n}`).join(', ') : 'none', '—', '—', '—'],
    ['runs ok (raw / 1 node / 3 nodes); failed runs', `${raw.length} / ${n1.length} / ${n3.length}`, '—', '—', `failed ${failed}`],
  ];
  return {
    rows,
    violations: viol + rawViol + failed,
    errorCodes: codes,
    medians: {
      rawPipelinePerSec: rawRate,
      rawPublishPerSec: rawPub,
      rawConsumePerSec: rawCons,
      rawPipelineLatencyP50: rawP50,
      rawPipelineLatencyP99: rawP99,
      e2eMsgsPerSec1: e1,
      e2eMsgsPerSec3: e3,
      ratio1OverRaw: ratioNum(e1, rawRate),
      ratio3OverRaw: ratioNum(e3, rawRate),
      ratio3Over1: ratioNum(e3, e1),
      perRound1OverRaw: pr1,
      perRound3OverRaw: pr3,
      sendToMsgP50: { n1: m(n1, (r) => r.e2e?.sendToMsg.p50), n3: m(n3, (r) => r.e2e?.sendToMsg.p50) },
      sendToMsgP99: { n1: m(n1, (r) => r.e2e?.sendToMsg.p99), n3: m(n3, (r) => r.e2e?.sendToMsg.p99) },
      sendToAckP50: { n1: m(n1, (r) => r.e2e?.sendToAck.p50), n3: m(n3, (r) => r.e2e?.sendToAck.p50) },
      sendToAckP99: { n1: m(n1, (r) => r.e2e?.sendToAck.p99), n3: m(n3, (r) => r.e2e?.sendToAck.p99) },
      busCommandsPerMessage: { n1: m(n1, (r) => r.busCommandsPerMessage), n3: m(n3, (r) => r.busCommandsPerMessage) },
      busPending: { n1: m(n1, (r) => median((r.bus ?? []).map((b) => b.pending))), n3: m(n3, (r) => median((r.bus ?? []).map((b) => b.pending))) },
      busAckPending: { n1: m(n1, (r) => median((r.bus ?? []).map((b) => b.ackPending))), n3: m(n3, (r) => median((r.bus ?? []).map((b) => b.ackPending))) },
      messagesPerCommit: { n1: m(n1, (r) => r.metrics?.messagesPerConvCommit), n3: m(n3, (r) => r.metrics?.messagesPerConvCommit) },
      cpu: {
        raw: { nats: m(raw, (r) => r.cpu?.groups.nats), client: m(raw, (r) => r.cpu?.loadgenPct), total: m(raw, (r) => r.cpu?.totalPct) },
        n1: { nodes: m(n1, (r) => r.cpu?.groups.nodes), nats: m(n1, (r) => r.cpu?.groups.nats), cassandra: m(n1, (r) => r.cpu?.groups.cassandra), loadgen: m(n1, (r) => r.cpu?.loadgenPct), total: m(n1, (r) => r.cpu?.totalPct) },
        n3: { nodes: m(n3, (r) => r.cpu?.groups.nodes), nats: m(n3, (r) => r.cpu?.groups.nats), cassandra: m(n3, (r) => r.cpu?.groups.cassandra), loadgen: m(n3, (r) => r.cpu?.loadgenPct), total: m(n3, (r) => r.cpu?.totalPct) },
      },
      settledMs: { n1: m(n1, (r) => r.settledMs), n3: m(n3, (r) => r.settledMs) },
    },
  };
}

export async function runClusterSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  progress(
    `cluster suite: 3-server NATS cluster (R3) + Cassandra; raw JetStream (window ${s.rawWindow}, ${s.rawPayload} B) vs Switchboard with 1 and 3 nodes ` +
      `(${s.partitions} partitions, ${s.pairs} DM pairs, window ${s.window}); ${s.seconds} s measured after ${s.clusterWarmupSeconds} s warm-up, ${s.runs} alternated run(s)`,
  );
  const runs: ClusterRun[] = [];
  const versions: Record<string, string> = {};
  let srv: ClusterServers | null = null;
  try {
    srv = await startClusterServers('cluster');
    const { cass, nats } = srv;
    versions.cassandra = cass.version;
    versions.natsServer = nats.version;
    const kinds: Kind[] = ['raw', 'node1', 'node3'];
    const plan = s.runs * kinds.length;
    let n = 0;
    for (let r = 1; r <= s.runs; r++) {
      // Rotate the order each round so a drift of the machine does not favour one kind.
      const order = kinds.map((_, i) => kinds[(i + r - 1) % kinds.length]!);
      for (const kind of order) {
        const label = `[cluster ${++n}/${plan} ${KIND_LABEL[kind]}]`;
        const rec: ClusterRun = { round: r, kind, ok: false };
        try {
          if (kind === 'raw') {
            await rawRun(s, nats, rec, label);
            const x = rec.raw!;
            progress(
              `${label} done: pipeline ${fmt(x.pipelinePerSec)} msgs/s (publish→consume p50 ${x.pipelineLatency.p50} ms p99 ${x.pipelineLatency.p99} ms), ` +
                `publish only ${fmt(x.publishPerSec)} acks/s, consume only ${fmt(x.consumePerSec)}/s (backlog ${x.consumeBacklog}), ` +
                `CPU in the pipeline: nats ${rec.cpu?.groups.nats ?? 'n/a'} % client ${rec.cpu?.loadgenPct ?? 'n/a'} %`,
            );
          } else {
            await nodesRun(s, nats, cass, rec, kind === 'node1' ? 1 : s.nodesMax, label, ctx.profDir);
            const e = rec.e2e!;
            progress(
              `${label} done: ${fmt(e.msgsPerSec)} msgs/s, push p50 ${e.sendToMsg.p50} ms p99 ${e.sendToMsg.p99} ms, ack p50 ${e.sendToAck.p50} ms, ` +
                `${rec.busCommandsPerMessage ?? 'n/a'} JetStream commands/msg, ${rec.metrics?.messagesPerConvCommit ?? 'n/a'} msgs/commit, ` +
                `CPU nodes ${rec.cpu?.groups.nodes ?? 'n/a'} % nats ${rec.cpu?.groups.nats ?? 'n/a'} % cassandra ${rec.cpu?.groups.cassandra ?? 'n/a'} % loadgen ${rec.cpu?.loadgenPct ?? 'n/a'} %, ` +
                `violations ${Object.values(e.violations).reduce((a, b) => a + b, 0)}`,
            );
          }
        } catch (err) {
          rec.error = errText(err);
          progress(`${label} FAILED: ${rec.error}`);
        }
        runs.push(rec);
      }
    }
  } finally {
    await srv?.stop();
  }
  const sum = summarise(s, runs);
  const profiles: ProfileSummary[] = [];
  for (const r of runs) {
    if (!r.profileDir) continue;
    for (const f of readdirSync(r.profileDir).filter((x) => x.endsWith('.cpuprofile'))) profiles.push(summariseProfile(join(r.profileDir, f)));
  }
  return {
    suite: 'cluster',
    header:
      `cluster — nats-server ${versions.natsServer ?? '?'} (3 servers, R3 file streams), Cassandra ${versions.cassandra ?? '?'}; raw JetStream vs Switchboard ` +
      `with 1 and ${s.nodesMax} nodes (${s.partitions} partitions; senders and recipients on different nodes), ${s.pairs} DM pairs, window ${s.window}, ` +
      `${s.encoding}, ${Buffer.byteLength(BODY)}-byte bodies, ${s.seconds} s measured after ${s.clusterWarmupSeconds} s warm-up, medians of ${s.runs} alternated run(s)`,
    tables: [{ title: 'CLUSTER (baseline: raw JetStream publish+consume in the same run)', rows: sum.rows }],
    summary: { medians: sum.medians, violations: sum.violations, errorCodes: sum.errorCodes, table: sum.rows },
    runs,
    violations: sum.violations,
    versions,
    profiles,
  };
}
