/**
 * Throttled last-seen writes: the user actors of a node note each activity here, and one
 * timer per node writes everything noted in the last `flushMs` in ONE `saveLastSeen` call.
 * So store writes grow with active users per flush interval, never with messages, and a
 * crash loses at most the last `flushMs` (plus the write in flight) of last-seen updates.
 *
 * `pending(user)` lets a user actor that reloads last seen from the store see a time noted
 * but not yet written (e.g. after passivation). A failed write keeps its entries and retries.
 */
import type { Log, Store } from './ports/index.js';

export interface LastSeenWriterOptions {
  store: Store;
  log: Log;
  /** Longest delay between an activity and its write. */
  flushMs: number;
}

export class LastSeenWriter {
  private noted = new Map<string, number>();
  private inflight = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly opts: LastSeenWriterOptions) {}

  note(user: string, at: number): void {
    const prev = this.noted.get(user);
    if (prev === undefined || at > prev) this.noted.set(user, at);
    this.schedule();
  }

  /** A time noted (or being written) for `user` that the store may not have yet. */
  pending(user: string): number | undefined {
    const a = this.noted.get(user);
    const b = this.inflight.get(user);
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.max(a, b);
  }

  /** Write what is noted now (waits for a write in flight first). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.writing) await this.writing;
    if (this.noted.size === 0) return;
    this.inflight = this.noted;
    this.noted = new Map();
    const entries = [...this.inflight].map(([user, at]) => ({ user, at }));
    this.writing = this.opts.store.saveLastSeen(entries).then(
      () => {
        this.inflight = new Map();
      },
      (err: unknown) => {
        this.opts.log.warn({ users: entries.length, err: String(err) }, 'last seen write failed; will retry');
        for (const e of entries) this.note(e.user, e.at);
        this.inflight = new Map();
      },
    );
    try {
      await this.writing;
    } finally {
      this.writing = null;
    }
  }

  /** Final flush (node stop); later notes are written by nobody. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.opts.flushMs);
    this.timer.unref();
  }
}
