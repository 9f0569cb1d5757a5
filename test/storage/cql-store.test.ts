/**
 * CqlStore against a real Cassandra 5 node (test/setup/cassandra.ts starts or finds one):
 * the shared Store contract, then CQL-specific behaviour (fencing between two writers,
 * duplicates, buckets, index repair, timeouts). One fresh keyspace per run (SimpleStrategy
 * RF 1, consistency ONE on the single test node), dropped at the end; every contract test
 * opens its own CqlStore on it. Skipped when no CQL server is provided (SB_TEST_CQL=off).
 */
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { Client } from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DuplicateMessageError, StoreConflictError, StoreUnavailableError } from '../../src/actors/ports/errors.js';
import type { ChatMessage } from '../../src/protocol/frames.js';
import { CqlStore, type CqlStoreOptions } from '../../src/storage/cql-store.js';
import { storeContract } from '../contract/store.contract.js';
import type {} from '../setup/cassandra.js'; // the ProvidedContext declaration of 'cqlContact'

const contact = inject('cqlContact') || process.env.SB_TEST_CQL_CONTACT || '';
const KEYSPACE = `sb_test_${Date.now().toString(36)}_${randomUUID().slice(0, 6)}`;

function opts(over: Partial<CqlStoreOptions> = {}): CqlStoreOptions {
  return {
    contactPoints: [contact],
    localDataCenter: 'datacenter1',
    keyspace: KEYSPACE,
    replication: { class: 'SimpleStrategy', replication_factor: 1 },
    consistency: 'ONE',
    ...over,
  };
}

const uid = (p: string): string => `${p}-${randomUUID().slice(0, 8)}`;

function msg(conv: string, seq: number, from: string, cmid = `c${seq}`, extra: Partial<ChatMessage> = {}): ChatMessage {
  return { conv, seq, from, cmid, ts: 1_700_000_000_000 + seq, kind: 'text', body: `m${seq} from ${from}`, ...extra };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** A TCP relay that can stop forwarding (the server "hangs") without closing sockets. */
async function relay(target: string): Promise<{ contact: string; freeze(): void; thaw(): void; close(): Promise<void> }> {
  const [host, portText] = target.split(':');
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const held: Array<() => void> = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: host ?? '127.0.0.1', port: Number(portText) });
    sockets.add(client).add(upstream);
    const pipe = (from: net.Socket, to: net.Socket): void => {
      from.on('data', (d) => {
        if (frozen) held.push(() => to.write(d));
        else to.write(d);
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    contact: `127.0.0.1:${port}`,
    freeze: () => (frozen = true),
    thaw: () => {
      frozen = false;
      for (const f of held.splice(0)) f();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

if (contact) {
  storeContract('cql', () => CqlStore.open(opts()));
  afterAll(async () => {
    const admin = new Client({ contactPoints: [contact], localDataCenter: 'datacenter1' });
    try {
      await admin.execute(`DROP KEYSPACE IF EXISTS ${KEYSPACE}`);
    } finally {
      await admin.shutdown();
    }
  });
}

describe.skipIf(!contact)('CqlStore on Cassandra', () => {
  let a: CqlStore;
  let b: CqlStore;
  let admin: Client;

  beforeAll(async () => {
    a = await CqlStore.open(opts());
    b = await CqlStore.open(opts());
    admin = new Client({ contactPoints: [contact], localDataCenter: 'datacenter1' });
    await admin.connect();
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await admin?.shutdown();
  });

  it('reports its kind and write consistency', () => {
    expect(a.info()).toEqual({ kind: 'cql', sync: 'ONE' });
  });

  it('opens idempotently on an existing keyspace', async () => {
    const again = await CqlStore.open(opts());
    await again.close();
  });

  it('commits a conversation and reads it back', async () => {
    const conv = uid('grp');
    expect(await a.activate(conv, 1)).toBeNull();
    const create: ChatMessage = {
      conv,
      seq: 1,
      from: 'alice',
      cmid: 'k1',
      ts: 1,
      kind: 'system',
      sys: { op: 'create', by: 'alice', users: ['alice', 'bob'], title: 'T' },
    };
    await a.commit({
      conv,
      epoch: 1,
      expectedLastSeq: 0,
      kind: 'group',
      title: 'T',
      messages: [create],
      members: [
        { op: 'upsert', member: { user: 'alice', role: 'admin', joinedSeq: 1, delivered: 1, read: 1 } },
        { op: 'upsert', member: { user: 'bob', role: 'member', joinedSeq: 1, delivered: 0, read: 0 } },
      ],
    });
    const withMedia = msg(conv, 2, 'bob', 'k2', {
      kind: 'media',
      body: undefined,
      media: { id: 'm1', mime: 'image/png', size: 3, name: 'x.png' },
      reply: { seq: 1 },
    });
    delete withMedia.body;
    await a.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: [withMedia, msg(conv, 3, 'alice')] });

    const rec = await b.activate(conv, 1); // the same epoch may reload
    expect(rec).toMatchObject({ conv, kind: 'group', title: 'T', lastSeq: 3 });
    expect(rec?.members.sort((x, y) => x.user.localeCompare(y.user))).toEqual([
      { user: 'alice', role: 'admin', joinedSeq: 1, delivered: 1, read: 1 },
      { user: 'bob', role: 'member', joinedSeq: 1, delivered: 0, read: 0 },
    ]);
    const all = await b.messages(conv, 1, 100, 100);
    expect(all).toEqual([create, withMedia, msg(conv, 3, 'alice')]);
    expect(await b.messagesBefore(conv, 4, 2, 1)).toEqual([withMedia, msg(conv, 3, 'alice')]);
    expect(await b.messagesBefore(conv, 100, 10, 3)).toEqual([msg(conv, 3, 'alice')]);
    expect(await b.findDuplicate(conv, 'bob', 'k2')).toBe(2);
    expect(await b.findDuplicate(conv, 'bob', 'nope')).toBeNull();
    expect(await b.member(conv, 'bob')).toEqual({ user: 'bob', role: 'member', joinedSeq: 1, delivered: 0, read: 0 });
    expect(await b.member(conv, 'carol')).toBeNull();
    expect((await b.userConversations('bob')).filter((s) => s.conv === conv)).toEqual([
      { conv, kind: 'group', title: 'T', lastSeq: 3, delivered: 0, read: 0 },
    ]);
  });

  it('refuses a batch holding a stored (from, cmid) and writes nothing visible', async () => {
    const conv = uid('dm');
    await a.activate(conv, 5);
    await a.commit({ conv, epoch: 5, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'u1', 'x'), msg(conv, 2, 'u2', 'y')] });
    const err = await a
      .commit({ conv, epoch: 5, expectedLastSeq: 2, messages: [msg(conv, 3, 'u1', 'new'), msg(conv, 4, 'u2', 'y'), msg(conv, 5, 'u1', 'x')] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DuplicateMessageError);
    expect((err as DuplicateMessageError).existing).toEqual([
      { from: 'u1', cmid: 'x', seq: 1 },
      { from: 'u2', cmid: 'y', seq: 2 },
    ]);
    // Nothing visible: the head, the dedup keys and the readable messages are unchanged.
    expect((await a.activate(conv, 5))?.lastSeq).toBe(2);
    expect(await a.findDuplicate(conv, 'u1', 'new')).toBeNull();
    expect((await a.messages(conv, 1, 10, 10)).map((m) => m.seq)).toEqual([1, 2]);
    // The retry without the duplicates takes seq 3, and seq 3 reads as the new message.
    const retry = msg(conv, 3, 'u1', 'new', { body: 'the retry' });
    await a.commit({ conv, epoch: 5, expectedLastSeq: 2, messages: [retry] });
    expect(await a.messages(conv, 3, 10, 10)).toEqual([retry]);
  });

  it('refuses a commit whose head is not the stored one', async () => {
    const conv = uid('dm');
    await a.activate(conv, 1);
    await a.commit({ conv, epoch: 1, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'u1')] });
    const err = await a.commit({ conv, epoch: 1, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'u1', 'other')] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as StoreConflictError).reason).toBe('head_mismatch');
    const err2 = await a.commit({ conv, epoch: 1, expectedLastSeq: 5, messages: [msg(conv, 6, 'u1', 'z')] }).catch((e: unknown) => e);
    expect((err2 as StoreConflictError).reason).toBe('head_mismatch');
    expect(await a.messages(conv, 1, 10, 10)).toEqual([msg(conv, 1, 'u1')]);
  });

  it('refuses a commit without a claim', async () => {
    const conv = uid('dm');
    const err = await a.commit({ conv, epoch: 1, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'u1')] }).catch((e: unknown) => e);
    expect((err as StoreConflictError).reason).toBe('stale_epoch');
    expect(await a.messages(conv, 1, 10, 10)).toEqual([]);
  });

  it('fences a stale writer: two instances, nothing overwritten, no seq skipped', async () => {
    const conv = uid('grp');
    // Writer A at epoch 3.
    expect(await a.activate(conv, 3)).toBeNull();
    await a.commit({ conv, epoch: 3, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'A'), msg(conv, 2, 'A')] });
    // Writer B takes over at epoch 4 and sees everything A committed.
    expect((await b.activate(conv, 4))?.lastSeq).toBe(2);
    // A (zombie) still believes it owns the conversation.
    const z1 = await a.commit({ conv, epoch: 3, expectedLastSeq: 2, messages: [msg(conv, 3, 'A', 'za')] }).catch((e: unknown) => e);
    expect(z1).toBeInstanceOf(StoreConflictError);
    expect((z1 as StoreConflictError).reason).toBe('stale_epoch');
    await b.commit({ conv, epoch: 4, expectedLastSeq: 2, messages: [msg(conv, 3, 'B'), msg(conv, 4, 'B')] });
    // The zombie now writes at seqs the owner has committed: its message rows land (they are
    // written before the fence) but must not replace the owner's.
    const z2 = await a.commit({ conv, epoch: 3, expectedLastSeq: 2, messages: [msg(conv, 3, 'A', 'zb'), msg(conv, 4, 'A', 'zc')] }).catch((e: unknown) => e);
    expect((z2 as StoreConflictError).reason).toBe('stale_epoch');
    const z3 = await a.commit({ conv, epoch: 3, expectedLastSeq: 4, messages: [msg(conv, 5, 'A', 'zd')] }).catch((e: unknown) => e);
    expect((z3 as StoreConflictError).reason).toBe('stale_epoch');
    // A cannot claim back with its old epoch.
    const z4 = await a.activate(conv, 3).catch((e: unknown) => e);
    expect(z4).toBeInstanceOf(StoreConflictError);
    expect((z4 as StoreConflictError).reason).toBe('stale_epoch');
    await b.commit({ conv, epoch: 4, expectedLastSeq: 4, messages: [msg(conv, 5, 'B')] });
    // On a cluster the zombie's head check can miss the new claim, so its rows may land at
    // seqs the owner committed; they are keyed by its (lower) epoch and never win. Write such
    // rows directly, after the owner's.
    for (const seq of [3, 5, 6]) {
      await admin.execute(
        `INSERT INTO ${KEYSPACE}.messages (conv, bucket, seq, epoch, sender, cmid, ts, kind, body) VALUES (?, 0, ?, 3, 'A', 'zz', 1, 'text', 'zombie')`,
        [conv, seq],
        { prepare: true },
      );
    }

    const got = await a.messages(conv, 1, 100, 100);
    expect(got).toEqual([msg(conv, 1, 'A'), msg(conv, 2, 'A'), msg(conv, 3, 'B'), msg(conv, 4, 'B'), msg(conv, 5, 'B')]);
    expect(await b.messagesBefore(conv, 6, 3, 1)).toEqual(got.slice(2));
    expect(await a.findDuplicate(conv, 'A', 'za')).toBeNull();
    expect(await a.findDuplicate(conv, 'A', 'zd')).toBeNull();
    // A higher epoch can take it back from B.
    expect((await a.activate(conv, 5))?.lastSeq).toBe(5);
    const zb = await b.commit({ conv, epoch: 4, expectedLastSeq: 5, messages: [msg(conv, 6, 'B')] }).catch((e: unknown) => e);
    expect((zb as StoreConflictError).reason).toBe('stale_epoch');
  });

  it('a takeover in the middle of a stream of commits loses nothing and skips nothing', async () => {
    const conv = uid('race');
    await a.activate(conv, 10);
    let head = 0;
    let fencedAt = -1;
    const writerA = (async () => {
      for (let i = 0; i < 60; i++) {
        try {
          await a.commit({ conv, epoch: 10, expectedLastSeq: head, ...(head === 0 ? { kind: 'direct' as const } : {}), messages: [msg(conv, head + 1, 'A', `a${head + 1}`)] });
          head++;
        } catch (e) {
          expect(e).toBeInstanceOf(StoreConflictError);
          fencedAt = head;
          return;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 150));
    const rec = await b.activate(conv, 11);
    await writerA;
    const bHead = rec?.lastSeq ?? 0;
    // Everything A saw succeed is at or below what B saw at its claim; nothing after.
    expect(head).toBe(bHead);
    expect(fencedAt === -1 ? head === 60 : fencedAt === bHead).toBe(true);
    await b.commit({ conv, epoch: 11, expectedLastSeq: bHead, ...(bHead === 0 ? { kind: 'direct' as const } : {}), messages: [msg(conv, bHead + 1, 'B', 'b1')] });
    const got = await b.messages(conv, 1, 1000, 1000);
    expect(got.map((m) => m.seq)).toEqual(range(1, bHead + 1));
    expect(got.map((m) => m.from)).toEqual([...Array<string>(bHead).fill('A'), 'B']);
  });

  it('walks buckets for long histories', async () => {
    const conv = uid('long');
    await a.activate(conv, 1);
    let head = 0;
    while (head < 1_020) {
      const n = Math.min(170, 1_020 - head);
      await a.commit({
        conv,
        epoch: 1,
        expectedLastSeq: head,
        ...(head === 0 ? { kind: 'direct' as const } : {}),
        messages: range(head + 1, head + n).map((s) => msg(conv, s, s % 2 ? 'u1' : 'u2')),
      });
      head += n;
    }
    expect((await a.messages(conv, 990, 1_010, 100)).map((m) => m.seq)).toEqual(range(990, 1_010));
    expect((await a.messages(conv, 995, 5_000, 10)).map((m) => m.seq)).toEqual(range(995, 1_004));
    expect((await a.messagesBefore(conv, 1_003, 8, 1)).map((m) => m.seq)).toEqual(range(995, 1_002));
    expect((await a.messagesBefore(conv, 5_000, 3, 1)).map((m) => m.seq)).toEqual([1_018, 1_019, 1_020]);
    expect((await a.messages(conv, 1, 5_000, 5_000)).length).toBe(1_020);
    expect(await a.findDuplicate(conv, 'u2', 'c1000')).toBe(1_000);
  });

  it('membership changes move the user conversation index; activate repairs an interrupted one', async () => {
    const conv = uid('grp');
    const carol = uid('carol');
    const dave = uid('dave');
    await a.activate(conv, 1);
    const sys = (seq: number, op: 'create' | 'add' | 'remove', users: string[]): ChatMessage => ({
      conv,
      seq,
      from: carol,
      cmid: `s${seq}`,
      ts: seq,
      kind: 'system',
      sys: { op, by: carol, users },
    });
    await a.commit({
      conv,
      epoch: 1,
      expectedLastSeq: 0,
      kind: 'group',
      title: 'G',
      messages: [sys(1, 'create', [carol])],
      members: [{ op: 'upsert', member: { user: carol, role: 'admin', joinedSeq: 1, delivered: 0, read: 0 } }],
    });
    await a.commit({
      conv,
      epoch: 1,
      expectedLastSeq: 1,
      messages: [sys(2, 'add', [dave])],
      members: [{ op: 'upsert', member: { user: dave, role: 'member', joinedSeq: 2, delivered: 0, read: 0 } }],
    });
    expect((await a.userConversations(dave)).map((s) => s.conv)).toEqual([conv]);
    await a.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: [sys(3, 'remove', [dave])], members: [{ op: 'remove', user: dave }] });
    expect(await a.userConversations(dave)).toEqual([]);
    expect(await a.member(conv, dave)).toBeNull();
    // No pending rows are left once the index has been applied.
    const pending = await admin.execute(`SELECT key FROM ${KEYSPACE}.conv_head WHERE conv = ? AND kind = 'p'`, [conv], { prepare: true });
    expect(pending.rowLength).toBe(0);

    // Simulate a crash between the fenced batch and the index writes: the member rows are
    // right, the index is wrong both ways, a pending row names the users.
    await admin.execute(`INSERT INTO ${KEYSPACE}.user_convs (user_id, conv) VALUES (?, ?)`, [dave, conv], { prepare: true });
    await admin.execute(`DELETE FROM ${KEYSPACE}.user_convs WHERE user_id = ? AND conv = ?`, [carol, conv], { prepare: true });
    await admin.execute(`INSERT INTO ${KEYSPACE}.conv_head (conv, kind, key, users) VALUES (?, 'p', ?, ?)`, [conv, '0000000000000003/x', [dave, carol]], {
      prepare: true,
    });
    expect(await a.userConversations(dave)).toEqual([]); // a stale index row is filtered
    expect(await a.userConversations(carol)).toEqual([]); // a missing one is missing until repair
    const rec = await b.activate(conv, 2);
    expect(rec?.members.map((m) => m.user)).toEqual([carol]);
    expect((await a.userConversations(carol)).map((s) => s.conv)).toEqual([conv]);
    const idx = await admin.execute(`SELECT conv FROM ${KEYSPACE}.user_convs WHERE user_id = ?`, [dave], { prepare: true });
    expect(idx.rowLength).toBe(0);
    const left = await admin.execute(`SELECT key FROM ${KEYSPACE}.conv_head WHERE conv = ? AND kind = 'p'`, [conv], { prepare: true });
    expect(left.rowLength).toBe(0);
  });

  it('watermarks only rise and never create a member', async () => {
    const conv = uid('wm');
    await a.activate(conv, 1);
    await a.commit({
      conv,
      epoch: 1,
      expectedLastSeq: 0,
      kind: 'direct',
      messages: range(1, 5).map((s) => msg(conv, s, 'u1')),
      members: [
        { op: 'upsert', member: { user: 'u1', role: 'member', joinedSeq: 1, delivered: 0, read: 0 } },
        { op: 'upsert', member: { user: 'u2', role: 'member', joinedSeq: 1, delivered: 0, read: 0 } },
      ],
    });
    await a.saveWatermarks(conv, [
      { user: 'u2', delivered: 4, read: 2 },
      { user: 'ghost', delivered: 9, read: 9 },
    ]);
    await a.saveWatermarks(conv, [{ user: 'u2', delivered: 3, read: 3 }]);
    await Promise.all([a.saveWatermarks(conv, [{ user: 'u1', delivered: 2, read: 1 }]), a.saveWatermarks(conv, [{ user: 'u1', delivered: 1, read: 2 }])]);
    expect(await a.member(conv, 'u2')).toMatchObject({ delivered: 4, read: 3 });
    expect(await a.member(conv, 'u1')).toMatchObject({ delivered: 2, read: 2 });
    expect(await a.member(conv, 'ghost')).toBeNull();
    expect((await a.activate(conv, 1))?.members.map((m) => m.user).sort()).toEqual(['u1', 'u2']);
    expect((await a.userConversations('u2')).find((s) => s.conv === conv)).toMatchObject({ lastSeq: 5, delivered: 4, read: 3 });
  });

  it('coMembers answers from either side (few conversations, or few candidates)', async () => {
    const me = uid('me');
    const pal = uid('pal');
    const ex = uid('ex');
    const stranger = uid('stranger');
    const loner = uid('loner');
    const group = async (users: string[], removed: string[] = []): Promise<string> => {
      const conv = uid('g');
      await a.activate(conv, 1);
      await a.commit({
        conv,
        epoch: 1,
        expectedLastSeq: 0,
        kind: 'group',
        messages: [msg(conv, 1, users[0]!)],
        members: users.map((u) => ({ op: 'upsert' as const, member: { user: u, role: 'member' as const, joinedSeq: 1, delivered: 0, read: 0 } })),
      });
      if (removed.length > 0) {
        await a.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: [msg(conv, 2, users[0]!)], members: removed.map((u) => ({ op: 'remove' as const, user: u })) });
      }
      return conv;
    };
    await group([me, pal, ex], [ex]);
    await group([stranger, ex]);
    const sorted = async (p: Promise<string[]>): Promise<string[]> => (await p).sort();
    // One conversation, five candidates: read the candidates' member rows in it.
    expect(await sorted(a.coMembers(me, [pal, ex, stranger, me, pal]))).toEqual([me, pal].sort());
    // Five conversations, two candidates: read the candidates' conversation lists.
    for (let i = 0; i < 4; i++) await group([me, uid('other')]);
    expect(await sorted(a.coMembers(me, [pal, ex]))).toEqual([pal]);
    expect(await sorted(a.coMembers(me, [me, stranger]))).toEqual([me]);
    expect(await a.coMembers(me, [])).toEqual([]);
    expect(await a.coMembers(loner, [me, loner])).toEqual([]);
  });

  it('keeps last seen and media metadata', async () => {
    const u = uid('u');
    await a.saveLastSeen([{ user: u, at: 1000 }]);
    await a.saveLastSeen([{ user: u, at: 2000 }]);
    expect(await a.lastSeen([u, uid('never')])).toEqual(new Map([[u, 2000]]));

    const base = Date.now() * 1000; // far from other tests' creation times
    const ids = [uid('m'), uid('m'), uid('m')];
    for (const [i, id] of ids.entries()) {
      await a.putMedia({ id, owner: u, mime: 'image/png', size: 10, key: `k/${id}`, createdAt: base + i });
    }
    await a.completeMedia(ids[0]!, 'abc', 11, base + 50);
    expect(await a.media(ids[0]!)).toEqual({ id: ids[0], owner: u, mime: 'image/png', size: 11, key: `k/${ids[0]}`, createdAt: base, sha256: 'abc', completedAt: base + 50 });
    await a.completeMedia(uid('missing'), 'x', 1, 1);
    await a.addMediaRef(ids[1]!, 'conv-x');
    expect(await a.mediaRefs(ids[1]!)).toEqual(['conv-x']);
    const unref = (await a.unreferencedMedia(base + 10, 100)).filter((m) => ids.includes(m.id)).map((m) => m.id);
    expect(unref).toEqual([ids[0], ids[2]]);
    expect((await a.unreferencedMedia(base + 1, 100)).some((m) => m.id === ids[0])).toBe(true);
    await a.deleteMedia(ids[0]!);
    expect(await a.media(ids[0]!)).toBeNull();
    expect((await a.unreferencedMedia(base + 10, 100)).filter((m) => ids.includes(m.id)).map((m) => m.id)).toEqual([ids[2]]);
  });

  it('a hung server surfaces as StoreUnavailableError, not a hang', async () => {
    const r = await relay(contact);
    const s = await CqlStore.open(opts({ contactPoints: [r.contact], requestTimeoutMs: 800 }));
    try {
      const conv = uid('hang');
      await s.activate(conv, 1);
      r.freeze();
      const t0 = Date.now();
      const err = await s.commit({ conv, epoch: 1, expectedLastSeq: 0, kind: 'direct', messages: [msg(conv, 1, 'u1')] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      const err2 = await s.messages(conv, 1, 10, 10).catch((e: unknown) => e);
      expect(err2).toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - t0).toBeLessThan(8_000);
      r.thaw();
      // The outcome was unknown: activate again, then carry on from what is stored.
      const rec = await b.activate(conv, 2);
      expect(rec?.lastSeq ?? 0).toBe(0); // the frozen commit never reached the server
    } finally {
      r.thaw();
      await s.close().catch(() => {});
      await r.close();
    }
  });

  it('an unreachable server fails open() with StoreUnavailableError', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as net.AddressInfo;
    await new Promise<void>((r) => srv.close(() => r()));
    const err = await CqlStore.open(opts({ contactPoints: [`127.0.0.1:${port}`], requestTimeoutMs: 500 })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
  });
});
