/**
 * Per-connection delivery order (PROTOCOL.md §4.3), kept where the socket is: a connection
 * never gets a conversation's seq twice or out of order, whichever node or actor
 * incarnation the pushes come from (partitions move; a zombie may still push). A gap is
 * reported so the caller fills it from the store first. A connection's own sends (acked
 * to it, never pushed back) count as had. Removal closes the conversation for the
 * connection (late repeats of older messages are dropped, nothing is back-filled), and only
 * a later re-add opens it again, afresh: what was sent while the user was out never comes.
 */
import type { ChatMessage } from '../protocol/frames.js';

interface Cursor {
  last: number;
  own: Set<number>;
  /** The user was removed at `last`: everything is dropped but a later add of the user. */
  gone?: boolean;
}

export type OrderDecision = { action: 'drop' } | { action: 'push' } | { action: 'fill'; from: number; to: number };

export class DeliveryOrder {
  private readonly convs = new Map<string, Cursor>();

  constructor(private readonly user: string) {}

  /** What to do with a live or backlog message for this connection. */
  decide(m: ChatMessage): OrderDecision {
    // (Re-)added: start afresh, but only for an add newer than what the connection has; a
    // repeat of the add that brought the user in (redelivery, backlog replay) is a repeat.
    const prior = this.convs.get(m.conv);
    if (m.sys?.op === 'add' && m.sys.users.includes(this.user) && (!prior || m.seq > prior.last)) this.convs.delete(m.conv);
    const c = this.convs.get(m.conv);
    if (!c) return { action: 'push' };
    if (c.gone || m.seq <= c.last || c.own.has(m.seq)) return { action: 'drop' };
    if (m.seq > c.last + 1) return { action: 'fill', from: c.last + 1, to: m.seq - 1 };
    return { action: 'push' };
  }

  /** Record that `m` went out on the socket. */
  pushed(m: ChatMessage): void {
    if ((m.sys?.op === 'remove' || m.sys?.op === 'leave') && m.sys.users.includes(this.user)) {
      this.convs.set(m.conv, { last: m.seq, own: new Set(), gone: true });
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
    c.own.add(seq);
    this.advance(c);
  }

  /** The connection is up to date with `conv` at `seq` (the head when its backlog was drained). */
  known(conv: string, seq: number): void {
    const c = this.cursor(conv);
    if (c.gone) {
      // A backlog read after a re-add: the user is a member again from here.
      if (seq > c.last) this.convs.set(conv, { last: seq, own: new Set() });
      return;
    }
    if (seq > c.last) c.last = seq;
    this.advance(c);
  }

  /** The seq the connection has up to in `conv`, or undefined if it has seen nothing of it. */
  last(conv: string): number | undefined {
    const c = this.convs.get(conv);
    return c && !c.gone ? c.last : undefined;
  }

  /** The conversations the connection is in (not those its user was removed from). */
  conversations(): string[] {
    return [...this.convs].filter(([, c]) => !c.gone).map(([conv]) => conv);
  }

  private cursor(conv: string): Cursor {
    let c = this.convs.get(conv);
    if (!c) this.convs.set(conv, (c = { last: 0, own: new Set() }));
    return c;
  }

  private advance(c: Cursor): void {
    while (c.own.has(c.last + 1)) {
      c.own.delete(c.last + 1);
      c.last++;
    }
    for (const s of c.own) if (s <= c.last) c.own.delete(s);
  }
}
