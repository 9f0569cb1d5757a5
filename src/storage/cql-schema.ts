/**
 * The CQL schema of `CqlStore`: keyspace and tables, created idempotently at open
 * (`CREATE ... IF NOT EXISTS`). Portable CQL only (Cassandra 5 and ScyllaDB): no
 * materialized views, no secondary indexes, no `USING TIMEOUT`, no Scylla-only options.
 *
 * Tables (every table name is qualified with the keyspace):
 *
 * - `conv_head ((conv), kind, key)`: one partition per conversation, the unit of fencing.
 *   Static columns: `head_seq` (the last committed seq), `owner_epoch` (the writer's claim),
 *   `conv_kind`, `title`, `last_ts`. Clustering rows by `kind`:
 *     'd' dedup rows, key = from + '\u0000' + cmid, `seq`; TTL `DEDUP_TTL_SECONDS`.
 *     'm' member rows, key = user: `role`, `joined_seq`, `delivered_seq`, `read_seq`.
 *     'p' pending index work, key = zero-padded seq + '/' + random: `users` whose
 *         `user_convs` rows must be brought in line with the member rows (see cql-store.ts).
 *   A commit is ONE conditional batch on this partition (a conditional batch cannot span
 *   tables): `UPDATE ... SET head_seq = ? ... IF owner_epoch = ? AND head_seq = ?`, the dedup
 *   rows as `INSERT ... IF NOT EXISTS USING TTL`, the member rows and one 'p' row.
 * - `messages ((conv, bucket), seq, epoch)`: bucket = floor(seq / MESSAGE_BUCKET_SIZE) keeps
 *   partitions bounded. `epoch` is the writer's epoch: message rows are written before the
 *   fenced batch, so a fenced-out writer may leave a row at a seq the owner also writes; at
 *   any seq <= head_seq the row of the highest epoch is the committed one (clustering
 *   `epoch DESC` puts it first). Readers never read above head_seq.
 * - `user_convs ((user_id), conv)`: the user's conversations (an index of the member rows).
 * - `last_seen ((user_id))`, `media ((id))`, `media_refs ((media), conv)`,
 *   `media_unreferenced ((shard), created_at, id)`: uploads no conversation references yet,
 *   spread over `MEDIA_SHARDS` partitions so `unreferencedMedia` needs no index or scan.
 * - `schema_meta ((name))`: the schema version this code wrote.
 */
import type { Client } from 'cassandra-driver';

export const SCHEMA_VERSION = 1;
export const MESSAGE_BUCKET_SIZE = 1000;
/** Dedup rows live 8 days: `findDuplicate` must answer for at least 7. */
export const DEDUP_TTL_SECONDS = 8 * 24 * 3600;
export const MEDIA_SHARDS = 16;

export type Replication =
  | { class: 'SimpleStrategy'; replication_factor: number }
  | { class: 'NetworkTopologyStrategy'; [dc: string]: number | string };

const IDENT_RE = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

export function assertIdentifier(name: string, what = 'identifier'): string {
  if (!IDENT_RE.test(name)) throw new Error(`invalid CQL ${what}: ${JSON.stringify(name)}`);
  return name;
}

function replicationLiteral(r: Replication): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (k === 'class') {
      if (v !== 'SimpleStrategy' && v !== 'NetworkTopologyStrategy') throw new Error(`unsupported replication class ${String(v)}`);
      parts.push(`'class': '${v}'`);
      continue;
    }
    const n = typeof v === 'number' ? v : Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`replication factor for ${k} must be a positive integer`);
    if (!/^[A-Za-z0-9_.-]+$/.test(k)) throw new Error(`invalid replication key ${k}`);
    parts.push(`'${k}': '${n}'`);
  }
  return `{${parts.join(', ')}}`;
}

export function keyspaceStatement(keyspace: string, replication: Replication): string {
  return `CREATE KEYSPACE IF NOT EXISTS ${assertIdentifier(keyspace, 'keyspace')} WITH replication = ${replicationLiteral(replication)} AND durable_writes = true`;
}

export function tableStatements(keyspace: string): string[] {
  const ks = assertIdentifier(keyspace, 'keyspace');
  return [
    `CREATE TABLE IF NOT EXISTS ${ks}.conv_head (
      conv text,
      kind text,
      key text,
      head_seq bigint static,
      owner_epoch bigint static,
      conv_kind text static,
      title text static,
      last_ts bigint static,
      seq bigint,
      role text,
      joined_seq bigint,
      delivered_seq bigint,
      read_seq bigint,
      users set<text>,
      PRIMARY KEY ((conv), kind, key)
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.messages (
      conv text,
      bucket bigint,
      seq bigint,
      epoch bigint,
      sender text,
      cmid text,
      ts bigint,
      kind text,
      body text,
      media text,
      reply_seq bigint,
      sys text,
      PRIMARY KEY ((conv, bucket), seq, epoch)
    ) WITH CLUSTERING ORDER BY (seq ASC, epoch DESC)`,
    `CREATE TABLE IF NOT EXISTS ${ks}.user_convs (
      user_id text,
      conv text,
      PRIMARY KEY ((user_id), conv)
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.last_seen (
      user_id text PRIMARY KEY,
      at bigint
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.media (
      id text PRIMARY KEY,
      owner text,
      mime text,
      size bigint,
      name text,
      object_key text,
      sha256 text,
      created_at bigint,
      completed_at bigint
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.media_refs (
      media text,
      conv text,
      PRIMARY KEY ((media), conv)
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.media_unreferenced (
      shard int,
      created_at bigint,
      id text,
      PRIMARY KEY ((shard), created_at, id)
    )`,
    `CREATE TABLE IF NOT EXISTS ${ks}.schema_meta (
      name text PRIMARY KEY,
      version int
    )`,
  ];
}

/**
 * Create the keyspace and tables if missing and record the schema version. Safe to run from
 * several nodes at once (every statement is `IF NOT EXISTS`; the driver waits for schema
 * agreement after each DDL statement).
 */
export async function ensureSchema(client: Client, keyspace: string, replication: Replication): Promise<void> {
  await client.execute(keyspaceStatement(keyspace, replication));
  for (const stmt of tableStatements(keyspace)) await client.execute(stmt);
  const rs = await client.execute(`SELECT version FROM ${keyspace}.schema_meta WHERE name = ?`, ['store'], {
    prepare: true,
    isIdempotent: true,
  });
  const stored = rs.first()?.get('version') as number | null | undefined;
  if (typeof stored === 'number' && stored > SCHEMA_VERSION) {
    throw new Error(`keyspace ${keyspace} has schema version ${stored}; this code knows ${SCHEMA_VERSION}`);
  }
  if (stored !== SCHEMA_VERSION) {
    await client.execute(`INSERT INTO ${keyspace}.schema_meta (name, version) VALUES (?, ?)`, ['store', SCHEMA_VERSION], {
      prepare: true,
      isIdempotent: true,
    });
  }
}
