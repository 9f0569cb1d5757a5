/** The one error type the SDK rejects with: a wire `err` (PROTOCOL.md §5) or a local failure. */
import type { ErrorCode } from '../protocol/codes.js';
import type { ReqId } from '../protocol/frames.js';

/**
 * Wire codes plus the SDK's own: `timeout` (no reply in time), `disconnected` (the socket
 * closed while the request was in flight) and `closed` (the client was closed or gave up).
 */
export type ClientErrorCode = ErrorCode | 'timeout' | 'disconnected' | 'closed';

/** Codes after which a send or group.create is tried again with the same cmid. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(['unavailable', 'internal', 'rate_limited']);

export class SwitchboardError extends Error {
  readonly code: ClientErrorCode;
  /** The server's hint for `rate_limited`: wait this long before trying again. */
  readonly retryMs?: number;
  /** The request id this error answered, when it came from the wire with `re`. */
  readonly re?: ReqId;

  constructor(code: ClientErrorCode, message: string, extra: { retryMs?: number; re?: ReqId } = {}) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
    if (extra.retryMs !== undefined) this.retryMs = extra.retryMs;
    if (extra.re !== undefined) this.re = extra.re;
  }

  /** True for the codes the server uses for transient trouble. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  static fromFrame(f: Record<string, unknown>): SwitchboardError {
    const code = (typeof f.code === 'string' ? f.code : 'internal') as ClientErrorCode;
    const extra: { retryMs?: number; re?: ReqId } = {};
    if (typeof f.retryMs === 'number' && Number.isFinite(f.retryMs)) extra.retryMs = f.retryMs;
    if (typeof f.re === 'string' || typeof f.re === 'number') extra.re = f.re;
    return new SwitchboardError(code, typeof f.msg === 'string' && f.msg ? f.msg : code, extra);
  }
}
