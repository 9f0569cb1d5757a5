/**
 * Small, deterministic reproductions of what the chaos run found (bench/chaos), so they stay
 * fixed without a cluster:
 *
 * 1. A member added while sends of the group are still being committed must get messages
 *    from its join onward only: its joined seq is the seq of the `add` event, not the head
 *    the conversation had when the add command arrived.
 * 2. A connection that already has a conversation up to seq n must not restart its delivery
 *    order when the `add` event that brought its user in (seq <= n) arrives again (a
 *    redelivered command or a backlog replay): repeats are dropped, never pushed again.
 * 3. After its user's removal, a connection drops late repeats of older messages of that
 *    conversation (seen after a node died with unacked deliveries): they would be pushed
 *    out of order and twice. A later re-add opens the conversation again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient, type Frame } from '../helpers/raw.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { DeliveryOrder } from '../../src/gateway/delivery-order.js';
import type { ChatMessage } from '../../src/protocol/frames.js';

let node: TestNode | null = null;
afterEach(async () => {
  await node?.stop();
  node = null;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('found by the chaos run', () => {
  it('a member added while sends are in flight gets nothing from before its add event', async () => {
    node = await startTestNode();
    const admin = await RawClient.signIn(node.url, await node.token('adm'));
    const created = await admin.request({ t: 'group.create', id: 'c', cmid: 'g', title: 'busy', members: ['m1'] }, 5000);
    const conv = created.conv as string;
    // Many sends, then the add at once: the add arrives while their commits are pending.
    const n = 40;
    for (let i = 0; i < n; i++) admin.send({ t: 'send', id: `s${i}`, conv, cmid: `s${i}`, body: `s${i}` });
    admin.send({ t: 'group.add', id: 'add', conv, users: ['late'] });
    const ok = await admin.next((f: Frame) => f.re === 'add', 10_000);
    const addSeq = ok.seq as number;
    await admin.next((f: Frame) => f.t === 'ack' && f.re === `s${n - 1}`, 10_000);
    // The new member signs in afterwards: its backlog starts at its add event.
    const late = await RawClient.signIn(node.url, await node.token('late'));
    await late.next((f: Frame) => f.t === 'synced', 10_000);
    await sleep(100);
    const seqs = late.frames.filter((f) => f.t === 'msg' && f.conv === conv).map((f) => f.seq as number);
    expect(seqs[0]).toBe(addSeq);
    expect(seqs.filter((s) => s < addSeq)).toEqual([]);
  });

  it('a repeated add event of the connection’s own user does not restart the order', () => {
    const m = (seq: number, extra: Partial<ChatMessage> = {}): ChatMessage => ({ conv: 'g:x', seq, from: 'bob', cmid: `c${seq}`, ts: 1, kind: 'text', ...extra });
    const add = m(7, { kind: 'system', sys: { op: 'add', by: 'bob', users: ['alice'] } });
    const o = new DeliveryOrder('alice');
    const run = (msg: ChatMessage) => {
      const d = o.decide(msg);
      if (d.action === 'push') o.pushed(msg);
      return d.action;
    };
    expect(run(add)).toBe('push');
    for (let s = 8; s <= 13; s++) expect(run(m(s))).toBe('push');
    // The same add (and what followed it) once more: all repeats.
    expect(run(add)).toBe('drop');
    for (let s = 8; s <= 13; s++) expect(run(m(s))).toBe('drop');
    expect(run(m(14))).toBe('push');
  });

  it('after the removal of its user, a connection drops late repeats; a later re-add opens it again', () => {
    const m = (seq: number, extra: Partial<ChatMessage> = {}): ChatMessage => ({ conv: 'g:x', seq, from: 'bob', cmid: `c${seq}`, ts: 1, kind: 'text', ...extra });
    const o = new DeliveryOrder('alice');
    const run = (msg: ChatMessage) => {
      const d = o.decide(msg);
      if (d.action === 'push') o.pushed(msg);
      return d.action;
    };
    o.known('g:x', 53);
    for (let s = 54; s <= 57; s++) expect(run(m(s))).toBe('push');
    expect(run(m(58, { kind: 'system', sys: { op: 'remove', by: 'bob', users: ['alice'] } }))).toBe('push');
    expect(o.last('g:x')).toBeUndefined();
    expect(o.conversations()).toEqual([]);
    // Late repeats (a dead node's deliveries coming back) and anything else: dropped.
    expect(run(m(54))).toBe('drop');
    expect(run(m(55))).toBe('drop');
    expect(run(m(59))).toBe('drop');
    // Re-added at 70: from there on, with no back-fill of 59..69.
    expect(run(m(70, { kind: 'system', sys: { op: 'add', by: 'bob', users: ['alice'] } }))).toBe('push');
    expect(run(m(71))).toBe('push');
    expect(run(m(71))).toBe('drop');
  });
});
