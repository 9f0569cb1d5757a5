/**
 * Hostile clients (issue: hardening): connection floods from one address, deeply nested or
 * huge frames, prototype-polluting keys, slow readers. Each is refused with the right code
 * while other clients carry on. Tokens, non-member access, oversize frames and rate limits
 * are covered in limits.test.ts, groups.test.ts and the media suites.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawClient } from '../helpers/raw.js';
import { startTestNode, type TestNode } from '../helpers/node.js';

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode({ maxConnsPerIp: '8', maxQueuedBytes: '65536', rate: '100000' });
});
afterAll(async () => {
  await node?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let n = 0;
const uid = (p: string) => `${p}${++n}${Math.random().toString(36).slice(2, 6)}`;

async function dmStillWorks(a: RawClient, b: RawClient, bUser: string, tag: string): Promise<void> {
  const ack = await a.request({ t: 'send', id: `ok-${tag}`, to: bUser, cmid: `ok-${tag}`, body: 'still here' });
  expect(ack.t).toBe('ack');
  await b.next((f) => f.t === 'msg' && f.cmid === `ok-${tag}`);
}

describe('hostile clients', () => {
  it('a connection flood from one address is capped (HTTP 429) and the others carry on', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await RawClient.signIn(node.url, await node.token(a));
    const bob = await RawClient.signIn(node.url, await node.token(b));
    const flood: WebSocket[] = [];
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, () => {
        const ws = new WebSocket(node.url, 'sb.v1.json');
        flood.push(ws);
        return new Promise<number>((resolve) => {
          ws.once('open', () => resolve(101));
          ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.once('error', () => resolve(-1));
        });
      }),
    );
    expect(outcomes.filter((c) => c === 101)).toHaveLength(6);
    expect(outcomes.filter((c) => c === 429)).toHaveLength(6);
    await dmStillWorks(alice, bob, b, 'flood');
    for (const ws of flood) ws.terminate();
    await sleep(200);
    const again = await RawClient.signIn(node.url, await node.token(uid('c')));
    expect((await again.request({ t: 'ping', id: 1 })).t).toBe('pong');
    for (const c of [alice, bob, again]) c.close();
    await sleep(100);
  });

  it('deeply nested and huge frames get bad_request; the socket and the others are fine', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await RawClient.signIn(node.url, await node.token(a));
    const bob = await RawClient.signIn(node.url, await node.token(b));
    const json = await RawClient.signIn(node.url, await node.token(uid('j')));
    json.sendRaw('['.repeat(30_000) + ']'.repeat(30_000));
    json.sendRaw(`{"t":"send","id":1,"to":"x","cmid":"c","body":${'['.repeat(20_000)}${']'.repeat(20_000)}}`);
    expect((await json.next((f) => f.t === 'err')).code).toBe('bad_request');
    expect((await json.next((f) => f.t === 'err' && f.re === 1)).code).toBe('bad_request');
    const mp = await RawClient.signIn(node.url, await node.token(uid('m')), 'msgpack');
    mp.sendRaw(Buffer.alloc(60_000, 0x91), true); // 60,000 nested one-element arrays
    mp.sendRaw(Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x74]), true); // a map declaring 4 billion entries
    mp.sendRaw(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), true); // an array declaring 4 billion items
    mp.sendRaw(Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), true); // a string declaring 4 GiB
    for (let i = 0; i < 4; i++) await mp.next((f) => f.t === 'err' && mp.frames.filter((x) => x.t === 'err').length > i);
    expect(mp.frames.filter((f) => f.t === 'err').every((f) => f.code === 'bad_request')).toBe(true);
    expect((await mp.request({ t: 'ping', id: 'alive' })).t).toBe('pong');
    expect((await json.request({ t: 'ping', id: 'alive' })).t).toBe('pong');
    await dmStillWorks(alice, bob, b, 'nested');
    for (const c of [alice, bob, json, mp]) c.close();
    await sleep(100);
  });

  it('__proto__ and constructor keys pollute nothing', async () => {
    const [a, b] = [uid('a'), uid('b')];
    const alice = await RawClient.signIn(node.url, await node.token(a));
    const bob = await RawClient.signIn(node.url, await node.token(b));
    alice.sendRaw(`{"t":"send","id":1,"to":"${b}","cmid":"p1","body":"x","__proto__":{"polluted":"yes"},"reply":{"__proto__":{"polluted":"yes"},"seq":1}}`);
    alice.sendRaw('{"t":"ping","id":2,"constructor":{"prototype":{"polluted":"yes"}}}');
    alice.sendRaw(`{"t":"sync","id":3,"since":{"__proto__":5}}`);
    await alice.next((f) => f.re === 1);
    await alice.next((f) => f.re === 2);
    await alice.next((f) => f.re === 3);
    const mp = await RawClient.signIn(node.url, await node.token(a), 'msgpack');
    mp.send({ t: 'ping', id: 4, ['__proto__']: { polluted: 'yes' } });
    await mp.next((f) => f.re === 4);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
    await dmStillWorks(alice, bob, b, 'proto');
    for (const c of [alice, bob, mp]) c.close();
    await sleep(100);
  });

  it('a reader too slow for its queue bound is closed with 4008; memory stays bounded and others carry on', async () => {
    const [a, b, s] = [uid('a'), uid('b'), uid('slow')];
    const alice = await RawClient.signIn(node.url, await node.token(a));
    const bob = await RawClient.signIn(node.url, await node.token(b));
    const slow = await RawClient.signIn(node.url, await node.token(s));
    const sock = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    sock.pause(); // stop reading: the node's queue for this socket grows
    // 16 MB towards it: more than the kernel's socket buffers hold, so the node's own queue fills.
    const body = 'x'.repeat(16_000);
    for (let i = 0; i < 1000; i++) alice.send({ t: 'send', id: `f${i}`, to: s, cmid: `f${i}`, body });
    await alice.next((f) => f.re === 'f999', 20_000);
    const closedBySlowness = async () => {
      const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
      return /sb_closes_total\{code="4008"\} [1-9]/.test(text);
    };
    for (let i = 0; i < 100 && !(await closedBySlowness()); i++) await sleep(100);
    expect(await closedBySlowness()).toBe(true);
    sock.resume();
    // The close frame may be cut off by the node's hard stop of the socket one second later.
    expect([4008, 1006]).toContain((await slow.closed).code);
    await dmStillWorks(alice, bob, b, 'slow');
    // The slow reader reconnects and gets what it missed from its backlog.
    const back = await RawClient.signIn(node.url, await node.token(s));
    const seqs = back.frames.filter((f) => f.t === 'msg').map((f) => f.seq as number);
    expect(seqs.at(-1)).toBe(1000);
    for (const c of [alice, bob, back]) c.close();
  });
});
