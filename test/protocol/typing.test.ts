/**
 * PROTOCOL.md §4.8 over real sockets, in both encodings: typing reaches every connection of
 * the other members (never the typer's own), is not stored, counts as activity, and is
 * limited per connection (the excess dropped silently).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, sleep, uid } from '../helpers/clients.js';
import { RawClient } from '../helpers/raw.js';
import { dmId } from '../../src/protocol/codes.js';
import { TYPING_BURST, TYPING_RATE } from '../../src/gateway/connection.js';

let node: TestNode;
const raws: RawClient[] = [];

beforeAll(async () => {
  node = await startTestNode({ rate: '100000' });
});
afterEach(async () => {
  for (const r of raws.splice(0)) r.close();
  await closeAll();
});
afterAll(async () => {
  await node?.stop();
});

describe.each(['json', 'msgpack'] as const)('typing (%s)', (enc) => {
  const signIn = async (user: string) => {
    const c = await RawClient.signIn(node.url, await node.token(user), enc);
    raws.push(c);
    return c;
  };
  const typings = (c: RawClient) => c.frames.filter((f) => f.t === 'typing');

  it("goes to every connection of the other members, never to the typer's own, and is not stored", async () => {
    const [a, b] = [uid('a'), uid('b')];
    const a1 = await signIn(a);
    const a2 = await signIn(a);
    const b1 = await signIn(b);
    const b2 = await signIn(b);
    const conv = dmId(a, b);
    await a1.request({ t: 'send', id: 1, to: b, cmid: 'c1', body: 'hi' });
    a1.send({ t: 'typing', conv, on: true });
    for (const c of [b1, b2]) expect(await c.next((f) => f.t === 'typing')).toEqual({ t: 'typing', conv, user: a, on: true });
    a2.send({ t: 'typing', conv, on: false });
    for (const c of [b1, b2]) await eventually(() => expect(typings(c)).toContainEqual({ t: 'typing', conv, user: a, on: false }));
    await sleep(150);
    expect(typings(a1)).toHaveLength(0);
    expect(typings(a2)).toHaveLength(0);
    // not stored: the log still holds the one message
    const hist = await b1.request({ t: 'history', id: 'h', conv });
    expect((hist.msgs as unknown[]).length).toBe(1);
    const convs = await b1.request({ t: 'convs', id: 'cv' });
    expect(convs.convs).toEqual([expect.objectContaining({ conv, lastSeq: 1 })]);
    expect(await node.node.store.messages(conv, 1, 100, 100)).toHaveLength(1);
  });

  it('in a group it goes to every other member', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const carol = await peer(node, c, enc);
    const { conv } = await alice.client.groupCreate({ title: 'typing', members: [b, c] });
    expect(bob.client.typing(conv, true)).toBe(true);
    await alice.client.waitFor('typing', (t) => t.user === b);
    await carol.client.waitFor('typing', (t) => t.user === b);
    await sleep(150);
    expect(bob.typing).toHaveLength(0);
    expect(alice.typing).toEqual([{ conv, user: b, on: true }]);
  });

  it('counts as activity: the typer comes online for its watchers', async () => {
    const [a, w] = [uid('a'), uid('w')];
    const watcher = await peer(node, w, enc);
    const { conv } = await watcher.client.send({ to: a, body: 'hi' });
    const typer = await peer(node, a, enc);
    const first = watcher.client.waitFor('presence', (p) => p.user === a);
    await watcher.client.presenceSub([a]);
    expect(await first).toMatchObject({ online: false, lastSeen: null });
    const online = watcher.client.waitFor('presence', (p) => p.user === a && p.online);
    typer.client.typing(conv, true);
    expect((await online).lastSeen).toBeGreaterThan(0);
  });

  it(`is limited to ${TYPING_RATE}/s (burst ${TYPING_BURST}) per connection; the excess is dropped silently`, async () => {
    const [a, b] = [uid('a'), uid('b')];
    const a1 = await signIn(a);
    const b1 = await signIn(b);
    const conv = dmId(a, b);
    await a1.request({ t: 'send', id: 1, to: b, cmid: 'c1', body: 'hi' });
    for (let i = 0; i < 40; i++) a1.send({ t: 'typing', conv, on: i % 2 === 0 });
    await eventually(() => expect(typings(b1).length).toBeGreaterThanOrEqual(TYPING_BURST));
    await sleep(300);
    expect(typings(b1).length).toBeLessThanOrEqual(TYPING_BURST + 1);
    expect(a1.frames.filter((f) => f.t === 'err')).toHaveLength(0);
    // the connection stays usable, and typing gets through again after a pause
    expect((await a1.request({ t: 'ping', id: 'p' })).t).toBe('pong');
    await sleep(1000 / TYPING_RATE + 50);
    const n = typings(b1).length;
    a1.send({ t: 'typing', conv, on: false });
    await eventually(() => expect(typings(b1).length).toBe(n + 1));
  });

  it('a non-member typing gets not_found and reaches nobody', async () => {
    const [a, b, s] = [uid('a'), uid('b'), uid('s')];
    const a1 = await signIn(a);
    const b1 = await signIn(b);
    const conv = dmId(a, b);
    await a1.request({ t: 'send', id: 1, to: b, cmid: 'c1', body: 'hi' });
    const stranger = await signIn(s);
    stranger.send({ t: 'typing', id: 't', conv, on: true });
    expect(await stranger.next((f) => f.t === 'err')).toMatchObject({ code: 'not_found', re: 't' });
    await sleep(100);
    expect(typings(a1)).toHaveLength(0);
    expect(typings(b1)).toHaveLength(0);
  });
});
