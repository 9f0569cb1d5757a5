/**
 * The servers the CQL, cluster, failover and join suites need: a 3-server NATS JetStream
 * cluster of the project's nats.conf (started here on free ports, each server killed by PID,
 * also when the bench fails; a killed bench's servers are swept by the next one) and a
 * Cassandra node through scripts/cassandra.mjs (a running one is reused under a lease; one
 * this bench started is stopped when its lease is the last; the suites of one bench share it,
 * see holdCassandra). Also the Switchboard nodes of a cluster on them (clusterEnv,
 * startClusterNode, startNodes, waitSettled), following each node's log for its membership
 * and rebalances.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import cassandra from 'cassandra-driver';
import { type Child, spawnNode, stopChild } from './children.js';
import { GUARD, NODE_ENTRY, ROOT, TMP_PREFIX, errText, progress, sleep, waitHealthz } from './common.js';
// @ts-expect-error a plain .mjs script shared with the command line
import { natsServerPath } from '../scripts/nats-server.mjs';
// @ts-expect-error a plain .mjs script shared with the command line
import { start as startCassandraScript, stop as stopCassandraScript } from '../scripts/cassandra.mjs';
import { freePort } from '../test/helpers/ports.js';

export { freePort };


// ------------------------------------------------------------------------------ NATS

export interface NatsCluster {
  urls: string[];
  pids: number[];
  version: string;
  replicas: number;
  /** Delete every stream (the nodes' SB_CMDS and KV buckets, the raw bench's): a clean slate. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

export function natsServerVersion(): string {
  try {
    const out = execFileSync(natsServerPath() as string, ['--version'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return out.replace(/^nats-server:\s*/, '');
  } catch (err) {
    return `unknown (${errText(err)})`;
  }
}

/**
 * A 3-server (or 1-server) JetStream cluster from nats.conf, ready for R3 streams. On a shared
 * machine a free port can be taken between freePort() and the server's bind ("address already
 * in use"): a failed start is retried twice on new ports.
 */
export async function startNatsCluster(size: 1 | 3 = 3): Promise<NatsCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNatsClusterOnce(size);
    } catch (err) {
      if (attempt >= 3) throw err;
      progress(`nats: start failed (${errText(err)}); trying again on new ports`);
    }
  }
}

async function startNatsClusterOnce(size: 1 | 3): Promise<NatsCluster> {
  const bin = natsServerPath() as string;
  const dir = mkdtempSync(join(tmpdir(), `${TMP_PREFIX}nats-`));
  const marker = `SB_BENCH_NATS_DIR=${dir}`;
  const children: Child[] = [];
  const pidsFile = join(dir, 'pids.json');
  const record = () => writeFileSync(pidsFile, JSON.stringify(children.map((c) => ({ pid: c.pid, marker }))));
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = await Promise.all(Array.from({ length: 3 }, () => freePort()));
  const routeEnv = Object.fromEntries(routes.map((r, i) => [`SB_NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${r}`]));
  const stopAll = async () => {
    await Promise.all(children.map((c) => stopChild(c, 5000)));
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    await Promise.all(
      ports.map(async (port, i) => {
        const name = `n${i + 1}`;
        mkdirSync(join(dir, name), { recursive: true });
        const args = size === 3 ? ['-c', join(ROOT, 'nats.conf')] : ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, name), '-n', name];
        const child = await spawnNode({
          label: `nats-${name}`,
          command: bin,
          args,
          cwd: dir,
          env: {
            ...process.env,
            ...routeEnv,
            SB_NATS_NAME: name,
            SB_NATS_PORT: String(port),
            SB_NATS_CLUSTER: String(routes[i]),
            SB_NATS_DIR: join(dir, name),
            SB_BENCH_NATS_DIR: dir,
          },
          ready: /Server is ready/,
          readyOn: 'stderr',
          // Info, route errors while the others start and warnings (many expected: elections,
          // snapshots of deleted streams) stay in the server; errors are forwarded.
          quiet: /\[(INF|DBG|TRC|WRN)\]|Error trying to connect to route|connection reset by peer/,
          maxForwarded: 20,
          timeoutMs: 30_000,
        });
        children.push(child);
        record();
      }),
    );
    const urls = ports.map((p) => `nats://127.0.0.1:${p}`);
    // JetStream answers only once the meta group has a leader.
    const nc = await connect({ servers: urls, name: 'bench-admin', maxReconnectAttempts: -1 });
    try {
      const until = Date.now() + 60_000;
      for (;;) {
        try {
          const jsm = await jetstreamManager(nc);
          await jsm.getAccountInfo();
          break;
        } catch (err) {
          if (Date.now() > until) throw new Error(`JetStream not ready within 60 s: ${errText(err)}`);
          await sleep(250);
        }
      }
    } finally {
      await nc.close();
    }
    const version = natsServerVersion();
    return {
      urls,
      pids: children.map((c) => c.pid),
      version,
      replicas: size,
      reset: async () => {
        const c = await connect({ servers: urls, name: 'bench-admin' });
        try {
          const jsm = await jetstreamManager(c);
          const names: string[] = [];
          for await (const n of jsm.streams.names()) names.push(n);
          for (const n of names) await deleteStream(jsm, n);
        } finally {
          await c.close();
        }
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function deleteStream(jsm: JetStreamManager, name: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await jsm.streams.delete(name);
      return;
    } catch (err) {
      if (/not found/i.test(errText(err))) return;
      if (i >= 10) throw new Error(`delete stream ${name}: ${errText(err)}`);
      await sleep(500);
    }
  }
}

export async function natsConnect(urls: string[], name: string): Promise<NatsConnection> {
  return connect({ servers: urls, name, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

// ------------------------------------------------------------------------------ Cassandra

export interface Cassandra {
  contact: string;
  pid: number;
  version: string;
  reused: boolean;
  /** Drop a keyspace a run created (bounded; a failure is reported, not thrown). */
  dropKeyspace(ks: string): Promise<void>;
  /** Drop this bench's lease; stops the server if this bench started it and no one else holds it. */
  stop(): Promise<void>;
}

let shared: { p: Promise<Cassandra>; refs: number } | null = null;
let holds = 0;

/**
 * Reuse the running Cassandra of scripts/cassandra.mjs, or start one (under a lease held by
 * this process). Within one bench the suites share it: each `startCassandra()` takes a
 * reference, each `stop()` drops one; the server is stopped (if this bench started it) when
 * the last reference goes and no `holdCassandra()` keeps it for later suites.
 */
export async function startCassandra(): Promise<Cassandra> {
  if (!shared) {
    const entry = { p: startCassandraOnce(), refs: 0 };
    shared = entry;
    entry.p.catch(() => {
      if (shared === entry) shared = null;
    });
  }
  const entry = shared;
  entry.refs++;
  let c: Cassandra;
  try {
    c = await entry.p;
  } catch (err) {
    entry.refs--;
    throw err;
  }
  let stopped = false;
  return {
    ...c,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      entry.refs--;
      if (entry.refs === 0 && holds === 0) {
        if (shared === entry) shared = null;
        await c.stop();
      }
    },
  };
}

/**
 * Keep the bench's Cassandra (once a suite started it) running between suites, until the
 * returned release is called (then it stops if no suite holds it).
 */
export function holdCassandra(): () => Promise<void> {
  holds++;
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    holds--;
    const entry = shared;
    if (holds === 0 && entry && entry.refs === 0) {
      shared = null;
      const c = await entry.p.catch(() => null);
      await c?.stop();
    }
  };
}

async function startCassandraOnce(): Promise<Cassandra> {
  const r = (await startCassandraScript({ holder: process.pid, timeoutMs: 180_000 })) as {
    contact: string;
    pid: number;
    version: string;
    reused: boolean;
    dir: string;
  };
  progress(`cassandra ${r.version} on ${r.contact} (pid ${r.pid}, ${r.reused ? 'reused' : 'started by this bench'})`);
  const admin = new cassandra.Client({
    contactPoints: [r.contact],
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: 10_000, readTimeout: 60_000 },
  });
  let adminOk = true;
  return {
    contact: r.contact,
    pid: r.pid,
    version: r.version,
    reused: r.reused,
    dropKeyspace: async (ks) => {
      if (!/^[a-z][a-z0-9_]{0,47}$/.test(ks) || !adminOk) return;
      try {
        await admin.execute(`DROP KEYSPACE IF EXISTS ${ks}`);
      } catch (err) {
        progress(`warning: DROP KEYSPACE ${ks}: ${errText(err)}`);
      }
    },
    stop: async () => {
      adminOk = false;
      await admin.shutdown().catch(() => {});
      if (r.reused) {
        // Not ours: only drop the lease this bench took; whoever started it stops it.
        rmSync(join(r.dir, 'leases', String(process.pid)), { force: true });
        progress(`cassandra: left running (pid ${r.pid} was not started by this bench)`);
        return;
      }
      const s = (await stopCassandraScript({ holder: process.pid })) as { stopped: boolean; holders?: number[] };
      progress(`cassandra: ${s.stopped ? `stopped pid ${r.pid} (started by this bench)` : `left running for holders ${s.holders?.join(', ') ?? '?'} that took a lease meanwhile`}`);
    },
  };
}

/** A keyspace name no other run uses. */
export const freshKeyspace = (tag: string) => `sbb_${tag}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;

export interface ClusterServers {
  cass: Cassandra;
  nats: NatsCluster;
  /** Stop the NATS cluster, drop the Cassandra reference. */
  stop(): Promise<void>;
}

/** Cassandra and a 3-server NATS cluster, both at once; each is kept as soon as it is up, so a failure of the other still stops it. */
export async function startClusterServers(suite: string): Promise<ClusterServers> {
  const srv: { cass: Cassandra | null; nats: NatsCluster | null } = { cass: null, nats: null };
  const stop = async () => {
    await srv.nats?.stop();
    await srv.cass?.stop();
  };
  try {
    const started = await Promise.allSettled([
      startCassandra().then((c) => (srv.cass = c)),
      startNatsCluster(3).then((n) => {
        progress(`${suite}: nats-server ${n.version}: 3 servers on ${n.urls.join(',')} (pids ${n.pids.join(', ')})`);
        return (srv.nats = n);
      }),
    ]);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    if (!srv.cass || !srv.nats) throw new Error('servers did not start');
    return { cass: srv.cass, nats: srv.nats, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ------------------------------------------------------------------------------ Switchboard nodes of a cluster

/**
 * The environment of cluster nodes on these servers (SB_NATS_REPLICAS from the NATS cluster,
 * the CQL store in `keyspace`, `partitions`, one JWT secret for all), plus `extra` (e.g. the
 * failure-detection settings).
 */
export function clusterEnv(nats: NatsCluster, cass: Cassandra, keyspace: string, partitions: number, secret: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SB_NATS_URL: nats.urls.join(','),
    SB_NATS_REPLICAS: String(nats.replicas),
    SB_CQL_CONTACT_POINTS: cass.contact,
    SB_CQL_KEYSPACE: keyspace,
    SB_CQL_REPLICATION: 'simple:1',
    SB_CQL_CONSISTENCY: 'ONE',
    SB_PARTITIONS: String(partitions),
    // One secret for all nodes: a token from any node's /dev/token (or signed with it) is good on every node.
    SB_JWT_SECRET: secret,
    SB_RATE: '1000000',
    SB_LOG_LEVEL: 'info',
    SB_WEB: '0',
    ...extra,
  };
}

export interface ClusterNode {
  id: string;
  child: Child;
  base: string;
  ws: string;
  port: number;
  /** Date.now() when the process was spawned (the last attempt). */
  spawnedAt: number;
  members: string[];
  owned: number | null;
  lastChange: number;
  /** Membership changes and rebalances as the node logged them. */
  events: Array<{ t: number; what: 'membership' | 'rebalance'; detail: string; members?: string[]; gained?: number; ms?: number }>;
  /** Warnings and errors the node logged: message → count, with the time of each. */
  warnings: Array<{ t: number; msg: string }>;
}

export const nodeAlive = (n: ClusterNode) => n.child.proc.exitCode === null && n.child.proc.signalCode === null;

/**
 * Start one cluster node `id` (on `port`, or a free one with 0) and follow its log (membership,
 * rebalances, warnings). A node that exits at start because a just-created R3 bucket has no
 * leader yet ("no responders") is started again, up to twice; `retries` gets a line for each.
 */
export async function startClusterNode(o: {
  id: string;
  env: NodeJS.ProcessEnv;
  /** Data dirs created (the caller removes them). */
  dirs: string[];
  profileDir?: string | undefined;
  port?: number;
  retries?: string[];
}): Promise<ClusterNode> {
  const { id } = o;
  for (let attempt = 1; ; attempt++) {
    const dataDir = mkdtempSync(join(tmpdir(), TMP_PREFIX));
    o.dirs.push(dataDir);
    const state = {
      members: [] as string[],
      owned: null as number | null,
      lastChange: Date.now(),
      fatal: '',
      events: [] as ClusterNode['events'],
      warnings: [] as ClusterNode['warnings'],
    };
    const spawnedAt = Date.now();
    try {
      const child = await spawnNode({
        label: id,
        args: [
          '--import',
          GUARD,
          ...(o.profileDir ? ['--cpu-prof', '--cpu-prof-dir', o.profileDir] : []),
          NODE_ENTRY,
          '--dev',
          '--host',
          '127.0.0.1',
          '--port',
          String(o.port ?? 0),
          '--node-id',
          id,
          '--data-dir',
          dataDir,
        ],
        cwd: ROOT,
        env: { ...o.env, SB_NODE_ID: id },
        ready: /Switchboard dev node on http:\/\/127\.0\.0\.1:(\d+)/,
        // The node logs at info (the bench follows its membership and rebalances); forward warnings and worse.
        quiet: /^\s+(token|websocket|health|web app):|"level":(10|20|30)[,}]/,
        onLine: (line) => {
          if (line.startsWith('switchboard: cannot start')) state.fatal = line;
          if (!line.startsWith('{')) return;
          try {
            const j = JSON.parse(line) as { level?: number; msg?: string; members?: string[]; gone?: string[]; owned?: number; gained?: number; lost?: number; ms?: number };
            const t = Date.now();
            if (j.msg === 'membership changed' && Array.isArray(j.members)) {
              state.members = j.members;
              state.lastChange = t;
              state.events.push({ t, what: 'membership', members: j.members, detail: `members [${j.members.join(',')}]${j.gone?.length ? `, gone [${j.gone.join(',')}]` : ''}` });
            } else if (j.msg === 'partitions rebalanced' && typeof j.owned === 'number') {
              state.owned = j.owned;
              state.lastChange = t;
              state.events.push({
                t,
                what: 'rebalance',
                ...(typeof j.gained === 'number' ? { gained: j.gained } : {}),
                ...(typeof j.ms === 'number' ? { ms: j.ms } : {}),
                detail: `owns ${j.owned} (gained ${j.gained ?? '?'}, lost ${j.lost ?? '?'})`,
              });
            } else if ((j.level ?? 0) >= 40 && j.msg) {
              state.warnings.push({ t, msg: j.msg });
            }
          } catch {
            /* not a log line */
          }
        },
        timeoutMs: 180_000,
      });
      const port = Number(child.ready[1]);
      return Object.assign(state, { id, child, port, spawnedAt, base: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws` });
    } catch (err) {
      if (attempt >= 3 || !/no responders/.test(state.fatal)) throw err;
      o.retries?.push(`${id}: ${state.fatal}`);
      progress(`${id} exited at start (${state.fatal}): starting it again`);
      await sleep(500);
    }
  }
}

/**
 * Wait until the live nodes among `nodes` all see each other (and only each other) as
 * members, their owned partitions add up to `partitions`, and nothing changed for `quietMs`.
 */
export async function waitSettled(nodes: ClusterNode[], partitions: number, timeoutMs = 180_000, quietMs = 1500): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const live = nodes.filter(nodeAlive);
    const ids = live.map((n) => n.id).sort().join(',');
    const all = live.every((n) => [...n.members].sort().join(',') === ids);
    const owned = live.reduce((a, n) => a + (n.owned ?? 0), 0);
    const quiet = live.every((n) => Date.now() - n.lastChange >= quietMs);
    if (all && owned === partitions && quiet) return;
    if (Date.now() > until) {
      throw new Error(`partitions did not settle within ${Math.round(timeoutMs / 1000)} s: ${live.map((n) => `${n.id} sees [${n.members.join(',')}], owns ${n.owned ?? '?'}`).join('; ')}`);
    }
    await sleep(100);
  }
}

/**
 * Start `count` nodes n1..n<count> — the first alone (it creates the stream and the KV
 * buckets), then the others together — and wait until they are healthy and their partitions
 * settled. `ports` (optional) fixes each node's port (a restarted node comes back where its
 * clients look for it).
 */
export async function startNodes(
  s: { partitions: number },
  count: number,
  env: NodeJS.ProcessEnv,
  dirs: string[],
  profileDir: string | undefined,
  nodes: ClusterNode[],
  ports: number[] = [],
): Promise<{ healthyMs: number; settledMs: number; retries: string[] }> {
  const t0 = Date.now();
  const retries: string[] = [];
  const one = async (i: number) => {
    nodes.push(await startClusterNode({ id: `n${i + 1}`, env, dirs, profileDir, port: ports[i] ?? 0, retries }));
  };
  await one(0);
  await waitHealthz(nodes[0]!.base, 60_000);
  await Promise.all(Array.from({ length: count - 1 }, (_, i) => one(i + 1)));
  nodes.sort((a, b) => a.id.localeCompare(b.id));
  await Promise.all(nodes.map((n) => waitHealthz(n.base, 60_000)));
  const healthyMs = Date.now() - t0;
  const QUIET_MS = 1500;
  await waitSettled(nodes, s.partitions, 180_000, QUIET_MS);
  return { healthyMs, settledMs: Date.now() - t0 - QUIET_MS, retries };
}
