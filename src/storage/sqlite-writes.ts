/**
 * The SQLite store's write side: applies a group of write requests (`WriteOp`) on one
 * connection in ONE outer transaction, each request in its own savepoint. A refused request
 * (conflict, duplicate, malformed) rolls back only its savepoint and is reported alone; a
 * backend failure abandons the whole group. Runs in the writer worker (sqlite-writer.ts), or
 * on the main thread for an in-memory database.
 */
import Database from 'better-sqlite3';
import type { ConvKindName, MediaRef, SysEvent } from '../protocol/frames.js';
import { DuplicateMessageError, StoreConflictError } from '../actors/ports/errors.js';
import type { CommitRequest, ConversationRecord } from '../actors/ports/store.js';
import { type GroupReply, type PlainWriteError, type WriteOp, toPlainError } from './sqlite-ops.js';
import { type ConvRow, type MemberRow, isUnavailable, toMember, unavailable } from './sqlite-common.js';

/** At most this many requests share one outer transaction. */
export const MAX_GROUP = 1024;

/** JSON of a ref/event without keys whose value is undefined, so it reads back equal. */
function json(value: MediaRef | SysEvent | undefined): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function prepareWrites(db: Database.Database) {
  return {
    convGet: db.prepare<[string], ConvRow>('SELECT kind, title, last_seq, owner_epoch FROM conversations WHERE conv = ?'),
    convClaim: db.prepare<[string, number]>(
      `INSERT INTO conversations (conv, owner_epoch) VALUES (?, ?)
       ON CONFLICT (conv) DO UPDATE SET owner_epoch = excluded.owner_epoch`,
    ),
    convCreate: db.prepare<[ConvKindName, string | null, string]>('UPDATE conversations SET kind = ?, title = ? WHERE conv = ?'),
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

    lastSeenSave: db.prepare<[string, number]>(
      `INSERT INTO last_seen (user, at) VALUES (?, ?)
       ON CONFLICT (user) DO UPDATE SET at = MAX(at, excluded.at)`,
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
    mediaRefAdd: db.prepare<[string, string]>('INSERT OR IGNORE INTO media_refs (media, conv) VALUES (?, ?)'),
    mediaDelete: db.prepare<[string]>('DELETE FROM media WHERE id = ?'),
    mediaRefsDelete: db.prepare<[string]>('DELETE FROM media_refs WHERE media = ?'),
  };
}

export class SqliteWrites {
  private readonly st: ReturnType<typeof prepareWrites>;
  private readonly savepoint: Database.Transaction<(op: WriteOp) => unknown>;
  private readonly group: Database.Transaction<
    (batch: readonly WriteOp[], values: unknown[], errors: Array<number | PlainWriteError>) => void
  >;

  constructor(private readonly db: Database.Database) {
    this.st = prepareWrites(db);
    // Called inside `group`, a better-sqlite3 transaction function runs as a SAVEPOINT.
    this.savepoint = db.transaction((op: WriteOp) => this.apply(op));
    this.group = db.transaction((batch, values, errors) => {
      for (let i = 0; i < batch.length; i++) {
        try {
          const value = this.savepoint(batch[i]!);
          if (value !== undefined) values.push(i, value);
        } catch (error) {
          // The backend failed (not the request), or SQLite ended the outer transaction:
          // abandon the whole group.
          if (isUnavailable(error) || !this.db.inTransaction) throw error;
          errors.push(i, toPlainError(error));
        }
      }
    });
  }

  /** Runs `batch` (at most MAX_GROUP requests) as one transaction; returns after its COMMIT. */
  runGroup(batch: readonly WriteOp[]): GroupReply {
    const values: unknown[] = [];
    const errors: Array<number | PlainWriteError> = [];
    try {
      this.group.immediate(batch, values, errors);
    } catch (err) {
      return { t: 'group', n: batch.length, values: [], errors: [], fail: toPlainError(unavailable(err)) };
    }
    return { t: 'group', n: batch.length, values, errors };
  }

  private apply(op: WriteOp): unknown {
    switch (op.op) {
      case 'activate':
        return this.activate(op.conv, op.epoch);
      case 'commit':
        this.commit(op.req);
        return undefined;
      case 'watermarks':
        for (const u of op.updates) this.st.watermarks.run(u.delivered, u.read, op.conv, u.user);
        return undefined;
      case 'lastSeen':
        for (const e of op.entries) this.st.lastSeenSave.run(e.user, e.at);
        return undefined;
      case 'putMedia': {
        const r = op.rec;
        this.st.mediaPut.run(r.id, r.owner, r.mime, r.size, r.name ?? null, r.key, r.sha256 ?? null, r.createdAt, r.completedAt ?? null);
        return undefined;
      }
      case 'completeMedia':
        this.st.mediaComplete.run(op.sha256, op.size, op.at, op.id);
        return undefined;
      case 'addMediaRef':
        this.st.mediaRefAdd.run(op.media, op.conv);
        return undefined;
      case 'deleteMedia':
        this.st.mediaDelete.run(op.id);
        this.st.mediaRefsDelete.run(op.id);
        return undefined;
    }
  }

  private activate(conv: string, epoch: number): ConversationRecord | null {
    const row = this.st.convGet.get(conv);
    if (row !== undefined && row.owner_epoch > epoch) {
      throw new StoreConflictError('stale_epoch', `${conv}: claimed at epoch ${row.owner_epoch}, activate at ${epoch} refused`);
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
  }

  private commit(req: CommitRequest): void {
    const { conv, messages } = req;
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
      throw new StoreConflictError('head_mismatch', `${conv}: head is ${row.last_seq}, commit expected ${req.expectedLastSeq}`);
    }
    messages.forEach((m, i) => {
      if (m.seq !== req.expectedLastSeq + 1 + i) {
        throw new StoreConflictError(
          'head_mismatch',
          `${conv}: message #${i} has seq ${m.seq}, expected ${req.expectedLastSeq + 1 + i}`,
        );
      }
      if (m.conv !== conv) throw new TypeError(`commit to ${conv} carries a message of ${m.conv}`);
    });
    // A conversation without a kind has no message yet: this cannot hide a duplicate.
    const kind = row.kind ?? req.kind;
    if (kind === undefined) throw new TypeError(`first commit to ${conv} must set kind`);
    if (messages.length > 1) {
      const keys = new Set<string>();
      for (const m of messages) {
        const key = JSON.stringify([m.from, m.cmid]);
        if (keys.has(key)) throw new TypeError(`commit to ${conv} carries ${m.from}/${m.cmid} twice`);
        keys.add(key);
      }
    }

    // Dedup rests on the UNIQUE (conv, sender, cmid) constraint: no lookup before each insert.
    // A violation aborts only that statement; the stored seqs of every key of the batch are
    // then looked up for the error, and the savepoint rolls back what was inserted before it.
    for (const m of messages) {
      try {
        this.st.msgInsert.run(conv, m.seq, m.from, m.cmid, m.ts, m.kind, m.body ?? null, json(m.media), m.reply?.seq ?? null, json(m.sys));
      } catch (err) {
        if (err instanceof Database.SqliteError && err.code === 'SQLITE_CONSTRAINT_UNIQUE') {
          const existing: Array<{ from: string; cmid: string; seq: number }> = [];
          for (const d of messages) {
            const dup = this.st.msgDup.get(conv, d.from, d.cmid);
            // Rows above the head are this request's own inserts, not stored duplicates.
            if (dup !== undefined && dup.seq <= req.expectedLastSeq) existing.push({ from: d.from, cmid: d.cmid, seq: dup.seq });
          }
          if (existing.length > 0) throw new DuplicateMessageError(existing);
        }
        throw err;
      }
    }

    if (row.kind === null) {
      this.st.convCreate.run(kind, req.title ?? null, conv);
    } else if (req.title !== undefined) {
      this.st.convTitle.run(req.title, conv);
    }
    const last = messages.at(-1);
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
}
