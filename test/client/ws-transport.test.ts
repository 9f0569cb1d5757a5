/**
 * The client over a real `ws` socket (the default WebSocket in Node 20, loaded lazily),
 * against a tiny scripted server in this file — not the Switchboard node.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { createCodec, type WireFrame } from '../../src/client/codec.js';
import { SwitchboardClient } from '../../src/client/index.js';
import { encodingOf } from '../../src/client/codec.js';

interface Seen {
  protocol: string;
  binary: boolean[];
  frames: WireFrame[];
  socket: WsSocket;
}

let wss: WebSocketServer;
let url: string;
const seen: Seen[] = [];

beforeAll(async () => {
  wss = new WebSocketServer({
    port: 0,
    path: '/ws',
    handleProtocols: (protocols) => (protocols.has('sb.v1.msgpack') ? 'sb.v1.msgpack' : protocols.has('sb.v1.json') ? 'sb.v1.json' : false),
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws`;
  wss.on('connection', (socket) => {
    const enc = encodingOf(socket.protocol) ?? 'json';
    const codec = createCodec(enc);
    const me: Seen = { protocol: socket.protocol, binary: [], frames: [], socket };
    seen.push(me);
    let seq = 0;
    const out = (f: object): void => socket.send(codec.encode(f));
    socket.on('message', (data, isBinary) => {
      me.binary.push(isBinary);
      const f = codec.decode(isBinary ? (data as Buffer) : (data as Buffer).toString('utf8'));
      me.frames.push(f);
      switch (f.t) {
        case 'hello':
          if (f.token !== 'good') {
            out({ t: 'err', code: 'unauthorized', msg: 'bad token' });
            socket.close(4001, 'unauthorized');
            return;
          }
          out({ t: 'welcome', user: 'alice', node: 'test', time: Date.now() });
          out({ t: 'msg', conv: 'dm:alice:bob', seq: 1, from: 'bob', cmid: 'b1', ts: Date.now(), kind: 'text', body: 'backlog ✓' });
          out({ t: 'synced' });
          return;
        case 'send':
          seq++;
          out({ t: 'ack', re: f.id, conv: f.conv ?? 'dm:alice:bob', seq: seq + 1, cmid: f.cmid, ts: Date.now() });
          return;
        case 'ping':
          out({ t: 'pong', re: f.id, time: 123 });
          return;
        case 'kick':
          return;
        default:
          out({ t: 'err', re: f.id, code: 'bad_request', msg: `unknown ${f.t}` });
      }
    });
  });
});

afterAll(async () => {
  for (const s of seen) s.socket.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
});

describe.each(['json', 'msgpack'] as const)('over ws (%s)', (encoding) => {
  it('handshakes, receives the backlog, sends, pings, reconnects and closes', async () => {
    const c = new SwitchboardClient({ url, token: 'good', encoding, reconnect: { minMs: 5, maxMs: 20 }, requestTimeoutMs: 2_000 });
    const backlog = c.waitFor('msg');
    const synced = c.waitFor('synced');
    const w = await c.connect();
    expect(w.user).toBe('alice');
    await expect(backlog).resolves.toMatchObject({ seq: 1, body: 'backlog ✓' });
    await synced;
    const srv = seen[seen.length - 1] as Seen;
    expect(srv.protocol).toBe(encoding === 'json' ? 'sb.v1.json' : 'sb.v1.msgpack');
    expect(srv.frames[0]).toEqual({ t: 'hello', token: 'good' });
    expect(srv.binary[0]).toBe(encoding === 'msgpack');

    const ack = await c.send({ to: 'bob', body: 'hi 👋', cmid: `x-${encoding}` });
    expect(ack).toMatchObject({ conv: 'dm:alice:bob', cmid: `x-${encoding}` });
    await expect(c.ping()).resolves.toMatchObject({ time: 123 });

    // The server drops us: the client comes back, says hello again, and the backlog repeat is dropped.
    const reopened = c.waitFor('welcome');
    const resynced = c.waitFor('synced');
    const dupes: number[] = [];
    c.on('msg', (m) => dupes.push(m.seq));
    srv.socket.close(1001, 'restart');
    await reopened;
    await resynced;
    expect(dupes).toEqual([]);
    expect(c.received('dm:alice:bob')).toEqual([1]);

    await c.close();
    expect(c.state).toBe('closed');
  });
});

describe('over ws: auth', () => {
  it('a refused token ends with 4001 and no reconnect', async () => {
    const before = seen.length;
    const c = new SwitchboardClient({ url, token: 'bad', reconnect: { minMs: 5, maxMs: 20 } });
    const errs: unknown[] = [];
    c.on('err', (e) => errs.push(e));
    await expect(c.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    await new Promise((r) => setTimeout(r, 50));
    expect(seen.length - before).toBe(1);
    expect(errs).toEqual([{ code: 'unauthorized', msg: 'bad token' }]);
    await c.close();
  });

  it('a token provider gets one more try after 4001', async () => {
    const tokens = ['bad', 'good'];
    let calls = 0;
    const c = new SwitchboardClient({ url, token: () => tokens[calls++] ?? 'bad', reconnect: { minMs: 5, maxMs: 20 } });
    await expect(c.connect()).resolves.toMatchObject({ user: 'alice' });
    expect(calls).toBe(2);
    await c.close();
  });
});
