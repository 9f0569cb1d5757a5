/**
 * PROTOCOL.md §4.1–2 across a crash: `kill -9` the node process after acks, restart it on the
 * same data directory; every acked message is there exactly once, the recipient's backlog
 * brings them in order, and retried cmids get their original seqs with dup:true.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RawClient } from '../helpers/raw.js';
import { removeDir, spawnNode, tempDir, TEST_SECRET, type NodeProcess } from '../helpers/node.js';
import { Auth } from '../../src/gateway/auth.js';

const auth = new Auth(TEST_SECRET);
let proc: NodeProcess | undefined;
const dirs: string[] = [];

afterEach(async () => {
  await proc?.kill9();
  proc = undefined;
  for (const d of dirs.splice(0)) removeDir(d);
});

describe.each(['json', 'msgpack'] as const)('durability (%s)', (enc) => {
  it('kill -9 after acks loses nothing, duplicates nothing, and retries get their first seqs', async () => {
    const dir = tempDir();
    dirs.push(dir);
    proc = await spawnNode(dir, { SB_SQLITE_SYNC: 'FULL' });
    const alice = await RawClient.signIn(proc.url, await auth.sign('alice', 600), enc);
    const group = await alice.request({ t: 'group.create', id: 'g', cmid: 'grp1', title: 'crash', members: ['bob', 'carol'] });
    const gconv = group.conv as string;

    // Many sends in flight at once; the kill comes right after the last ack arrives.
    const total = 300;
    for (let i = 0; i < total; i++) {
      alice.send(i % 3 === 0 ? { t: 'send', id: i, conv: gconv, cmid: `g${i}`, body: `g${i}` } : { t: 'send', id: i, to: 'bob', cmid: `d${i}`, body: `d${i}` });
    }
    const acks = await Promise.all(Array.from({ length: total }, (_, i) => alice.next((f) => f.re === i && f.t === 'ack', 15_000)));
    await proc.kill9();

    proc = await spawnNode(dir);
    // The recipient was never online: everything comes in its backlog, in order, once.
    const bob = await RawClient.signIn(proc.url, await auth.sign('bob', 600), enc);
    const msgs = bob.frames.filter((f) => f.t === 'msg');
    const byConv = new Map<string, number[]>();
    for (const m of msgs) byConv.set(m.conv as string, [...(byConv.get(m.conv as string) ?? []), m.seq as number]);
    const dm = byConv.get('dm:alice:bob') ?? [];
    const grp = byConv.get(gconv) ?? [];
    expect(dm).toEqual(Array.from({ length: dm.length }, (_, i) => i + 1));
    expect(grp).toEqual(Array.from({ length: grp.length }, (_, i) => i + 1));
    expect(dm.length).toBe(acks.filter((a) => a.conv === 'dm:alice:bob').length);
    expect(grp.length).toBe(1 + acks.filter((a) => a.conv === gconv).length);

    // Retrying every cmid on the restarted node gets the original seq, marked dup.
    const alice2 = await RawClient.signIn(proc.url, await auth.sign('alice', 600), enc);
    for (let i = 0; i < total; i++) {
      alice2.send(i % 3 === 0 ? { t: 'send', id: i, conv: gconv, cmid: `g${i}`, body: `g${i}` } : { t: 'send', id: i, to: 'bob', cmid: `d${i}`, body: `d${i}` });
    }
    const again = await Promise.all(Array.from({ length: total }, (_, i) => alice2.next((f) => f.re === i, 15_000)));
    for (let i = 0; i < total; i++) {
      expect(again[i]).toMatchObject({ t: 'ack', seq: acks[i]!.seq, conv: acks[i]!.conv, dup: true });
    }
    // And nothing new was delivered for them.
    await new Promise((r) => setTimeout(r, 300));
    expect(bob.frames.filter((f) => f.t === 'msg')).toHaveLength(msgs.length);
    const hist = await bob.request({ t: 'history', id: 'h', conv: 'dm:alice:bob', limit: 100 });
    expect((hist.msgs as unknown[]).length).toBe(Math.min(100, dm.length));
  });

  it('SIGTERM drains: sockets are closed with 1001 and the process exits 0', async () => {
    const dir = tempDir();
    dirs.push(dir);
    proc = await spawnNode(dir);
    const c = await RawClient.signIn(proc.url, await auth.sign('dora', 600), enc);
    const code = proc.terminate();
    expect((await c.closed).code).toBe(1001);
    expect(await code).toBe(0);
  });
});
