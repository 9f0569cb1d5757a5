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
  sqliteSync: { env: 'SB_SQLITE_SYNC', flag: 'sqlite-sync', help: 'FULL|NORMAL (default FULL)' },
  maxQueuedBytes: { env: 'SB_MAX_QUEUED_BYTES', flag: 'max-queued-bytes', help: 'per-socket send queue bound (default 8 MiB)' },
  helloTimeoutMs: { env: 'SB_HELLO_TIMEOUT_MS', flag: 'hello-timeout-ms', help: 'time to send hello (default 10000)' },
  pingIntervalMs: { env: 'SB_PING_INTERVAL_MS', flag: 'ping-interval-ms', help: 'WebSocket ping interval (default 30000)' },
  actorIdleMs: { env: 'SB_ACTOR_IDLE_MS', flag: 'actor-idle-ms', help: 'passivate idle actors after (default 60000)' },
  partitions: { env: 'SB_PARTITIONS', flag: 'partitions', help: 'partition count, fixed at cluster creation (default 256)' },
} satisfies Record<string, Setting>;

type Raw = Partial<Record<keyof typeof SETTINGS, string>> & { dev?: boolean };

/** Parse flags (argv without node and script) and the environment into raw strings. */
export function readSettings(argv: string[], env: NodeJS.ProcessEnv): Raw {
  const cmd = new Command('switchboard')
    .description('Switchboard chat node')
    .option('--dev', 'development mode: generated secret, GET /dev/token', false)
    .exitOverride()
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
  return {
    port,
    host,
    nodeId,
    jwtSecret,
    dataDir: raw.dataDir ?? './data',
    natsUrl,
    cqlContactPoints: cql,
    cqlKeyspace: keyspace,
    cqlDc: raw.cqlDc ?? 'datacenter1',
    dev,
    logLevel,
    maxGroup: int(raw, 'maxGroup', 200, 2, 100_000),
    maxFrame: int(raw, 'maxFrame', 65536, 1024, 16 * 1024 * 1024),
    maxBody: int(raw, 'maxBody', 16384, 1, 16 * 1024 * 1024),
    rate: int(raw, 'rate', 200, 1, 1_000_000),
    maxMedia: int(raw, 'maxMedia', 16 * 1024 * 1024, 1, 1024 ** 4),
    onlineWindowMs: int(raw, 'onlineWindowMs', 20000, 100, 86_400_000),
    sqliteSync,
    maxQueuedBytes: int(raw, 'maxQueuedBytes', 8 * 1024 * 1024, 65536, 1024 ** 3),
    helloTimeoutMs: int(raw, 'helloTimeoutMs', 10000, 100, 600_000),
    pingIntervalMs: int(raw, 'pingIntervalMs', 30000, 100, 600_000),
    actorIdleMs: int(raw, 'actorIdleMs', 60000, 100, 86_400_000),
    partitions: int(raw, 'partitions', 256, 1, 65536),
  };
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  return buildConfig(readSettings(argv, env));
}
