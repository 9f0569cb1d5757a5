/** Exponential backoff with jitter: attempt n waits a random time in [minMs, min(maxMs, minMs·factor^(n+1))]. */

export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** Growth per attempt; default 2. */
  factor?: number;
  /** A source of numbers in [0, 1); default Math.random (tests pin it). */
  random?: () => number;
}

/** The upper bound of the delay for a 0-based attempt. */
export function backoffCeiling(attempt: number, o: BackoffOptions): number {
  const min = Math.max(0, o.minMs);
  const max = Math.max(min, o.maxMs);
  const grown = min * Math.pow(o.factor ?? 2, Math.max(0, attempt) + 1);
  return Math.min(max, Number.isFinite(grown) ? grown : max);
}

/** The delay for a 0-based attempt: uniform between minMs and the ceiling (spreads a herd of clients). */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const min = Math.max(0, o.minMs);
  const ceil = backoffCeiling(attempt, o);
  const r = Math.min(1, Math.max(0, (o.random ?? Math.random)()));
  return Math.round(min + r * (ceil - min));
}

/** A counter of consecutive failures that hands out the next delay. */
export class Backoff {
  private n = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /** The delay for the next attempt; counts the attempt. */
  next(): number {
    return backoffDelay(this.n++, this.opts);
  }

  /** The delay for a given attempt, without counting. */
  delay(attempt: number): number {
    return backoffDelay(attempt, this.opts);
  }

  get attempts(): number {
    return this.n;
  }

  reset(): void {
    this.n = 0;
  }
}
