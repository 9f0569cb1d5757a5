/** PROTOCOL.md §4 items 1–4 over real sockets, in both encodings: durable acks, idempotent send, order, delivery. */
// The cql-node project of vitest.config.ts runs this file again against a node on the CQL store (cqlContact).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, range, sleep, uid } from '../helpers/clients.js';
import { RawClient } from '../helpers/raw.js';
import { dmId } from '../../src/protocol/codes.js';

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode({ rate: '100000' });
});
afterEach(closeAll);
afterAll(async () => {
  await node?.stop();
});

describe.each(['json', 'msgpack'] as const)('messaging (%s)', (enc) => {
  it('§4.1 an ack comes only after the message is in the store', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const acks = await Promise.all(range(1, 20).map((i) => alice.client.send({ to: b, body: `m${i}` })));
    for (const ack of acks) {
      const stored = await node.node.store.messages(ack.conv, ack.seq, ack.seq, 1);
      expect(stored).toHaveLength(1);
      expect(stored[0]!.cmid).toBe(ack.cmid);
    }
    expect(acks.map((x) => x.seq).sort((x, y) => x - y)).toEqual(range(1, 20));
  });

  it('§4.2 the same cmid on another connection gets the original seq with dup:true and is delivered once', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const phone = await peer(node, a, enc);
    const laptop = await RawClient.signIn(node.url, await node.token(a), enc);
    const bob = await RawClient.signIn(node.url, await node.token(b), enc);
    const first = await phone.client.send({ to: b, body: 'once', cmid: 'same-cmid' });
    expect(first.dup).toBeFalsy();
    const again = await laptop.request({ t: 'send', id: 1, to: b, cmid: 'same-cmid', body: 'once' });
    expect(again).toMatchObject({ t: 'ack', seq: first.seq, conv: first.conv, dup: true });
    // Concurrent copies in flight at once: one seq.
    for (let i = 0; i < 5; i++) laptop.send({ t: 'send', id: `c${i}`, conv: first.conv, cmid: 'burst', body: 'x' });
    const burst = await Promise.all(range(0, 4).map((i) => laptop.next((f) => f.re === `c${i}`)));
    expect(new Set(burst.map((f) => f.seq)).size).toBe(1);
    expect(burst.filter((f) => !f.dup)).toHaveLength(1);
    await sleep(100);
    const got = bob.frames.filter((f) => f.t === 'msg').map((f) => f.seq);
    expect(got).toEqual([first.seq, burst[0]!.seq]);
  });

  it('§4.3 seqs are contiguous from 1 and each connection gets strictly increasing seqs, never twice', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bobSdk = await peer(node, b, enc);
    const { conv } = await alice.client.groupCreate({ title: 'order', members: [b, c] });
    const carol = await RawClient.signIn(node.url, await node.token(c), enc);
    const carol2 = await RawClient.signIn(node.url, await node.token(c), enc);
    const sends = [
      ...range(1, 60).map((i) => alice.client.send({ conv, body: `a${i}` })),
      ...range(1, 60).map((i) => bobSdk.client.send({ conv, body: `b${i}` })),
    ];
    const acks = await Promise.all(sends);
    expect(acks.map((x) => x.seq).sort((x, y) => x - y)).toEqual(range(2, 121));
    for (const conn of [carol, carol2]) {
      await conn.next((f) => f.t === 'msg' && f.seq === 121);
      expect(conn.frames.filter((f) => f.t === "msg").map((f) => f.seq)).toEqual(range(1, 121));
    }
  });

  it('§4.4 every connection of every member but the sending one gets the message', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const phone = await RawClient.signIn(node.url, await node.token(a), enc);
    const laptop = await RawClient.signIn(node.url, await node.token(a), enc);
    const bob1 = await RawClient.signIn(node.url, await node.token(b), enc);
    const bob2 = await RawClient.signIn(node.url, await node.token(b), enc);
    const ack = await phone.request({ t: 'send', id: 1, to: b, cmid: 'x', body: 'hello' });
    for (const conn of [laptop, bob1, bob2]) {
      const m = await conn.next((f) => f.t === 'msg');
      expect(m).toMatchObject({ conv: dmId(a, b), seq: ack.seq, from: a, cmid: 'x', kind: 'text', body: 'hello', ts: ack.ts });
    }
    await sleep(100);
    expect(phone.frames.filter((f) => f.t === 'msg')).toHaveLength(0);
  });

  it('§4.4 an offline member gets the backlog after hello, in order, then synced; reconnects deliver again', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    for (let i = 1; i <= 30; i++) await alice.client.send({ to: b, body: `m${i}` });
    const raw = await RawClient.connect(node.url, enc);
    raw.send({ t: 'hello', token: await node.token(b) });
    await raw.next((f) => f.t === 'synced');
    const types = raw.frames.map((f) => f.t);
    expect(types[0]).toBe('welcome');
    expect(types.at(-1)).toBe('synced');
    expect(raw.frames.filter((f) => f.t === 'msg').map((f) => f.seq)).toEqual(range(1, 30));
    raw.close();
    // Bob acknowledged up to 10: the next backlog starts at 11.
    const bob = await peer(node, b, enc);
    bob.client.recv(dmId(a, b), 10);
    await eventually(async () => expect((await node.node.store.member(dmId(a, b), b))!.delivered).toBe(10));
    await bob.close();
    const again = await RawClient.signIn(node.url, await node.token(b), enc);
    expect(again.frames.filter((f) => f.t === 'msg').map((f) => f.seq)).toEqual(range(11, 30));
  });

  it('§4.4 sync returns what is asked for, even if seen before, then ok with lastSeqs', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    for (let i = 1; i <= 5; i++) await alice.client.send({ to: b, body: `m${i}` });
    const conv = dmId(a, b);
    await eventually(() => expect(bob.of(conv)).toHaveLength(5));
    const res = await bob.client.sync({ [conv]: 2 });
    expect(res.msgs.map((m) => m.seq)).toEqual([3, 4, 5]);
    expect(res.convs[conv]).toBe(5);
    // Without since: above the delivered watermark (nothing acknowledged yet → everything).
    const all = await bob.client.sync();
    expect(all.msgs.filter((m) => m.conv === conv).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('history pages newest-first below `before`, ascending within the page', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    for (let i = 1; i <= 12; i++) await alice.client.send({ to: b, body: `m${i}` });
    const conv = dmId(a, b);
    expect((await alice.client.history(conv, { limit: 5 })).map((m) => m.seq)).toEqual([8, 9, 10, 11, 12]);
    expect((await alice.client.history(conv, { before: 8, limit: 5 })).map((m) => m.seq)).toEqual([3, 4, 5, 6, 7]);
    expect((await alice.client.history(conv, { before: 3 })).map((m) => m.body)).toEqual(['m1', 'm2']);
    // The sender's own watermarks follow its messages (written behind, within milliseconds).
    await eventually(async () => {
      const convs = await alice.client.convs();
      expect(convs.find((c) => c.conv === conv)).toMatchObject({ kind: 'direct', lastSeq: 12, delivered: 12, read: 12 });
    });
  });

  it('a reply and a retried send across a reconnect keep their seq', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const first = await alice.client.send({ to: b, body: 'q' });
    const second = await alice.client.send({ conv: first.conv, body: 'reply', reply: { seq: first.seq } });
    const [m] = await alice.client.history(first.conv, { before: second.seq + 1, limit: 1 });
    expect(m).toMatchObject({ reply: { seq: first.seq }, body: 'reply' });
    const bad = alice.client.send({ conv: first.conv, body: 'x', reply: { seq: 99 } });
    await expect(bad).rejects.toMatchObject({ code: 'bad_request' });
    expect((await alice.client.ping()).time).toBeGreaterThan(0);
  });
});
