/**
 * The messages between the SQLite store (main thread) and its writer (worker thread): write
 * requests as plain data, one reply per committed group, and refusals as plain errors that
 * the main thread rebuilds into the port's error classes.
 */
import Database from 'better-sqlite3';
import { DuplicateMessageError, StoreConflictError, StoreUnavailableError } from '../actors/ports/errors.js';
import type { CommitRequest, MediaRecord, WatermarkUpdate } from '../actors/ports/store.js';

/** One write call of the Store port. */
export type WriteOp =
  | { op: 'activate'; conv: string; epoch: number }
  | { op: 'commit'; req: CommitRequest }
  | { op: 'watermarks'; conv: string; updates: WatermarkUpdate[] }
  | { op: 'lastSeen'; entries: Array<{ user: string; at: number }> }
  | { op: 'putMedia'; rec: MediaRecord }
  | { op: 'completeMedia'; id: string; sha256: string; size: number; at: number }
  | { op: 'addMediaRef'; media: string; conv: string }
  | { op: 'deleteMedia'; id: string };

/** A refusal or failure, as plain data. */
export type PlainWriteError =
  | { k: 'conflict'; reason: 'stale_epoch' | 'head_mismatch'; msg: string }
  | { k: 'duplicate'; existing: Array<{ from: string; cmid: string; seq: number }> }
  | { k: 'type'; msg: string }
  | { k: 'unavailable'; msg: string }
  | { k: 'sqlite'; code: string; msg: string }
  | { k: 'error'; name: string; msg: string };

/**
 * The outcome of one group of `n` requests, in the order they were sent. Requests not listed
 * resolved with `undefined`; `values` and `errors` are flat [index, value, index, value, …]
 * lists so a group of plain commits replies with two empty arrays. `fail`: the whole group
 * was abandoned (nothing of it committed), every request rejects with it.
 */
export interface GroupReply {
  t: 'group';
  n: number;
  values: unknown[];
  errors: Array<number | PlainWriteError>;
  fail?: PlainWriteError;
}

export type ToWriter = { t: 'ops'; ops: WriteOp[] } | { t: 'close' };

export type FromWriter =
  | { t: 'ready' }
  | { t: 'open_failed'; error: PlainWriteError }
  | GroupReply
  | { t: 'closed' };

/** What the worker is started with (`workerData`). */
export interface WriterData {
  path: string;
  synchronous: 'FULL' | 'NORMAL';
  busyTimeoutMs: number;
}

export function toPlainError(err: unknown): PlainWriteError {
  if (err instanceof StoreConflictError) return { k: 'conflict', reason: err.reason, msg: err.message };
  if (err instanceof DuplicateMessageError) return { k: 'duplicate', existing: err.existing };
  if (err instanceof StoreUnavailableError) return { k: 'unavailable', msg: err.message };
  if (err instanceof TypeError) return { k: 'type', msg: err.message };
  if (err instanceof Database.SqliteError) return { k: 'sqlite', code: err.code, msg: err.message };
  if (err instanceof Error) return { k: 'error', name: err.name, msg: err.message };
  return { k: 'error', name: 'Error', msg: String(err) };
}

export function fromPlainError(e: PlainWriteError): Error {
  switch (e.k) {
    case 'conflict':
      return new StoreConflictError(e.reason, e.msg);
    case 'duplicate':
      return new DuplicateMessageError(e.existing);
    case 'unavailable':
      return new StoreUnavailableError(e.msg);
    case 'type':
      return new TypeError(e.msg);
    case 'sqlite':
      return new Database.SqliteError(e.msg, e.code);
    case 'error': {
      const err = new Error(e.msg);
      err.name = e.name;
      return err;
    }
  }
}
