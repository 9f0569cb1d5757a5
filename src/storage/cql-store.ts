/**
 * `CqlStore`: the Store port on Apache Cassandra 5 / ScyllaDB through cassandra-driver.
 * Schema and the table layout: cql-schema.ts.
 *
 * How the Store rules are kept:
 *
 * - Single writer. `activate(conv, epoch)` claims the conversation with a lightweight
 *   transaction on the `owner_epoch` static column (`UPDATE ... IF owner_epoch <= ?`, or
 *   `IF owner_epoch = null` for a new conversation) and then reads the head at LOCAL_SERIAL,
 *   which sees every commit accepted before the claim. Every commit is ONE conditional batch
 *   on the conversation's `conv_head` partition, `IF owner_epoch = <epoch> AND head_seq =
 *   <expectedLastSeq>`: a zombie or a writer with a stale head is refused and the batch
 *   writes nothing.
 * - Message rows are written (idempotently, at the write consistency) BEFORE the fenced
 *   batch, so a seq visible through `head_seq` always has its row. A refused commit leaves
 *   rows above the head: readers never read above `head_seq`. Rows are keyed by (seq, epoch),
 *   so a fenced-out writer never overwrites a committed row: at a seq <= head the committed
 *   row is the one with the highest epoch (a writer at epoch e' > e only writes seqs above
 *   the head it read after its claim, and after that claim epoch e cannot commit). Within
 *   one epoch, a plain read of the head before the row writes refuses a stale
 *   `expectedLastSeq` (head_mismatch) before it could replace a committed row of its own
 *   epoch; it also spares most zombies the row writes. (The remaining hole: a writer that
 *   ignores "activate again after StoreUnavailableError" while its previous commit is still
 *   in flight; `activate`'s serial read closes it.)
 * - Dedup. The batch carries one `INSERT ... IF NOT EXISTS USING TTL` row per message in the
 *   same partition ('d' rows, key from + NUL + cmid). When any key exists Cassandra refuses
 *   the whole batch and returns the existing rows, so a duplicate costs no extra round trip
 *   and leaves nothing visible: `DuplicateMessageError` lists their stored seqs. (Checked on
 *   Cassandra 5.0.8: per-row IF NOT EXISTS mixes with the static IF conditions in one batch.)
 * - Membership is part of the same batch ('m' rows of the head partition), so messages,
 *   dedup keys, title and membership commit together. The `user_convs` index is written
 *   after the batch; the batch also stores a 'p' row naming the users whose index rows must
 *   follow, deleted once they do. A crash (or a failure, reported as StoreUnavailableError)
 *   between the two steps leaves the 'p' row; the next `activate` replays it from the member
 *   rows (idempotent). `userConversations` checks each indexed conversation against its
 *   member row, so a stale index row never shows a conversation the user left.
 * - Watermarks only rise: `saveWatermarks` reads the member rows and writes only values
 *   above the stored ones (plain writes, no LWT: the single writer owns the conversation;
 *   calls for one conversation are also serialised inside this instance). These plain writes
 *   touch cells an LWT wrote (the member upsert); a plain write stamped earlier than that
 *   LWT's ballot (client clock behind the coordinator's by more than the time in between)
 *   would be lost until the next rise. Keep clocks in NTP sync.
 * - Commits to one conversation apply in the order they were issued on one instance (a
 *   writer may pipeline them); each one still checks its own head.
 * - `saveLastSeen` writes each value with itself as the write timestamp, so the newest time
 *   wins without a read, whatever the order of the writes.
 * - Every backend failure (no host, timeouts, unavailable, overloaded) rejects with
 *   StoreUnavailableError; each request has a client-side timeout (`requestTimeoutMs`) and a
 *   deadline on top, so no call hangs. Only idempotent statements are marked `isIdempotent`
 *   (the driver retries only those); LWTs use LOCAL_SERIAL.
 */
import { randomUUID } from 'node:crypto';
import { Client, errors, policies, types } from 'cassandra-driver';
import type { ChatMessage, ConvKindName, ConvSummary, MediaRef, MsgKind, Role, SysEvent } from '../protocol/frames.js';
import { DuplicateMessageError, StoreConflictError, StoreUnavailableError } from '../actors/ports/errors.js';
import type {
  CommitRequest,
  ConversationRecord,
  MediaRecord,
  MemberChange,
  MemberRecord,
  Store,
  StoreInfo,
  WatermarkUpdate,
} from '../actors/ports/store.js';
import {
  assertIdentifier,
  DEDUP_TTL_SECONDS,
  ensureSchema,
  MEDIA_SHARDS,
  MESSAGE_BUCKET_SIZE,
  type Replication,
} from './cql-schema.js';

export type { Replication } from './cql-schema.js';

export type CqlConsistency = 'ANY' | 'ONE' | 'TWO' | 'THREE' | 'QUORUM' | 'ALL' | 'LOCAL_QUORUM' | 'EACH_QUORUM' | 'LOCAL_ONE';

export interface CqlStoreOptions {
  /** "host" or "host:port" */
  contactPoints: string[];
  localDataCenter: string;
  keyspace: string;
  /** Used only when the keyspace is created. Default: NetworkTopologyStrategy, 3 in the local DC. */
  replication?: Replication;
  /** Read and write consistency. Default LOCAL_QUORUM; ONE on a single test node. */
  consistency?: CqlConsistency;
  /** Serial consistency of the lightweight transactions. Default LOCAL_SERIAL. */
  serialConsistency?: 'SERIAL' | 'LOCAL_SERIAL';
  /** Client-side timeout of one request. Default 10 000 ms. */
  requestTimeoutMs?: number;
}

const CONSISTENCY: Record<CqlConsistency, types.consistencies> = {
  ANY: types.consistencies.any,
  ONE: types.consistencies.one,
  TWO: types.consistencies.two,
  THREE: types.consistencies.three,
  QUORUM: types.consistencies.quorum,
  ALL: types.consistencies.all,
  LOCAL_QUORUM: types.consistencies.localQuorum,
  EACH_QUORUM: types.consistencies.eachQuorum,
  LOCAL_ONE: types.consistencies.localOne,
};

/** Server errors that mean "could not do it now", as opposed to a bad statement. */
const UNAVAILABLE_CODES: ReadonlySet<number> = new Set([
  types.responseErrorCodes.serverError,
  types.responseErrorCodes.unavailableException,
  types.responseErrorCodes.overloaded,
  types.responseErrorCodes.isBootstrapping,
  types.responseErrorCodes.truncateError,
  types.responseErrorCodes.writeTimeout,
  types.responseErrorCodes.readTimeout,
  types.responseErrorCodes.readFailure,
  types.responseErrorCodes.writeFailure,
]);

const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);

function isUnavailable(err: unknown): boolean {
  if (err instanceof StoreUnavailableError) return true;
  if (
    err instanceof errors.NoHostAvailableError ||
    err instanceof errors.OperationTimedOutError ||
    err instanceof errors.BusyConnectionError ||
    err instanceof errors.DriverInternalError
  ) {
    return true;
  }
  if (err instanceof errors.ResponseError) return UNAVAILABLE_CODES.has(err.code);
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && SOCKET_CODES.has(code);
}

function wrap(err: unknown, what: string): unknown {
  if (err instanceof StoreUnavailableError || err instanceof StoreConflictError || err instanceof DuplicateMessageError) return err;
  if (isUnavailable(err)) {
    const msg = err instanceof Error ? err.message : String(err);
    return new StoreUnavailableError(`${what}: ${msg}`, { cause: err });
  }
  return err;
}

/** bigint columns come back as driver Longs. */
function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof types.Long) return v.toNumber();
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

const bucketOf = (seq: number): number => Math.floor(seq / MESSAGE_BUCKET_SIZE);
const dedupKey = (from: string, cmid: string): string => `${from}\u0000${cmid}`;
const pad = (n: number): string => String(n).padStart(16, '0');

function mediaShard(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % MEDIA_SHARDS;
}

/** Run `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface Stmt {
  query: string;
  params: unknown[];
}

interface ExecOpts {
  idempotent: boolean;
  consistency?: types.consistencies;
  fetchSize?: number;
  pageState?: string;
}

/** Rough size of a message row, to keep unlogged batches well below the mutation limit. */
function approxSize(m: ChatMessage): number {
  return 100 + m.cmid.length + m.from.length + (m.body?.length ?? 0) * 3 + (m.sys ? 200 + m.sys.users.join(',').length : 0) + (m.media ? 300 : 0);
}

export class CqlStore implements Store {
  private readonly ks: string;
  private readonly cl: types.consistencies;
  private readonly serial: types.consistencies;
  private readonly clName: CqlConsistency;
  private readonly deadlineMs: number;
  private readonly wmChains = new Map<string, Promise<void>>();
  private readonly commitChains = new Map<string, Promise<void>>();
  private closed = false;

  private constructor(
    private readonly client: Client,
    opts: CqlStoreOptions,
  ) {
    this.ks = opts.keyspace;
    this.clName = opts.consistency ?? 'LOCAL_QUORUM';
    this.cl = CONSISTENCY[this.clName];
    this.serial = opts.serialConsistency === 'SERIAL' ? types.consistencies.serial : types.consistencies.localSerial;
    const timeout = opts.requestTimeoutMs ?? 10_000;
    // The driver's readTimeout bounds each attempt; an idempotent statement may be tried on a
    // second host, so the outer deadline allows for that before giving up on the call.
    this.deadlineMs = 2 * timeout + 1_000;
  }

  static async open(opts: CqlStoreOptions): Promise<CqlStore> {
    assertIdentifier(opts.keyspace, 'keyspace');
    if (opts.contactPoints.length === 0) throw new Error('CqlStore: contactPoints is empty');
    const consistency = opts.consistency ?? 'LOCAL_QUORUM';
    if (!(consistency in CONSISTENCY)) throw new Error(`CqlStore: unknown consistency ${consistency}`);
    const timeout = opts.requestTimeoutMs ?? 10_000;
    const client = new Client({
      contactPoints: opts.contactPoints,
      localDataCenter: opts.localDataCenter,
      policies: {
        loadBalancing: new policies.loadBalancing.TokenAwarePolicy(
          new policies.loadBalancing.DCAwareRoundRobinPolicy(opts.localDataCenter),
        ),
      },
      queryOptions: {
        prepare: true,
        isIdempotent: false,
        consistency: CONSISTENCY[consistency],
        serialConsistency: opts.serialConsistency === 'SERIAL' ? types.consistencies.serial : types.consistencies.localSerial,
      },
      socketOptions: { connectTimeout: Math.min(timeout, 5_000), readTimeout: timeout },
      encoding: { useUndefinedAsUnset: true },
    });
    const replication: Replication = opts.replication ?? { class: 'NetworkTopologyStrategy', [opts.localDataCenter]: 3 };
    const deadline = 4 * timeout + 5_000;
    try {
      await withDeadline(client.connect(), deadline, 'connect');
      // DDL waits for schema agreement; give it its own, longer deadline.
      await withDeadline(ensureSchema(client, opts.keyspace, replication), 60_000 + deadline, 'schema');
    } catch (err) {
      await client.shutdown().catch(() => {});
      throw wrap(err, 'CqlStore.open');
    }
    return new CqlStore(client, opts);
  }

  info(): StoreInfo {
    return { kind: 'cql', sync: this.clName };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client.shutdown();
  }

  // ----------------------------------------------------------------------------------------
  // driver plumbing

  private async exec(query: string, params: unknown[], o: ExecOpts, what: string): Promise<types.ResultSet> {
    try {
      return await withDeadline(
        this.client.execute(query, params as unknown[], {
          prepare: true,
          isIdempotent: o.idempotent,
          consistency: o.consistency ?? this.cl,
          serialConsistency: this.serial,
          ...(o.fetchSize !== undefined ? { fetchSize: o.fetchSize } : {}),
          ...(o.pageState !== undefined ? { pageState: o.pageState } : {}),
        }),
        this.deadlineMs,
        what,
      );
    } catch (err) {
      throw wrap(err, what);
    }
  }

  private async batch(stmts: Stmt[], o: ExecOpts & { logged: boolean }, what: string): Promise<types.ResultSet> {
    try {
      return await withDeadline(
        this.client.batch(stmts, {
          prepare: true,
          logged: o.logged,
          isIdempotent: o.idempotent,
          consistency: o.consistency ?? this.cl,
          serialConsistency: this.serial,
        }),
        this.deadlineMs,
        what,
      );
    } catch (err) {
      throw wrap(err, what);
    }
  }

  /** All rows of a (possibly multi-page) read. */
  private async all(query: string, params: unknown[], what: string): Promise<types.Row[]> {
    const rows: types.Row[] = [];
    let pageState: string | undefined;
    for (;;) {
      const rs = await this.exec(query, params, { idempotent: true, fetchSize: 1000, ...(pageState !== undefined ? { pageState } : {}) }, what);
      rows.push(...rs.rows);
      if (!rs.pageState) return rows;
      pageState = rs.pageState;
    }
  }

  private t(name: string): string {
    return `${this.ks}.${name}`;
  }

  // ----------------------------------------------------------------------------------------
  // conversations

  async activate(conv: string, epoch: number): Promise<ConversationRecord | null> {
    assertEpoch(epoch);
    await this.claim(conv, epoch);
    // LOCAL_SERIAL: the claim finished any commit in flight; this read sees all of them.
    const headRs = await this.exec(
      `SELECT head_seq, owner_epoch, conv_kind, title FROM ${this.t('conv_head')} WHERE conv = ? LIMIT 1`,
      [conv],
      { idempotent: true, consistency: this.serial },
      'activate(read head)',
    );
    const head = headRs.first();
    const owner = num(head?.get('owner_epoch'));
    if (owner !== epoch) {
      throw new StoreConflictError('stale_epoch', `conversation ${conv} is claimed at epoch ${owner ?? 'none'}, not ${epoch}`);
    }
    const [memberRows, pendingRows] = await Promise.all([
      this.all(
        `SELECT key, role, joined_seq, delivered_seq, read_seq FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'm'`,
        [conv],
        'activate(read members)',
      ),
      this.all(`SELECT key, users FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'p'`, [conv], 'activate(read pending)'),
    ]);
    const members = memberRows.map(memberFromRow).filter((m): m is MemberRecord => m !== null);
    if (pendingRows.length > 0) await this.repairIndex(conv, members, pendingRows);
    const kind = str(head?.get('conv_kind')) as ConvKindName | null;
    if (kind === null) return null;
    const title = str(head?.get('title'));
    return {
      conv,
      kind,
      ...(title !== null ? { title } : {}),
      lastSeq: num(head?.get('head_seq')) ?? 0,
      members,
    };
  }

  private async claim(conv: string, epoch: number): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const rs = await this.exec(
        `UPDATE ${this.t('conv_head')} SET owner_epoch = ? WHERE conv = ? IF owner_epoch <= ?`,
        [epoch, conv, epoch],
        { idempotent: false },
        'activate(claim)',
      );
      if (rs.wasApplied()) return;
      const current = num(rs.first()?.get('owner_epoch'));
      if (current !== null && current > epoch) {
        throw new StoreConflictError('stale_epoch', `conversation ${conv} is claimed at epoch ${current} > ${epoch}`);
      }
      if (current === null) {
        const created = await this.exec(
          `UPDATE ${this.t('conv_head')} SET owner_epoch = ?, head_seq = 0 WHERE conv = ? IF owner_epoch = null`,
          [epoch, conv],
          { idempotent: false },
          'activate(create)',
        );
        if (created.wasApplied()) return;
      }
      // Lost a race with another claimant: look again.
    }
    throw new StoreUnavailableError(`activate(${conv}): the claim kept racing with other writers`);
  }

  /** Bring `user_convs` in line with the member rows for the users named by 'p' rows. */
  private async repairIndex(conv: string, members: MemberRecord[], pendingRows: types.Row[]): Promise<void> {
    const current = new Set(members.map((m) => m.user));
    const users = new Set<string>();
    for (const row of pendingRows) for (const u of (row.get('users') as string[] | null) ?? []) users.add(u);
    await this.applyIndex(conv, [...users].map((u) => ({ user: u, member: current.has(u) })));
    await mapLimit(pendingRows, 16, (row) =>
      this.exec(
        `DELETE FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'p' AND key = ?`,
        [conv, row.get('key')],
        { idempotent: true },
        'activate(repair index)',
      ),
    );
  }

  private async applyIndex(conv: string, ops: Array<{ user: string; member: boolean }>): Promise<void> {
    await mapLimit(ops, 32, (op) =>
      op.member
        ? this.exec(`INSERT INTO ${this.t('user_convs')} (user_id, conv) VALUES (?, ?)`, [op.user, conv], { idempotent: true }, 'index')
        : this.exec(`DELETE FROM ${this.t('user_convs')} WHERE user_id = ? AND conv = ?`, [op.user, conv], { idempotent: true }, 'index'),
    );
  }

  /**
   * Commits to one conversation apply in the order they were issued on this instance (a
   * writer may pipeline them without waiting); each one still checks its own head.
   */
  commit(req: CommitRequest): Promise<void> {
    return this.serialise(this.commitChains, req.conv, () => this.commitNow(req));
  }

  private serialise<T>(chains: Map<string, Promise<void>>, key: string, fn: () => Promise<T>): Promise<T> {
    const prev = chains.get(key) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return run;
  }

  private async commitNow(req: CommitRequest): Promise<void> {
    assertEpoch(req.epoch);
    const { conv, messages } = req;
    if (!Number.isSafeInteger(req.expectedLastSeq) || req.expectedLastSeq < 0) throw new Error('commit: bad expectedLastSeq');
    const keys = new Map<string, { from: string; cmid: string; seq: number }>();
    messages.forEach((m, i) => {
      if (m.conv !== conv) throw new Error(`commit: message for ${m.conv} in a commit for ${conv}`);
      if (m.seq !== req.expectedLastSeq + 1 + i) throw new Error(`commit: seqs must be contiguous from ${req.expectedLastSeq + 1}`);
      const k = dedupKey(m.from, m.cmid);
      if (keys.has(k)) throw new Error(`commit: (${m.from}, ${m.cmid}) appears twice in one commit`);
      keys.set(k, { from: m.from, cmid: m.cmid, seq: m.seq });
    });
    const memberOps = collapseMembers(req.members ?? []);
    if (req.expectedLastSeq === 0 && req.kind === undefined) throw new Error('commit: kind is required on the first commit');
    const newHead = req.expectedLastSeq + messages.length;

    // 1. Message rows, before the fence (idempotent; see the header). First a plain read of
    //    the head: a writer at the owner's epoch whose head is stale (it committed the seq
    //    already, or another instance at its epoch did) must not replace a committed row of
    //    its own epoch. It also spares a fenced-out writer the row writes.
    if (messages.length > 0) {
      const pre = await this.exec(
        `SELECT head_seq, owner_epoch FROM ${this.t('conv_head')} WHERE conv = ? LIMIT 1`,
        [conv],
        { idempotent: true },
        'commit(read head)',
      );
      const conflict = conflictOf(req, pre.first());
      if (conflict) throw conflict;
      await this.writeMessageRows(conv, req.epoch, messages);
    }

    // 2. The fenced batch: head, title, dedup rows, member rows, pending-index row.
    const set = ['head_seq = ?'];
    const setParams: unknown[] = [newHead];
    const last = messages[messages.length - 1];
    if (last) {
      set.push('last_ts = ?');
      setParams.push(last.ts);
    }
    if (req.kind !== undefined) {
      set.push('conv_kind = ?');
      setParams.push(req.kind);
    }
    if (req.title !== undefined) {
      set.push('title = ?');
      setParams.push(req.title);
    }
    const head = this.t('conv_head');
    const stmts: Stmt[] = [
      {
        query: `UPDATE ${head} SET ${set.join(', ')} WHERE conv = ? IF owner_epoch = ? AND head_seq = ?`,
        params: [...setParams, conv, req.epoch, req.expectedLastSeq],
      },
    ];
    for (const [key, k] of keys) {
      stmts.push({
        query: `INSERT INTO ${head} (conv, kind, key, seq) VALUES (?, 'd', ?, ?) IF NOT EXISTS USING TTL ${DEDUP_TTL_SECONDS}`,
        params: [conv, key, k.seq],
      });
    }
    for (const op of memberOps) {
      if (op.op === 'upsert') {
        const m = op.member;
        stmts.push({
          query: `INSERT INTO ${head} (conv, kind, key, role, joined_seq, delivered_seq, read_seq) VALUES (?, 'm', ?, ?, ?, ?, ?)`,
          params: [conv, m.user, m.role, m.joinedSeq, m.delivered, m.read],
        });
      } else {
        stmts.push({ query: `DELETE FROM ${head} WHERE conv = ? AND kind = 'm' AND key = ?`, params: [conv, op.user] });
      }
    }
    const pendingKey = `${pad(newHead)}/${randomUUID()}`;
    if (memberOps.length > 0) {
      stmts.push({
        query: `INSERT INTO ${head} (conv, kind, key, users) VALUES (?, 'p', ?, ?)`,
        params: [conv, pendingKey, memberOps.map((op) => (op.op === 'upsert' ? op.member.user : op.user))],
      });
    }
    const rs = await this.batch(stmts, { idempotent: false, logged: true }, 'commit');
    if (!rs.wasApplied()) throw refusal(req, rs.rows, keys);

    // 3. The user_convs index, then drop the pending row. A failure here leaves the pending
    //    row for the next activate; the commit itself is durable, so report "unknown".
    if (memberOps.length > 0) {
      await this.applyIndex(
        conv,
        memberOps.map((op) => (op.op === 'upsert' ? { user: op.member.user, member: true } : { user: op.user, member: false })),
      );
      await this.exec(
        `DELETE FROM ${head} WHERE conv = ? AND kind = 'p' AND key = ?`,
        [conv, pendingKey],
        { idempotent: true },
        'commit(index done)',
      );
    }
  }

  private async writeMessageRows(conv: string, epoch: number, messages: ChatMessage[]): Promise<void> {
    const insert = `INSERT INTO ${this.t('messages')} (conv, bucket, seq, epoch, sender, cmid, ts, kind, body, media, reply_seq, sys) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    // One unlogged batch per partition, split to stay well below the mutation size limit.
    const chunks: Stmt[][] = [];
    let cur: Stmt[] = [];
    let curBucket = -1;
    let curSize = 0;
    for (const m of messages) {
      const b = bucketOf(m.seq);
      const size = approxSize(m);
      if (cur.length > 0 && (b !== curBucket || curSize + size > 256 * 1024)) {
        chunks.push(cur);
        cur = [];
        curSize = 0;
      }
      curBucket = b;
      curSize += size;
      cur.push({
        query: insert,
        params: [
          conv,
          b,
          m.seq,
          epoch,
          m.from,
          m.cmid,
          m.ts,
          m.kind,
          m.body,
          m.media ? JSON.stringify(m.media) : undefined,
          m.reply?.seq,
          m.sys ? JSON.stringify(m.sys) : undefined,
        ],
      });
    }
    if (cur.length > 0) chunks.push(cur);
    await mapLimit(chunks, 8, (c) =>
      c.length === 1 && c[0]
        ? this.exec(c[0].query, c[0].params, { idempotent: true }, 'commit(messages)')
        : this.batch(c, { idempotent: true, logged: false }, 'commit(messages)'),
    );
  }

  async findDuplicate(conv: string, from: string, cmid: string): Promise<number | null> {
    const rs = await this.exec(
      `SELECT seq FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'd' AND key = ?`,
      [conv, dedupKey(from, cmid)],
      { idempotent: true },
      'findDuplicate',
    );
    return num(rs.first()?.get('seq'));
  }

  async saveWatermarks(conv: string, updates: WatermarkUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    // Read-compare-write, serialised per conversation within this instance.
    return this.serialise(this.wmChains, conv, () => this.saveWatermarksNow(conv, updates));
  }

  private async saveWatermarksNow(conv: string, updates: WatermarkUpdate[]): Promise<void> {
    const wanted = new Map<string, { delivered: number; read: number }>();
    for (const u of updates) {
      const w = wanted.get(u.user);
      wanted.set(u.user, w ? { delivered: Math.max(w.delivered, u.delivered), read: Math.max(w.read, u.read) } : { delivered: u.delivered, read: u.read });
    }
    const users = [...wanted.keys()];
    const chunks: string[][] = [];
    for (let i = 0; i < users.length; i += 100) chunks.push(users.slice(i, i + 100));
    const rows = (
      await mapLimit(chunks, 4, (chunk) =>
        this.all(
          `SELECT key, role, delivered_seq, read_seq FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'm' AND key IN ?`,
          [conv, chunk],
          'saveWatermarks(read)',
        ),
      )
    ).flat();
    const writes: Stmt[] = [];
    for (const row of rows) {
      if (str(row.get('role')) === null) continue; // not a member (a leftover cell)
      const user = row.get('key') as string;
      const w = wanted.get(user);
      if (!w) continue;
      const d = num(row.get('delivered_seq')) ?? 0;
      const r = num(row.get('read_seq')) ?? 0;
      const nd = Math.max(d, w.delivered);
      const nr = Math.max(r, w.read);
      if (nd === d && nr === r) continue;
      writes.push({
        query: `UPDATE ${this.t('conv_head')} SET delivered_seq = ?, read_seq = ? WHERE conv = ? AND kind = 'm' AND key = ?`,
        params: [nd, nr, conv, user],
      });
    }
    for (let i = 0; i < writes.length; i += 100) {
      const chunk = writes.slice(i, i + 100);
      if (chunk.length === 1 && chunk[0]) await this.exec(chunk[0].query, chunk[0].params, { idempotent: true }, 'saveWatermarks');
      else await this.batch(chunk, { idempotent: true, logged: false }, 'saveWatermarks');
    }
  }

  private async headSeq(conv: string, what: string): Promise<number> {
    const rs = await this.exec(`SELECT head_seq FROM ${this.t('conv_head')} WHERE conv = ? LIMIT 1`, [conv], { idempotent: true }, what);
    return num(rs.first()?.get('head_seq')) ?? 0;
  }

  async messages(conv: string, fromSeq: number, toSeq: number, limit: number): Promise<ChatMessage[]> {
    if (limit <= 0 || toSeq < fromSeq) return [];
    const head = await this.headSeq(conv, 'messages');
    return this.readRange(conv, Math.max(fromSeq, 1), Math.min(toSeq, head), limit);
  }

  async messagesBefore(conv: string, before: number, limit: number, minSeq: number): Promise<ChatMessage[]> {
    if (limit <= 0) return [];
    const head = await this.headSeq(conv, 'messagesBefore');
    const hi = Math.min(before - 1, head);
    // Seqs are contiguous from 1 to the head, so the newest `limit` below `before` are a range.
    const lo = Math.max(minSeq, 1, hi - limit + 1);
    return this.readRange(conv, lo, hi, limit);
  }

  /** Committed messages lo..hi (hi <= head), ascending, at most `limit`. */
  private async readRange(conv: string, lo: number, hi: number, limit: number): Promise<ChatMessage[]> {
    const out: ChatMessage[] = [];
    let cur = lo;
    while (cur <= hi && out.length < limit) {
      const b = bucketOf(cur);
      const end = Math.min(hi, (b + 1) * MESSAGE_BUCKET_SIZE - 1);
      const want = Math.min(limit - out.length, 2_000) + 8; // one page: fetchSize = LIMIT
      const rs = await this.exec(
        `SELECT seq, epoch, sender, cmid, ts, kind, body, media, reply_seq, sys FROM ${this.t('messages')} WHERE conv = ? AND bucket = ? AND seq >= ? AND seq <= ? LIMIT ?`,
        [conv, b, cur, end, want],
        { idempotent: true, fetchSize: want },
        'messages',
      );
      let lastSeq = cur - 1;
      for (const row of rs.rows) {
        const seq = num(row.get('seq')) ?? 0;
        if (seq === lastSeq) continue; // a lower epoch's row at the same seq (never committed)
        lastSeq = seq;
        out.push(messageFromRow(conv, row));
        if (out.length >= limit) break;
      }
      cur = rs.rows.length >= want ? lastSeq + 1 : end + 1;
    }
    return out;
  }

  async member(conv: string, user: string): Promise<MemberRecord | null> {
    const rs = await this.exec(
      `SELECT key, role, joined_seq, delivered_seq, read_seq FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'm' AND key = ?`,
      [conv, user],
      { idempotent: true },
      'member',
    );
    const row = rs.first();
    return row ? memberFromRow(row) : null;
  }

  /** Newest activity first (then by conv), like the SQLite store; the port promises no order. */
  async userConversations(user: string): Promise<ConvSummary[]> {
    const rows = await this.memberConvRows(user, 'userConversations');
    return rows
      .sort((x, y) => y.lastTs - x.lastTs || (x.conv < y.conv ? -1 : x.conv > y.conv ? 1 : 0))
      .map((r) => r.summary);
  }

  /**
   * The user's conversations from the `user_convs` index, each checked against the user's
   * member row (the index may lag a removal) and with the head statics read alongside.
   */
  private async memberConvRows(user: string, what: string): Promise<Array<{ conv: string; lastTs: number; summary: ConvSummary }>> {
    const convs = (await this.all(`SELECT conv FROM ${this.t('user_convs')} WHERE user_id = ?`, [user], what)).map(
      (r) => r.get('conv') as string,
    );
    const rows = await mapLimit(convs, 32, (conv) =>
      this.exec(
        `SELECT head_seq, conv_kind, title, last_ts, role, delivered_seq, read_seq FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'm' AND key = ?`,
        [conv, user],
        { idempotent: true },
        what,
      ),
    );
    const out: Array<{ conv: string; lastTs: number; summary: ConvSummary }> = [];
    convs.forEach((conv, i) => {
      const row = rows[i]?.first();
      if (!row || str(row.get('role')) === null) return; // the index lags a removal
      const kind = str(row.get('conv_kind')) as ConvKindName | null;
      if (kind === null) return;
      const title = str(row.get('title'));
      out.push({
        conv,
        lastTs: num(row.get('last_ts')) ?? 0,
        summary: {
          conv,
          kind,
          ...(title !== null ? { title } : {}),
          lastSeq: num(row.get('head_seq')) ?? 0,
          delivered: num(row.get('delivered_seq')) ?? 0,
          read: num(row.get('read_seq')) ?? 0,
        },
      });
    });
    return out;
  }

  /**
   * From the user's side (each of its conversations, candidates' member rows by `IN` in
   * chunks of 100) or from the candidates' side (each candidate's `user_convs`, intersected
   * with the user's, then checked against a member row), whichever needs fewer reads.
   */
  async coMembers(user: string, candidates: string[]): Promise<string[]> {
    const wanted = [...new Set(candidates)];
    if (wanted.length === 0) return [];
    const convs = (await this.memberConvRows(user, 'coMembers')).map((r) => r.conv);
    if (convs.length === 0) return [];
    const found = new Set<string>();
    const chunks: string[][] = [];
    for (let i = 0; i < wanted.length; i += 100) chunks.push(wanted.slice(i, i + 100));
    if (convs.length * chunks.length <= wanted.length) {
      const tasks = convs.flatMap((conv) => chunks.map((chunk) => ({ conv, chunk })));
      await mapLimit(tasks, 32, async ({ conv, chunk }) => {
        const open = chunk.filter((u) => !found.has(u));
        if (open.length === 0) return;
        const rows = await this.all(
          `SELECT key, role FROM ${this.t('conv_head')} WHERE conv = ? AND kind = 'm' AND key IN ?`,
          [conv, open],
          'coMembers',
        );
        for (const row of rows) if (str(row.get('role')) !== null) found.add(row.get('key') as string);
      });
    } else {
      const mine = new Set(convs);
      await mapLimit(wanted, 32, async (cand) => {
        if (cand === user) {
          found.add(user); // a member of `convs`, checked above
          return;
        }
        const shared = (await this.all(`SELECT conv FROM ${this.t('user_convs')} WHERE user_id = ?`, [cand], 'coMembers'))
          .map((r) => r.get('conv') as string)
          .filter((c) => mine.has(c));
        for (const conv of shared) {
          if (await this.member(conv, cand)) {
            found.add(cand);
            return;
          }
        }
      });
    }
    return [...found];
  }

  // ----------------------------------------------------------------------------------------
  // last seen

  /**
   * The newest time wins: each cell is written with the write timestamp `at` (in µs), so the
   * highest `at` wins whatever the order of the writes, without a read. Nothing else ever
   * writes or deletes `last_seen`.
   */
  async saveLastSeen(entries: Array<{ user: string; at: number }>): Promise<void> {
    await mapLimit(entries, 32, (e) =>
      this.exec(
        `INSERT INTO ${this.t('last_seen')} (user_id, at) VALUES (?, ?) USING TIMESTAMP ?`,
        [e.user, e.at, types.Long.fromNumber(Math.max(0, Math.trunc(e.at)) * 1000)], // ms -> a µs write timestamp
        { idempotent: true },
        'saveLastSeen',
      ),
    );
  }

  async lastSeen(users: string[]): Promise<Map<string, number>> {
    const unique = [...new Set(users)];
    const rows = await mapLimit(unique, 32, (u) =>
      this.exec(`SELECT at FROM ${this.t('last_seen')} WHERE user_id = ?`, [u], { idempotent: true }, 'lastSeen'),
    );
    const out = new Map<string, number>();
    unique.forEach((u, i) => {
      const at = num(rows[i]?.first()?.get('at'));
      if (at !== null) out.set(u, at);
    });
    return out;
  }

  // ----------------------------------------------------------------------------------------
  // media metadata

  async putMedia(rec: MediaRecord): Promise<void> {
    const old = await this.mediaRow(rec.id, 'putMedia');
    await this.exec(
      `INSERT INTO ${this.t('media')} (id, owner, mime, size, name, object_key, sha256, created_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [rec.id, rec.owner, rec.mime, rec.size, rec.name ?? null, rec.key, rec.sha256 ?? null, rec.createdAt, rec.completedAt ?? null],
      { idempotent: true },
      'putMedia',
    );
    const oldCreated = old ? num(old.get('created_at')) : null;
    if (oldCreated !== null && oldCreated !== rec.createdAt) await this.dropUnreferenced(rec.id, oldCreated, 'putMedia');
    const refs = await this.exec(`SELECT conv FROM ${this.t('media_refs')} WHERE media = ? LIMIT 1`, [rec.id], { idempotent: true }, 'putMedia');
    if (refs.rowLength === 0) {
      await this.exec(
        `INSERT INTO ${this.t('media_unreferenced')} (shard, created_at, id) VALUES (?, ?, ?)`,
        [mediaShard(rec.id), rec.createdAt, rec.id],
        { idempotent: true },
        'putMedia',
      );
    }
  }

  private async mediaRow(id: string, what: string): Promise<types.Row | null> {
    const rs = await this.exec(
      `SELECT id, owner, mime, size, name, object_key, sha256, created_at, completed_at FROM ${this.t('media')} WHERE id = ?`,
      [id],
      { idempotent: true },
      what,
    );
    const row = rs.first();
    return row && str(row.get('owner')) !== null ? row : null;
  }

  private async dropUnreferenced(id: string, createdAt: number, what: string): Promise<void> {
    await this.exec(
      `DELETE FROM ${this.t('media_unreferenced')} WHERE shard = ? AND created_at = ? AND id = ?`,
      [mediaShard(id), createdAt, id],
      { idempotent: true },
      what,
    );
  }

  async completeMedia(id: string, sha256: string, size: number, at: number): Promise<void> {
    if (!(await this.mediaRow(id, 'completeMedia'))) return;
    await this.exec(
      `UPDATE ${this.t('media')} SET sha256 = ?, size = ?, completed_at = ? WHERE id = ?`,
      [sha256, size, at, id],
      { idempotent: true },
      'completeMedia',
    );
  }

  async media(id: string): Promise<MediaRecord | null> {
    const row = await this.mediaRow(id, 'media');
    return row ? mediaFromRow(row) : null;
  }

  async addMediaRef(media: string, conv: string): Promise<void> {
    await this.exec(`INSERT INTO ${this.t('media_refs')} (media, conv) VALUES (?, ?)`, [media, conv], { idempotent: true }, 'addMediaRef');
    const row = await this.mediaRow(media, 'addMediaRef');
    const created = row ? num(row.get('created_at')) : null;
    if (created !== null) await this.dropUnreferenced(media, created, 'addMediaRef');
  }

  async mediaRefs(media: string): Promise<string[]> {
    const rows = await this.all(`SELECT conv FROM ${this.t('media_refs')} WHERE media = ?`, [media], 'mediaRefs');
    return rows.map((r) => r.get('conv') as string);
  }

  /**
   * Oldest first: a merge of the `media_unreferenced` shards (each ordered by created_at),
   * every candidate checked against the media row and its refs; leftover candidate rows
   * (referenced, deleted or re-put since) are dropped on the way.
   */
  async unreferencedMedia(before: number, limit: number): Promise<MediaRecord[]> {
    if (limit <= 0) return [];
    const fetchSize = Math.min(limit + 8, 500);
    interface Cursor {
      shard: number;
      buf: Array<{ createdAt: number; id: string }>;
      pageState: string | undefined;
      done: boolean;
    }
    const cursors: Cursor[] = Array.from({ length: MEDIA_SHARDS }, (_, shard) => ({ shard, buf: [], pageState: undefined, done: false }));
    const fill = async (c: Cursor): Promise<void> => {
      if (c.buf.length > 0 || c.done) return;
      const rs = await this.exec(
        `SELECT created_at, id FROM ${this.t('media_unreferenced')} WHERE shard = ? AND created_at < ?`,
        [c.shard, before],
        { idempotent: true, fetchSize, ...(c.pageState !== undefined ? { pageState: c.pageState } : {}) },
        'unreferencedMedia',
      );
      c.buf = rs.rows.map((r) => ({ createdAt: num(r.get('created_at')) ?? 0, id: r.get('id') as string }));
      c.pageState = rs.pageState ?? undefined;
      if (!rs.pageState) c.done = true;
    };
    const out: MediaRecord[] = [];
    for (;;) {
      await mapLimit(cursors, 8, fill);
      let best: Cursor | undefined;
      for (const c of cursors) {
        const head = c.buf[0];
        if (!head) continue;
        const cur = best?.buf[0];
        if (!cur || head.createdAt < cur.createdAt || (head.createdAt === cur.createdAt && head.id < cur.id)) best = c;
      }
      const cand = best?.buf.shift();
      if (!cand || out.length >= limit) return out;
      const [row, refs] = await Promise.all([
        this.mediaRow(cand.id, 'unreferencedMedia'),
        this.exec(`SELECT conv FROM ${this.t('media_refs')} WHERE media = ? LIMIT 1`, [cand.id], { idempotent: true }, 'unreferencedMedia'),
      ]);
      if (!row || num(row.get('created_at')) !== cand.createdAt || refs.rowLength > 0) {
        await this.dropUnreferenced(cand.id, cand.createdAt, 'unreferencedMedia');
        continue;
      }
      out.push(mediaFromRow(row));
      if (out.length >= limit) return out;
    }
  }

  async deleteMedia(id: string): Promise<void> {
    const row = await this.mediaRow(id, 'deleteMedia');
    const created = row ? num(row.get('created_at')) : null;
    if (created !== null) await this.dropUnreferenced(id, created, 'deleteMedia');
    await this.exec(`DELETE FROM ${this.t('media_refs')} WHERE media = ?`, [id], { idempotent: true }, 'deleteMedia');
    await this.exec(`DELETE FROM ${this.t('media')} WHERE id = ?`, [id], { idempotent: true }, 'deleteMedia');
  }
}

// ------------------------------------------------------------------------------------------
// helpers

function assertEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`bad epoch ${epoch}`);
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailableError(`${what}: no answer within ${ms} ms`)), ms);
    timer.unref?.();
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** The last change per user wins (a batch applies all its statements at one timestamp). */
function collapseMembers(changes: MemberChange[]): MemberChange[] {
  const byUser = new Map<string, MemberChange>();
  for (const c of changes) {
    const user = c.op === 'upsert' ? c.member.user : c.user;
    byUser.delete(user);
    byUser.set(user, c);
  }
  return [...byUser.values()];
}

/** Why the fenced batch was refused, from the rows Cassandra returned with [applied]=false. */
function refusal(req: CommitRequest, rows: types.Row[], keys: Map<string, { from: string; cmid: string; seq: number }>): Error {
  const conflict = conflictOf(req, rows[0]);
  if (conflict) return conflict;
  const existing: Array<{ from: string; cmid: string; seq: number }> = [];
  for (const row of rows) {
    if (row.get('kind') !== 'd') continue;
    const k = keys.get(row.get('key') as string);
    const seq = num(row.get('seq'));
    if (k && seq !== null) existing.push({ from: k.from, cmid: k.cmid, seq });
  }
  if (existing.length > 0) return new DuplicateMessageError(existing.sort((a, b) => a.seq - b.seq));
  return new StoreConflictError('head_mismatch', `conversation ${req.conv}: commit refused`);
}

/** The conflict between a commit and the head row's static columns, if any. */
function conflictOf(req: CommitRequest, row: types.Row | undefined): StoreConflictError | null {
  const owner = num(row?.get('owner_epoch'));
  const head = num(row?.get('head_seq'));
  if (owner === null || owner !== req.epoch) {
    return new StoreConflictError('stale_epoch', `conversation ${req.conv} is claimed at epoch ${owner ?? 'none'}, not ${req.epoch}`);
  }
  if (head !== req.expectedLastSeq) {
    return new StoreConflictError('head_mismatch', `conversation ${req.conv} head is ${head ?? 'none'}, not ${req.expectedLastSeq}`);
  }
  return null;
}

function memberFromRow(row: types.Row): MemberRecord | null {
  const role = str(row.get('role')) as Role | null;
  if (role === null) return null;
  return {
    user: row.get('key') as string,
    role,
    joinedSeq: num(row.get('joined_seq')) ?? 0,
    delivered: num(row.get('delivered_seq')) ?? 0,
    read: num(row.get('read_seq')) ?? 0,
  };
}

function messageFromRow(conv: string, row: types.Row): ChatMessage {
  const m: ChatMessage = {
    conv,
    seq: num(row.get('seq')) ?? 0,
    from: row.get('sender') as string,
    cmid: row.get('cmid') as string,
    ts: num(row.get('ts')) ?? 0,
    kind: row.get('kind') as MsgKind,
  };
  const body = str(row.get('body'));
  if (body !== null) m.body = body;
  const media = str(row.get('media'));
  if (media !== null) m.media = JSON.parse(media) as MediaRef;
  const reply = num(row.get('reply_seq'));
  if (reply !== null) m.reply = { seq: reply };
  const sys = str(row.get('sys'));
  if (sys !== null) m.sys = JSON.parse(sys) as SysEvent;
  return m;
}

function mediaFromRow(row: types.Row): MediaRecord {
  const rec: MediaRecord = {
    id: row.get('id') as string,
    owner: row.get('owner') as string,
    mime: row.get('mime') as string,
    size: num(row.get('size')) ?? 0,
    key: row.get('object_key') as string,
    createdAt: num(row.get('created_at')) ?? 0,
  };
  const name = str(row.get('name'));
  if (name !== null) rec.name = name;
  const sha = str(row.get('sha256'));
  if (sha !== null) rec.sha256 = sha;
  const done = num(row.get('completed_at'));
  if (done !== null) rec.completedAt = done;
  return rec;
}
