/**
 * The SQLite store's writer thread (started by SqliteStore, never run directly). It owns the
 * one write connection and runs the group commit: requests that arrive together (one
 * `ops` message per main-thread turn, and every message that arrived during the previous
 * group's fsync) share one transaction and one fsync, each in its own savepoint, in arrival
 * order. It replies once per committed group, after the COMMIT, so a reply means durable.
 *
 * The schema is migrated by the main thread before this thread starts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { type FromWriter, type ToWriter, type WriteOp, type WriterData, toPlainError } from './sqlite-ops.js';
import { isUnavailable, openConnection, unavailable } from './sqlite-common.js';
import { MAX_GROUP, SqliteWrites } from './sqlite-writes.js';

/** Under load, at most one group transaction (one fsync) per this many ms. */
const GROUP_WINDOW_MS = 2;

function run(port: NonNullable<typeof parentPort>, data: WriterData): void {
  const send = (msg: FromWriter) => port.postMessage(msg);
  let db: Database.Database;
  let writes: SqliteWrites;
  try {
    db = openConnection(data.path, data.synchronous, data.busyTimeoutMs);
  } catch (err) {
    send({ t: 'open_failed', error: toPlainError(isUnavailable(err) ? unavailable(err) : err) });
    port.close();
    return;
  }
  try {
    writes = new SqliteWrites(db);
  } catch (err) {
    db.close();
    send({ t: 'open_failed', error: toPlainError(isUnavailable(err) ? unavailable(err) : err) });
    port.close();
    return;
  }

  let queue: WriteOp[] = [];
  let scheduled: NodeJS.Immediate | null = null;
  let delayed: NodeJS.Timeout | null = null;
  let lastFlush = -Infinity;

  /**
   * Flush on the next turn (after every message already received); but under load (the
   * previous flush began less than GROUP_WINDOW_MS ago) wait out the window, so more
   * requests share one transaction and one fsync.
   */
  const schedule = (): void => {
    if (scheduled !== null || delayed !== null) return;
    const wait = lastFlush + GROUP_WINDOW_MS - performance.now();
    if (wait > 0) {
      delayed = setTimeout(() => {
        delayed = null;
        flush(false);
      }, wait);
      return;
    }
    scheduled = setImmediate(() => {
      scheduled = null;
      flush(false);
    });
  };

  /** Runs queued requests in groups of at most MAX_GROUP; all of them when `drain`, else one group. */
  const flush = (drain: boolean): void => {
    lastFlush = performance.now();
    do {
      if (queue.length === 0) break;
      let batch: WriteOp[];
      if (queue.length <= MAX_GROUP) {
        batch = queue;
        queue = [];
      } else {
        batch = queue.splice(0, MAX_GROUP);
      }
      send(writes.runGroup(batch));
    } while (drain);
    // Let incoming messages in between big groups.
    if (queue.length > 0) schedule();
  };

  port.on('message', (msg: ToWriter) => {
    if (msg.t === 'ops') {
      if (queue.length === 0) queue = msg.ops;
      else for (const op of msg.ops) queue.push(op);
      schedule();
      return;
    }
    // close: every request sent before it is queued by now; commit them all, then stop.
    if (scheduled !== null) clearImmediate(scheduled);
    if (delayed !== null) clearTimeout(delayed);
    scheduled = null;
    delayed = null;
    flush(true);
    db.close();
    send({ t: 'closed' });
    port.close();
  });
  send({ t: 'ready' });
}

if (parentPort === null) throw new Error('sqlite-writer runs as a worker thread of SqliteStore');
run(parentPort, workerData as WriterData);
