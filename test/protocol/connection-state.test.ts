/**
 * Per-connection state kept lean (src/gateway/server.ts, connection.ts) without changing the
 * contract: one timer holds every socket's hello deadline, each socket still gets its own;
 * signed-in and idle sockets stay; the per-address count is released however a socket ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw.js';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { nofileLimits } from '../../src/gateway/server.js';

let node: TestNode;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const uid = (p: string) => `${p}${++n}_${Math.random().toString(36).slice(2, 7)}`;

beforeAll(async () => {
  node = await startTestNode({ helloTimeoutMs: '400', maxConnsPerIp: '6', pingIntervalMs: '200' });
});
afterAll(async () => {
  await node?.stop();
});

describe('connection state', () => {
  it('each socket gets its own hello deadline from the one shared timer; signed-in sockets stay', async () => {
    const t0 = Date.now();
    const first = await RawClient.connect(node.url);
    await sleep(200);
    const second = await RawClient.connect(node.url);
    const signedIn = await RawClient.signIn(node.url, await node.token(uid('s')));
    const closedAt = async (c: RawClient) => {
      expect((await c.closed).code).toBe(4001);
      return Date.now() - t0;
    };
    const [a, b] = await Promise.all([closedAt(first), closedAt(second)]);
    expect(a).toBeGreaterThanOrEqual(380);
    expect(a).toBeLessThan(1500);
    expect(b).toBeGreaterThanOrEqual(580);
    expect(b - a).toBeGreaterThanOrEqual(100);
    // Well past the deadline and several pings later, the signed-in socket is still served.
    await sleep(500);
    expect((await signedIn.request({ t: 'ping', id: 1 })).t).toBe('pong');
    signedIn.close();
  });

  it('the per-address count is released by sockets that close before hello and after hello', async () => {
    for (let round = 0; round < 3; round++) {
      const held = [await RawClient.connect(node.url), await RawClient.connect(node.url)];
      const users = [await RawClient.signIn(node.url, await node.token(uid('u'))), await RawClient.signIn(node.url, await node.token(uid('u')))];
      for (const c of [...held, ...users]) c.close();
      await Promise.all([...held, ...users].map((c) => c.closed));
      await sleep(50);
    }
    // All six slots are free again.
    const six = await Promise.all(Array.from({ length: 6 }, async () => RawClient.signIn(node.url, await node.token(uid('v')))));
    expect((await six[5]!.request({ t: 'ping', id: 2 })).t).toBe('pong');
    for (const c of six) c.close();
    await Promise.all(six.map((c) => c.closed));
  });

  it('reads the open-file limits of the process where /proc has them', () => {
    const limits = nofileLimits();
    if (process.platform !== 'linux') return;
    expect(limits).not.toBeNull();
    expect(limits!.soft).toBeGreaterThan(0);
    expect(limits!.hard).toBeGreaterThanOrEqual(limits!.soft);
  });
});
