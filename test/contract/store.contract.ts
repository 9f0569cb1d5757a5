/**
 * The Store contract, written once and run against every implementation
 * (`storeContract('sqlite', …)`, `storeContract('cql', …)`).
 *
 * It tests only what the Store port promises (src/actors/ports/store.ts), nothing of one
 * backend. Every test uses its own conversation, user and media ids, so the tests may share
 * one database (also across runs); nothing depends on timing. Orders the port does not
 * promise (members of a record, a user's conversations, media refs) are compared sorted.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage, ConvSummary, MsgKind } from '../../src/protocol/frames.js';
import type {
  CommitRequest,
  MediaRecord,
  MemberChange,
  MemberRecord,
  Store,
} from '../../src/actors/ports/store.js';
import { DuplicateMessageError, StoreConflictError } from '../../src/actors/ports/errors.js';

/** A fixed clock: tests never read the real time. */
const T0 = 1_700_000_000_000;

function suffix(): string {
  return randomUUID().replaceAll('-', '').slice(0, 12);
}

function userId(name: string): string {
  return `${name}_${suffix()}`;
}

function groupId(): string {
  return `g:${suffix()}`;
}

function text(conv: string, seq: number, from: string, extra: Partial<ChatMessage> = {}): ChatMessage {
  return { conv, seq, from, cmid: `c${seq}-${suffix()}`, ts: T0 + seq, kind: 'text', body: `m${seq}`, ...extra };
}

function texts(conv: string, fromSeq: number, count: number, from: string): ChatMessage[] {
  return Array.from({ length: count }, (_, i) => text(conv, fromSeq + i, from));
}

function member(user: string, joinedSeq = 1, role: MemberRecord['role'] = 'member'): MemberRecord {
  return { user, role, joinedSeq, delivered: 0, read: 0 };
}

function upserts(...members: MemberRecord[]): MemberChange[] {
  return members.map((m) => ({ op: 'upsert', member: m }));
}

function byUser(a: { user: string }, b: { user: string }): number {
  return a.user < b.user ? -1 : a.user > b.user ? 1 : 0;
}

function byConv(a: { conv: string }, b: { conv: string }): number {
  return a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0;
}

function seqs(msgs: ChatMessage[]): number[] {
  return msgs.map((m) => m.seq);
}

async function expectConflict(p: Promise<unknown>, reason: 'stale_epoch' | 'head_mismatch'): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreConflictError);
  expect((err as StoreConflictError).reason).toBe(reason);
}

async function expectDuplicate(
  p: Promise<unknown>,
  existing: Array<{ from: string; cmid: string; seq: number }>,
): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DuplicateMessageError);
  const sort = (xs: typeof existing) => [...xs].sort((a, b) => a.seq - b.seq);
  expect(sort((err as DuplicateMessageError).existing)).toEqual(sort(existing));
}

export function storeContract(
  name: string,
  makeStore: () => Promise<Store>,
  cleanup?: (s: Store) => Promise<void>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await makeStore();
    });

    afterEach(async () => {
      if (cleanup) await cleanup(store);
      else await store.close();
    });

    /** Claims a fresh group at `epoch` and commits its creation with `count` text messages. */
    async function createGroup(opts: {
      conv?: string;
      epoch?: number;
      members: MemberRecord[];
      title?: string;
      count?: number;
      from?: string;
    }): Promise<{ conv: string; msgs: ChatMessage[] }> {
      const conv = opts.conv ?? groupId();
      const epoch = opts.epoch ?? 1;
      const from = opts.from ?? opts.members[0]?.user ?? 'nobody';
      await store.activate(conv, epoch);
      const msgs = texts(conv, 1, opts.count ?? 1, from);
      const req: CommitRequest = {
        conv,
        epoch,
        expectedLastSeq: 0,
        messages: msgs,
        kind: 'group',
        members: upserts(...opts.members),
      };
      if (opts.title !== undefined) req.title = opts.title;
      await store.commit(req);
      return { conv, msgs };
    }

    describe('activate and commit', () => {
      it('activate of an unknown conversation returns null', async () => {
        expect(await store.activate(groupId(), 1)).toBeNull();
      });

      it('the first commit creates the conversation with its kind, title and members', async () => {
        const conv = groupId();
        const alice = userId('alice');
        const bob = userId('bob');
        expect(await store.activate(conv, 1)).toBeNull();
        const create: ChatMessage = {
          conv,
          seq: 1,
          from: alice,
          cmid: `create-${suffix()}`,
          ts: T0,
          kind: 'system',
          sys: { op: 'create', by: alice, users: [alice, bob], title: 'Team' },
        };
        await store.commit({
          conv,
          epoch: 1,
          expectedLastSeq: 0,
          messages: [create],
          kind: 'group',
          title: 'Team',
          members: upserts(member(alice, 1, 'admin'), member(bob, 1)),
        });
        const rec = await store.activate(conv, 1);
        expect(rec).not.toBeNull();
        expect({ ...rec!, members: [...rec!.members].sort(byUser) }).toEqual({
          conv,
          kind: 'group',
          title: 'Team',
          lastSeq: 1,
          members: [member(alice, 1, 'admin'), member(bob, 1)].sort(byUser),
        });
        expect(await store.messages(conv, 1, 1, 10)).toEqual([create]);
      });

      it('a conversation without a title has no title property', async () => {
        const a = userId('a');
        const b = userId('b');
        const conv = `dm:${a}:${b}`;
        await store.activate(conv, 1);
        await store.commit({
          conv,
          epoch: 1,
          expectedLastSeq: 0,
          messages: [text(conv, 1, a)],
          kind: 'direct',
          members: upserts(member(a), member(b)),
        });
        const rec = await store.activate(conv, 1);
        expect(rec).not.toBeNull();
        expect(rec!.kind).toBe('direct');
        expect(rec!.lastSeq).toBe(1);
        expect('title' in rec!).toBe(false);
      });

      it('contiguous commits extend the head', async () => {
        const alice = userId('alice');
        const { conv, msgs } = await createGroup({ members: [member(alice)] });
        const more = texts(conv, 2, 2, alice);
        await store.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: more });
        const last = texts(conv, 4, 1, alice);
        await store.commit({ conv, epoch: 1, expectedLastSeq: 3, messages: last });
        expect((await store.activate(conv, 1))?.lastSeq).toBe(4);
        expect(await store.messages(conv, 1, 100, 100)).toEqual([...msgs, ...more, ...last]);
      });

      it('claiming again at the same epoch reloads the state; a higher epoch may claim', async () => {
        const alice = userId('alice');
        const { conv } = await createGroup({ members: [member(alice)], count: 3 });
        expect((await store.activate(conv, 1))?.lastSeq).toBe(3);
        expect((await store.activate(conv, 1))?.lastSeq).toBe(3);
        expect((await store.activate(conv, 5))?.lastSeq).toBe(3);
        await store.commit({ conv, epoch: 5, expectedLastSeq: 3, messages: texts(conv, 4, 1, alice) });
        expect((await store.activate(conv, 5))?.lastSeq).toBe(4);
      });

      it('a commit to a conversation nobody claimed is refused as stale_epoch', async () => {
        const conv = groupId();
        const alice = userId('alice');
        await expectConflict(
          store.commit({
            conv,
            epoch: 1,
            expectedLastSeq: 0,
            messages: [text(conv, 1, alice)],
            kind: 'group',
            members: upserts(member(alice)),
          }),
          'stale_epoch',
        );
        expect(await store.activate(conv, 1)).toBeNull();
        expect(await store.messages(conv, 0, 10, 10)).toEqual([]);
        expect(await store.member(conv, alice)).toBeNull();
      });

      it('a head mismatch is refused with StoreConflictError(head_mismatch) and writes nothing', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv, msgs } = await createGroup({ members: [member(alice)], title: 'Before', count: 2 });
        const stray = text(conv, 2, alice);
        await expectConflict(
          store.commit({
            conv,
            epoch: 1,
            expectedLastSeq: 1,
            messages: [stray],
            title: 'After',
            members: upserts(member(bob, 2)),
          }),
          'head_mismatch',
        );
        const behind = texts(conv, 4, 1, alice);
        await expectConflict(store.commit({ conv, epoch: 1, expectedLastSeq: 3, messages: behind }), 'head_mismatch');

        const rec = await store.activate(conv, 1);
        expect(rec?.lastSeq).toBe(2);
        expect(rec?.title).toBe('Before');
        expect(rec?.members).toEqual([member(alice)]);
        expect(await store.member(conv, bob)).toBeNull();
        expect(await store.messages(conv, 1, 100, 100)).toEqual(msgs);
        expect(await store.findDuplicate(conv, alice, stray.cmid)).toBeNull();
        expect(await store.findDuplicate(conv, alice, behind[0]!.cmid)).toBeNull();
      });

      it('fencing: a writer whose epoch was superseded can neither commit nor activate', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const conv = groupId();

        // Writer A claims at epoch 1 and commits seq 1.
        expect(await store.activate(conv, 1)).toBeNull();
        const first = text(conv, 1, alice);
        await store.commit({
          conv,
          epoch: 1,
          expectedLastSeq: 0,
          messages: [first],
          kind: 'group',
          members: upserts(member(alice), member(bob)),
        });

        // Writer B takes over at epoch 2 and sees A's commit.
        expect((await store.activate(conv, 2))?.lastSeq).toBe(1);

        // A, not knowing, commits seq 2..3 at epoch 1: refused, nothing of it stored.
        const zombie = texts(conv, 2, 2, alice);
        await expectConflict(
          store.commit({
            conv,
            epoch: 1,
            expectedLastSeq: 1,
            messages: zombie,
            title: 'zombie',
            members: [{ op: 'remove', user: bob }],
          }),
          'stale_epoch',
        );
        for (const m of zombie) expect(await store.findDuplicate(conv, alice, m.cmid)).toBeNull();
        expect(await store.messages(conv, 2, 100, 100)).toEqual([]);
        expect(await store.member(conv, bob)).toEqual(member(bob));

        // B continues from the real head; no seq is skipped.
        const fromB = texts(conv, 2, 1, bob);
        await store.commit({ conv, epoch: 2, expectedLastSeq: 1, messages: fromB });
        expect(seqs(await store.messages(conv, 0, 100, 100))).toEqual([1, 2]);
        expect(await store.messages(conv, 0, 100, 100)).toEqual([first, ...fromB]);

        // A's reload at epoch 1 is refused as well, and its commits stay refused.
        await expectConflict(store.activate(conv, 1), 'stale_epoch');
        await expectConflict(
          store.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: texts(conv, 3, 1, alice) }),
          'stale_epoch',
        );
        const rec = await store.activate(conv, 2);
        expect(rec?.lastSeq).toBe(2);
        expect(rec?.title).toBeUndefined();
      });

      it('a later commit may change the title', async () => {
        const alice = userId('alice');
        const { conv } = await createGroup({ members: [member(alice)], title: 'Old' });
        await store.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: texts(conv, 2, 1, alice), title: 'New' });
        expect((await store.activate(conv, 1))?.title).toBe('New');
        expect((await store.userConversations(alice))[0]?.title).toBe('New');
      });
    });

    describe('dedup', () => {
      it('a commit carrying a stored (from, cmid) is refused with the stored seq and writes nothing', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv, msgs } = await createGroup({ members: [member(alice), member(bob)], count: 2, from: alice });
        const fresh = text(conv, 3, bob);
        const retried: ChatMessage = { ...text(conv, 4, alice), cmid: msgs[1]!.cmid };
        await expectDuplicate(
          store.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: [fresh, retried], title: 'dup' }),
          [{ from: alice, cmid: msgs[1]!.cmid, seq: 2 }],
        );
        expect(await store.findDuplicate(conv, bob, fresh.cmid)).toBeNull();
        expect(await store.messages(conv, 1, 100, 100)).toEqual(msgs);
        const rec = await store.activate(conv, 1);
        expect(rec?.lastSeq).toBe(2);
        expect(rec?.title).toBeUndefined();

        // The writer can go on from the same head without the duplicate.
        await store.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: [fresh] });
        expect(await store.findDuplicate(conv, bob, fresh.cmid)).toBe(3);
      });

      it('every stored key of a refused batch is listed', async () => {
        const alice = userId('alice');
        const { conv, msgs } = await createGroup({ members: [member(alice)], count: 3 });
        await expectDuplicate(
          store.commit({
            conv,
            epoch: 1,
            expectedLastSeq: 3,
            messages: [
              { ...text(conv, 4, alice), cmid: msgs[0]!.cmid },
              text(conv, 5, alice),
              { ...text(conv, 6, alice), cmid: msgs[2]!.cmid },
            ],
          }),
          [
            { from: alice, cmid: msgs[0]!.cmid, seq: 1 },
            { from: alice, cmid: msgs[2]!.cmid, seq: 3 },
          ],
        );
        expect((await store.activate(conv, 1))?.lastSeq).toBe(3);
      });

      it('findDuplicate answers the stored seq per (conv, from, cmid)', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv, msgs } = await createGroup({ members: [member(alice), member(bob)], count: 3, from: alice });
        const other = groupId();
        expect(await store.findDuplicate(conv, alice, msgs[0]!.cmid)).toBe(1);
        expect(await store.findDuplicate(conv, alice, msgs[2]!.cmid)).toBe(3);
        expect(await store.findDuplicate(conv, bob, msgs[0]!.cmid)).toBeNull();
        expect(await store.findDuplicate(other, alice, msgs[0]!.cmid)).toBeNull();
        expect(await store.findDuplicate(conv, alice, `never-${suffix()}`)).toBeNull();
      });

      it('the same cmid from another sender is not a duplicate', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv, msgs } = await createGroup({ members: [member(alice), member(bob)], from: alice });
        const same: ChatMessage = { ...text(conv, 2, bob), cmid: msgs[0]!.cmid };
        await store.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: [same] });
        expect(await store.findDuplicate(conv, bob, same.cmid)).toBe(2);
        expect(await store.findDuplicate(conv, alice, same.cmid)).toBe(1);
      });
    });

    describe('history', () => {
      it('messages returns the range ascending, at most limit', async () => {
        const alice = userId('alice');
        const { conv, msgs } = await createGroup({ members: [member(alice)], count: 10 });
        expect(await store.messages(conv, 1, 10, 100)).toEqual(msgs);
        expect(seqs(await store.messages(conv, 3, 7, 100))).toEqual([3, 4, 5, 6, 7]);
        expect(seqs(await store.messages(conv, 3, 7, 2))).toEqual([3, 4]);
        expect(seqs(await store.messages(conv, 0, 1_000, 100))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(seqs(await store.messages(conv, 10, 10, 5))).toEqual([10]);
        expect(await store.messages(conv, 11, 20, 5)).toEqual([]);
        expect(await store.messages(groupId(), 1, 10, 5)).toEqual([]);
      });

      it('messagesBefore returns the newest page below before, at or above minSeq, ascending', async () => {
        const alice = userId('alice');
        const { conv, msgs } = await createGroup({ members: [member(alice)], count: 10 });
        expect(await store.messagesBefore(conv, 8, 3, 1)).toEqual(msgs.slice(4, 7));
        expect(seqs(await store.messagesBefore(conv, 8, 3, 1))).toEqual([5, 6, 7]);
        expect(seqs(await store.messagesBefore(conv, 8, 10, 4))).toEqual([4, 5, 6, 7]);
        expect(seqs(await store.messagesBefore(conv, 11, 2, 1))).toEqual([9, 10]);
        expect(seqs(await store.messagesBefore(conv, Number.MAX_SAFE_INTEGER, 3, 0))).toEqual([8, 9, 10]);
        expect(seqs(await store.messagesBefore(conv, 11, 100, 0))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(await store.messagesBefore(conv, 1, 5, 0)).toEqual([]);
        expect(await store.messagesBefore(conv, 5, 5, 5)).toEqual([]);
        expect(await store.messagesBefore(groupId(), 5, 5, 0)).toEqual([]);
      });

      it('messages with body, media, reply and sys round-trip exactly', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const conv = groupId();
        const mk = (seq: number, kind: MsgKind, extra: Partial<ChatMessage>): ChatMessage => ({
          conv,
          seq,
          from: alice,
          cmid: `rt${seq}-${suffix()}`,
          ts: T0 + 1000 * seq,
          kind,
          ...extra,
        });
        const all: ChatMessage[] = [
          mk(1, 'system', { sys: { op: 'create', by: alice, users: [alice, bob], title: 'Round trip' } }),
          mk(2, 'text', { body: 'plain' }),
          mk(3, 'text', { body: 'héllo 👋 "quoted" \\ back\nslash', reply: { seq: 2 } }),
          mk(4, 'media', { media: { id: `md-${suffix()}`, mime: 'image/png', size: 1234, name: 'cat.png' } }),
          mk(5, 'media', {
            body: 'caption',
            media: { id: `md-${suffix()}`, mime: 'application/pdf', size: 0 },
            reply: { seq: 4 },
          }),
          mk(6, 'system', { sys: { op: 'add', by: alice, users: [userId('carol')] } }),
          mk(7, 'system', { sys: { op: 'remove', by: alice, users: [] } }),
          mk(8, 'system', { sys: { op: 'leave', by: bob, users: [bob] } }),
          mk(9, 'text', { body: '' }),
        ];
        await store.activate(conv, 1);
        await store.commit({
          conv,
          epoch: 1,
          expectedLastSeq: 0,
          messages: all.slice(0, 1),
          kind: 'group',
          title: 'Round trip',
          members: upserts(member(alice, 1, 'admin'), member(bob)),
        });
        await store.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: all.slice(1) });
        const back = await store.messages(conv, 1, 100, 100);
        expect(back).toEqual(all);
        // toEqual ignores undefined-valued keys: check that unset fields are really absent.
        for (const [i, m] of back.entries()) {
          expect(Object.keys(m).sort()).toEqual(Object.keys(all[i]!).sort());
          if (m.media) expect(Object.keys(m.media).sort()).toEqual(Object.keys(all[i]!.media!).sort());
          if (m.sys) expect(Object.keys(m.sys).sort()).toEqual(Object.keys(all[i]!.sys!).sort());
        }
        expect(await store.messagesBefore(conv, 100, 100, 0)).toEqual(all);
      });
    });

    describe('members and watermarks', () => {
      it('member returns the record, or null for non-members and unknown conversations', async () => {
        const alice = userId('alice');
        const { conv } = await createGroup({ members: [member(alice, 1, 'admin')] });
        expect(await store.member(conv, alice)).toEqual(member(alice, 1, 'admin'));
        expect(await store.member(conv, userId('stranger'))).toBeNull();
        expect(await store.member(groupId(), alice)).toBeNull();
      });

      it('an upsert of an existing member changes its role; a membership-only commit keeps the head', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv } = await createGroup({ members: [member(alice, 1, 'admin'), member(bob, 1)], count: 2 });
        await store.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: [], members: upserts(member(bob, 1, 'admin')) });
        expect((await store.member(conv, bob))?.role).toBe('admin');
        expect((await store.activate(conv, 1))?.lastSeq).toBe(2);
        await store.commit({ conv, epoch: 1, expectedLastSeq: 2, messages: [], members: upserts(member(bob, 1, 'member')) });
        expect((await store.member(conv, bob))?.role).toBe('member');
        expect((await store.member(conv, alice))?.role).toBe('admin');
      });

      it('a removed member is gone; re-added, it has the new joinedSeq', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv } = await createGroup({ members: [member(alice, 1, 'admin'), member(bob, 1)], count: 3 });
        expect((await store.userConversations(bob)).map((c) => c.conv)).toEqual([conv]);

        const removal: ChatMessage = {
          ...text(conv, 4, alice),
          kind: 'system',
          sys: { op: 'remove', by: alice, users: [bob] },
        };
        delete removal.body;
        await store.commit({ conv, epoch: 1, expectedLastSeq: 3, messages: [removal], members: [{ op: 'remove', user: bob }] });
        expect(await store.member(conv, bob)).toBeNull();
        expect(await store.userConversations(bob)).toEqual([]);
        expect((await store.activate(conv, 1))?.members).toEqual([member(alice, 1, 'admin')]);

        const readd: ChatMessage = { ...text(conv, 5, alice), kind: 'system', sys: { op: 'add', by: alice, users: [bob] } };
        delete readd.body;
        await store.commit({ conv, epoch: 1, expectedLastSeq: 4, messages: [readd], members: upserts(member(bob, 5)) });
        expect(await store.member(conv, bob)).toEqual(member(bob, 5));
        expect(await store.userConversations(bob)).toEqual([
          { conv, kind: 'group', lastSeq: 5, delivered: 0, read: 0 },
        ]);
      });

      it('watermarks only rise', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const { conv } = await createGroup({ members: [member(alice), member(bob)], count: 10 });
        await store.saveWatermarks(conv, [
          { user: alice, delivered: 6, read: 4 },
          { user: bob, delivered: 2, read: 1 },
        ]);
        expect(await store.member(conv, alice)).toEqual({ ...member(alice), delivered: 6, read: 4 });
        expect(await store.member(conv, bob)).toEqual({ ...member(bob), delivered: 2, read: 1 });

        await store.saveWatermarks(conv, [{ user: alice, delivered: 3, read: 2 }]);
        expect(await store.member(conv, alice)).toEqual({ ...member(alice), delivered: 6, read: 4 });

        await store.saveWatermarks(conv, [{ user: alice, delivered: 5, read: 5 }]);
        expect(await store.member(conv, alice)).toEqual({ ...member(alice), delivered: 6, read: 5 });

        await store.saveWatermarks(conv, [{ user: alice, delivered: 10, read: 0 }]);
        expect(await store.member(conv, alice)).toEqual({ ...member(alice), delivered: 10, read: 5 });
        expect(await store.member(conv, bob)).toEqual({ ...member(bob), delivered: 2, read: 1 });

        const summary = (await store.userConversations(alice)).find((c) => c.conv === conv);
        expect(summary).toMatchObject({ delivered: 10, read: 5, lastSeq: 10 });
      });

      it('userConversations lists the head, kind, title and the user watermarks of each conversation', async () => {
        const alice = userId('alice');
        const bob = userId('bob');
        const carol = userId('carol');
        const { conv: group } = await createGroup({
          members: [member(alice, 1, 'admin'), member(bob), member(carol)],
          title: 'Friends',
          count: 4,
        });
        const dm = `dm:${alice}:${bob}`;
        await store.activate(dm, 3);
        await store.commit({
          conv: dm,
          epoch: 3,
          expectedLastSeq: 0,
          messages: texts(dm, 1, 2, bob),
          kind: 'direct',
          members: upserts(member(alice), member(bob)),
        });
        await store.saveWatermarks(group, [{ user: alice, delivered: 4, read: 3 }]);
        await store.saveWatermarks(dm, [{ user: alice, delivered: 1, read: 0 }]);

        const expected: ConvSummary[] = [
          { conv: group, kind: 'group', title: 'Friends', lastSeq: 4, delivered: 4, read: 3 },
          { conv: dm, kind: 'direct', lastSeq: 2, delivered: 1, read: 0 },
        ];
        expect((await store.userConversations(alice)).sort(byConv)).toEqual(expected.sort(byConv));
        expect(await store.userConversations(carol)).toEqual([
          { conv: group, kind: 'group', title: 'Friends', lastSeq: 4, delivered: 0, read: 0 },
        ]);
        expect(await store.userConversations(userId('nobody'))).toEqual([]);

        await store.commit({ conv: dm, epoch: 3, expectedLastSeq: 2, messages: texts(dm, 3, 1, alice) });
        expect((await store.userConversations(bob)).find((c) => c.conv === dm)?.lastSeq).toBe(3);
      });

      it('a conversation only claimed, never committed, has no state', async () => {
        const conv = groupId();
        await store.activate(conv, 1);
        expect(await store.activate(conv, 1)).toBeNull();
        expect(await store.member(conv, userId('x'))).toBeNull();
        expect(await store.messages(conv, 0, 10, 10)).toEqual([]);
      });
    });

    describe('concurrency', () => {
      it('concurrent commits to 50 conversations all land', async () => {
        const alice = userId('alice');
        const convs = Array.from({ length: 50 }, () => groupId());
        expect(await Promise.all(convs.map((c) => store.activate(c, 1)))).toEqual(convs.map(() => null));
        const batches = convs.map((c) => texts(c, 1, 3, alice));
        await Promise.all(
          convs.map((conv, i) =>
            store.commit({
              conv,
              epoch: 1,
              expectedLastSeq: 0,
              messages: batches[i]!,
              kind: 'group',
              members: upserts(member(alice)),
            }),
          ),
        );
        const recs = await Promise.all(convs.map((c) => store.activate(c, 1)));
        expect(recs.map((r) => r?.lastSeq)).toEqual(convs.map(() => 3));
        for (const [i, conv] of convs.entries()) {
          expect(await store.messages(conv, 1, 10, 10)).toEqual(batches[i]);
        }
        const listed = new Set((await store.userConversations(alice)).map((c) => c.conv));
        expect(convs.every((c) => listed.has(c))).toBe(true);
      });

      it('a refused commit does not disturb concurrent commits to other conversations', async () => {
        const alice = userId('alice');
        const { conv: a, msgs: aMsgs } = await createGroup({ members: [member(alice)] });
        const { conv: b, msgs: bMsgs } = await createGroup({ members: [member(alice)] });
        const { conv: c, msgs: cMsgs } = await createGroup({ members: [member(alice)] });
        const a2 = texts(a, 2, 1, alice);
        const c2 = texts(c, 2, 1, alice);
        const results = await Promise.allSettled([
          store.commit({ conv: a, epoch: 1, expectedLastSeq: 1, messages: a2 }),
          store.commit({ conv: b, epoch: 1, expectedLastSeq: 5, messages: texts(b, 6, 1, alice) }),
          store.commit({ conv: c, epoch: 1, expectedLastSeq: 1, messages: [{ ...c2[0]!, cmid: cMsgs[0]!.cmid }] }),
          store.commit({ conv: b, epoch: 9, expectedLastSeq: 1, messages: texts(b, 2, 1, alice) }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
        expect(await store.messages(a, 1, 10, 10)).toEqual([...aMsgs, ...a2]);
        expect(await store.messages(b, 1, 10, 10)).toEqual(bMsgs);
        expect(await store.messages(c, 1, 10, 10)).toEqual(cMsgs);
      });

      it('sequential commits issued without waiting apply in order', async () => {
        const alice = userId('alice');
        const { conv, msgs } = await createGroup({ members: [member(alice)] });
        const next = [texts(conv, 2, 2, alice), texts(conv, 4, 1, alice), texts(conv, 5, 3, alice)];
        await Promise.all([
          store.commit({ conv, epoch: 1, expectedLastSeq: 1, messages: next[0]! }),
          store.commit({ conv, epoch: 1, expectedLastSeq: 3, messages: next[1]! }),
          store.commit({ conv, epoch: 1, expectedLastSeq: 4, messages: next[2]! }),
        ]);
        expect(await store.messages(conv, 1, 100, 100)).toEqual([...msgs, ...next.flat()]);
      });
    });

    describe('co-members', () => {
      it('coMembers lists the candidates sharing a current conversation with the user, once each', async () => {
        const [me, pal, mate, ex, stranger, loner] = ['me', 'pal', 'mate', 'ex', 'stranger', 'loner'].map(userId) as [
          string, string, string, string, string, string,
        ];
        const dm = `dm:${[me, pal].sort().join(':')}`;
        await store.activate(dm, 1);
        await store.commit({
          conv: dm,
          epoch: 1,
          expectedLastSeq: 0,
          messages: texts(dm, 1, 1, me),
          kind: 'direct',
          members: upserts(member(me), member(pal)),
        });
        const { conv: group } = await createGroup({ members: [member(me, 1, 'admin'), member(mate), member(ex), member(pal)] });
        await store.commit({ conv: group, epoch: 1, expectedLastSeq: 1, messages: [], members: [{ op: 'remove', user: ex }] });
        const sorted = async (p: Promise<string[]>) => (await p).sort();
        expect(await sorted(store.coMembers(me, [pal, mate, ex, stranger, pal]))).toEqual([pal, mate].sort());
        expect(await sorted(store.coMembers(mate, [me, pal, ex]))).toEqual([me, pal].sort());
        expect(await store.coMembers(ex, [me, pal, mate])).toEqual([]);
        expect(await store.coMembers(me, [me, stranger])).toEqual([me]);
        expect(await store.coMembers(me, [])).toEqual([]);
        expect(await store.coMembers(loner, [me, loner])).toEqual([]);
      });
    });

    describe('last seen', () => {
      it('the newest time wins and users never seen are absent', async () => {
        const u1 = userId('u1');
        const u2 = userId('u2');
        const u3 = userId('u3');
        await store.saveLastSeen([
          { user: u1, at: T0 + 100 },
          { user: u2, at: T0 + 200 },
        ]);
        expect(await store.lastSeen([u1, u2, u3])).toEqual(
          new Map([
            [u1, T0 + 100],
            [u2, T0 + 200],
          ]),
        );
        await store.saveLastSeen([{ user: u1, at: T0 + 50 }]);
        expect((await store.lastSeen([u1])).get(u1)).toBe(T0 + 100);
        await store.saveLastSeen([{ user: u1, at: T0 + 150 }]);
        expect((await store.lastSeen([u1])).get(u1)).toBe(T0 + 150);
        expect(await store.lastSeen([u3])).toEqual(new Map());
        expect(await store.lastSeen([])).toEqual(new Map());
      });
    });

    describe('media', () => {
      function mediaRec(extra: Partial<MediaRecord> = {}): MediaRecord {
        const id = `md-${suffix()}`;
        return { id, owner: userId('owner'), mime: 'image/jpeg', size: 2048, key: `media/${id}`, createdAt: T0, ...extra };
      }

      it('put, complete and get a record; unknown ids are null', async () => {
        const rec = mediaRec();
        await store.putMedia(rec);
        const got = await store.media(rec.id);
        expect(got).toEqual(rec);
        expect(Object.keys(got!).sort()).toEqual(Object.keys(rec).sort());

        await store.completeMedia(rec.id, 'ab'.repeat(32), 2000, T0 + 5);
        expect(await store.media(rec.id)).toEqual({ ...rec, sha256: 'ab'.repeat(32), size: 2000, completedAt: T0 + 5 });

        const named = mediaRec({ name: 'photo.jpg' });
        await store.putMedia(named);
        expect(await store.media(named.id)).toEqual(named);

        expect(await store.media(`md-${suffix()}`)).toBeNull();
      });

      it('refs list the referencing conversations once each', async () => {
        const rec = mediaRec();
        await store.putMedia(rec);
        expect(await store.mediaRefs(rec.id)).toEqual([]);
        const c1 = groupId();
        const c2 = groupId();
        await store.addMediaRef(rec.id, c1);
        await store.addMediaRef(rec.id, c2);
        await store.addMediaRef(rec.id, c1);
        expect((await store.mediaRefs(rec.id)).sort()).toEqual([c1, c2].sort());
      });

      it('unreferencedMedia lists old uploads without refs; delete removes a record', async () => {
        const base = T0 - 10_000_000;
        const orphan = mediaRec({ createdAt: base });
        const orphan2 = mediaRec({ createdAt: base + 1 });
        const referenced = mediaRec({ createdAt: base });
        const recent = mediaRec({ createdAt: base + 1000 });
        for (const r of [orphan, orphan2, referenced, recent]) await store.putMedia(r);
        await store.addMediaRef(referenced.id, groupId());
        const before = base + 500;

        const listed = await store.unreferencedMedia(before, 100_000);
        for (const r of listed) expect(r.createdAt).toBeLessThan(before);
        const ids = new Set(listed.map((r) => r.id));
        expect(ids.has(orphan.id)).toBe(true);
        expect(ids.has(orphan2.id)).toBe(true);
        expect(ids.has(referenced.id)).toBe(false);
        expect(ids.has(recent.id)).toBe(false);
        expect(listed.find((r) => r.id === orphan.id)).toEqual(orphan);
        expect((await store.unreferencedMedia(before, 1)).length).toBeLessThanOrEqual(1);

        await store.deleteMedia(orphan.id);
        expect(await store.media(orphan.id)).toBeNull();
        expect((await store.unreferencedMedia(before, 100_000)).some((r) => r.id === orphan.id)).toBe(false);
        expect(await store.media(orphan2.id)).toEqual(orphan2);
      });
    });
  });
}
