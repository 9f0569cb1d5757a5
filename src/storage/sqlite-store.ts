/**
 * The embedded Store: one SQLite file through better-sqlite3, WAL mode, two connections.
 *
 * Writes run on a worker thread (sqlite-writer.ts) with its own connection, so the event
 * loop serving the sockets never runs a write transaction or waits for an fsync. Every write
 * call (`activate`, `commit`, `saveWatermarks`, `saveLastSeen`, media writes) becomes a plain
 * `WriteOp`; the ops of one event-loop turn cross to the worker in one message. The worker
 * group-commits: the requests that arrive together run in ONE outer transaction, each in its
 * own savepoint. A refused request (conflict, duplicate, malformed) rolls back only its
 * savepoint and rejects only its own promise, with the same error rebuilt here; promises
 * settle after the outer COMMIT (one reply per group), so one fsync serves the whole group
 * and nothing is acknowledged before it is durable. Requests run in arrival order, so their
 * outcomes are those of the same calls made one by one.
 *
 * Reads run synchronously on the main thread's own connection against the committed state
 * (WAL: readers never wait for the writer). A write's promise resolves after its COMMIT, so
 * a read issued after it sees it.
 *
 * An in-memory database (':memory:', tests) cannot be shared between two connections: it
 * keeps one connection and runs the same group commit on the main thread.
 *
 * If the writer thread dies, every pending and later write rejects with
 * StoreUnavailableError and `options.onFailure` is told; reads go on.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { ChatMessage, ConvSummary } from '../protocol/frames.js';
import { StoreUnavailableError } from '../actors/ports/errors.js';
import type {
  CommitRequest,
  ConversationRecord,
  MediaRecord,
  MemberRecord,
  Store,
  StoreInfo,
  WatermarkUpdate,
} from '../actors/ports/store.js';
import { migrate } from './sqlite-migrations.js';
import {
  type FromWriter,
  type GroupReply,
  type PlainWriteError,
  type ToWriter,
  type WriteOp,
  type WriterData,
  fromPlainError,
} from './sqlite-ops.js';
import {
  DEFAULT_BUSY_TIMEOUT_MS,
  type MediaRow,
  type MemberRow,
  type MessageRow,
  type SummaryRow,
  isUnavailable,
  openConnection,
  toMedia,
  toMember,
  toMessage,
  unavailable,
} from './sqlite-common.js';
import { MAX_GROUP, SqliteWrites } from './sqlite-writes.js';

export interface SqliteStoreOptions {
  /** File path of the database, or ':memory:'. */
  path: string;
  /** SQLite's synchronous mode; FULL (the default) fsyncs the WAL at every commit. */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for a lock held by another connection; default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * Called once if the writer thread stops unexpectedly (crash, failed to load). From then on
   * every write rejects with StoreUnavailableError; reads go on. The composition root may log
   * it and report the node unhealthy.
   */
  onFailure?: (err: Error) => void;
}

function prepareReads(db: Database.Database) {
  return {
    msgDup: db.prepare<[string, string, string], { seq: number }>(
      'SELECT seq FROM messages WHERE conv = ? AND sender = ? AND cmid = ?',
    ),
    msgRange: db.prepare<[string, number, number, number], MessageRow>(
      `SELECT * FROM messages WHERE conv = ? AND seq >= ? AND seq <= ? ORDER BY seq ASC LIMIT ?`,
    ),
    msgBefore: db.prepare<[string, number, number, number], MessageRow>(
      `SELECT * FROM messages WHERE conv = ? AND seq < ? AND seq >= ? ORDER BY seq DESC LIMIT ?`,
    ),
    memberGet: db.prepare<[string, string], MemberRow>(
      'SELECT user, role, joined_seq, delivered_seq, read_seq FROM members WHERE conv = ? AND user = ?',
    ),
    userConvs: db.prepare<[string], SummaryRow>(
      `SELECT c.conv, c.kind, c.title, c.last_seq, m.delivered_seq, m.read_seq
       FROM members m JOIN conversations c ON c.conv = m.conv
       WHERE m.user = ? AND c.kind IS NOT NULL
       ORDER BY c.last_ts DESC, c.conv ASC`,
    ),
    coMembers: db.prepare<[string, string], { user: string }>(
      `SELECT DISTINCT b.user AS user
       FROM members a JOIN members b ON b.conv = a.conv
       WHERE a.user = ? AND b.user IN (SELECT value FROM json_each(?))`,
    ),
    lastSeenGet: db.prepare<[string], { user: string; at: number }>(
      'SELECT user, at FROM last_seen WHERE user IN (SELECT value FROM json_each(?))',
    ),
    mediaGet: db.prepare<[string], MediaRow>('SELECT * FROM media WHERE id = ?'),
    mediaRefs: db.prepare<[string], { conv: string }>('SELECT conv FROM media_refs WHERE media = ? ORDER BY conv'),
    mediaUnreferenced: db.prepare<[number, number], MediaRow>(
      `SELECT * FROM media m
       WHERE m.created_at < ? AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media = m.id)
       ORDER BY m.created_at ASC, m.id ASC LIMIT ?`,
    ),
  };
}

/** Where the writes run: a worker thread, or (in-memory database) this thread. */
interface WriterLink {
  /** Sends one turn's requests; each group's outcome comes back through `onReply`. */
  post(ops: WriteOp[]): void;
  /** Commits everything posted, then stops. Resolves when the writer is gone. */
  close(): Promise<void>;
}

/**
 * The writer's entry sits next to this module: sqlite-writer.js in dist/ (what
 * `node dist/node.js` runs), sqlite-writer.ts when this module itself runs from source
 * (vitest, tsx). Node 20 cannot load a .ts worker entry by itself, and
 * `execArgv: ['--import', 'tsx']` does not help (inside a worker the entry is loaded
 * before the imported hooks apply: ERR_UNKNOWN_FILE_EXTENSION). So from source the worker
 * starts from a small eval'd bootstrap that registers tsx (a devDependency, needed only when
 * running from source) through its ESM API and imports the .ts entry through it. Pointing
 * at dist/ from source was rejected: it would silently run a stale build of the writer.
 */
function startWorker(data: WriterData): Worker {
  // The writer does not inherit the process's node options (a worker does by default):
  // preloads (`--import`, `--require`) are meant for the main thread, and one that acts on
  // process-wide state misbehaves in a worker (bench/guard.mjs ends the process when stdin
  // ends, and a worker's stdin is empty: it killed the node at start).
  const common = { workerData: data, execArgv: [] as string[] };
  const self = import.meta.url;
  if (!fileURLToPath(self).endsWith('.ts')) {
    return new Worker(new URL('./sqlite-writer.js', self), common);
  }
  const entry = new URL('./sqlite-writer.ts', self).href;
  const code =
    `import(${JSON.stringify(tsxEsmApiUrl())})` +
    `.then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { ...common, eval: true });
}

/** tsx's ESM API (`tsx/esm/api` under the `import` condition), as a file URL. */
function tsxEsmApiUrl(): string {
  const pkgPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } } | string>;
  };
  const api = pkg.exports?.['./esm/api'];
  const rel = typeof api === 'object' ? api.import?.default : undefined;
  if (rel === undefined) throw new Error(`sqlite store: cannot find tsx/esm/api in ${pkgPath}`);
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

class WorkerLink implements WriterLink {
  private outstanding = 0;
  private closedSeen = false;
  private readonly exited: Promise<void>;

  private constructor(
    private readonly worker: Worker,
    onReply: (r: GroupReply) => void,
    onFailure: (err: Error) => void,
  ) {
    worker.on('message', (msg: FromWriter) => {
      if (msg.t === 'group') {
        this.outstanding -= msg.n;
        // Pending writes keep the process alive, like pending I/O; an idle store does not.
        if (this.outstanding === 0) worker.unref();
        onReply(msg);
      } else if (msg.t === 'closed') {
        this.closedSeen = true;
      }
    });
    worker.on('error', (err) => onFailure(err));
    worker.on('messageerror', (err) => onFailure(err));
    this.exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        if (!this.closedSeen) onFailure(new Error(`sqlite writer thread exited (code ${code})`));
        resolve();
      });
    });
    worker.unref();
  }

  /** Starts the writer thread and waits until its connection is open. */
  static async start(
    data: WriterData,
    onReply: (r: GroupReply) => void,
    onFailure: (err: Error) => void,
  ): Promise<WorkerLink> {
    const worker = startWorker(data);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (msg: FromWriter) => {
        if (msg.t === 'ready') done(null);
        else if (msg.t === 'open_failed') done(fromPlainError(msg.error));
      };
      const onError = (err: Error) => done(new Error(`sqlite writer thread failed to start: ${err.message}`, { cause: err }));
      const onExit = (code: number) => done(new Error(`sqlite writer thread exited at start (code ${code})`));
      const done = (err: Error | null) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        if (err === null) resolve();
        else {
          void worker.terminate();
          reject(err);
        }
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    return new WorkerLink(worker, onReply, onFailure);
  }

  post(ops: WriteOp[]): void {
    if (this.outstanding === 0) this.worker.ref();
    this.outstanding += ops.length;
    this.worker.postMessage({ t: 'ops', ops } satisfies ToWriter);
  }

  async close(): Promise<void> {
    this.worker.ref();
    this.worker.postMessage({ t: 'close' } satisfies ToWriter);
    await this.exited;
  }
}

/** An in-memory database: the same group commit, on this thread and connection. */
class InlineLink implements WriterLink {
  constructor(
    private readonly writes: SqliteWrites,
    private readonly onReply: (r: GroupReply) => void,
  ) {}

  post(ops: WriteOp[]): void {
    for (let i = 0; i < ops.length; i += MAX_GROUP) this.onReply(this.writes.runGroup(ops.slice(i, i + MAX_GROUP)));
  }

  async close(): Promise<void> {}
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class SqliteStore implements Store {
  private readonly st: ReturnType<typeof prepareReads>;
  private link!: WriterLink;
  /** Requests sent or about to be sent, oldest first from `head`; replies settle them in order. */
  private waiting: Array<Pending | undefined> = [];
  private head = 0;
  /** Requests of this turn, posted together on the next setImmediate. */
  private outbox: WriteOp[] = [];
  private posting: NodeJS.Immediate | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private failure: Error | null = null;

  /** Open (creating if needed) and migrate the database, then start the writer. Throws StoreUnavailableError if it cannot. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const sync = options.synchronous ?? 'FULL';
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    let db: Database.Database | undefined;
    let store: SqliteStore;
    try {
      db = openConnection(options.path, sync, busyTimeoutMs);
      // Migrations run here, once, before the writer's connection opens.
      migrate(db);
      store = new SqliteStore(db, sync, options.onFailure);
    } catch (err) {
      db?.close();
      throw isUnavailable(err) ? unavailable(err) : err;
    }
    try {
      if (options.path === ':memory:' || options.path === '') {
        store.link = new InlineLink(new SqliteWrites(db), store.onReply);
      } else {
        store.link = await WorkerLink.start({ path: options.path, synchronous: sync, busyTimeoutMs }, store.onReply, store.onFailure);
      }
    } catch (err) {
      db.close();
      throw isUnavailable(err) ? unavailable(err) : err;
    }
    return store;
  }

  private constructor(
    private readonly db: Database.Database,
    private readonly sync: 'FULL' | 'NORMAL',
    private readonly failureHook: ((err: Error) => void) | undefined,
  ) {
    this.st = prepareReads(db);
  }

  info(): StoreInfo {
    return { kind: 'sqlite', sync: this.sync };
  }

  /** Why the writer thread stopped, if it did; writes reject while this is set. */
  writerFailure(): Error | null {
    return this.failure;
  }

  // ---- writes -------------------------------------------------------------------------------

  private write<T>(op: WriteOp): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('sqlite store is closed'));
    if (this.failure !== null) return Promise.reject(this.writerDown());
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ resolve: resolve as (v: unknown) => void, reject });
      this.outbox.push(op);
      this.posting ??= setImmediate(this.post);
    });
  }

  /** One message to the writer per event-loop turn. */
  private readonly post = (): void => {
    this.posting = null;
    if (this.outbox.length === 0) return;
    const ops = this.outbox;
    this.outbox = [];
    this.link.post(ops);
  };

  /** The outcome of the next `r.n` requests, settled in the order they were made. */
  private readonly onReply = (r: GroupReply): void => {
    const start = this.head;
    this.head += r.n;
    const failed = r.fail === undefined ? null : fromPlainError(r.fail);
    const { values, errors } = r;
    let vi = 0;
    let ei = 0;
    for (let i = 0; i < r.n; i++) {
      const p = this.waiting[start + i];
      this.waiting[start + i] = undefined;
      if (p === undefined) continue;
      if (failed !== null) p.reject(failed);
      else if (errors[ei] === i) {
        p.reject(fromPlainError(errors[ei + 1] as PlainWriteError));
        ei += 2;
      } else if (values[vi] === i) {
        p.resolve(values[vi + 1]);
        vi += 2;
      } else p.resolve(undefined);
    }
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  };

  private readonly onFailure = (err: Error): void => {
    if (this.failure !== null) return;
    this.failure = err;
    if (this.posting !== null) clearImmediate(this.posting);
    this.posting = null;
    this.outbox = [];
    const e = this.writerDown();
    const waiting = this.waiting;
    const head = this.head;
    this.waiting = [];
    this.head = 0;
    for (let i = head; i < waiting.length; i++) waiting[i]?.reject(e);
    this.failureHook?.(err);
  };

  private writerDown(): StoreUnavailableError {
    return new StoreUnavailableError(`sqlite store unavailable: writer stopped: ${this.failure?.message}`, {
      cause: this.failure,
    });
  }

  private read<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('sqlite store is closed'));
    try {
      return Promise.resolve(run());
    } catch (err) {
      return Promise.reject(isUnavailable(err) ? unavailable(err) : err);
    }
  }

  // ---- conversations ------------------------------------------------------------------------

  activate(conv: string, epoch: number): Promise<ConversationRecord | null> {
    return this.write({ op: 'activate', conv, epoch });
  }

  commit(req: CommitRequest): Promise<void> {
    return this.write({ op: 'commit', req });
  }

  findDuplicate(conv: string, from: string, cmid: string): Promise<number | null> {
    return this.read(() => this.st.msgDup.get(conv, from, cmid)?.seq ?? null);
  }

  saveWatermarks(conv: string, updates: WatermarkUpdate[]): Promise<void> {
    return this.write({ op: 'watermarks', conv, updates });
  }

  messages(conv: string, fromSeq: number, toSeq: number, limit: number): Promise<ChatMessage[]> {
    return this.read(() =>
      limit <= 0 ? [] : this.st.msgRange.all(conv, fromSeq, toSeq, Math.floor(limit)).map(toMessage),
    );
  }

  messagesBefore(conv: string, before: number, limit: number, minSeq: number): Promise<ChatMessage[]> {
    return this.read(() =>
      limit <= 0 ? [] : this.st.msgBefore.all(conv, before, minSeq, Math.floor(limit)).map(toMessage).reverse(),
    );
  }

  member(conv: string, user: string): Promise<MemberRecord | null> {
    return this.read(() => {
      const r = this.st.memberGet.get(conv, user);
      return r === undefined ? null : toMember(r);
    });
  }

  userConversations(user: string): Promise<ConvSummary[]> {
    return this.read(() =>
      this.st.userConvs.all(user).map((r) => {
        const s: ConvSummary = {
          conv: r.conv,
          kind: r.kind,
          lastSeq: r.last_seq,
          delivered: r.delivered_seq,
          read: r.read_seq,
        };
        if (r.title !== null) s.title = r.title;
        return s;
      }),
    );
  }

  // ---- presence -----------------------------------------------------------------------------

  coMembers(user: string, candidates: string[]): Promise<string[]> {
    return this.read(() =>
      candidates.length === 0 ? [] : this.st.coMembers.all(user, JSON.stringify([...new Set(candidates)])).map((r) => r.user),
    );
  }

  saveLastSeen(entries: Array<{ user: string; at: number }>): Promise<void> {
    return this.write({ op: 'lastSeen', entries });
  }

  lastSeen(users: string[]): Promise<Map<string, number>> {
    return this.read(() => {
      const out = new Map<string, number>();
      if (users.length === 0) return out;
      for (const r of this.st.lastSeenGet.all(JSON.stringify(users))) out.set(r.user, r.at);
      return out;
    });
  }

  // ---- media --------------------------------------------------------------------------------

  putMedia(rec: MediaRecord): Promise<void> {
    return this.write({ op: 'putMedia', rec });
  }

  completeMedia(id: string, sha256: string, size: number, at: number): Promise<void> {
    return this.write({ op: 'completeMedia', id, sha256, size, at });
  }

  media(id: string): Promise<MediaRecord | null> {
    return this.read(() => {
      const r = this.st.mediaGet.get(id);
      return r === undefined ? null : toMedia(r);
    });
  }

  addMediaRef(media: string, conv: string): Promise<void> {
    return this.write({ op: 'addMediaRef', media, conv });
  }

  mediaRefs(media: string): Promise<string[]> {
    return this.read(() => this.st.mediaRefs.all(media).map((r) => r.conv));
  }

  unreferencedMedia(before: number, limit: number): Promise<MediaRecord[]> {
    return this.read(() => (limit <= 0 ? [] : this.st.mediaUnreferenced.all(before, Math.floor(limit)).map(toMedia)));
  }

  deleteMedia(id: string): Promise<void> {
    return this.write({ op: 'deleteMedia', id });
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Commits what is queued, stops the writer, then closes the read connection. Calls made
   * from now on reject with StoreUnavailableError.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.posting !== null) {
        clearImmediate(this.posting);
        this.post();
      }
      try {
        await this.link.close();
      } finally {
        this.db.close();
      }
    })();
    return this.closing;
  }
}
