/**
 * The embedded Store: one SQLite file through better-sqlite3, WAL mode.
 *
 * Writes go through a group-commit queue: every write call (`activate`, `commit`,
 * `saveWatermarks`, `saveLastSeen`, media writes) enqueues a request, and on the next
 * `setImmediate` all queued requests run in ONE outer transaction, each in its own savepoint.
 * A refused request (conflict, duplicate) rolls back only its savepoint and rejects only its
 * own promise; promises settle after the outer COMMIT, so one fsync serves the whole batch
 * and nothing is acknowledged before it is durable. Requests run in arrival order, so their
 * outcomes are those of the same calls made one by one.
 *
 * Reads run synchronously against the committed state.
 */
import Database from 'better-sqlite3';
import type { ChatMessage, ConvKindName, ConvSummary, MediaRef, MsgKind, Role, SysEvent } from '../protocol/frames.js';
import { DuplicateMessageError, StoreConflictError, StoreUnavailableError } from '../actors/ports/errors.js';
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

export interface SqliteStoreOptions {
  /** File path of the database, or ':memory:'. */
  path: string;
  /** SQLite's synchronous mode; FULL (the default) fsyncs the WAL at every commit. */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for a lock held by another connection; default 5000 ms. */
  busyTimeoutMs?: number;
}

/** At most this many queued requests share one outer transaction. */
const MAX_GROUP = 1024;
/** Under load, at most one group transaction (one fsync) per this many ms. */
const GROUP_WINDOW_MS = 2;

/** SQLite result codes meaning "the backend could not do it now", not "the request is wrong". */
const UNAVAILABLE_CODE =
  /^SQLITE_(BUSY|LOCKED|IOERR|FULL|NOMEM|CANTOPEN|PROTOCOL|CORRUPT|NOTADB|READONLY|INTERRUPT|ABORT|NOLFS|PERM)/;

function isUnavailable(err: unknown): boolean {
  return err instanceof Database.SqliteError && UNAVAILABLE_CODE.test(err.code);
}

function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`sqlite store unavailable: ${msg}`, { cause: err });
}

interface ConvRow {
  kind: ConvKindName | null;
  title: string | null;
  last_seq: number;
  owner_epoch: number;
}

interface MessageRow {
  conv: string;
  seq: number;
  sender: string;
  cmid: string;
  ts: number;
  kind: MsgKind;
  body: string | null;
  media_json: string | null;
  reply_seq: number | null;
  sys_json: string | null;
}

interface MemberRow {
  user: string;
  role: Role;
  joined_seq: number;
  delivered_seq: number;
  read_seq: number;
}

interface SummaryRow {
  conv: string;
  kind: ConvKindName;
  title: string | null;
  last_seq: number;
  delivered_seq: number;
  read_seq: number;
}

interface MediaRow {
  id: string;
  owner: string;
  mime: string;
  size: number;
  name: string | null;
  key: string;
  sha256: string | null;
  created_at: number;
  completed_at: number | null;
}

interface Pending {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function toMessage(r: MessageRow): ChatMessage {
  const m: ChatMessage = { conv: r.conv, seq: r.seq, from: r.sender, cmid: r.cmid, ts: r.ts, kind: r.kind };
  if (r.body !== null) m.body = r.body;
  if (r.media_json !== null) m.media = JSON.parse(r.media_json) as MediaRef;
  if (r.reply_seq !== null) m.reply = { seq: r.reply_seq };
  if (r.sys_json !== null) m.sys = JSON.parse(r.sys_json) as SysEvent;
  return m;
}

function toMember(r: MemberRow): MemberRecord {
  return { user: r.user, role: r.role, joinedSeq: r.joined_seq, delivered: r.delivered_seq, read: r.read_seq };
}

function toMedia(r: MediaRow): MediaRecord {
  const rec: MediaRecord = { id: r.id, owner: r.owner, mime: r.mime, size: r.size, key: r.key, createdAt: r.created_at };
  if (r.name !== null) rec.name = r.name;
  if (r.sha256 !== null) rec.sha256 = r.sha256;
  if (r.completed_at !== null) rec.completedAt = r.completed_at;
  return rec;
}

/** JSON of a ref/event without keys whose value is undefined, so it reads back equal. */
function json(value: MediaRef | SysEvent | undefined): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function prepareStatements(db: Database.Database) {
  return {
    convGet: db.prepare<[string], ConvRow>('SELECT kind, title, last_seq, owner_epoch FROM conversations WHERE conv = ?'),
    convClaim: db.prepare<[string, number]>(
      `INSERT INTO conversations (conv, owner_epoch) VALUES (?, ?)
       ON CONFLICT (conv) DO UPDATE SET owner_epoch = excluded.owner_epoch`,
    ),
    convCreate: db.prepare<[string, string | null, string]>('UPDATE conversations SET kind = ?, title = ? WHERE conv = ?'),
    convTitle: db.prepare<[string, string]>('UPDATE conversations SET title = ? WHERE conv = ?'),
    convHead: db.prepare<[number, number, string]>('UPDATE conversations SET last_seq = ?, last_ts = ? WHERE conv = ?'),

    msgInsert: db.prepare<
      [string, number, string, string, number, string, string | null, string | null, number | null, string | null]
    >(
      `INSERT INTO messages (conv, seq, sender, cmid, ts, kind, body, media_json, reply_seq, sys_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
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
    memberAll: db.prepare<[string], MemberRow>(
      'SELECT user, role, joined_seq, delivered_seq, read_seq FROM members WHERE conv = ? ORDER BY user',
    ),
    memberUpsert: db.prepare<[string, string, string, number, number, number]>(
      `INSERT INTO members (conv, user, role, joined_seq, delivered_seq, read_seq) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (conv, user) DO UPDATE SET
         role = excluded.role,
         joined_seq = excluded.joined_seq,
         delivered_seq = MAX(delivered_seq, excluded.delivered_seq),
         read_seq = MAX(read_seq, excluded.read_seq)`,
    ),
    memberRemove: db.prepare<[string, string]>('DELETE FROM members WHERE conv = ? AND user = ?'),
    watermarks: db.prepare<[number, number, string, string]>(
      `UPDATE members SET delivered_seq = MAX(delivered_seq, ?), read_seq = MAX(read_seq, ?)
       WHERE conv = ? AND user = ?`,
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

    lastSeenSave: db.prepare<[string, number]>(
      `INSERT INTO last_seen (user, at) VALUES (?, ?)
       ON CONFLICT (user) DO UPDATE SET at = MAX(at, excluded.at)`,
    ),
    lastSeenGet: db.prepare<[string], { user: string; at: number }>(
      'SELECT user, at FROM last_seen WHERE user IN (SELECT value FROM json_each(?))',
    ),

    mediaPut: db.prepare<
      [string, string, string, number, string | null, string, string | null, number, number | null]
    >(
      `INSERT INTO media (id, owner, mime, size, name, key, sha256, created_at, completed_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, mime = excluded.mime, size = excluded.size,
         name = excluded.name, key = excluded.key, sha256 = excluded.sha256,
         created_at = excluded.created_at, completed_at = excluded.completed_at`,
    ),
    mediaComplete: db.prepare<[string, number, number, string]>(
      'UPDATE media SET sha256 = ?, size = ?, completed_at = ? WHERE id = ?',
    ),
    mediaGet: db.prepare<[string], MediaRow>('SELECT * FROM media WHERE id = ?'),
    mediaRefAdd: db.prepare<[string, string]>('INSERT OR IGNORE INTO media_refs (media, conv) VALUES (?, ?)'),
    mediaRefs: db.prepare<[string], { conv: string }>('SELECT conv FROM media_refs WHERE media = ? ORDER BY conv'),
    mediaUnreferenced: db.prepare<[number, number], MediaRow>(
      `SELECT * FROM media m
       WHERE m.created_at < ? AND NOT EXISTS (SELECT 1 FROM media_refs r WHERE r.media = m.id)
       ORDER BY m.created_at ASC, m.id ASC LIMIT ?`,
    ),
    mediaDelete: db.prepare<[string]>('DELETE FROM media WHERE id = ?'),
    mediaRefsDelete: db.prepare<[string]>('DELETE FROM media_refs WHERE media = ?'),
  };
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly sync: 'FULL' | 'NORMAL';
  private readonly st: ReturnType<typeof prepareStatements>;
  private readonly group: Database.Transaction<(batch: Pending[]) => Outcome[]>;
  private readonly savepoint: Database.Transaction<(run: () => unknown) => unknown>;
  private queue: Pending[] = [];
  private scheduled: NodeJS.Immediate | null = null;
  private delayed: NodeJS.Timeout | null = null;
  private lastFlush = -Infinity;
  private closed = false;

  /** Open (creating if needed) and migrate the database. Throws StoreUnavailableError if it cannot. */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    return new SqliteStore(options);
  }

  constructor(options: SqliteStoreOptions) {
    this.sync = options.synchronous ?? 'FULL';
    let db: Database.Database | undefined;
    try {
      db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.sync}`);
      db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
      migrate(db);
      this.st = prepareStatements(db);
    } catch (err) {
      db?.close();
      throw isUnavailable(err) ? unavailable(err) : err;
    }
    this.db = db;
    this.savepoint = db.transaction((run: () => unknown) => run());
    this.group = db.transaction((batch: Pending[]) => {
      const outcomes: Outcome[] = [];
      for (const p of batch) {
        try {
          outcomes.push({ ok: true, value: this.savepoint(p.run) });
        } catch (error) {
          // The backend failed (not the request), or SQLite ended the outer transaction:
          // abandon the whole group.
          if (isUnavailable(error) || !this.db.inTransaction) throw error;
          outcomes.push({ ok: false, error });
        }
      }
      return outcomes;
    });
  }

  info(): StoreInfo {
    return { kind: 'sqlite', sync: this.sync };
  }

  // ---- group commit -------------------------------------------------------------------------

  private write<T>(run: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('sqlite store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /**
   * Flush on the next turn; but under load (the previous flush was less than GROUP_WINDOW_MS
   * ago) wait out the window, so more requests share one transaction and one fsync.
   */
  private schedule(): void {
    if (this.scheduled !== null || this.delayed !== null) return;
    const wait = this.lastFlush + GROUP_WINDOW_MS - performance.now();
    if (wait > 0) {
      this.delayed = setTimeout(() => {
        this.delayed = null;
        this.flush(false);
      }, wait);
      return;
    }
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      this.flush(false);
    });
  }

  /** Runs queued requests in groups of at most MAX_GROUP; all of them when `drain`, else one group. */
  private flush(drain: boolean): void {
    this.lastFlush = performance.now();
    do {
      const batch = this.queue.splice(0, MAX_GROUP);
      if (batch.length === 0) break;
      let outcomes: Outcome[];
      try {
        outcomes = this.group.immediate(batch);
      } catch (err) {
        const e = unavailable(err);
        for (const p of batch) p.reject(e);
        continue;
      }
      batch.forEach((p, i) => {
        const o = outcomes[i];
        if (o === undefined) p.reject(new StoreUnavailableError('sqlite store: request lost in group commit'));
        else if (o.ok) p.resolve(o.value);
        else p.reject(o.error);
      });
    } while (drain);
    // Let other work (reads, timers, I/O) in between big groups.
    if (this.queue.length > 0) this.schedule();
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
    return this.write(() => {
      const row = this.st.convGet.get(conv);
      if (row !== undefined && row.owner_epoch > epoch) {
        throw new StoreConflictError(
          'stale_epoch',
          `${conv}: claimed at epoch ${row.owner_epoch}, activate at ${epoch} refused`,
        );
      }
      this.st.convClaim.run(conv, epoch);
      if (row === undefined || row.kind === null) return null;
      const rec: ConversationRecord = {
        conv,
        kind: row.kind,
        lastSeq: row.last_seq,
        members: this.st.memberAll.all(conv).map(toMember),
      };
      if (row.title !== null) rec.title = row.title;
      return rec;
    });
  }

  commit(req: CommitRequest): Promise<void> {
    return this.write(() => this.applyCommit(req));
  }

  private applyCommit(req: CommitRequest): void {
    const { conv } = req;
    const row = this.st.convGet.get(conv);
    if (row === undefined || row.owner_epoch !== req.epoch) {
      throw new StoreConflictError(
        'stale_epoch',
        row === undefined
          ? `${conv}: not claimed, commit at epoch ${req.epoch} refused`
          : `${conv}: claimed at epoch ${row.owner_epoch}, commit at epoch ${req.epoch} refused`,
      );
    }
    if (row.last_seq !== req.expectedLastSeq) {
      throw new StoreConflictError(
        'head_mismatch',
        `${conv}: head is ${row.last_seq}, commit expected ${req.expectedLastSeq}`,
      );
    }
    req.messages.forEach((m, i) => {
      if (m.seq !== req.expectedLastSeq + 1 + i) {
        throw new StoreConflictError(
          'head_mismatch',
          `${conv}: message #${i} has seq ${m.seq}, expected ${req.expectedLastSeq + 1 + i}`,
        );
      }
      if (m.conv !== conv) throw new TypeError(`commit to ${conv} carries a message of ${m.conv}`);
    });
    const keys = new Set<string>();
    const existing: Array<{ from: string; cmid: string; seq: number }> = [];
    for (const m of req.messages) {
      const key = JSON.stringify([m.from, m.cmid]);
      if (keys.has(key)) throw new TypeError(`commit to ${conv} carries ${m.from}/${m.cmid} twice`);
      keys.add(key);
      const dup = this.st.msgDup.get(conv, m.from, m.cmid);
      if (dup !== undefined) existing.push({ from: m.from, cmid: m.cmid, seq: dup.seq });
    }
    if (existing.length > 0) throw new DuplicateMessageError(existing);

    if (row.kind === null) {
      if (req.kind === undefined) throw new TypeError(`first commit to ${conv} must set kind`);
      this.st.convCreate.run(req.kind, req.title ?? null, conv);
    } else if (req.title !== undefined) {
      this.st.convTitle.run(req.title, conv);
    }
    for (const m of req.messages) {
      this.st.msgInsert.run(
        conv,
        m.seq,
        m.from,
        m.cmid,
        m.ts,
        m.kind,
        m.body ?? null,
        json(m.media),
        m.reply?.seq ?? null,
        json(m.sys),
      );
    }
    const last = req.messages.at(-1);
    if (last !== undefined) this.st.convHead.run(last.seq, last.ts, conv);
    for (const change of req.members ?? []) {
      if (change.op === 'remove') {
        this.st.memberRemove.run(conv, change.user);
      } else {
        const mb = change.member;
        this.st.memberUpsert.run(conv, mb.user, mb.role, mb.joinedSeq, mb.delivered, mb.read);
      }
    }
  }

  findDuplicate(conv: string, from: string, cmid: string): Promise<number | null> {
    return this.read(() => this.st.msgDup.get(conv, from, cmid)?.seq ?? null);
  }

  saveWatermarks(conv: string, updates: WatermarkUpdate[]): Promise<void> {
    return this.write(() => {
      for (const u of updates) this.st.watermarks.run(u.delivered, u.read, conv, u.user);
    });
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
    return this.write(() => {
      for (const e of entries) this.st.lastSeenSave.run(e.user, e.at);
    });
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
    return this.write(() => {
      this.st.mediaPut.run(
        rec.id,
        rec.owner,
        rec.mime,
        rec.size,
        rec.name ?? null,
        rec.key,
        rec.sha256 ?? null,
        rec.createdAt,
        rec.completedAt ?? null,
      );
    });
  }

  completeMedia(id: string, sha256: string, size: number, at: number): Promise<void> {
    return this.write(() => {
      this.st.mediaComplete.run(sha256, size, at, id);
    });
  }

  media(id: string): Promise<MediaRecord | null> {
    return this.read(() => {
      const r = this.st.mediaGet.get(id);
      return r === undefined ? null : toMedia(r);
    });
  }

  addMediaRef(media: string, conv: string): Promise<void> {
    return this.write(() => {
      this.st.mediaRefAdd.run(media, conv);
    });
  }

  mediaRefs(media: string): Promise<string[]> {
    return this.read(() => this.st.mediaRefs.all(media).map((r) => r.conv));
  }

  unreferencedMedia(before: number, limit: number): Promise<MediaRecord[]> {
    return this.read(() => (limit <= 0 ? [] : this.st.mediaUnreferenced.all(before, Math.floor(limit)).map(toMedia)));
  }

  deleteMedia(id: string): Promise<void> {
    return this.write(() => {
      this.st.mediaDelete.run(id);
      this.st.mediaRefsDelete.run(id);
    });
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Commits what is queued, then closes the database. Later calls reject with StoreUnavailableError. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.scheduled !== null) {
      clearImmediate(this.scheduled);
      this.scheduled = null;
    }
    if (this.delayed !== null) {
      clearTimeout(this.delayed);
      this.delayed = null;
    }
    this.flush(true);
    this.closed = true;
    this.db.close();
  }
}
