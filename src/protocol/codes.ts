/** Wire error codes (PROTOCOL.md §5) and WebSocket close codes, shared by server, SDK, tests and benches. */
export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_found',
  'too_large',
  'limit',
  'rate_limited',
  'unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  unauthorized: 4001,
  /** The client did not read its frames fast enough; its queue passed the node's bound. */
  slowConsumer: 4008,
} as const;

export const SUBPROTOCOL_JSON = 'sb.v1.json';
export const SUBPROTOCOL_MSGPACK = 'sb.v1.msgpack';
export type Encoding = 'json' | 'msgpack';

/** Validation patterns of PROTOCOL.md §2. */
export const USER_ID_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
export const DM_PREFIX = 'dm:';
export const GROUP_PREFIX = 'g:';

export function dmId(a: string, b: string): string {
  return a < b ? `${DM_PREFIX}${a}:${b}` : `${DM_PREFIX}${b}:${a}`;
}

/** The two members of a direct conversation id, or null when the id is not a well-formed dm id. */
export function dmMembers(conv: string): [string, string] | null {
  if (!conv.startsWith(DM_PREFIX)) return null;
  const rest = conv.slice(DM_PREFIX.length);
  const i = rest.indexOf(':');
  if (i < 0) return null;
  const a = rest.slice(0, i);
  const b = rest.slice(i + 1);
  if (!USER_ID_RE.test(a) || !USER_ID_RE.test(b) || !(a < b)) return null;
  return [a, b];
}

export function convKind(conv: string): 'direct' | 'group' | null {
  if (conv.startsWith(DM_PREFIX)) return dmMembers(conv) ? 'direct' : null;
  if (conv.startsWith(GROUP_PREFIX) && /^g:[A-Za-z0-9_-]{1,64}$/.test(conv)) return 'group';
  return null;
}
