/** The settings every suite gets from bench/run.ts, and what each suite reports back. */
import type { Encoding } from './loadgen.js';
import type { Row } from './common.js';
import type { ProfileSummary } from './profile.js';

export type SuiteName = 'ws' | 'cql' | 'cluster' | 'memory' | 'group' | 'backlog' | 'failover' | 'join';
/**
 * In run order: the single-node suites first, then the ones on Cassandra (and NATS) back to
 * back, so one Cassandra serves them all and none runs beside a single-node measurement.
 */
export const SUITES: readonly SuiteName[] = ['ws', 'memory', 'group', 'backlog', 'cql', 'cluster', 'failover', 'join'];

export interface Settings {
  suites: SuiteName[];
  /** DM pairs (ws: also the echo baseline's connections). */
  pairs: number;
  /** Unacked sends per sender (echo: frames in flight per connection). */
  window: number;
  seconds: number;
  runs: number;
  /** ws suite: JSON and/or MessagePack rows. */
  encodings: Encoding[];
  /** cql and cluster suites: one encoding. */
  encoding: Encoding;
  warmupSeconds: number;
  /** Cluster runs warm up longer: actors activate on every node and consumers fill. */
  clusterWarmupSeconds: number;
  drainSeconds: number;
  /** Cluster runs drain longer (redeliveries come back after the ack wait, with backoff). */
  clusterDrainSeconds: number;
  quick: boolean;
  cpuProf: boolean;
  /** Busy-groups variant of the cql suite. */
  groups: number;
  groupSenders: number;
  /** cql suite: SB_COMMIT_BATCH of the "on" runs (the "off" runs use 1). */
  commitBatch: number;
  /** cluster suite. */
  partitions: number;
  nodesMax: number;
  rawWindow: number;
  rawPayload: number;
  rawPullBatch: number;
  /** memory suite: signed-in idle connections. */
  memConns: number;
  /** group suite: members of the group and how many of them send. */
  groupMembers: number;
  groupSenders2: number;
  /** backlog suite: messages waiting for the offline user. */
  backlogMsgs: number;
  /** failover suite: kill -9 + restart of a node, in rotation (each is a sample set). */
  failoverKills: number;
  /** failover and join suites: the nodes' failure detection (SB_HEARTBEAT_MS, SB_FAILURE_MS, SB_ACK_WAIT_MS). */
  heartbeatMs: number;
  failureMs: number;
  ackWaitMs: number;
  /** failover and join suites: SB_PARTITIONS, DM pairs of SDK clients, each user's send interval, warm-up. */
  haPartitions: number;
  haPairs: number;
  haIntervalMs: number;
  haWarmupSeconds: number;
  nodeFlags: string[];
  /** SB_* settings inherited from this environment (secrets redacted). */
  nodeEnv: Record<string, string | undefined>;
}

export interface SuiteTable {
  title: string;
  rows: Row[];
}

export interface SuiteReport {
  suite: SuiteName;
  /** One line on what was measured and how. */
  header: string;
  tables: SuiteTable[];
  /** Medians and anything else worth keeping, for the JSON. */
  summary: unknown;
  runs: unknown[];
  violations: number;
  versions: Record<string, string>;
  profiles: ProfileSummary[];
  error?: string;
}

export interface SuiteContext {
  settings: Settings;
  /** Where node CPU profiles go (--cpu-prof), else null. */
  profDir: string | null;
}
