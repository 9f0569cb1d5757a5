/**
 * The node's settings (PROTOCOL.md §6): one typed object, read from the environment and
 * from flags (a flag wins), validated once. A bad value stops the node at start with a
 * message that names the setting.
 */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';

export interface Config {
  port: number;
  host: string;
  nodeId: string;
  jwtSecret: string;
  dataDir: string;
  natsUrl: string[] | null;
  cqlContactPoints: string[] | null;
  cqlKeyspace: string;
  cqlDc: string;
  dev: boolean;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  maxGroup: number;
  maxFrame: number;
  maxBody: number;
  rate: number;
  maxMedia: number;
  onlineWindowMs: number;
  /** Public base URL of the node's media endpoints (FS media store); null: the address the client used. */
  mediaBaseUrl: string | null;
  /** Lifetime of signed media URLs. */
  mediaUrlTtlMs: number;
  /** An upload that no message references is deleted (bytes and metadata) after this long. */
  mediaOrphanMs: number;
  /** Set (SB_S3_BUCKET): media bytes in S3 or an S3-compatible server; null: files under SB_DATA_DIR/media. */
  s3: S3Config | null;
  /** SQLite's synchronous mode: FULL survives power loss, NORMAL survives process crashes. */
  sqliteSync: 'FULL' | 'NORMAL';
  /** Bytes a slow reader may have queued before its socket is closed. */
  maxQueuedBytes: number;
  helloTimeoutMs: number;
  /** Interval of WebSocket pings; a socket that missed one pong is dropped. */
  pingIntervalMs: number;
  /** A conversation actor unused this long is passivated. */
  actorIdleMs: number;
  partitions: number;
  /** Write (and read) consistency of the CQL store. */
  cqlConsistency: 'ONE' | 'QUORUM' | 'LOCAL_QUORUM' | 'LOCAL_ONE' | 'ALL' | 'EACH_QUORUM';
  /** Keyspace replication when the node creates it. */
  cqlReplication: { class: 'SimpleStrategy'; replication_factor: number } | ({ class: 'NetworkTopologyStrategy' } & Record<string, number | string>);
  /** Open sockets allowed from one remote address; past it the upgrade gets HTTP 429. */
  maxConnsPerIp: number;
  /** Most messages of one conversation per store commit (1: group commit off). */
  commitBatch: number;
  /** Replicas of the JetStream stream, its consumers and KV buckets. */
  natsReplicas: number;
  heartbeatMs: number;
  /** A member silent this long is dead and its partitions are taken over. */
  failureMs: number;
  /** JetStream ack wait: an unacked command comes back after it. */
  ackWaitMs: number;
  /** How long a new owner waits for the old one to hand a partition off before fencing it. */
  handoffMs: number;
  /** Serve the demo web app at / (SB_WEB; default on with --dev). */
  web: boolean;
  /** Directory of the built web app; null: dist/web of this installation. */
  webDir: string | null;
}

export interface S3Config {
  /** e.g. http://127.0.0.1:9000 for an S3-compatible server; null: AWS S3 of `region`. */
  endpoint: string | null;
  region: string;
  bucket: string;
  /** Both null: the AWS SDK's default credential chain (environment, profile, instance role). */
  accessKey: string | null;
  secretKey: string | null;
  /** Path-style URLs (http://host/bucket/key), which most S3-compatible servers need. */
  forcePathStyle: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

interface Setting {
  env: string;
  flag: string;
  help: string;
}

const SETTINGS = {
  port: { env: 'SB_PORT', flag: 'port', help: 'TCP port (default 8080; 0 picks a free one)' },
  host: { env: 'SB_HOST', flag: 'host', help: 'address to listen on (default 0.0.0.0)' },
  nodeId: { env: 'SB_NODE_ID', flag: 'node-id', help: 'this node\'s id (default: hostname-port)' },
  jwtSecret: { env: 'SB_JWT_SECRET', flag: 'jwt-secret', help: 'HS256 secret for client tokens (required unless --dev)' },
  dataDir: { env: 'SB_DATA_DIR', flag: 'data-dir', help: 'embedded store and media (default ./data)' },
  natsUrl: { env: 'SB_NATS_URL', flag: 'nats-url', help: 'comma-separated NATS URLs: cluster mode' },
  cqlContactPoints: { env: 'SB_CQL_CONTACT_POINTS', flag: 'cql-contact-points', help: 'comma-separated host[:port]: CQL store' },
  cqlKeyspace: { env: 'SB_CQL_KEYSPACE', flag: 'cql-keyspace', help: 'CQL keyspace (default switchboard)' },
  cqlDc: { env: 'SB_CQL_DC', flag: 'cql-dc', help: 'local data center of the CQL cluster (default datacenter1)' },
  logLevel: { env: 'SB_LOG_LEVEL', flag: 'log-level', help: 'trace|debug|info|warn|error|fatal|silent (default info)' },
  maxGroup: { env: 'SB_MAX_GROUP', flag: 'max-group', help: 'members per group, creator included (default 200)' },
  maxFrame: { env: 'SB_MAX_FRAME', flag: 'max-frame', help: 'largest client frame in bytes (default 65536)' },
  maxBody: { env: 'SB_MAX_BODY', flag: 'max-body', help: 'largest message body in UTF-8 bytes (default 16384)' },
  rate: { env: 'SB_RATE', flag: 'rate', help: 'send frames a second per connection, burst twice (default 200)' },
  maxMedia: { env: 'SB_MAX_MEDIA', flag: 'max-media', help: 'largest upload in bytes (default 16 MiB)' },
  onlineWindowMs: { env: 'SB_ONLINE_WINDOW_MS', flag: 'online-window-ms', help: 'online after the last activity (default 20000)' },
  mediaBaseUrl: { env: 'SB_MEDIA_BASE_URL', flag: 'media-base-url', help: 'public http(s) base URL of this node for media URLs (default: the address the client used)' },
  mediaUrlTtlMs: { env: 'SB_MEDIA_URL_TTL_MS', flag: 'media-url-ttl-ms', help: 'lifetime of signed media URLs (default 900000)' },
  mediaOrphanMs: { env: 'SB_MEDIA_ORPHAN_MS', flag: 'media-orphan-ms', help: 'delete uploads no message references after (default 86400000)' },
  s3Endpoint: { env: 'SB_S3_ENDPOINT', flag: 's3-endpoint', help: 'S3-compatible endpoint URL (default: AWS S3)' },
  s3Region: { env: 'SB_S3_REGION', flag: 's3-region', help: 'S3 region (default us-east-1)' },
  s3Bucket: { env: 'SB_S3_BUCKET', flag: 's3-bucket', help: 'set: media in this S3 bucket instead of SB_DATA_DIR/media' },
  s3AccessKey: { env: 'SB_S3_ACCESS_KEY', flag: 's3-access-key', help: 'S3 access key id (default: the AWS credential chain)' },
  s3SecretKey: { env: 'SB_S3_SECRET_KEY', flag: 's3-secret-key', help: 'S3 secret access key' },
  s3ForcePathStyle: { env: 'SB_S3_FORCE_PATH_STYLE', flag: 's3-force-path-style', help: 'true|false (default true with SB_S3_ENDPOINT, else false)' },
  sqliteSync: { env: 'SB_SQLITE_SYNC', flag: 'sqlite-sync', help: 'FULL|NORMAL (default FULL)' },
  maxQueuedBytes: { env: 'SB_MAX_QUEUED_BYTES', flag: 'max-queued-bytes', help: 'per-socket send queue bound (default 8 MiB)' },
  helloTimeoutMs: { env: 'SB_HELLO_TIMEOUT_MS', flag: 'hello-timeout-ms', help: 'time to send hello (default 10000)' },
  pingIntervalMs: { env: 'SB_PING_INTERVAL_MS', flag: 'ping-interval-ms', help: 'WebSocket ping interval (default 30000)' },
  actorIdleMs: { env: 'SB_ACTOR_IDLE_MS', flag: 'actor-idle-ms', help: 'passivate idle actors after (default 60000)' },
  partitions: { env: 'SB_PARTITIONS', flag: 'partitions', help: 'partition count, fixed at cluster creation (default 64)' },
  cqlConsistency: { env: 'SB_CQL_CONSISTENCY', flag: 'cql-consistency', help: 'ONE|QUORUM|LOCAL_QUORUM|LOCAL_ONE|ALL|EACH_QUORUM (default LOCAL_QUORUM)' },
  cqlReplication: { env: 'SB_CQL_REPLICATION', flag: 'cql-replication', help: 'simple:N or DC:N[,DC:N] for a new keyspace (default <SB_CQL_DC>:3)' },
  maxConnsPerIp: { env: 'SB_MAX_CONNS_PER_IP', flag: 'max-conns-per-ip', help: 'open sockets per remote address (default 20000)' },
  commitBatch: { env: 'SB_COMMIT_BATCH', flag: 'commit-batch', help: 'most messages of a conversation per store commit; 1 turns group commit off (default 256)' },
  natsReplicas: { env: 'SB_NATS_REPLICAS', flag: 'nats-replicas', help: 'JetStream replicas, 1-5 (default 3 with 3+ URLs, else 1)' },
  heartbeatMs: { env: 'SB_HEARTBEAT_MS', flag: 'heartbeat-ms', help: 'membership heartbeat interval (default 500)' },
  failureMs: { env: 'SB_FAILURE_MS', flag: 'failure-ms', help: 'a silent member is dead after (default 2000)' },
  ackWaitMs: { env: 'SB_ACK_WAIT_MS', flag: 'ack-wait-ms', help: 'JetStream ack wait (default 2000)' },
  handoffMs: { env: 'SB_HANDOFF_MS', flag: 'handoff-ms', help: 'wait for a planned hand-off before fencing (default 5000)' },
  web: { env: 'SB_WEB', flag: 'web', help: '1|0: serve the demo web app at / (default 1 with --dev, else 0)' },
  webDir: { env: 'SB_WEB_DIR', flag: 'web-dir', help: 'directory of the built web app (default dist/web)' },
} satisfies Record<string, Setting>;

type Raw = Partial<Record<keyof typeof SETTINGS, string>> & { dev?: boolean };

/** Parse flags (argv without node and script) and the environment into raw strings. */
export function readSettings(argv: string[], env: NodeJS.ProcessEnv): Raw {
  const cmd = new Command('switchboard')
    .description('Switchboard chat node')
    .option('--dev', 'development mode: generated secret, GET /dev/token', false)
    .exitOverride()
    .configureOutput({ writeErr: () => {} }) // errors are reported once, by the caller
    .allowExcessArguments(false);
  for (const [, s] of Object.entries(SETTINGS)) cmd.option(`--${s.flag} <value>`, `${s.help} [${s.env}]`);
  cmd.parse(argv, { from: 'user' });
  const flags = cmd.opts<Record<string, string | boolean>>();
  const raw: Raw = { dev: flags.dev === true || env.SB_DEV === '1' || env.SB_DEV === 'true' };
  for (const [key, s] of Object.entries(SETTINGS) as Array<[keyof typeof SETTINGS, Setting]>) {
    const camel = s.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const v = flags[camel] ?? env[s.env];
    if (typeof v === 'string') raw[key] = v;
  }
  return raw;
}

function int(raw: Raw, key: keyof typeof SETTINGS, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = raw[key];
  if (v === undefined || v === '') return def;
  if (!/^\d+$/.test(v.trim())) throw new ConfigError(SETTINGS[key].env, `must be an integer from ${min} to ${max}, got "${v}"`);
  const n = Number(v.trim());
  if (n < min || n > max) throw new ConfigError(SETTINGS[key].env, `must be an integer from ${min} to ${max}, got ${n}`);
  return n;
}

function list(raw: Raw, key: keyof typeof SETTINGS): string[] | null {
  const v = raw[key];
  if (v === undefined || v.trim() === '') return null;
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new ConfigError(SETTINGS[key].env, 'must list at least one address');
  return items;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export function buildConfig(raw: Raw): Config {
  const dev = raw.dev === true;
  const port = int(raw, 'port', 8080, 0, 65535);
  let jwtSecret = raw.jwtSecret ?? '';
  if (!jwtSecret) {
    if (!dev) throw new ConfigError('SB_JWT_SECRET', 'required (or start with --dev for a generated one)');
    jwtSecret = randomBytes(32).toString('hex');
  } else if (Buffer.byteLength(jwtSecret) < 32) {
    throw new ConfigError('SB_JWT_SECRET', 'must be at least 32 bytes for HS256');
  }
  const logLevel = (raw.logLevel ?? 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError('SB_LOG_LEVEL', `must be one of ${LOG_LEVELS.join('|')}`);
  const sqliteSync = (raw.sqliteSync ?? 'FULL').toUpperCase();
  if (sqliteSync !== 'FULL' && sqliteSync !== 'NORMAL') throw new ConfigError('SB_SQLITE_SYNC', 'must be FULL or NORMAL');
  const host = raw.host ?? '0.0.0.0';
  const nodeId = raw.nodeId ?? `node-${port}`;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(nodeId)) throw new ConfigError('SB_NODE_ID', 'must be 1-64 of [A-Za-z0-9_-]');
  const keyspace = raw.cqlKeyspace ?? 'switchboard';
  if (!/^[a-z][a-z0-9_]{0,47}$/.test(keyspace)) throw new ConfigError('SB_CQL_KEYSPACE', 'must match [a-z][a-z0-9_]{0,47}');
  const natsUrl = list(raw, 'natsUrl');
  for (const u of natsUrl ?? []) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$|^[A-Za-z0-9.-]+:\d+$/.test(u)) throw new ConfigError('SB_NATS_URL', `not a NATS URL: "${u}"`);
  }
  const cql = list(raw, 'cqlContactPoints');
  for (const c of cql ?? []) {
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$/.test(c)) {
      throw new ConfigError('SB_CQL_CONTACT_POINTS', `not a host or host:port: "${c}"`);
    }
  }
  const consistency = (raw.cqlConsistency ?? 'LOCAL_QUORUM').toUpperCase();
  const CONSISTENCIES = ['ONE', 'QUORUM', 'LOCAL_QUORUM', 'LOCAL_ONE', 'ALL', 'EACH_QUORUM'] as const;
  if (!(CONSISTENCIES as readonly string[]).includes(consistency)) throw new ConfigError('SB_CQL_CONSISTENCY', `must be one of ${CONSISTENCIES.join('|')}`);
  const dc = raw.cqlDc ?? 'datacenter1';
  const heartbeatMs = int(raw, 'heartbeatMs', 500, 50, 60_000);
  const failureMs = int(raw, 'failureMs', 2000, 100, 600_000);
  if (failureMs < 2 * heartbeatMs) throw new ConfigError('SB_FAILURE_MS', `must be at least twice SB_HEARTBEAT_MS (${heartbeatMs})`);
  return {
    port,
    host,
    nodeId,
    jwtSecret,
    dataDir: raw.dataDir ?? './data',
    natsUrl,
    cqlContactPoints: cql,
    cqlKeyspace: keyspace,
    cqlDc: dc,
    cqlConsistency: consistency as Config['cqlConsistency'],
    cqlReplication: parseReplication(raw.cqlReplication, dc),
    commitBatch: int(raw, 'commitBatch', 256, 1, 4096),
    maxConnsPerIp: int(raw, 'maxConnsPerIp', 20000, 1, 10_000_000),
    natsReplicas: int(raw, 'natsReplicas', natsUrl && natsUrl.length >= 3 ? 3 : 1, 1, 5),
    heartbeatMs,
    failureMs,
    ackWaitMs: int(raw, 'ackWaitMs', 2000, 100, 600_000),
    handoffMs: int(raw, 'handoffMs', 5000, 0, 600_000),
    dev,
    logLevel,
    maxGroup: int(raw, 'maxGroup', 200, 2, 100_000),
    maxFrame: int(raw, 'maxFrame', 65536, 1024, 16 * 1024 * 1024),
    maxBody: int(raw, 'maxBody', 16384, 1, 16 * 1024 * 1024),
    rate: int(raw, 'rate', 200, 1, 1_000_000),
    maxMedia: int(raw, 'maxMedia', 16 * 1024 * 1024, 1, 1024 ** 4),
    onlineWindowMs: int(raw, 'onlineWindowMs', 20000, 100, 86_400_000),
    ...mediaSettings(raw),
    sqliteSync,
    maxQueuedBytes: int(raw, 'maxQueuedBytes', 8 * 1024 * 1024, 65536, 1024 ** 3),
    helloTimeoutMs: int(raw, 'helloTimeoutMs', 10000, 100, 600_000),
    pingIntervalMs: int(raw, 'pingIntervalMs', 30000, 100, 600_000),
    actorIdleMs: int(raw, 'actorIdleMs', 60000, 100, 86_400_000),
    partitions: int(raw, 'partitions', 64, 1, 4096),
    web: bool(raw, 'web', dev),
    webDir: raw.webDir?.trim() || null,
  };
}

function bool(raw: Raw, key: keyof typeof SETTINGS, def: boolean): boolean {
  const v = raw[key]?.trim().toLowerCase();
  if (v === undefined || v === '') return def;
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new ConfigError(SETTINGS[key].env, `must be 1, 0, true or false, got "${raw[key]}"`);
}

function parseReplication(v: string | undefined, dc: string): Config['cqlReplication'] {
  if (v === undefined || v.trim() === '') return { class: 'NetworkTopologyStrategy', [dc]: 3 };
  const simple = /^simple:(\d{1,2})$/i.exec(v.trim());
  if (simple) return { class: 'SimpleStrategy', replication_factor: Number(simple[1]) };
  const out: Config['cqlReplication'] = { class: 'NetworkTopologyStrategy' };
  for (const part of v.split(',')) {
    const m = /^\s*([A-Za-z0-9_.-]+):(\d{1,2})\s*$/.exec(part);
    if (!m) throw new ConfigError('SB_CQL_REPLICATION', `expected simple:N or DC:N[,DC:N], got "${v}"`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

function httpUrl(raw: Raw, key: 'mediaBaseUrl' | 's3Endpoint'): string | null {
  const v = raw[key]?.trim();
  if (v === undefined || v === '') return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(SETTINGS[key].env, `not a URL: "${v}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(SETTINGS[key].env, 'must be an http:// or https:// URL');
  if (u.search || u.hash) throw new ConfigError(SETTINGS[key].env, 'must have no query or fragment');
  return v.replace(/\/+$/, '');
}

function mediaSettings(raw: Raw): Pick<Config, 'mediaBaseUrl' | 'mediaUrlTtlMs' | 'mediaOrphanMs' | 's3'> {
  const out = {
    mediaBaseUrl: httpUrl(raw, 'mediaBaseUrl'),
    // S3 presigned URLs live at most 7 days.
    mediaUrlTtlMs: int(raw, 'mediaUrlTtlMs', 900_000, 1000, 604_800_000),
    mediaOrphanMs: int(raw, 'mediaOrphanMs', 86_400_000, 100, 365 * 86_400_000),
    s3: null as S3Config | null,
  };
  if (out.mediaOrphanMs < out.mediaUrlTtlMs) {
    throw new ConfigError('SB_MEDIA_ORPHAN_MS', `must be at least SB_MEDIA_URL_TTL_MS (${out.mediaUrlTtlMs}): an upload may not be swept while its URL is valid`);
  }
  const bucket = raw.s3Bucket?.trim() ?? '';
  const endpoint = httpUrl(raw, 's3Endpoint');
  const accessKey = raw.s3AccessKey?.trim() || null;
  const secretKey = raw.s3SecretKey?.trim() || null;
  if (bucket === '') {
    for (const k of ['s3Endpoint', 's3AccessKey', 's3SecretKey'] as const) {
      if (raw[k]?.trim()) throw new ConfigError('SB_S3_BUCKET', `required when ${SETTINGS[k].env} is set`);
    }
    return out;
  }
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new ConfigError('SB_S3_BUCKET', 'must be 3-63 of [a-z0-9.-], starting and ending with a letter or digit');
  if ((accessKey === null) !== (secretKey === null)) {
    throw new ConfigError(accessKey === null ? 'SB_S3_ACCESS_KEY' : 'SB_S3_SECRET_KEY', 'SB_S3_ACCESS_KEY and SB_S3_SECRET_KEY go together');
  }
  const region = raw.s3Region?.trim() || 'us-east-1';
  if (!/^[a-z0-9-]{1,64}$/.test(region)) throw new ConfigError('SB_S3_REGION', 'must be 1-64 of [a-z0-9-]');
  const style = raw.s3ForcePathStyle?.trim().toLowerCase();
  if (style !== undefined && style !== '' && style !== 'true' && style !== 'false') throw new ConfigError('SB_S3_FORCE_PATH_STYLE', 'must be true or false');
  out.s3 = {
    endpoint,
    region,
    bucket,
    accessKey,
    secretKey,
    forcePathStyle: style === undefined || style === '' ? endpoint !== null : style === 'true',
  };
  return out;
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  return buildConfig(readSettings(argv, env));
}
