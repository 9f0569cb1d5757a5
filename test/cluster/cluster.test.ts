/**
 * Cluster mode over real servers: NATS JetStream, the CQL server of the run (cqlContact)
 * and nodes as separate processes. Every PROTOCOL.md guarantee across nodes: a DM between
 * users on different nodes, a group spread over all nodes, receipts and backlog.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { RawClient } from '../helpers/raw.js';
import { Auth } from '../../src/gateway/auth.js';
import { TEST_SECRET } from '../helpers/node.js';
import { dmId } from '../../src/protocol/codes.js';

const auth = new Auth(TEST_SECRET);
const token = (u: string) => auth.sign(u, 600);
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ nats: 1 });
  await Promise.all(['n1', 'n2', 'n3'].map((id) => cluster.add(id)));
}, 180_000);
afterAll(async () => {
  await cluster?.stop();
});

describe('cluster: 3 nodes', () => {
  it('a DM between users on different nodes: ack, push, receipts, dedup', async () => {
    const alice = await RawClient.signIn(cluster.url('n1'), await token('alice'));
    const bob = await RawClient.signIn(cluster.url('n2'), await token('bob'));
    const ack = await alice.request({ t: 'send', id: 1, to: 'bob', cmid: 'c1', body: 'hi' }, 15_000);
    expect(ack).toMatchObject({ t: 'ack', conv: dmId('alice', 'bob'), seq: 1 });
    const m = await bob.next((f) => f.t === 'msg', 10_000);
    expect(m).toMatchObject({ seq: 1, from: 'alice', body: 'hi' });
    bob.send({ t: 'read', conv: ack.conv, seq: 1 });
    expect(await alice.next((f) => f.t === 'receipt' && f.kind === 'read', 10_000)).toMatchObject({ user: 'bob', seq: 1 });
    // the same cmid through a third node: original seq, dup
    const alice3 = await RawClient.signIn(cluster.url('n3'), await token('alice'));
    expect(await alice3.request({ t: 'send', id: 2, to: 'bob', cmid: 'c1', body: 'hi' }, 15_000)).toMatchObject({ seq: 1, dup: true });
  });

  it('a group spread over all nodes: contiguous seqs, every connection in order, once', async () => {
    const users = range(1, 9).map((i) => `gu${i}`);
    const nodes = ['n1', 'n2', 'n3'];
    const conns = await Promise.all(users.map(async (u, i) => RawClient.signIn(cluster.url(nodes[i % 3]!), await token(u))));
    const created = await conns[0]!.request({ t: 'group.create', id: 'g', cmid: 'grp', title: 'spread', members: users.slice(1) }, 15_000);
    const conv = created.conv as string;
    const per = 10;
    for (let s = 0; s < 3; s++) for (let i = 0; i < per; i++) conns[s]!.send({ t: 'send', id: `${s}-${i}`, conv, cmid: `m${s}-${i}`, body: `m${s}-${i}` });
    const acks = await Promise.all(range(0, 2).flatMap((s) => range(0, per - 1).map((i) => conns[s]!.next((f) => f.re === `${s}-${i}`, 20_000))));
    expect(acks.map((a) => a.seq as number).sort((a, b) => a - b)).toEqual(range(2, 1 + 3 * per));
    const last = 1 + 3 * per;
    for (const [i, c] of conns.entries()) {
      const own = i < 3 ? acks.filter((a) => a.re!.toString().startsWith(`${i}-`)).map((a) => a.seq as number) : [];
      const expected = range(1, last).filter((s) => !own.includes(s));
      await c.next((f) => f.t === 'msg' && f.seq === expected[expected.length - 1], 20_000);
      const seqs = c.frames.filter((f) => f.t === 'msg' && f.conv === conv).map((f) => f.seq as number);
      expect(seqs).toEqual(expected);
    }
  });

  it('backlog across nodes: messages sent while offline arrive after hello on another node', async () => {
    const carol = await RawClient.signIn(cluster.url('n3'), await token('carol'));
    for (let i = 1; i <= 20; i++) await carol.request({ t: 'send', id: i, to: 'dave', cmid: `b${i}`, body: `b${i}` }, 15_000);
    const dave = await RawClient.signIn(cluster.url('n1'), await token('dave'));
    expect(dave.frames.filter((f) => f.t === 'msg').map((f) => f.seq)).toEqual(range(1, 20));
  });
});
