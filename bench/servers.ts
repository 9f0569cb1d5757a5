/**
 * The servers the CQL and cluster suites need: a 3-server NATS JetStream cluster of the
 * project's nats.conf (started here on free ports, each server killed by PID, also when the
 * bench fails; a killed bench's servers are swept by the next one) and a Cassandra node
 * through scripts/cassandra.mjs (a running one is reused under a lease; one this bench
 * started is stopped when its lease is the last).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import cassandra from 'cassandra-driver';
import { type Child, spawnNode, stopChild } from './children.js';
import { ROOT, TMP_PREFIX, errText, progress, sleep } from './common.js';
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

/** A 3-server (or 1-server) JetStream cluster from nats.conf, ready for R3 streams. */
export async function startNatsCluster(size: 1 | 3 = 3): Promise<NatsCluster> {
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

/** Reuse the running Cassandra of scripts/cassandra.mjs, or start one (under a lease held by this process). */
export async function startCassandra(): Promise<Cassandra> {
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
