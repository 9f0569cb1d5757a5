/** PROTOCOL.md §4.5 over real sockets, in both encodings: watermarks, direct receipts, group aggregation, info. */
// The cql-node project of vitest.config.ts runs this file again against a node on the CQL store (cqlContact).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, sleep, uid } from '../helpers/clients.js';
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

const marks = async (conv: string, user: string) => {
  const m = await node.node.store.member(conv, user);
  return { delivered: m!.delivered, read: m!.read };
};

describe.each(['json', 'msgpack'] as const)('receipts (%s)', (enc) => {
  it('recv and read push receipts to every connection of both members except the acknowledging one', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const bobPhone = await RawClient.signIn(node.url, await node.token(b), enc);
    const bobLaptop = await RawClient.signIn(node.url, await node.token(b), enc);
    const conv = dmId(a, b);
    for (let i = 0; i < 3; i++) await alice.client.send({ to: b, body: `m${i}` });
    bobPhone.send({ t: 'recv', conv, seq: 2 });
    const r = await alice.client.waitFor('receipt', (x) => x.kind === 'delivered');
    expect(r).toEqual({ conv, user: b, kind: 'delivered', seq: 2 });
    expect(await bobLaptop.next((f) => f.t === 'receipt' && f.kind === 'delivered')).toMatchObject({ user: b, seq: 2 });
    // read raises delivered with it
    bobLaptop.send({ t: 'read', conv, seq: 3 });
    await alice.client.waitFor('receipt', (x) => x.kind === 'read' && x.seq === 3);
    await eventually(() => expect(alice.receipts).toContainEqual({ conv, user: b, kind: 'delivered', seq: 3 }));
    await bobPhone.next((f) => f.t === 'receipt' && f.kind === 'read');
    await sleep(100);
    expect(bobPhone.frames.filter((f) => f.t === 'receipt' && f.kind === 'delivered')).toHaveLength(1);
    expect(bobLaptop.frames.filter((f) => f.t === 'receipt' && f.kind === 'read')).toHaveLength(0);
    await eventually(async () => expect(await marks(conv, b)).toEqual({ delivered: 3, read: 3 }));
  });

  it('watermarks never go down, never pass lastSeq, and a lower ack pushes nothing', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const conv = dmId(a, b);
    for (let i = 0; i < 3; i++) await alice.client.send({ to: b, body: `m${i}` });
    bob.client.read(conv, 999);
    await alice.client.waitFor('receipt', (x) => x.kind === 'read');
    expect(alice.receipts).toContainEqual({ conv, user: b, kind: 'read', seq: 3 });
    bob.client.recv(conv, 1);
    bob.client.read(conv, 2);
    await sleep(150);
    expect(alice.receipts.filter((x) => x.user === b)).toHaveLength(2);
    await eventually(async () => expect(await marks(conv, b)).toEqual({ delivered: 3, read: 3 }));
  });

  it("sending carries the sender's watermarks over its own messages, never past an unacknowledged one, and pushes nothing", async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const conv = dmId(a, b);
    await bob.client.send({ to: a, body: 'from bob' }); // seq 1
    await alice.client.send({ to: b, body: 'alice 2' }); // seq 2, alice has not acknowledged 1
    await alice.client.send({ to: b, body: 'alice 3' }); // seq 3
    await sleep(100);
    expect(await marks(conv, a)).toEqual({ delivered: 0, read: 0 });
    expect(await marks(conv, b)).toEqual({ delivered: 1, read: 1 });
    alice.client.read(conv, 1); // jumps over her own 2 and 3
    await bob.client.waitFor('receipt', (x) => x.kind === 'read');
    expect(bob.receipts).toContainEqual({ conv, user: a, kind: 'read', seq: 3 });
    await eventually(async () => expect(await marks(conv, a)).toEqual({ delivered: 3, read: 3 }));
    expect(alice.receipts).toHaveLength(0);
  });

  it('a group gets user "*" receipts when the lowest watermark rises, coalesced; info names who has it', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const carol = await peer(node, c, enc);
    const { conv } = await alice.client.groupCreate({ title: 'receipts', members: [b, c] });
    const m = await alice.client.send({ conv, body: 'hello group' }); // seq 2
    bob.client.recv(conv, m.seq);
    await sleep(50);
    let info = await alice.client.info(conv, m.seq);
    expect(info.delivered.sort()).toEqual([a, b].sort());
    expect(info.read).toEqual([a]);
    expect(alice.receipts).toHaveLength(0);
    carol.client.recv(conv, m.seq);
    const r = await alice.client.waitFor('receipt', (x) => x.kind === 'delivered', 3000);
    expect(r).toEqual({ conv, user: '*', kind: 'delivered', seq: m.seq });
    await bob.client.waitFor('receipt', (x) => x.user === '*' && x.kind === 'delivered', 3000);
    bob.client.read(conv, m.seq);
    carol.client.read(conv, m.seq);
    const rr = await alice.client.waitFor('receipt', (x) => x.kind === 'read', 3000);
    expect(rr).toEqual({ conv, user: '*', kind: 'read', seq: m.seq });
    info = await carol.client.info(conv, m.seq);
    expect(info.read.sort()).toEqual([a, b, c].sort());
    // Coalesced: one receipt per kind for this rise.
    await sleep(1200);
    expect(alice.receipts.filter((x) => x.kind === 'read')).toHaveLength(1);
    expect(alice.receipts.filter((x) => x.kind === 'delivered')).toHaveLength(1);
  });
});
