/**
 * Idempotent requests (send, group.create) kept until the server answers for good.
 *
 * An item is `queued` (to be written when there is a connection), `inflight` (written on
 * the current connection, awaiting its reply) or `waiting` (a retry timer runs). Only queued
 * items are written, so one connection never carries two copies of the same cmid at once;
 * a closed connection turns its inflight items back into queued ones, to be written again
 * (same cmid) after the next welcome.
 *
 * Replies: the ack/ok settles the item. `unavailable`, `internal` and `rate_limited` retry it
 * (after `retryMs` when given, else with backoff); `unauthorized` leaves it for the next
 * connection; every other code (bad_request, not_found, forbidden, too_large, limit, …)
 * rejects it.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { RETRYABLE_CODES, SwitchboardError } from './errors.js';

export type OutboxState = 'queued' | 'inflight' | 'waiting';
export type FailOutcome = 'retry' | 'wait' | 'rejected';

export interface OutboxItem<F = unknown> {
  readonly key: string;
  readonly frame: F;
  state: OutboxState;
  /** Times written to a connection. */
  attempts: number;
  /** Retryable errors in a row (drives the backoff). */
  failures: number;
  lastError?: SwitchboardError;
}

export interface OutboxOptions<F> {
  /** Writes the item on the current connection; false when there is none (it stays queued). */
  transmit: (item: OutboxItem<F>) => boolean;
  /** Delays for retries without `retryMs`; default 100 ms .. 5 s. */
  retry?: BackoffOptions;
  /** When given: adding a key already here with a frame this calls different is refused (bad_request). */
  sameFrame?: (a: F, b: F) => boolean;
  /** Told about each scheduled retry (for logs and tests). */
  onRetry?: (item: OutboxItem<F>, delayMs: number, err: SwitchboardError) => void;
}

/** What to do with an item after a wire error. */
export function classifyError(code: string): FailOutcome {
  if (RETRYABLE_CODES.has(code)) return 'retry';
  if (code === 'unauthorized' || code === 'disconnected' || code === 'timeout') return 'wait';
  return 'rejected';
}

interface Entry<F, R> extends OutboxItem<F> {
  promise: Promise<R>;
  resolve: (r: R) => void;
  reject: (e: SwitchboardError) => void;
  timer?: ReturnType<typeof setTimeout>;
}

export class Outbox<F, R> {
  private readonly entries = new Map<string, Entry<F, R>>();
  private readonly backoff: Backoff;
  private flushing = false;
  private again = false;

  constructor(private readonly opts: OutboxOptions<F>) {
    this.backoff = new Backoff(opts.retry ?? { minMs: 100, maxMs: 5_000 });
  }

  /**
   * Adds an item and writes it at once when connected. Adding a key that is already here
   * returns the promise of the item already here, or, when `sameFrame` says the frames
   * differ, rejects with bad_request.
   */
  add(key: string, frame: F): Promise<R> {
    const existing = this.entries.get(key);
    if (existing) {
      if (this.opts.sameFrame && !this.opts.sameFrame(existing.frame, frame)) {
        return Promise.reject(new SwitchboardError('bad_request', `${key} is pending with different content`));
      }
      return existing.promise;
    }
    let resolve!: (r: R) => void;
    let reject!: (e: SwitchboardError) => void;
    const promise = new Promise<R>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.entries.set(key, { key, frame, state: 'queued', attempts: 0, failures: 0, promise, resolve, reject });
    this.flush();
    return promise;
  }

  /** Writes every queued item, oldest first, until transmit says there is no connection. */
  flush(): void {
    if (this.flushing) {
      this.again = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.again = false;
        for (const e of this.entries.values()) {
          if (e.state !== 'queued') continue;
          e.state = 'inflight';
          e.attempts++;
          if (!this.opts.transmit(e)) {
            e.state = 'queued';
            e.attempts--;
            this.again = false;
            return;
          }
        }
      } while (this.again);
    } finally {
      this.flushing = false;
    }
  }

  /** The final reply arrived: settles the item. False when the key is unknown. */
  settle(key: string, reply: R): boolean {
    const e = this.entries.get(key);
    if (!e) return false;
    this.remove(e);
    e.resolve(reply);
    return true;
  }

  /** A wire error answered the item's current attempt. */
  fail(key: string, err: SwitchboardError): FailOutcome | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    e.lastError = err;
    const outcome = classifyError(err.code);
    if (outcome === 'rejected') {
      this.remove(e);
      e.reject(err);
    } else if (outcome === 'retry') {
      const delay = err.retryMs !== undefined && err.retryMs >= 0 ? err.retryMs : this.backoff.delay(e.failures);
      e.failures++;
      e.state = 'waiting';
      if (e.timer) clearTimeout(e.timer);
      e.timer = setTimeout(() => {
        e.timer = undefined;
        if (this.entries.get(key) !== e || e.state !== 'waiting') return;
        e.state = 'queued';
        this.flush();
      }, delay);
      this.opts.onRetry?.(e, delay, err);
    }
    // 'wait': stays inflight on this connection; disconnected() requeues it.
    return outcome;
  }

  /** The connection closed: what was in flight on it is queued again. Retry timers keep running. */
  disconnected(): void {
    for (const e of this.entries.values()) if (e.state === 'inflight') e.state = 'queued';
  }

  /** Rejects and drops every item (the client is closed for good). */
  rejectAll(err: SwitchboardError): void {
    const all = [...this.entries.values()];
    for (const e of all) this.remove(e);
    for (const e of all) e.reject(err);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): Readonly<OutboxItem<F>> | undefined {
    return this.entries.get(key);
  }

  get size(): number {
    return this.entries.size;
  }

  /** A snapshot of the items, oldest first. */
  items(): ReadonlyArray<Readonly<OutboxItem<F>>> {
    return [...this.entries.values()].map(({ key, frame, state, attempts, failures, lastError }) => ({
      key,
      frame,
      state,
      attempts,
      failures,
      ...(lastError ? { lastError } : {}),
    }));
  }

  private remove(e: Entry<F, R>): void {
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    this.entries.delete(e.key);
  }
}
