/** PROTOCOL.md §6 over real HTTP and sockets: /healthz, /metrics, /dev/token only with --dev, JSON without a subprotocol. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { RawClient } from '../helpers/raw.js';

let dev: TestNode;
let prod: TestNode;
beforeAll(async () => {
  dev = await startTestNode();
  prod = await startTestNode({ dev: false });
});
afterAll(async () => {
  await dev?.stop();
  await prod?.stop();
});

const http = (node: TestNode, path: string) => fetch(`http://127.0.0.1:${node.port}${path}`);

describe('operator endpoints', () => {
  it('/healthz says ok with the store and its durability setting', async () => {
    const res = await http(dev, '/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', node: dev.node.node, store: { kind: 'sqlite', sync: 'NORMAL' } });
  });

  it('/metrics is Prometheus text', async () => {
    const res = await http(dev, '/metrics');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/# TYPE sb_connections gauge/);
    expect(text).toMatch(/sb_messages_committed_total/);
  });

  it('/dev/token serves a working token with --dev, refuses bad ids, and does not exist without --dev', async () => {
    expect((await http(dev, '/dev/token?user=bad id')).status).toBe(400);
    const { token } = (await (await http(dev, '/dev/token?user=ops1')).json()) as { token: string };
    // No subprotocol offered: JSON.
    const ws = new WebSocket(dev.url);
    await new Promise((r) => ws.once('open', r));
    const welcome = new Promise<Record<string, unknown>>((r) => ws.once('message', (d) => r(JSON.parse(d.toString()))));
    ws.send(JSON.stringify({ t: 'hello', token }));
    expect(await welcome).toMatchObject({ t: 'welcome', user: 'ops1' });
    ws.close();
    expect((await http(prod, '/dev/token?user=ops1')).status).toBe(404);
  });

  it('when the SQLite writer thread dies, /healthz answers 503 failed and a send gets err unavailable', async () => {
    const node = await startTestNode();
    try {
      const token = async (u: string) => ((await (await http(node, `/dev/token?user=${u}`)).json()) as { token: string }).token;
      const c = await RawClient.signIn(node.url, await token('ops2'));
      // Reach the store's writer thread (private) and end it, as a crash of that thread would.
      await (node.node.store as unknown as { link: { worker: { terminate(): Promise<number> } } }).link.worker.terminate();
      for (let i = 0; i < 100 && (await http(node, '/healthz')).status === 200; i++) await new Promise((r) => setTimeout(r, 20));
      const res = await http(node, '/healthz');
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'failed', failure: expect.stringMatching(/store writer/) });
      const reply = await c.request({ t: 'send', id: 1, to: 'ops3', cmid: 'w1', body: 'hi' });
      expect(reply).toMatchObject({ t: 'err', re: 1, code: 'unavailable' });
      c.close();
    } finally {
      await node.stop();
    }
  });
});
