/** PROTOCOL.md §4.7 and §4.10 over real sockets, in both encodings: groups, roles, the cap, and access. */
// The cql-node project of vitest.config.ts runs this file again against a node on the CQL store (cqlContact).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../helpers/node.js';
import { closeAll, eventually, peer, range, sleep, uid } from '../helpers/clients.js';
import { RawClient } from '../helpers/raw.js';
import { dmId } from '../../src/protocol/codes.js';

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode({ rate: '100000', maxGroup: '5' });
});
afterEach(closeAll);
afterAll(async () => {
  await node?.stop();
});

describe.each(['json', 'msgpack'] as const)('groups (%s)', (enc) => {
  it('create makes the creator admin, logs a system message at seq 1, and is idempotent on (creator, cmid)', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const created = await alice.client.groupCreate({ title: 'Team', members: [b, c, b, a], cmid: 'create-1' });
    expect(created.seq).toBe(1);
    expect(created.conv).toMatch(/^g:/);
    const again = await alice.client.groupCreate({ title: 'Team', members: [b, c], cmid: 'create-1' });
    expect(again).toMatchObject({ conv: created.conv, seq: 1 });
    const info = await bob.client.groupInfo(created.conv);
    expect(info).toMatchObject({ conv: created.conv, title: 'Team', lastSeq: 1 });
    expect(info.members.sort((x, y) => x.user.localeCompare(y.user))).toEqual(
      [{ user: a, role: 'admin' }, { user: b, role: 'member' }, { user: c, role: 'member' }].sort((x, y) => x.user.localeCompare(y.user)),
    );
    await eventually(() => expect(bob.of(created.conv)).toHaveLength(1));
    const sys = bob.of(created.conv)[0]!;
    expect(sys).toMatchObject({ seq: 1, from: a, kind: 'system', sys: { op: 'create', by: a, title: 'Team' } });
    expect([...sys.sys!.users].sort()).toEqual([b, c].sort());
    const convs = await bob.client.convs();
    expect(convs.find((x) => x.conv === created.conv)).toMatchObject({ kind: 'group', title: 'Team', lastSeq: 1 });
  });

  it('only admins add or remove; the cap refuses a create or add past it and changes nothing', async () => {
    const [a, b, c, d, e, f] = [uid('a'), uid('b'), uid('c'), uid('d'), uid('e'), uid('f')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    await expect(alice.client.groupCreate({ title: 'big', members: [b, c, d, e, f] })).rejects.toMatchObject({ code: 'limit' });
    const { conv } = await alice.client.groupCreate({ title: 'cap', members: [b, c] });
    await expect(bob.client.groupAdd(conv, [d])).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.groupRemove(conv, [c])).rejects.toMatchObject({ code: 'forbidden' });
    expect((await alice.client.groupAdd(conv, [d, e])).seq).toBe(2);
    await expect(alice.client.groupAdd(conv, [f])).rejects.toMatchObject({ code: 'limit' });
    const info = await alice.client.groupInfo(conv);
    expect(info.members).toHaveLength(5);
    expect(info.lastSeq).toBe(2);
  });

  it('removed users get nothing after their removal; added users get messages from their join on, not older history', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bob = await RawClient.signIn(node.url, await node.token(b), enc);
    const { conv } = await alice.client.groupCreate({ title: 'g', members: [b] });
    await alice.client.send({ conv, body: 'before carol' }); // 2
    const added = await alice.client.groupAdd(conv, [c]); // 3
    await alice.client.send({ conv, body: 'after carol' }); // 4
    const carol = await peer(node, c, enc);
    expect(carol.of(conv).map((m) => m.seq)).toEqual([3, 4]);
    expect(carol.of(conv)[0]).toMatchObject({ kind: 'system', sys: { op: 'add', by: a, users: [c] } });
    expect((await carol.client.history(conv)).map((m) => m.seq)).toEqual([3, 4]);
    const removed = await alice.client.groupRemove(conv, [b]); // 5
    expect(removed.seq).toBe(added.seq + 2);
    await bob.next((f) => f.t === 'msg' && f.seq === 5);
    await alice.client.send({ conv, body: 'after bob' }); // 6
    await carol.client.waitFor('msg', (m) => m.seq === 6);
    await sleep(100);
    expect(bob.frames.filter((f) => f.t === 'msg' && f.conv === conv).map((f) => f.seq)).toEqual(range(1, 5));
    expect(await bob.request({ t: 'history', id: 'h', conv })).toMatchObject({ t: 'err', code: 'not_found' });
    expect(await bob.request({ t: 'send', id: 's', conv, cmid: 'x', body: 'let me in' })).toMatchObject({ t: 'err', code: 'not_found' });
    const convs = await bob.request({ t: 'convs', id: 'c' });
    expect((convs.convs as Array<{ conv: string }>).map((x) => x.conv)).not.toContain(conv);
  });

  it('leave logs a leave event; the last admin leaving hands the role on', async () => {
    const [a, b, c] = [uid('a'), uid('b'), uid('c')];
    const alice = await peer(node, a, enc);
    const bob = await peer(node, b, enc);
    const { conv } = await alice.client.groupCreate({ title: 'g', members: [b, c] });
    const left = await alice.client.groupLeave(conv);
    expect(left.seq).toBe(2);
    const ev = await bob.client.waitFor('msg', (m) => m.seq === 2);
    expect(ev).toMatchObject({ kind: 'system', sys: { op: 'leave', by: a, users: [a] } });
    const info = await bob.client.groupInfo(conv);
    expect(info.members.map((m) => m.user)).not.toContain(a);
    expect(info.members.some((m) => m.role === 'admin')).toBe(true);
    await expect(alice.client.groupInfo(conv)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('§4.10 a non-member gets not_found for every frame on a conversation, whether it exists or not', async () => {
    const [a, b, x] = [uid('a'), uid('b'), uid('x')];
    const alice = await peer(node, a, enc);
    const { conv } = await alice.client.groupCreate({ title: 'private', members: [b] });
    const dm = (await alice.client.send({ to: b, body: 'secret' })).conv;
    const stranger = await RawClient.signIn(node.url, await node.token(x), enc);
    for (const target of [conv, dm, 'g:doesnotexist', dmId(a, 'nobody'), 'weird-id']) {
      let id = 0;
      const frames = [
        { t: 'send', id: ++id, conv: target, cmid: 'c', body: 'hi' },
        { t: 'history', id: ++id, conv: target },
        { t: 'info', id: ++id, conv: target, seq: 1 },
        { t: 'sync', id: ++id, since: { [target]: 0 } },
        { t: 'group.add', id: ++id, conv: target, users: [x] },
        { t: 'group.remove', id: ++id, conv: target, users: [b] },
        { t: 'group.leave', id: ++id, conv: target },
        { t: 'group.info', id: ++id, conv: target },
        { t: 'recv', id: ++id, conv: target, seq: 1 },
        { t: 'read', id: ++id, conv: target, seq: 1 },
        { t: 'typing', id: ++id, conv: target, on: true },
      ];
      for (const f of frames) {
        const reply = await stranger.request({ ...f, id: `${target}-${f.id}` });
        expect(reply, `${f.t} on ${target}`).toMatchObject({ t: 'err', code: 'not_found' });
      }
    }
    await sleep(50);
    expect(stranger.frames.filter((f) => f.t === 'msg')).toHaveLength(0);
    await eventually(async () => expect((await alice.client.groupInfo(conv)).members).toHaveLength(2));
  });
});
