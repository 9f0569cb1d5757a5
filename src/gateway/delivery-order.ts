/**
 * Per-connection delivery order (PROTOCOL.md §4.3), kept where the socket is: a connection
 * never gets a conversation's seq twice or out of order, whichever node or actor
 * incarnation the pushes come from (partitions move; a zombie may still push). A gap is
 * reported so the caller fills it from the store first. A connection's own sends (acked
 * to it, never pushed back) count as had. Removal closes the conversation for the
 * connection (late repeats of older messages are dropped, nothing is back-filled), and only
 * a later re-add opens it again, afresh: what was sent while the user was out never comes.
 */
import type { ChatMessage, ServerFrame } from '../protocol/frames.js';

/**
 * What a gateway keeps per signed-in connection for its pushes: the order, and while a gap
 * fill or the backlog is being read (`busy`), the frames that wait for it (null when none).
 */
export interface Delivery {
  order: DeliveryOrder;
  busy: boolean;
  waiting: ServerFrame[] | null;
}

interface Cursor {
  last: number;
  /** Own seqs above `last` (acked to the connection, never pushed); null while there are none. */
  own: Set<number> | null;
  /** The user was removed at `last`: everything is dropped but a later add of the user. */
  gone?: boolean;
}

export type OrderDecision = { action: 'drop' } | { action: 'push' } | { action: 'fill'; from: number; to: number };

/**
 * Memory: an idle connection costs one small object; the map of cursors is made at the first
 * conversation, and a cursor's set of own seqs only while an ack is ahead of the pushes.
 */
export class DeliveryOrder {
  private convs: Map<string, Cursor> | null = null;

  constructor(private readonly user: string) {}

  /** What to do with a live or backlog message for this connection. */
  decide(m: ChatMessage): OrderDecision {
    // (Re-)added: start afresh, but only for an add newer than what the connection has; a
    // repeat of the add that brought the user in (redelivery, backlog replay) is a repeat.
    const prior = this.convs?.get(m.conv);
    if (m.sys?.op === 'add' && m.sys.users.includes(this.user) && (!prior || m.seq > prior.last)) this.convs?.delete(m.conv);
    const c = this.convs?.get(m.conv);
    if (!c) return { action: 'push' };
    if (c.gone || m.seq <= c.last || c.own?.has(m.seq)) return { action: 'drop' };
    if (m.seq > c.last + 1) return { action: 'fill', from: c.last + 1, to: m.seq - 1 };
    return { action: 'push' };
  }

  /** Record that `m` went out on the socket. */
  pushed(m: ChatMessage): void {
    if ((m.sys?.op === 'remove' || m.sys?.op === 'leave') && m.sys.users.includes(this.user)) {
      this.map().set(m.conv, { last: m.seq, own: null, gone: true });
      return;
    }
    const c = this.cursor(m.conv);
    if (m.seq > c.last) c.last = m.seq;
    this.advance(c);
  }

  /** The connection's own message was committed at `seq` (it gets the ack, not the msg). */
  own(conv: string, seq: number): void {
    const c = this.cursor(conv);
    if (c.gone || seq <= c.last) return;
    if (seq === c.last + 1 && !c.own) {
      c.last = seq;
      return;
    }
    (c.own ??= new Set()).add(seq);
    this.advance(c);
  }

  /** The connection is up to date with `conv` at `seq` (the head when its backlog was drained). */
  known(conv: string, seq: number): void {
    const c = this.cursor(conv);
    if (c.gone) {
      // A backlog read after a re-add: the user is a member again from here.
      if (seq > c.last) this.map().set(conv, { last: seq, own: null });
      return;
    }
    if (seq > c.last) c.last = seq;
    this.advance(c);
  }

  /** The seq the connection has up to in `conv`, or undefined if it has seen nothing of it. */
  last(conv: string): number | undefined {
    const c = this.convs?.get(conv);
    return c && !c.gone ? c.last : undefined;
  }

  /** The conversations the connection is in (not those its user was removed from). */
  conversations(): string[] {
    return this.convs ? [...this.convs].filter(([, c]) => !c.gone).map(([conv]) => conv) : [];
  }

  private map(): Map<string, Cursor> {
    return (this.convs ??= new Map());
  }

  private cursor(conv: string): Cursor {
    const convs = this.map();
    let c = convs.get(conv);
    if (!c) convs.set(conv, (c = { last: 0, own: null }));
    return c;
  }

  private advance(c: Cursor): void {
    const own = c.own;
    if (!own) return;
    while (own.has(c.last + 1)) {
      own.delete(c.last + 1);
      c.last++;
    }
    for (const s of own) if (s <= c.last) own.delete(s);
    if (own.size === 0) c.own = null;
  }
}
