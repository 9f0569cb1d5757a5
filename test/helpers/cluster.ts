/**
 * A Switchboard cluster for tests: a real NATS server (or 3-server cluster), the CQL server
 * of the run (test/setup/cassandra.ts, `cqlContact`), and nodes as separate processes
 * (`node dist/node.js`) with their own keyspace and short failure timings.
 */
import { inject } from 'vitest';
import { spawnNode, tempDir, removeDir, type NodeProcess } from './node.js';
import { startNats, type NatsCluster } from './nats.js';

export interface ClusterOptions {
  nats?: 1 | 3;
  partitions?: number;
  env?: Record<string, string>;
}

export interface TestCluster {
  nats: NatsCluster;
  nodes: Map<string, NodeProcess>;
  keyspace: string;
  cql: string;
  env: Record<string, string>;
  /** Start a node (a new process) named `id`. */
  add(id: string, env?: Record<string, string>): Promise<NodeProcess>;
  url(id: string): string;
  stop(): Promise<void>;
}

/** The CQL server's "host:port" (empty when the run has none). */
export function cqlContact(): string {
  return inject('cqlContact') || process.env.SB_TEST_CQL_CONTACT || '';
}

export async function startCluster(opts: ClusterOptions = {}): Promise<TestCluster> {
  const cql = cqlContact();
  if (!cql) throw new Error('no CQL server for this run (SB_TEST_CQL=off?)');
  const nats = await startNats(opts.nats ?? 1);
  const keyspace = `sbt_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`;
  const dirs: string[] = [];
  const env: Record<string, string> = {
    SB_NATS_URL: nats.urls.join(','),
    SB_NATS_REPLICAS: String(opts.nats ?? 1),
    SB_CQL_CONTACT_POINTS: cql,
    SB_CQL_KEYSPACE: keyspace,
    SB_CQL_REPLICATION: 'simple:1',
    SB_CQL_CONSISTENCY: 'ONE',
    SB_PARTITIONS: String(opts.partitions ?? 16),
    SB_HEARTBEAT_MS: '250',
    SB_FAILURE_MS: '1500',
    SB_ACK_WAIT_MS: '1000',
    SB_HANDOFF_MS: '3000',
    SB_RATE: '100000',
    ...opts.env,
  };
  const nodes = new Map<string, NodeProcess>();
  const cluster: TestCluster = {
    nats,
    nodes,
    keyspace,
    cql,
    env,
    async add(id, extra = {}) {
      const dir = tempDir('sb-node-');
      dirs.push(dir);
      const proc = await spawnNode(dir, { ...env, SB_NODE_ID: id, ...extra });
      nodes.set(id, proc);
      return proc;
    },
    url(id) {
      const n = nodes.get(id);
      if (!n) throw new Error(`no node ${id}`);
      return n.url;
    },
    async stop() {
      await Promise.all([...nodes.values()].map((n) => n.kill9()));
      await nats.stop();
      for (const d of dirs) removeDir(d);
    },
  };
  return cluster;
}
