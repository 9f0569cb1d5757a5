/** The app's picture of one conversation, and the pure rules over it (unread count, ticks). */
import type { ChatMessage, MediaRef } from '../../src/client/index.js';
import { dmMembers } from '../../src/protocol/codes.js';

/** A message of ours not acknowledged yet (or refused). */
export interface Pending {
  cmid: string;
  ts: number;
  body?: string;
  media?: MediaRef;
  /** A local object URL of an image being uploaded. */
  preview?: string;
  /** Why it was refused; set: shown as failed. */
  failed?: string;
}

export interface Member {
  user: string;
  role: 'admin' | 'member';
}

export interface Conv {
  id: string;
  kind: 'direct' | 'group';
  title: string;
  /** The other party of a direct conversation. */
  peer: string | null;
  lastSeq: number;
  /** Our own delivered and read watermarks. */
  delivered: number;
  read: number;
  /** The other party's (group: everybody's lowest) watermarks: the ticks of our messages. */
  peerDelivered: number;
  peerRead: number;
  /** Messages we have, by seq. */
  msgs: Map<number, ChatMessage>;
  pending: Map<string, Pending>;
  last: ChatMessage | null;
  /** The lowest seq fetched with `history`; null before the first page. */
  oldest: number | null;
  /** Older messages exist on the server. */
  more: boolean;
  /** A direct conversation that does not exist yet: the first send goes with `to`. */
  draft: boolean;
  /** We were removed from the group or left it. */
  left: boolean;
  members: Member[] | null;
  /** Who is typing: user → the timer that forgets it. */
  typing: Map<string, ReturnType<typeof setTimeout>>;
}

export function newConv(id: string, me: string, title?: string): Conv {
  const pair = dmMembers(id);
  const peer = pair ? (pair[0] === me ? pair[1] : pair[0]) : null;
  return {
    id,
    kind: pair ? 'direct' : 'group',
    title: title ?? peer ?? 'Group',
    peer,
    lastSeq: 0,
    delivered: 0,
    read: 0,
    peerDelivered: 0,
    peerRead: 0,
    msgs: new Map(),
    pending: new Map(),
    last: null,
    oldest: null,
    more: true,
    draft: false,
    left: false,
    members: null,
    typing: new Map(),
  };
}

/** Unread messages: lastSeq − read. */
export function unread(c: Conv): number {
  return Math.max(0, c.lastSeq - c.read);
}

export type TickState = 'pending' | 'failed' | 'sent' | 'delivered' | 'read';

export function tick(c: Conv, seq: number): TickState {
  if (c.peerRead >= seq) return 'read';
  if (c.peerDelivered >= seq) return 'delivered';
  return 'sent';
}

export const TICK_ICON = {
  pending: 'clock',
  failed: 'alert',
  sent: 'check',
  delivered: 'checks',
  read: 'checks',
} as const satisfies Record<TickState, string>;

/** Time of the newest activity, for sorting the list (a chat just started goes first). */
export function lastActivity(c: Conv): number {
  if (c.draft) return Number.MAX_SAFE_INTEGER;
  let t = c.last?.ts ?? 0;
  for (const p of c.pending.values()) t = Math.max(t, p.ts);
  return t;
}

/**
 * The highest of ascending `seqs` for which `yes` holds, given that it holds for a prefix of
 * them (watermarks only rise): a binary search, 0 when it holds for none.
 */
export async function highest(seqs: number[], yes: (seq: number) => Promise<boolean>): Promise<number> {
  let lo = 0;
  let hi = seqs.length; // yes holds below lo, fails from hi on
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (await yes(seqs[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : seqs[lo - 1]!;
}

/** A client message id, also where crypto.randomUUID is missing (plain http on a LAN address). */
export function newCmid(): string {
  if (typeof crypto.randomUUID === 'function' && window.isSecureContext) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
