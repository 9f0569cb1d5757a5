/**
 * PROTOCOL.md §4.6 over real sockets, in both encodings: what counts as activity, last seen,
 * the online window and its lapse, the last close, who may subscribe, and that a closed
 * connection's subscriptions are dropped.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, sleep, uid, type Peer } from '../helpers/clients.js';
import { RawClient, type Frame } from '../helpers/raw.js';
import type { Presence } from '../../src/client/index.js';

/** The online window of the test node; the gateway forwards activity at most every WINDOW/10 ms. */
const WINDOW = 1500;
/** Longer than the activity forwarding interval, so each activity moves last seen. */
const STEP = 250;

let node: TestNode;
const raws: RawClient[] = [];

beforeAll(async () => {
  node = await startTestNode({ onlineWindowMs: String(WINDOW), rate: '100000' });
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.close();
  await closeAll();
});
afterAll(async () => {
  await node?.stop();
});

describe.each(['json', 'msgpack'] as const)('presence (%s)', (enc) => {
  const signIn = async (user: string) => {
    const c = await RawClient.signIn(node.url, await node.token(user), enc);
    raws.push(c);
    return c;
  };

  /** Subscribe (again) and return the state pushed at once. */
  const current = async (watcher: Peer, user: string): Promise<Presence> => {
    const next = watcher.client.waitFor('presence', (p) => p.user === user);
    const { denied } = await watcher.client.presenceSub([user]);
    expect(denied).toEqual([]);
    return next;
  };

  it('hello, recv, sync and ping leave last seen alone; send, read, typing and active move it', async () => {
    const [x, w] = [uid('x'), uid('w')];
    const watcher = await peer(node, w, enc);
    const { conv } = await watcher.client.send({ to: x, body: 'hello x' });
    const subject = await signIn(x);
    const quiet = async () => {
      subject.send({ t: 'recv', conv, seq: 1 });
      await subject.request({ t: 'sync', id: 's' });
      await subject.request({ t: 'ping', id: 'p' });
      await signIn(x); // another hello
      await sleep(STEP);
    };

    await quiet();
    expect(await current(watcher, x)).toEqual({ user: x, online: false, lastSeen: null });

    // active: online at once (a pushed change), last seen = the time of the frame
    let before = Date.now();
    const online = watcher.client.waitFor('presence', (p) => p.user === x && p.online);
    subject.send({ t: 'active' });
    const p1 = await online;
    expect(p1.lastSeen).toBeGreaterThanOrEqual(before);
    expect(p1.lastSeen).toBeLessThanOrEqual(Date.now());

    await quiet();
    expect(await current(watcher, x)).toEqual(p1);

    let last = p1.lastSeen!;
    const moves: Array<[string, () => Promise<unknown> | void]> = [
      ['read', () => subject.send({ t: 'read', conv, seq: 1 })],
      ['typing', () => subject.send({ t: 'typing', conv, on: true })],
      ['send', () => subject.request({ t: 'send', id: 'm', conv, cmid: 'c1', body: 'hi w' })],
      ['active', () => subject.send({ t: 'active' })],
    ];
    for (const [what, act] of moves) {
      await sleep(STEP);
      before = Date.now();
      await act();
      await eventually(async () => {
        const s = await current(watcher, x);
        expect(s.online, what).toBe(true);
        expect(s.lastSeen, what).toBeGreaterThanOrEqual(before);
      });
      last = watcher.client.presenceOf(x)!.lastSeen!;
    }
    // Only changes of `online` are pushed unasked: one per subscription, plus the one online change.
    const subscriptions = 2 + moves.length; // at least; eventually may have subscribed more often
    expect(watcher.presence.filter((p) => p.user === x).length).toBeGreaterThanOrEqual(subscriptions);
    expect(watcher.presence.filter((p) => p.user === x && !p.online).length).toBe(1); // the one before `active`
    // Last seen reaches the store (throttled writes, at most ~1 s late).
    await eventually(async () => expect((await node.node.store.lastSeen([x])).get(x)).toBe(last), 4000);
  });

  it('a user falls offline when the online window lapses, with its last seen unchanged', async () => {
    const [x, w] = [uid('x'), uid('w')];
    const watcher = await peer(node, w, enc);
    await watcher.client.send({ to: x, body: 'hi' });
    const subject = await signIn(x);
    await current(watcher, x);
    const online = watcher.client.waitFor('presence', (p) => p.user === x && p.online);
    const offline = watcher.client.waitFor('presence', (p) => p.user === x && !p.online, WINDOW + 3000);
    const t0 = Date.now();
    subject.send({ t: 'active' });
    const on = await online;
    const off = await offline;
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(WINDOW - 50);
    expect(elapsed).toBeLessThan(WINDOW + 1000);
    expect(off.lastSeen).toBe(on.lastSeen);
    // The connection is still open: activity brings it back.
    const again = watcher.client.waitFor('presence', (p) => p.user === x && p.online);
    subject.send({ t: 'active' });
    await again;
  });

  it('with two connections, closing one keeps the user online; closing the last makes it offline at once', async () => {
    const [x, w] = [uid('x'), uid('w')];
    const watcher = await peer(node, w, enc);
    await watcher.client.send({ to: x, body: 'hi' });
    const phone = await signIn(x);
    const laptop = await signIn(x);
    await current(watcher, x);
    const online = watcher.client.waitFor('presence', (p) => p.user === x && p.online);
    const t0 = Date.now();
    phone.send({ t: 'active' });
    await online;
    const pushes = () => watcher.presence.filter((p) => p.user === x).length;
    const n = pushes();
    phone.close();
    await phone.closed;
    await sleep(300);
    expect(pushes()).toBe(n);
    const offline = watcher.client.waitFor('presence', (p) => p.user === x && !p.online);
    const closedAt = Date.now();
    laptop.close();
    await offline;
    expect(Date.now() - closedAt).toBeLessThan(500);
    expect(Date.now() - t0).toBeLessThan(WINDOW); // the close did it, not the window
    // A reconnect within the window counts the earlier activity: online again.
    if (Date.now() - t0 < WINDOW - 300) {
      const back = watcher.client.waitFor('presence', (p) => p.user === x && p.online);
      await signIn(x);
      await back;
    }
  });

  it('presence.sub allows users who share a conversation (and oneself), denies the rest and pushes each state at once', async () => {
    const [a, b, c, d, e] = [uid('a'), uid('b'), uid('c'), uid('d'), uid('e')];
    const alice = await peer(node, a, enc);
    await alice.client.send({ to: b, body: 'direct' });
    await alice.client.groupCreate({ title: 'g', members: [c] });
    // d and e share a conversation with each other, not with alice
    const dave = await peer(node, d, enc);
    await dave.client.send({ to: e, body: 'not for alice' });
    const { denied } = await alice.client.presenceSub([b, c, d, e, a, d]);
    expect(denied.sort()).toEqual([d, e].sort());
    await eventually(() => expect(new Set(alice.presence.map((p) => p.user))).toEqual(new Set([a, b, c])));
    expect(alice.presence.find((p) => p.user === b)).toEqual({ user: b, online: false, lastSeen: null });
    // denied users push nothing, also when they become active
    dave.client.active();
    await sleep(200);
    expect(alice.presence.some((p) => p.user === d || p.user === e)).toBe(false);
    // a raw subscriber gets ok {denied} before the presence pushes
    const raw = await signIn(a);
    raw.send({ t: 'presence.sub', id: 'ps', users: [b, d] });
    const ok = await raw.next((f) => f.re === 'ps');
    expect(ok).toMatchObject({ t: 'ok', denied: [d] });
    const push = await raw.next((f) => f.t === 'presence');
    expect(raw.frames.indexOf(push)).toBeGreaterThan(raw.frames.indexOf(ok));
    expect(push).toMatchObject({ user: b, online: false });
  });

  it('presence.unsub stops the pushes of that user', async () => {
    const [x, w] = [uid('x'), uid('w')];
    const watcher = await signIn(w);
    await watcher.request({ t: 'send', id: 1, to: x, cmid: 'c', body: 'hi' });
    const subject = await signIn(x);
    await watcher.request({ t: 'presence.sub', id: 2, users: [x] });
    await watcher.next((f) => f.t === 'presence');
    expect(await watcher.request({ t: 'presence.unsub', id: 3, users: [x] })).toMatchObject({ t: 'ok', re: 3 });
    subject.send({ t: 'active' });
    await sleep(300);
    expect(watcher.frames.filter((f: Frame) => f.t === 'presence')).toHaveLength(1);
  });
});

describe('presence subscriptions of a closing connection', () => {
  let small: TestNode;
  beforeAll(async () => {
    small = await startTestNode({ actorIdleMs: '150', onlineWindowMs: String(WINDOW) });
  });
  afterAll(async () => {
    await small?.stop();
  });

  const userActors = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${small.port}/metrics`)).text();
    const m = /^sb_actors\{kind="user"\} (\d+)$/m.exec(text);
    return Number(m?.[1] ?? NaN);
  };

  it('are removed: the watched user actor may passivate only after the watcher closed', async () => {
    const [x, w] = [uid('x'), uid('w')];
    const watcher = await RawClient.signIn(small.url, await small.token(w));
    await watcher.request({ t: 'send', id: 1, to: x, cmid: 'c', body: 'hi' });
    await watcher.request({ t: 'presence.sub', id: 2, users: [x] });
    await watcher.next((f) => f.t === 'presence');
    // x never connected: its actor lives only because w watches it (w's own actor: w is connected)
    await sleep(800);
    expect(await userActors()).toBe(2);
    watcher.close();
    await eventually(async () => expect(await userActors()).toBe(0), 5000);
  });
});
