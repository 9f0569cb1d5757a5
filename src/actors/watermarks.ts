/**
 * Receipt watermarks (PROTOCOL.md §4.5): a member's delivered (read) watermark is the highest
 * n such that every message up to n was sent by the member or acknowledged at or above it.
 * Pure functions over a member's marks and the senders of recent messages.
 */
export interface Marks {
  delivered: number;
  read: number;
}

/** Who sent `seq`, or undefined when unknown (outside the remembered tail). */
export type SenderOf = (seq: number) => string | undefined;

/** Raise `mark` to `target` (clipped to lastSeq), then over the member's own messages that follow. */
export function raise(mark: number, target: number, lastSeq: number, user: string, senderOf: SenderOf): number {
  let next = Math.max(mark, Math.min(target, lastSeq));
  while (next < lastSeq && senderOf(next + 1) === user) next++;
  return next;
}

export interface MarkChange {
  delivered: boolean;
  read: boolean;
}

/** Apply a `recv` (kind delivered) or `read` acknowledgement; returns which marks rose. */
export function acknowledge(
  marks: Marks,
  kind: 'recv' | 'read',
  seq: number,
  lastSeq: number,
  user: string,
  senderOf: SenderOf,
): MarkChange {
  const before = { ...marks };
  if (kind === 'read') {
    marks.read = raise(marks.read, seq, lastSeq, user, senderOf);
    marks.delivered = raise(marks.delivered, marks.read, lastSeq, user, senderOf);
  } else {
    marks.delivered = raise(marks.delivered, seq, lastSeq, user, senderOf);
  }
  return { delivered: marks.delivered > before.delivered, read: marks.read > before.read };
}

/** Carry the sender's own marks over its newly committed message (never past an unacknowledged one). */
export function carryOwn(marks: Marks, seq: number): void {
  if (marks.delivered === seq - 1) marks.delivered = seq;
  if (marks.read === seq - 1) marks.read = seq;
}
