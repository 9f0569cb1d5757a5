/** PROTOCOL.md §6 over real HTTP and sockets: /healthz, /metrics, /dev/token only with --dev, JSON without a subprotocol. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestNode, type TestNode } from '../helpers/node.js';

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
});
