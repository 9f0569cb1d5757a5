/**
 * A chaos run of a Switchboard cluster (`runChaos`), used by `npm run chaos` (run.ts) and by
 * test/chaos/chaos.test.ts: a 3-server NATS cluster (nats.conf), the CQL server, N nodes as
 * processes, a fleet of SDK clients sending with retries and fail-over, faults injected on a
 * seeded plan (kill -9 of nodes with restarts, kill -9 of a NATS server with a restart, a
 * node frozen with SIGSTOP past the failure timeout and continued as a zombie), then the
 * independent checker. Everything is bounded in time and count, listens on 127.0.0.1 only,
 * and every process started here is stopped by PID at the end, also on errors and aborts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import cassandra from 'cassandra-driver';
import { startNats, type NatsCluster } from '../../test/helpers/nats.js';
import { freePort } from '../../test/helpers/ports.js';
import { Auth } from '../../src/gateway/auth.js';
import { CqlStore } from '../../src/storage/cql-store.js';
import { convKey, partitionOf } from '../../src/cluster/partition.js';
import { check, type CheckStats } from './check.js';
import { Fleet } from './fleet.js';
import { Injector, Owners, planFaults, seededRandom, waitJetStream, type Fault, type FaultKind } from './faults.js';
import { cqlServer, killAllNodes, NodeProc, ROOT, snapshotDist, type CqlServer } from './procs.js';

export interface ChaosOptions {
  /** Seconds of traffic; faults are spread over it (minus warm-up and cool-down). */
  duration: number;
  nodes: number;
  nodeKills: number;
  natsKills: number;
  pauses: number;
  /** Active users (direct pairs and small groups). */
  users: number;
  groupSize: number;
  /** Members of the group at the cap, creator included (0: none). */
  bigGroup: number;
  bigSenders: number;
  intervalMs: number;
  bigIntervalMs: number;
  resendRatio: number;
  /** Churn group: a member added or removed every this many ms (0: off). */
  churnEveryMs: number;
  churnJoins: number;
  partitions: number;
  heartbeatMs: number;
  failureMs: number;
  ackWaitMs: number;
  handoffMs: number;
  /** SIGSTOP length (default: failure timeout + ack wait + 1.5 s). */
  pauseMs?: number;
  downMs: [number, number];
  natsDownMs: [number, number];
  warmupMs: number;
  cooldownMs: number;
  drainMs: number;
  requestTimeoutMs: number;
  seed: number;
  /** "host:port" of a CQL server to use; else SB_TEST_CQL_CONTACT; else scripts/cassandra.mjs. */
  cql?: string;
  /** Where node and NATS logs go (default: a new temp dir, kept and printed). */
  logDir?: string;
  /** A build to run instead of dist/ (copied at the start, like dist/). */
  dist?: string;
  /** Extra node settings (SB_*). */
  nodeEnv: Record<string, string>;
  /** Keep the run's keyspace even when the run is clean (it is always kept when not). */
  keepKeyspace: boolean;
  /** Remove the log dir when the run is clean (the test does). */
  removeLogsWhenClean: boolean;
  quick: boolean;
  signal?: AbortSignal;
  /** Progress lines (every second and on events); default: stderr. */
  progress?: (line: string) => void;
}

export const DEFAULTS: ChaosOptions = {
  duration: 150,
  nodes: 3,
  nodeKills: 12,
  natsKills: 2,
  pauses: 1,
  users: 24,
  groupSize: 4,
  bigGroup: 200,
  bigSenders: 8,
  intervalMs: 1000,
  bigIntervalMs: 4000,
  resendRatio: 0.05,
  churnEveryMs: 4000,
  churnJoins: 10,
  partitions: 32,
  heartbeatMs: 250,
  failureMs: 1500,
  ackWaitMs: 1000,
  handoffMs: 3000,
  downMs: [500, 3000],
  natsDownMs: [2000, 5000],
  warmupMs: 8000,
  cooldownMs: 12_000,
  drainMs: 60_000,
  requestTimeoutMs: 5000,
  seed: 0,
  nodeEnv: {},
  keepKeyspace: false,
  removeLogsWhenClean: false,
  quick: false,
};

/** What --quick changes: ~35 s, 3 node kills, 1 NATS kill, 1 pause, fewer senders. */
export const QUICK: Partial<ChaosOptions> = {
  duration: 35,
  nodeKills: 3,
  natsKills: 1,
  pauses: 1,
  users: 16,
  bigSenders: 4,
  churnEveryMs: 3000,
  churnJoins: 4,
  downMs: [500, 2000],
  natsDownMs: [1500, 3000],
  warmupMs: 4000,
  cooldownMs: 6000,
  drainMs: 45_000,
  quick: true,
};

export interface Dist {
  n: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export interface ChaosReport {
  ok: boolean;
  startedAt: string;
  seconds: number;
  seed: number;
  options: Omit<ChaosOptions, 'signal' | 'progress'>;
  cql: { contact: string; source: CqlServer['source']; keyspace: string; keyspaceKept: boolean };
  logDir: string;
  nodeUrls: string[];
  natsUrls: string[];
  clients: number;
  convs: Record<string, number>;
  messages: {
    sent: number;
    acked: number;
    resends: number;
    resendsAcked: number;
    pending: number;
    failed: number;
    stored: number;
    ackLatencyMs: Dist;
  };
  churn: { add: number; remove: number; failed: number };
  reconnects: number;
  faults: { planned: Record<FaultKind, number>; done: Record<FaultKind, number>; failed: number; list: Fault[] };
  /** Time from each fault to the next ack in each conversation it affected, per fault kind. */
  recovery: Record<FaultKind, Dist & { faults: number; noAck: number }>;
  check: CheckStats;
  nodeLogs: Record<string, { starts: number; errors: number; warnings: number; deadLetters: number; commitFailed: number }>;
  violations: string[];
  violationCount: number;
  /** The slowest acks (first sends), for a post-mortem with the node logs. */
  slowest: Array<{ user: string; conv: string; partition: number; cmid: string; sentAt: number; ackMs: number | null }>;
  /** Partition of each conversation (SB_PARTITIONS). */
  partitions: Record<string, number>;
  loadavg: number[];
}

const KINDS: FaultKind[] = ['node-kill', 'nats-kill', 'pause'];
const SECRET = 'chaos-secret-0123456789abcdef0123456789abcdef';

export class Aborted extends Error {
  constructor() {
    super('aborted');
    this.name = 'Aborted';
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Aborted());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(new Aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function dist(xs: number[]): Dist {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { n: 0, p50: null, p99: null, max: null };
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1]! };
}

function scanLog(file: string): { errors: number; warnings: number; deadLetters: number; commitFailed: number } {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    /* no log */
  }
  const count = (re: RegExp) => (text.match(re) ?? []).length;
  return {
    errors: count(/"level":(50|60)/g),
    warnings: count(/"level":40/g),
    deadLetters: count(/"msg":"dead letter/g),
    commitFailed: count(/"msg":"commit failed"/g),
  };
}

export async function runChaos(input: Partial<ChaosOptions> = {}): Promise<ChaosReport> {
  const o: ChaosOptions = { ...DEFAULTS, ...(input.quick ? QUICK : {}), ...stripUndefined(input) };
  const t0 = Date.now();
  const signal = o.signal;
  const say = o.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const log = (line: string) => say(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}`);
  const seed = o.seed || Math.floor(Math.random() * 2 ** 31) + 1;
  const rng = seededRandom(seed);
  const pauseMs = o.pauseMs ?? o.failureMs + o.ackWaitMs + 1500;
  if (o.nodes < 2) throw new Error('--nodes: at least 2 (a kill must leave a survivor)');
  if (pauseMs <= o.failureMs) throw new Error('--pause-ms must exceed the failure timeout (the node must come back as a zombie)');

  const logDir = o.logDir ?? mkdtempSync(join(tmpdir(), 'sb-chaos-'));
  mkdirSync(logDir, { recursive: true });
  const dataRoot = mkdtempSync(join(tmpdir(), 'sb-chaos-data-'));
  log(`logs (node and NATS output): ${logDir}`);
  log(`seed ${seed}; ${o.nodes} nodes, ${o.nodeKills} node kills, ${o.natsKills} NATS kills, ${o.pauses} pauses of ${pauseMs} ms over ${o.duration} s`);

  let cql: CqlServer | null = null;
  let nats: NatsCluster | null = null;
  let store: CqlStore | null = null;
  let fleet: Fleet | null = null;
  let owners: Owners | null = null;
  let progressTimer: NodeJS.Timeout | null = null;
  let snapshot: { entry: string; remove(): void } | null = null;
  const nodes: NodeProc[] = [];
  const keyspace = `sbchaos_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  let report: ChaosReport | null = null;
  try {
    cql = await cqlServer(o.cql, log);
    log(`CQL server ${cql.contact} (${cql.source}), keyspace ${keyspace}`);
    nats = await startNats(3, { logDir });
    log(`NATS cluster: ${nats.urls.join(' ')}; JetStream ready after ${await waitJetStream(nats.urls, 60_000)} ms`);
    const env: Record<string, string> = {
      SB_JWT_SECRET: SECRET,
      SB_LOG_LEVEL: 'info',
      SB_NATS_URL: nats.urls.join(','),
      SB_NATS_REPLICAS: '3',
      SB_CQL_CONTACT_POINTS: cql.contact,
      SB_CQL_KEYSPACE: keyspace,
      SB_CQL_REPLICATION: 'simple:1',
      SB_CQL_CONSISTENCY: 'ONE',
      SB_PARTITIONS: String(o.partitions),
      SB_HEARTBEAT_MS: String(o.heartbeatMs),
      SB_FAILURE_MS: String(o.failureMs),
      SB_ACK_WAIT_MS: String(o.ackWaitMs),
      SB_HANDOFF_MS: String(o.handoffMs),
      SB_RATE: '100000',
      ...o.nodeEnv,
    };
    snapshot = snapshotDist(o.dist ? resolve(o.dist) : undefined);
    for (let i = 1; i <= o.nodes; i++) {
      const id = `n${i}`;
      nodes.push(new NodeProc(id, await freePort(), join(dataRoot, id), join(logDir, `node-${id}.log`), env, snapshot.entry));
    }
    // The first node creates the keyspace, the stream and the buckets; the others join it.
    // (A first start may time out on a busy machine while JetStream settles: one more try.)
    const boot = (n: NodeProc) =>
      n.start().catch((err: unknown) => {
        log(`${n.id} failed to start (${err instanceof Error ? err.message : String(err)}); trying once more`);
        return n.start();
      });
    await boot(nodes[0]!);
    await Promise.all(nodes.slice(1).map(boot));
    log(`nodes up: ${nodes.map((n) => `${n.id} pid ${n.pid} :${n.port}`).join(', ')}`);
    if (signal?.aborted) throw new Aborted();

    store = await CqlStore.open({
      contactPoints: [cql.contact],
      localDataCenter: 'datacenter1',
      keyspace,
      replication: { class: 'SimpleStrategy', replication_factor: 1 },
      consistency: 'ONE',
    });
    const auth = new Auth(SECRET);
    fleet = new Fleet({
      urls: nodes.map((n) => n.url),
      token: (u) => auth.sign(u, 3600),
      prefix: `x${Date.now().toString(36)}`,
      users: o.users,
      groupSize: o.groupSize,
      bigGroup: o.bigGroup,
      bigSenders: o.bigSenders,
      intervalMs: o.intervalMs,
      bigIntervalMs: o.bigIntervalMs,
      resendRatio: o.resendRatio,
      churnEveryMs: o.churnEveryMs,
      churnJoins: o.churnJoins,
      requestTimeoutMs: o.requestTimeoutMs,
      rng,
      log,
      t0,
    });
    // (Bounded: the SDK retries connects and group creates for ever.)
    await withDeadline(fleet.start(), 180_000, 'connecting the clients and creating the groups', signal);

    owners = new Owners(nats.urls, o.partitions);
    const f = fleet;
    const injector = new Injector({
      nodes,
      nats,
      owners,
      partitions: o.partitions,
      convs: () => [...f.convs.keys()],
      rng,
      downMs: o.downMs,
      pauseMs,
      natsDownMs: o.natsDownMs,
      t0,
      log,
      ...(signal ? { signal } : {}),
    });
    const counts: Record<FaultKind, number> = { 'node-kill': o.nodeKills, 'nats-kill': o.natsKills, pause: o.pauses };
    const plan = planFaults(counts, rng);

    const runStart = Date.now();
    fleet.run();
    let lastAcked = 0;
    progressTimer = setInterval(() => {
      const acked = f.ackCount;
      const nodesLine = nodes.map((n) => `${n.id}:${n.state}`).join(' ');
      const natsUp = nats!.servers.filter((s) => s.proc !== null).length;
      log(
        `sent ${f.sends.length - f.resends}+${f.resends} acked ${acked} (+${acked - lastAcked}/s) pending ${f.pending} | ${nodesLine} | nats ${natsUp}/3 | faults ${injector.faults.length}/${plan.length}${injector.current ? ` (${injector.current})` : ''} | reconnects ${f.reconnects} | violations ${f.violations.length}`,
      );
      lastAcked = acked;
    }, 1000);

    const window = Math.max(0, o.duration * 1000 - o.warmupMs - o.cooldownMs);
    const slot = plan.length > 0 ? window / plan.length : 0;
    for (const [i, kind] of plan.entries()) {
      await sleep(runStart + o.warmupMs + i * slot - Date.now(), signal);
      await injector.inject(kind);
    }
    await sleep(Math.max(o.cooldownMs, runStart + o.duration * 1000 - Date.now()), signal);
    log(`traffic stops; waiting up to ${o.drainMs / 1000} s for ${fleet.pending} sends in flight`);
    await fleet.stop(o.drainMs);
    clearInterval(progressTimer);
    progressTimer = null;
    const trafficSeconds = (Date.now() - runStart) / 1000;
    log(`checking (store ${keyspace}, ${fleet.convs.size} conversations, ${fleet.members.size} clients)`);
    const result = await check(fleet, store, { catchUpMs: 15_000, t0, log });

    // Recovery: from each fault to the first ack (committed after it) in each affected conversation.
    for (const fault of injector.faults) {
      if (!fault.wall) continue;
      fault.recovery = {};
      for (const conv of fault.affected) {
        const next = (fleet.convAcks.get(conv) ?? []).filter(([at, ts]) => at >= fault.wall && ts >= fault.wall).map(([at]) => at - fault.wall);
        fault.recovery[conv] = next.length > 0 ? Math.min(...next) : null;
      }
    }
    const recovery = {} as ChaosReport['recovery'];
    for (const kind of KINDS) {
      const fs = injector.faults.filter((x) => x.kind === kind && x.recovery);
      const samples = fs.flatMap((x) => Object.values(x.recovery!));
      recovery[kind] = {
        ...dist(samples.filter((s): s is number => s !== null)),
        faults: fs.length,
        noAck: samples.filter((s) => s === null).length,
      };
    }
    const done = Object.fromEntries(KINDS.map((k) => [k, injector.faults.filter((x) => x.kind === k && !x.error).length])) as Record<FaultKind, number>;
    const firsts = fleet.firstSends;
    const resends = fleet.sends.filter((s) => s.resendOf);
    const convKinds: Record<string, number> = {};
    for (const c of fleet.convs.values()) convKinds[c.kind] = (convKinds[c.kind] ?? 0) + 1;
    const nodeLogs: ChaosReport['nodeLogs'] = {};
    for (const n of nodes) nodeLogs[n.id] = { starts: n.starts, ...scanLog(n.logFile) };
    const ok = result.violations.length === 0;
    report = {
      ok,
      startedAt: new Date(t0).toISOString(),
      seconds: Math.round(trafficSeconds),
      seed,
      options: { ...o, pauseMs, seed, signal: undefined, progress: undefined } as ChaosReport['options'],
      cql: { contact: cql.contact, source: cql.source, keyspace, keyspaceKept: !ok || o.keepKeyspace },
      logDir,
      nodeUrls: nodes.map((n) => n.url),
      natsUrls: nats.urls,
      clients: fleet.members.size,
      convs: convKinds,
      messages: {
        sent: firsts.length,
        acked: firsts.filter((s) => s.seq !== undefined).length,
        resends: resends.length,
        resendsAcked: resends.filter((s) => s.seq !== undefined).length,
        pending: fleet.sends.filter((s) => s.seq === undefined && s.error === undefined).length,
        failed: fleet.sends.filter((s) => s.error !== undefined).length,
        stored: result.stats.storedUser,
        ackLatencyMs: dist(firsts.filter((s) => s.ackAt !== undefined).map((s) => s.ackAt! - s.sentAt)),
      },
      churn: fleet.churnOps,
      reconnects: fleet.reconnects,
      faults: { planned: counts, done, failed: injector.faults.filter((x) => x.error).length, list: injector.faults },
      recovery,
      check: result.stats,
      nodeLogs,
      violations: result.violations.slice(0, 1000),
      violationCount: result.violations.length,
      slowest: firsts
        .map((s) => ({ s, ms: s.ackAt === undefined ? Infinity : s.ackAt - s.sentAt }))
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 25)
        .map(({ s, ms }) => ({
          user: s.user,
          conv: s.conv,
          partition: partitionOf(convKey(s.conv), o.partitions),
          cmid: s.cmid,
          sentAt: s.sentAt - t0,
          ackMs: Number.isFinite(ms) ? ms : null,
        })),
      partitions: Object.fromEntries([...fleet.convs.keys()].map((c) => [c, partitionOf(convKey(c), o.partitions)])),
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    };
    return report;
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    // Stop by PID, whatever happened above: clients, nodes (SIGCONT is implied by SIGKILL), NATS, the CQL lease.
    await fleet?.close().catch(() => {});
    await owners?.close().catch(() => {});
    await store?.close().catch(() => {});
    await Promise.all(nodes.map((n) => n.kill9().catch(() => {})));
    killAllNodes();
    await nats?.stop().catch(() => {});
    if (cql && report && !report.cql.keyspaceKept) await dropKeyspace(cql.contact, keyspace).catch(() => {});
    await cql?.release().catch((err: unknown) => log(`CQL release failed: ${String(err)}`));
    rmSync(dataRoot, { recursive: true, force: true });
    snapshot?.remove();
    if (report?.ok && o.removeLogsWhenClean) rmSync(logDir, { recursive: true, force: true });
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener('abort', onAbort);
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`${what}: not done within ${ms / 1000} s`));
    }, ms);
    const onAbort = () => {
      done();
      reject(new Aborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}

async function dropKeyspace(contact: string, keyspace: string): Promise<void> {
  const client = new cassandra.Client({ contactPoints: [contact], localDataCenter: 'datacenter1', socketOptions: { readTimeout: 60_000 } });
  try {
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  } finally {
    await client.shutdown().catch(() => {});
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export { ROOT };
