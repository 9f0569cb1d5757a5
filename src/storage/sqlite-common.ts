/**
 * What the SQLite store's reader (main thread) and writer (worker thread) share: opening a
 * connection, the classification of SQLite errors, row shapes and their conversion to port
 * records.
 */
import Database from 'better-sqlite3';
import type { ChatMessage, ConvKindName, MediaRef, MsgKind, Role, SysEvent } from '../protocol/frames.js';
import { StoreUnavailableError } from '../actors/ports/errors.js';
import type { MediaRecord, MemberRecord } from '../actors/ports/store.js';

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** SQLite result codes meaning "the backend could not do it now", not "the request is wrong". */
const UNAVAILABLE_CODE =
  /^SQLITE_(BUSY|LOCKED|IOERR|FULL|NOMEM|CANTOPEN|PROTOCOL|CORRUPT|NOTADB|READONLY|INTERRUPT|ABORT|NOLFS|PERM)/;

export function isUnavailable(err: unknown): boolean {
  return err instanceof Database.SqliteError && UNAVAILABLE_CODE.test(err.code);
}

export function unavailable(err: unknown): StoreUnavailableError {
  if (err instanceof StoreUnavailableError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new StoreUnavailableError(`sqlite store unavailable: ${msg}`, { cause: err });
}

/** Opens a connection in WAL mode with the store's settings. */
export function openConnection(path: string, synchronous: 'FULL' | 'NORMAL', busyTimeoutMs: number): Database.Database {
  const db = new Database(path, { timeout: busyTimeoutMs });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export interface ConvRow {
  kind: ConvKindName | null;
  title: string | null;
  last_seq: number;
  owner_epoch: number;
}

export interface MessageRow {
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

export interface MemberRow {
  user: string;
  role: Role;
  joined_seq: number;
  delivered_seq: number;
  read_seq: number;
}

export interface SummaryRow {
  conv: string;
  kind: ConvKindName;
  title: string | null;
  last_seq: number;
  delivered_seq: number;
  read_seq: number;
}

export interface MediaRow {
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

export function toMessage(r: MessageRow): ChatMessage {
  const m: ChatMessage = { conv: r.conv, seq: r.seq, from: r.sender, cmid: r.cmid, ts: r.ts, kind: r.kind };
  if (r.body !== null) m.body = r.body;
  if (r.media_json !== null) m.media = JSON.parse(r.media_json) as MediaRef;
  if (r.reply_seq !== null) m.reply = { seq: r.reply_seq };
  if (r.sys_json !== null) m.sys = JSON.parse(r.sys_json) as SysEvent;
  return m;
}

export function toMember(r: MemberRow): MemberRecord {
  return { user: r.user, role: r.role, joinedSeq: r.joined_seq, delivered: r.delivered_seq, read: r.read_seq };
}

export function toMedia(r: MediaRow): MediaRecord {
  const rec: MediaRecord = { id: r.id, owner: r.owner, mime: r.mime, size: r.size, key: r.key, createdAt: r.created_at };
  if (r.name !== null) rec.name = r.name;
  if (r.sha256 !== null) rec.sha256 = r.sha256;
  if (r.completed_at !== null) rec.completedAt = r.completed_at;
  return rec;
}
