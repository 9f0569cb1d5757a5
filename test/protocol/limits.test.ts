/** PROTOCOL.md §1 and §5 over real sockets, in both encodings: sign-in, bad frames, limits, rate. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { RawClient } from '../helpers/raw.js';
import { startTestNode, TEST_SECRET, type TestNode } from '../helpers/node.js';
import type { Encoding } from '../../src/protocol/codes.js';

const ENCODINGS: Encoding[] = ['json', 'msgpack'];
let node: TestNode;

beforeAll(async () => {
  node = await startTestNode({ helloTimeoutMs: '300', maxFrame: '4096', maxBody: '100', rate: '5' });
});
afterAll(async () => {
  await node?.stop();
});

let n = 0;
const uid = (p: string) => `${p}${++n}_${Math.random().toString(36).slice(2, 7)}`;

describe.each(ENCODINGS)('limits (%s)', (enc) => {
  const signIn = async (user: string) => RawClient.signIn(node.url, await node.token(user), enc);

  it('a first frame other than hello gets unauthorized and close 4001', async () => {
    const c = await RawClient.connect(node.url, enc);
    c.send({ t: 'ping', id: 1 });
    const err = await c.next((f) => f.t === 'err');
    expect(err.code).toBe('unauthorized');
    expect((await c.closed).code).toBe(4001);
  });

  it('a bad, expired or alg:none token gets unauthorized and close 4001', async () => {
    const key = new TextEncoder().encode(TEST_SECRET);
    const expired = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
    const wrongKey = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').sign(new TextEncoder().encode('x'.repeat(40)));
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u1' })}.`;
    for (const token of [expired, wrongKey, none, 'not-a-jwt']) {
      const c = await RawClient.connect(node.url, enc);
      c.send({ t: 'hello', token });
      expect((await c.next((f) => f.t === 'err')).code).toBe('unauthorized');
      expect((await c.closed).code).toBe(4001);
    }
  });

  it('no hello in time gets unauthorized and close 4001', async () => {
    const c = await RawClient.connect(node.url, enc);
    expect((await c.next((f) => f.t === 'err', 3000)).code).toBe('unauthorized');
    expect((await c.closed).code).toBe(4001);
  });

  it('undecodable frames, non-objects, unknown types and wrong fields get bad_request; the socket stays open', async () => {
    const c = await signIn(uid('bad'));
    c.sendRaw(enc === 'json' ? '{not json' : Buffer.from([0xc1, 0xc1, 0xc1]));
    expect((await c.next((f) => f.t === 'err')).code).toBe('bad_request');
    c.send([1, 2, 3] as unknown as Record<string, unknown>);
    c.send({ t: 'frobnicate', id: 'x1' });
    c.send({ t: 'send', id: 'x2', to: 'someone', cmid: 5, body: 'hi' });
    c.send({ t: 'history', id: 'x3', conv: 'dm:a:b', limit: 1000 });
    for (const re of ['x1', 'x2', 'x3']) {
      const err = await c.next((f) => f.t === 'err' && f.re === re);
      expect(err.code).toBe('bad_request');
    }
    expect(c.frames.filter((f) => f.t === 'err' && f.re === undefined).length).toBe(2);
    expect((await c.request({ t: 'ping', id: 'p' })).t).toBe('pong');
  });

  it('a frame in the wrong encoding is a bad_request', async () => {
    const c = await signIn(uid('enc'));
    if (enc === 'json') c.sendRaw(Buffer.from([0x81, 0xa1, 0x74, 0xa4, 0x70, 0x69, 0x6e, 0x67]), true);
    else c.sendRaw('{"t":"ping","id":1}');
    expect((await c.next((f) => f.t === 'err')).code).toBe('bad_request');
  });

  it('more than 20 bad frames in a minute closes the socket with 1008', async () => {
    const c = await signIn(uid('flood'));
    for (let i = 0; i < 25; i++) c.send({ t: 'nope', id: i });
    expect((await c.closed).code).toBe(1008);
  });

  it('a frame over SB_MAX_FRAME closes with 1009', async () => {
    const c = await signIn(uid('big'));
    c.send({ t: 'send', id: 1, to: 'x', cmid: 'c', body: 'x'.repeat(5000) });
    expect((await c.closed).code).toBe(1009);
  });

  it('a body over SB_MAX_BODY gets too_large; a send without body or media gets bad_request', async () => {
    const c = await signIn(uid('body'));
    const big = await c.request({ t: 'send', id: 1, to: 'x', cmid: 'c1', body: 'é'.repeat(51) });
    expect(big).toMatchObject({ t: 'err', code: 'too_large', re: 1 });
    const empty = await c.request({ t: 'send', id: 2, to: 'x', cmid: 'c2' });
    expect(empty).toMatchObject({ t: 'err', code: 'bad_request', re: 2 });
    const ok = await c.request({ t: 'send', id: 3, to: 'x', cmid: 'c3', body: 'é'.repeat(50) });
    expect(ok).toMatchObject({ t: 'ack', seq: 1 });
  });

  it('sends over SB_RATE get rate_limited with retryMs, are not accepted, and may be retried with the same cmid', async () => {
    const sender = await signIn(uid('fast'));
    const peer = uid('peer');
    const receiver = await signIn(peer);
    for (let i = 0; i < 30; i++) sender.send({ t: 'send', id: i, to: peer, cmid: `m${i}`, body: `b${i}` });
    const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => sender.next((f) => f.re === i)));
    const limited = replies.filter((f) => f.t === 'err');
    const acked = replies.filter((f) => f.t === 'ack');
    expect(limited.length).toBeGreaterThan(0);
    for (const e of limited) {
      expect(e.code).toBe('rate_limited');
      expect(e.retryMs).toBeGreaterThan(0);
    }
    expect(acked.map((a) => a.seq)).toEqual(acked.map((_, i) => i + 1));
    const refusedId = limited[0]!.re as number;
    // Non-send frames are not counted.
    expect((await sender.request({ t: 'ping', id: 'p' })).t).toBe('pong');
    await new Promise((r) => setTimeout(r, (limited[0]!.retryMs as number) + 50));
    const retry = await sender.request({ t: 'send', id: 'r', to: peer, cmid: `m${refusedId}`, body: `b${refusedId}` });
    expect(retry).toMatchObject({ t: 'ack', seq: acked.length + 1 });
    expect(retry.dup).toBeFalsy();
    await receiver.next((f) => f.t === 'msg' && f.seq === acked.length + 1);
    const got = receiver.frames.filter((f) => f.t === 'msg').map((f) => f.body);
    expect(got).toHaveLength(acked.length + 1);
  });
});
