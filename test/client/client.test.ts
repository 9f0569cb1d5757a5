import { afterEach, describe, expect, it } from 'vitest';
import { SwitchboardClient, SwitchboardError, type MsgMeta, type SwitchboardClientOptions } from '../../src/client/index.js';
import type { ChatMessage } from '../../src/protocol/frames.js';
import { FakeNet, sleep, type FakeSocket } from './fake-ws.js';

const clients: SwitchboardClient[] = [];

function make(net: FakeNet, extra: Partial<SwitchboardClientOptions> = {}): SwitchboardClient {
  const c = new SwitchboardClient({
    url: 'ws://fake/ws',
    token: 'tok',
    encoding: net.encoding,
    WebSocket: net.Ctor,
    reconnect: { minMs: 1, maxMs: 5 },
    requestTimeoutMs: 300,
    ...extra,
  });
  clients.push(c);
  return c;
}

async function open(net: FakeNet, extra: Partial<SwitchboardClientOptions> = {}): Promise<{ c: SwitchboardClient; s: FakeSocket }> {
  const c = make(net, extra);
  const welcomed = c.connect();
  const s = await net.next();
  await s.handshake();
  await welcomed;
  return { c, s };
}

const msg = (conv: string, seq: number, from = 'bob'): ChatMessage & { t: 'msg' } => ({
  t: 'msg',
  conv,
  seq,
  from,
  cmid: `m${seq}`,
  ts: 1_000 + seq,
  kind: 'text',
  body: `hello ${seq}`,
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe.each(['json', 'msgpack'] as const)('SwitchboardClient (%s)', (encoding) => {
  it('sends hello first and resolves connect on welcome', async () => {
    const net = new FakeNet(encoding);
    const c = make(net, { device: 'phone-1' });
    const states: string[] = [];
    c.on('state', (s) => states.push(s));
    const welcomed = c.connect();
    const s = await net.next();
    expect(s.url).toBe('ws://fake/ws');
    expect(s.protocols).toEqual([encoding === 'json' ? 'sb.v1.json' : 'sb.v1.msgpack']);
    expect(s.binaryType).toBe('arraybuffer');
    s.accept();
    expect(s.frames[0]).toEqual({ t: 'hello', token: 'tok', device: 'phone-1' });
    expect(s.kinds[0]).toBe(encoding === 'json' ? 'string' : 'binary');
    s.push({ t: 'welcome', user: 'alice', node: 'n1', time: 42 });
    await expect(welcomed).resolves.toEqual({ user: 'alice', node: 'n1', time: 42 });
    expect(states).toEqual(['connecting', 'open']);
    expect(c.state).toBe('open');
    expect(c.user).toBe('alice');
    await expect(c.connect()).resolves.toEqual({ user: 'alice', node: 'n1', time: 42 });
  });

  it('matches replies by re, rejects err with re, times out', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const pConvs = c.convs();
    const pPing = c.ping();
    const fConvs = await s.next('convs');
    const fPing = await s.next('ping');
    expect(typeof fConvs.id).toBe('number');
    expect(fPing.id).toBe((fConvs.id as number) + 1);
    s.push({ t: 'pong', re: fPing.id, time: 77 });
    s.push({ t: 'ok', re: fConvs.id, convs: [{ conv: 'dm:alice:bob', kind: 'direct', lastSeq: 3, delivered: 2, read: 1 }] });
    await expect(pPing).resolves.toMatchObject({ time: 77 });
    await expect(pConvs).resolves.toEqual([{ conv: 'dm:alice:bob', kind: 'direct', lastSeq: 3, delivered: 2, read: 1 }]);

    const pHist = c.history('dm:alice:bob', { before: 10, limit: 5 });
    const fHist = await s.next('history');
    expect(fHist).toMatchObject({ conv: 'dm:alice:bob', before: 10, limit: 5 });
    s.push({ t: 'err', re: fHist.id, code: 'rate_limited', msg: 'slow', retryMs: 30 });
    const e = await pHist.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SwitchboardError);
    expect(e).toMatchObject({ code: 'rate_limited', retryMs: 30, message: 'slow' });

    const errs: unknown[] = [];
    c.on('err', (x) => errs.push(x));
    s.push({ t: 'err', code: 'bad_request', msg: 'what' });
    s.push({ t: 'err', re: 9999, code: 'internal', msg: 'late' });
    expect(errs).toEqual([
      { code: 'bad_request', msg: 'what' },
      { re: 9999, code: 'internal', msg: 'late' },
    ]);

    const t0 = Date.now();
    await expect(c.info('dm:alice:bob', 1)).rejects.toMatchObject({ code: 'timeout' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it('drops a (conv, seq) it has and records received seqs', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const got: [number, MsgMeta][] = [];
    c.on('msg', (m, meta) => got.push([m.seq, meta]));
    for (const seq of [1, 2, 1, 3, 2, 3]) s.push(msg('dm:alice:bob', seq));
    s.push(msg('g:x', 1));
    expect(got.map(([seq]) => seq)).toEqual([1, 2, 3, 1]);
    expect(got[0]?.[1]).toEqual({ sync: false, dup: false });
    expect(c.received('dm:alice:bob')).toEqual([1, 2, 3]);
    expect(c.received('g:x')).toEqual([1]);
    const synced = c.waitFor('synced');
    s.push({ t: 'synced' });
    await synced;
  });

  it('msg payload is the ChatMessage without t', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const m = c.waitFor('msg');
    const frame = { ...msg('g:x', 1), kind: 'system', sys: { op: 'create', by: 'bob', users: ['alice'], title: 'T' } };
    s.push(frame);
    const { t: _t, ...want } = frame;
    await expect(m).resolves.toEqual(want);
  });

  it('sync collects the pushes before its ok and emits them even when seen before', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    s.push(msg('dm:alice:bob', 1));
    const got: [number, MsgMeta][] = [];
    c.on('msg', (m, meta) => got.push([m.seq, meta]));
    const p = c.sync({ 'dm:alice:bob': 0 });
    const f = await s.next('sync');
    expect(f.since).toEqual({ 'dm:alice:bob': 0 });
    s.push(msg('dm:alice:bob', 1));
    s.push(msg('dm:alice:bob', 2));
    s.push({ t: 'ok', re: f.id, convs: { 'dm:alice:bob': 2 } });
    const r = await p;
    expect(r.msgs.map((m) => m.seq)).toEqual([1, 2]);
    expect(r.convs).toEqual({ 'dm:alice:bob': 2 });
    expect(got).toEqual([
      [1, { sync: true, dup: true }],
      [2, { sync: true, dup: false }],
    ]);
    s.push(msg('dm:alice:bob', 2)); // a live repeat after the sync: dropped
    expect(got).toHaveLength(2);
    expect(c.received('dm:alice:bob')).toEqual([1, 2]);
  });

  it('autoRecv acknowledges messages from others only', async () => {
    const net = new FakeNet(encoding);
    const { s } = await open(net, { autoRecv: true });
    s.push(msg('dm:alice:bob', 1, 'bob'));
    s.push(msg('dm:alice:bob', 2, 'alice'));
    s.push(msg('dm:alice:bob', 3, 'bob'));
    expect(s.framesOf('recv')).toEqual([
      { t: 'recv', conv: 'dm:alice:bob', seq: 1 },
      { t: 'recv', conv: 'dm:alice:bob', seq: 3 },
    ]);
  });

  it('keeps sends in the outbox across a reconnect and resends them with the same cmid', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const states: string[] = [];
    const closes: unknown[] = [];
    c.on('state', (x) => states.push(x));
    c.on('close', (x) => closes.push(x));

    const p1 = c.send({ to: 'bob', body: 'hi', cmid: 'c1' });
    const f1 = await s.next('send');
    expect(f1).toEqual({ t: 'send', id: f1.id, to: 'bob', cmid: 'c1', body: 'hi' });
    const pConvs = c.convs();
    await s.next('convs');

    s.serverClose(1001, 'going away');
    await expect(pConvs).rejects.toMatchObject({ code: 'disconnected' });
    expect(closes).toEqual([{ code: 1001, reason: 'going away', reconnect: true }]);
    expect(c.state).toBe('reconnecting');
    const p2 = c.send({ conv: 'dm:alice:bob', body: 'while down' });
    expect(c.outboxItems().map((i) => i.state)).toEqual(['queued', 'queued']);

    const s2 = await net.next();
    s2.accept();
    await s2.next('hello');
    expect(s2.frames).toHaveLength(1); // nothing before the welcome
    s2.push({ t: 'welcome', user: 'alice', node: 'n2', time: 2 });
    const r1 = await s2.next('send');
    const r2 = await s2.next('send');
    expect(r1.cmid).toBe('c1');
    expect(r1.id).not.toBe(f1.id);
    expect(r2).toMatchObject({ conv: 'dm:alice:bob', body: 'while down' });
    expect(typeof r2.cmid).toBe('string');
    expect((r2.cmid as string).length).toBeGreaterThan(8);
    s2.push({ t: 'ack', re: r1.id, conv: 'dm:alice:bob', seq: 7, cmid: 'c1', ts: 5, dup: true });
    s2.push({ t: 'ack', re: r2.id, conv: 'dm:alice:bob', seq: 8, cmid: r2.cmid, ts: 6 });
    await expect(p1).resolves.toEqual({ conv: 'dm:alice:bob', seq: 7, cmid: 'c1', ts: 5, dup: true });
    await expect(p2).resolves.toEqual({ conv: 'dm:alice:bob', seq: 8, cmid: r2.cmid, ts: 6 });
    expect(s2.framesOf('send')).toHaveLength(2);
    expect(states).toEqual(['reconnecting', 'open']);
    expect(c.outboxItems()).toEqual([]);
  });

  it('retries a send after rate_limited (retryMs) and unavailable, rejects a permanent error', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net, { retry: { minMs: 5, maxMs: 10 } });
    const p = c.send({ conv: 'dm:alice:bob', body: 'x', cmid: 'k' });
    const a1 = await s.next('send');
    const t0 = Date.now();
    s.push({ t: 'err', re: a1.id, code: 'rate_limited', msg: 'slow', retryMs: 60 });
    const a2 = await s.next('send');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
    expect(a2.cmid).toBe('k');
    s.push({ t: 'err', re: a2.id, code: 'unavailable', msg: 'moving' });
    const a3 = await s.next('send');
    expect(a3.cmid).toBe('k');
    s.push({ t: 'ack', re: a3.id, conv: 'dm:alice:bob', seq: 1, cmid: 'k', ts: 1 });
    await expect(p).resolves.toMatchObject({ seq: 1, cmid: 'k' });

    const bad = c.send({ conv: 'dm:alice:bob', body: 'x', cmid: 'k2' });
    const b1 = await s.next('send');
    s.push({ t: 'err', re: b1.id, code: 'forbidden', msg: 'no' });
    await expect(bad).rejects.toMatchObject({ code: 'forbidden' });
    await sleep(30);
    expect(s.framesOf('send').filter((f) => f.cmid === 'k2')).toHaveLength(1);
  });

  it('joins a second send of the same cmid instead of writing a copy', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const p1 = c.send({ to: 'bob', body: 'x', cmid: 'same' });
    const p2 = c.send({ to: 'bob', body: 'x', cmid: 'same' });
    const f = await s.next('send');
    s.push({ t: 'ack', re: f.id, conv: 'dm:alice:bob', seq: 1, cmid: 'same', ts: 1 });
    await expect(p1).resolves.toMatchObject({ seq: 1 });
    await expect(p2).resolves.toMatchObject({ seq: 1 });
    expect(s.framesOf('send')).toHaveLength(1);
    // The same cmid with other content while the first is pending: refused, nothing written.
    const p3 = c.send({ to: 'bob', body: 'x', cmid: 'busy' });
    await expect(c.send({ conv: 'dm:alice:bob', body: 'x', cmid: 'busy' })).rejects.toMatchObject({ code: 'bad_request' });
    const f3 = await s.next('send');
    s.push({ t: 'ack', re: f3.id, conv: 'dm:alice:bob', seq: 2, cmid: 'busy', ts: 1 });
    await expect(p3).resolves.toMatchObject({ seq: 2 });
    expect(s.framesOf('send').filter((x) => x.cmid === 'busy')).toHaveLength(1);
  });

  it('a send without reply: ping, then drop the silent connection and resend on the next', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net, { requestTimeoutMs: 80 });
    const p = c.send({ to: 'bob', body: 'x', cmid: 'slow' });
    await s.next('send');
    await s.next('ping', undefined, 500);
    const s2 = await net.next(1_000);
    expect(s.closedWith?.code).toBe(4000);
    expect(s.framesOf('send')).toHaveLength(1);
    await s2.handshake();
    const f = await s2.next('send');
    expect(f.cmid).toBe('slow');
    s2.push({ t: 'ack', re: f.id, conv: 'dm:alice:bob', seq: 3, cmid: 'slow', ts: 1 });
    await expect(p).resolves.toMatchObject({ seq: 3 });
    expect(c.state).toBe('open');
  });

  it('a missing ack on a live connection (pong answers) is asked again with the same cmid and id', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net, { requestTimeoutMs: 60 });
    const p = c.send({ to: 'bob', body: 'x', cmid: 'slow' });
    const f = await s.next('send');
    const ping = await s.next('ping', undefined, 500);
    s.push({ t: 'pong', re: ping.id, time: 1 });
    await sleep(30);
    // The ack of the first write was lost; the repeat is answered (the node says dup).
    const sends = s.framesOf('send');
    expect(sends).toHaveLength(2);
    expect(sends[1]).toMatchObject({ id: f.id, cmid: 'slow' });
    s.push({ t: 'ack', re: f.id, conv: 'dm:alice:bob', seq: 1, cmid: 'slow', ts: 1, dup: true });
    await expect(p).resolves.toMatchObject({ seq: 1 });
    expect(net.sockets).toHaveLength(1);
  });

  it('groupCreate is retried like send and resolves with the conv', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net, { retry: { minMs: 1, maxMs: 2 } });
    const p = c.groupCreate({ title: 'Team', members: ['bob', 'carol'], cmid: 'g1' });
    const f1 = await s.next('group.create');
    expect(f1).toMatchObject({ cmid: 'g1', title: 'Team', members: ['bob', 'carol'] });
    s.push({ t: 'err', re: f1.id, code: 'internal', msg: 'oops' });
    const f2 = await s.next('group.create');
    expect(f2.cmid).toBe('g1');
    s.push({ t: 'ok', re: f2.id, conv: 'g:abc', seq: 1 });
    await expect(p).resolves.toEqual({ conv: 'g:abc', seq: 1, cmid: 'g1' });
  });

  it('refuses an oversized frame locally instead of getting closed 1009', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    await expect(c.send({ to: 'bob', body: 'x'.repeat(70_000) })).rejects.toMatchObject({ code: 'too_large' });
    await expect(c.send({ body: 'x' })).rejects.toMatchObject({ code: 'bad_request' });
    await expect(c.send({ to: 'bob' })).rejects.toMatchObject({ code: 'bad_request' });
    expect(s.framesOf('send')).toHaveLength(0);
    expect(c.outboxItems()).toHaveLength(0);
  });

  it('queues recv/read while disconnected and sends the highest after the welcome', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    c.recv('dm:alice:bob', 1);
    expect(s.framesOf('recv')).toEqual([{ t: 'recv', conv: 'dm:alice:bob', seq: 1 }]);
    s.serverClose(1006);
    c.recv('dm:alice:bob', 4);
    c.recv('dm:alice:bob', 3);
    c.read('dm:alice:bob', 2);
    c.read('g:x', 5);
    expect(c.typing('dm:alice:bob', true)).toBe(false);
    const s2 = await net.next();
    await s2.handshake();
    await sleep(5);
    expect(s2.framesOf('recv')).toEqual([{ t: 'recv', conv: 'dm:alice:bob', seq: 4 }]);
    expect(s2.framesOf('read')).toEqual([
      { t: 'read', conv: 'dm:alice:bob', seq: 2 },
      { t: 'read', conv: 'g:x', seq: 5 },
    ]);
    expect(c.typing('dm:alice:bob', true)).toBe(true);
    expect(c.active()).toBe(true);
    expect(s2.framesOf('typing')).toEqual([{ t: 'typing', conv: 'dm:alice:bob', on: true }]);
    expect(s2.framesOf('active')).toEqual([{ t: 'active' }]);
  });

  it('re-subscribes presence after a reconnect (without the denied users)', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const p = c.presenceSub(['bob', 'eve']);
    const f = await s.next('presence.sub');
    s.push({ t: 'ok', re: f.id, denied: ['eve'] });
    await expect(p).resolves.toEqual({ denied: ['eve'] });
    const pres = c.waitFor('presence', (x) => x.user === 'bob');
    s.push({ t: 'presence', user: 'bob', online: true, lastSeen: 5 });
    await expect(pres).resolves.toEqual({ user: 'bob', online: true, lastSeen: 5 });
    s.serverClose(1001);
    const s2 = await net.next();
    await s2.handshake();
    const again = await s2.next('presence.sub');
    expect(again.users).toEqual(['bob']);
  });

  it('forwards receipt and typing pushes', async () => {
    const net = new FakeNet(encoding);
    const { c, s } = await open(net);
    const r = c.waitFor('receipt');
    const t = c.waitFor('typing');
    s.push({ t: 'receipt', conv: 'g:x', user: '*', kind: 'read', seq: 4 });
    s.push({ t: 'typing', conv: 'g:x', user: 'bob', on: true });
    await expect(r).resolves.toEqual({ conv: 'g:x', user: '*', kind: 'read', seq: 4 });
    await expect(t).resolves.toEqual({ conv: 'g:x', user: 'bob', on: true });
  });
});

describe('SwitchboardClient connection lifecycle', () => {
  it('4001 with a fixed token: reported, no reconnect, connect rejects', async () => {
    const net = new FakeNet();
    const c = make(net);
    const errs: unknown[] = [];
    const closes: unknown[] = [];
    c.on('err', (e) => errs.push(e));
    c.on('close', (e) => closes.push(e));
    const p = c.connect();
    const s = await net.next();
    s.accept();
    await s.next('hello');
    s.push({ t: 'err', code: 'unauthorized', msg: 'bad token' });
    s.serverClose(4001, 'unauthorized');
    await expect(p).rejects.toMatchObject({ code: 'unauthorized' });
    expect(errs).toEqual([{ code: 'unauthorized', msg: 'bad token' }]);
    expect(closes).toEqual([{ code: 4001, reason: 'unauthorized', reconnect: false }]);
    expect(c.state).toBe('closed');
    await sleep(30);
    expect(net.sockets).toHaveLength(1);
    await expect(c.send({ to: 'bob', body: 'x' })).rejects.toMatchObject({ code: 'closed' });
  });

  it('4001 with a token provider: fetches a fresh token once', async () => {
    const net = new FakeNet();
    let calls = 0;
    const c = make(net, { token: async () => `t${++calls}` });
    const p = c.connect();
    const s1 = await net.next();
    s1.accept();
    expect((await s1.next('hello')).token).toBe('t1');
    s1.serverClose(4001, 'expired');
    const s2 = await net.next();
    s2.accept();
    expect((await s2.next('hello')).token).toBe('t2');
    s2.push({ t: 'welcome', user: 'alice', node: 'n', time: 1 });
    await p;
    // An ordinary reconnect reuses the token.
    s2.serverClose(1001);
    const s3 = await net.next();
    s3.accept();
    expect((await s3.next('hello')).token).toBe('t2');
    // 4001 twice in a row (no welcome between): stop.
    s3.serverClose(4001);
    const s4 = await net.next();
    s4.accept();
    expect((await s4.next('hello')).token).toBe('t3');
    s4.serverClose(4001);
    await sleep(30);
    expect(net.sockets).toHaveLength(4);
    expect(c.state).toBe('closed');
    expect(calls).toBe(3);
  });

  it('close(): no reconnect, pending work rejects with closed, sends after close reject', async () => {
    const net = new FakeNet();
    const { c, s } = await open(net);
    const p = c.send({ to: 'bob', body: 'x' });
    const q = c.convs();
    await s.next('send');
    const closes: unknown[] = [];
    c.on('close', (x) => closes.push(x));
    const settled = Promise.allSettled([p, q]);
    await c.close();
    const [rp, rq] = await settled;
    expect(rp).toMatchObject({ status: 'rejected', reason: { code: 'closed' } });
    expect(rq).toMatchObject({ status: 'rejected', reason: { code: 'closed' } });
    expect(s.closedWith).toEqual({ code: 1000, reason: 'client close' });
    expect(closes).toEqual([{ code: 1000, reason: 'client close', reconnect: false }]);
    expect(c.state).toBe('closed');
    await sleep(20);
    expect(net.sockets).toHaveLength(1);
    await expect(c.ping()).rejects.toMatchObject({ code: 'closed' });
    // And it can be opened again.
    const again = c.connect();
    const s2 = await net.next();
    await s2.handshake();
    await expect(again).resolves.toMatchObject({ user: 'alice' });
  });

  it('sends and requests made before connect wait for the welcome', async () => {
    const net = new FakeNet();
    const c = make(net);
    const p = c.send({ to: 'bob', body: 'early', cmid: 'e' });
    const q = c.convs();
    void c.connect();
    const s = await net.next();
    await s.handshake();
    const f = await s.next('send');
    const g = await s.next('convs');
    s.push({ t: 'ack', re: f.id, conv: 'dm:alice:bob', seq: 1, cmid: 'e', ts: 1 });
    s.push({ t: 'ok', re: g.id, convs: [] });
    await expect(p).resolves.toMatchObject({ seq: 1 });
    await expect(q).resolves.toEqual([]);
  });

  it('no welcome in time: drops the socket and dials again', async () => {
    const net = new FakeNet();
    const c = make(net, { requestTimeoutMs: 50 });
    const p = c.connect();
    const s1 = await net.next();
    s1.accept();
    await s1.next('hello');
    const s2 = await net.next(1_000);
    expect(s1.closedWith?.code).toBe(4000);
    await s2.handshake();
    await expect(p).resolves.toMatchObject({ user: 'alice' });
  });

  it('reconnect:false stays closed after a drop', async () => {
    const net = new FakeNet();
    const { c, s } = await open(net, { reconnect: false });
    const p = c.send({ to: 'bob', body: 'x' });
    await s.next('send');
    s.serverClose(1001);
    await expect(p).rejects.toMatchObject({ code: 'disconnected' });
    expect(c.state).toBe('closed');
    await sleep(20);
    expect(net.sockets).toHaveLength(1);
  });

  it('keeps dialling with backoff while the server is unreachable', async () => {
    const net = new FakeNet();
    const c = make(net, { reconnect: { minMs: 5, maxMs: 10 } });
    const p = c.connect();
    for (let i = 0; i < 3; i++) (await net.next()).serverClose(1006);
    expect(c.state).toBe('connecting');
    const s = await net.next();
    await s.handshake();
    await p;
    expect(c.state).toBe('open');
  });

  it('reports undecodable frames as error events and keeps going', async () => {
    const net = new FakeNet();
    const { c, s } = await open(net);
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    s.pushRaw('{not json');
    s.pushRaw('[1,2]');
    s.push({ t: 'some.future.frame' });
    expect(errors).toHaveLength(2);
    const pong = c.ping();
    const f = await s.next('ping');
    s.push({ t: 'pong', re: f.id, time: 1 });
    await expect(pong).resolves.toMatchObject({ time: 1 });
  });

  it('waitFor: first match, or a timeout', async () => {
    const net = new FakeNet();
    const { c, s } = await open(net);
    const w = c.waitFor('msg', (m) => m.seq === 2);
    s.push(msg('dm:alice:bob', 1));
    s.push(msg('dm:alice:bob', 2));
    await expect(w).resolves.toMatchObject({ seq: 2 });
    await expect(c.waitFor('synced', undefined, 20)).rejects.toMatchObject({ code: 'timeout' });
  });
});
