/**
 * Reads a client may make of the store without going through an actor: its conversation
 * list, a history page, and `sync`. Each checks membership first (non-members get
 * not_found) and never returns messages from before the member joined.
 */
import type { Store } from '../actors/ports/index.js';
import { RequestError } from '../actors/ports/index.js';
import type { ChatMessage, ConvSummary } from '../protocol/frames.js';

const PAGE = 500;

export class Queries {
  constructor(private readonly store: Store) {}

  async convs(user: string): Promise<ConvSummary[]> {
    const list = await this.store.userConversations(user);
    return list.map((c) => {
      const out: ConvSummary = { conv: c.conv, kind: c.kind, lastSeq: c.lastSeq, delivered: c.delivered, read: c.read };
      if (c.title !== undefined) out.title = c.title;
      return out;
    });
  }

  async history(user: string, conv: string, before: number | undefined, limit: number | undefined): Promise<ChatMessage[]> {
    const member = await this.store.member(conv, user);
    if (!member) throw new RequestError('not_found', 'no such conversation');
    return this.store.messagesBefore(conv, before ?? Number.MAX_SAFE_INTEGER, limit ?? 50, member.joinedSeq);
  }

  /** Pages of messages from..to of a conversation the user is a member of, never from before its join. */
  async *range(user: string, conv: string, from: number, to: number): AsyncGenerator<ChatMessage[]> {
    const member = await this.store.member(conv, user);
    if (!member) return;
    for (let next = Math.max(from, member.joinedSeq); next <= to; ) {
      const page = await this.store.messages(conv, next, to, PAGE);
      if (page.length === 0) return;
      yield page;
      next = page[page.length - 1]!.seq + 1;
    }
  }

  /**
   * Which of `users` the user may watch (`presence.sub`): itself, and users that share a
   * conversation with it now. Both lists without repeats, in the order asked.
   */
  async presenceAllowed(user: string, users: string[]): Promise<{ allowed: string[]; denied: string[] }> {
    const asked = [...new Set(users)];
    const others = asked.filter((u) => u !== user);
    const shared = new Set(others.length === 0 ? [] : await this.store.coMembers(user, others));
    const allowed: string[] = [];
    const denied: string[] = [];
    for (const u of asked) (u === user || shared.has(u) ? allowed : denied).push(u);
    return { allowed, denied };
  }

  /**
   * Every message above `since[conv]` (else above the delivered watermark) of each of the
   * user's conversations, handed to `push` in order; returns each conversation's lastSeq.
   */
  async sync(user: string, since: Record<string, number> | undefined, push: (m: ChatMessage) => void): Promise<Record<string, number>> {
    const convs = await this.store.userConversations(user);
    const mine = new Map(convs.map((c) => [c.conv, c]));
    for (const conv of Object.keys(since ?? {})) {
      if (!mine.has(conv)) throw new RequestError('not_found', `no such conversation: ${conv}`);
    }
    const heads: Record<string, number> = {};
    for (const c of convs) {
      heads[c.conv] = c.lastSeq;
      const asked = since?.[c.conv];
      let from = (asked ?? c.delivered) + 1;
      if (asked !== undefined) {
        const member = await this.store.member(c.conv, user);
        if (!member) continue;
        from = Math.max(from, member.joinedSeq);
      }
      while (from <= c.lastSeq) {
        const page = await this.store.messages(c.conv, from, c.lastSeq, PAGE);
        if (page.length === 0) break;
        page.forEach(push);
        from = page[page.length - 1]!.seq + 1;
      }
    }
    return heads;
  }
}
