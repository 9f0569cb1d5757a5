/**
 * The closed set of errors that cross the core's ports, each mapped to one wire code in
 * one place (`wireCode`). Errors cross nodes as plain objects (`toPlain`/`fromPlain`).
 */
import type { ErrorCode } from '../../protocol/codes.js';

export abstract class SwitchboardError extends Error {
  abstract readonly code: ErrorCode;
  readonly retryable: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A client-facing refusal decided by the core (membership, limits, validation). */
export class RequestError extends SwitchboardError {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryMs?: number,
  ) {
    super(message);
  }
}

/** The store refused a write: another writer owns the conversation, or the head moved. */
export class StoreConflictError extends SwitchboardError {
  readonly code = 'unavailable' as const;
  override readonly retryable = true;
  constructor(
    readonly reason: 'stale_epoch' | 'head_mismatch',
    message: string,
  ) {
    super(message);
  }
}

/** A commit carried (from, cmid) keys that are already stored; nothing was written. */
export class DuplicateMessageError extends SwitchboardError {
  readonly code = 'internal' as const;
  constructor(readonly existing: Array<{ from: string; cmid: string; seq: number }>) {
    super(`duplicate message keys: ${existing.map((e) => `${e.from}/${e.cmid}`).join(', ')}`);
  }
}

/** The backend could not be reached or timed out; the outcome of a write is unknown. */
export class StoreUnavailableError extends SwitchboardError {
  readonly code = 'unavailable' as const;
  override readonly retryable = true;
}

export interface PlainError {
  code: ErrorCode;
  msg: string;
  retryMs?: number;
}

export function wireError(err: unknown): PlainError {
  if (err instanceof RequestError) {
    return err.retryMs === undefined
      ? { code: err.code, msg: err.message }
      : { code: err.code, msg: err.message, retryMs: err.retryMs };
  }
  if (err instanceof SwitchboardError) {
    return { code: err.code, msg: err.code === 'unavailable' ? 'temporarily unavailable, retry' : 'internal error' };
  }
  return { code: 'internal', msg: 'internal error' };
}
