import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DuplicateMessageError, StoreConflictError, StoreUnavailableError } from '../../src/actors/ports/errors.js';
import type { ChatMessage } from '../../src/protocol/frames.js';
import type { MemberRecord } from '../../src/actors/ports/store.js';
import { SqliteStore } from '../../src/storage/sqlite-store.js';
import { migrate, SchemaTooNewError, SQLITE_SCHEMA_VERSION, schemaVersion } from '../../src/storage/sqlite-migrations.js';
import { storeContract } from '../contract/store.contract.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function freshPath(): string {
  fileNo += 1;
  return join(dir, `t${fileNo}.db`);
}

// Every contract test opens its own connection on one shared file.
const contractPath = join(dir, 'contract.db');
storeContract('sqlite', () => SqliteStore.open({ path: contractPath }));

const T0 = 1_700_000_000_000;

function text(conv: string, seq: number, from: string, ts = T0 + seq): ChatMessage {
  return { conv, seq, from, cmid: `c${seq}`, ts, kind: 'text', body: `m${seq}` };
}

function member(user: string, joinedSeq = 1): MemberRecord {
  return { user, role: 'member', joinedSeq, delivered: 0, read: 0 };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('SqliteStore', () => {
  const open: SqliteStore[] = [];
  async function openStore(path: string, synchronous?: 'FULL' | 'NORMAL'): Promise<SqliteStore> {
    const s = await SqliteStore.open(synchronous ? { path, synchronous } : { path });
    open.push(s);
    return s;
  }
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
  });

  it('info reports sqlite and the synchronous mode (FULL by default)', async () => {
    expect((await openStore(freshPath())).info()).toEqual({ kind: 'sqlite', sync: 'FULL' });
    expect((await openStore(freshPath(), 'NORMAL')).info()).toEqual({ kind: 'sqlite', sync: 'NORMAL' });
  });

  it('opens the file in WAL mode with the requested synchronous setting', async () => {
    const path = freshPath();
    await openStore(path, 'NORMAL');
    const raw = new Database(path);
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('works in memory', async () => {
    const s = await openStore(':memory:');
    expect(await s.activate('g:mem', 1)).toBeNull();
    await s.commit({ conv: 'g:mem', epoch: 1, expectedLastSeq: 0, messages: [text('g:mem', 1, 'a')], kind: 'group' });
    expect((await s.activate('g:mem', 1))?.lastSeq).toBe(1);
  });

  it('reopening the same file keeps everything', async () => {
    const path = freshPath();
    const a = await openStore(path);
    const conv = 'g:durable';
    await a.activate(conv, 3);
    const msgs = [text(conv, 1, 'alice'), text(conv, 2, 'bob')];
    await a.commit({
      conv,
      epoch: 3,
      expectedLastSeq: 0,
      messages: msgs,
      kind: 'group',
      title: 'Durable',
      members: [
        { op: 'upsert', member: { ...member('alice'), role: 'admin' } },
        { op: 'upsert', member: member('bob') },
      ],
    });
    await a.saveWatermarks(conv, [{ user: 'bob', delivered: 2, read: 1 }]);
    await a.saveLastSeen([{ user: 'alice', at: T0 }]);
    await a.putMedia({ id: 'm1', owner: 'alice', mime: 'image/png', size: 3, key: 'k/m1', createdAt: T0 });
    await a.addMediaRef('m1', conv);
    await a.close();

    const b = await openStore(path);
    expect(await b.activate(conv, 3)).toEqual({
      conv,
      kind: 'group',
      title: 'Durable',
      lastSeq: 2,
      members: [{ ...member('alice'), role: 'admin' }, { ...member('bob'), delivered: 2, read: 1 }],
    });
    expect(await b.messages(conv, 1, 10, 10)).toEqual(msgs);
    expect(await b.findDuplicate(conv, 'bob', 'c2')).toBe(2);
    expect(await b.lastSeen(['alice'])).toEqual(new Map([['alice', T0]]));
    expect(await b.media('m1')).toEqual({ id: 'm1', owner: 'alice', mime: 'image/png', size: 3, key: 'k/m1', createdAt: T0 });
    expect(await b.mediaRefs('m1')).toEqual([conv]);
    // The claim survived too: an older writer stays fenced out.
    const err = await rejection(b.activate(conv, 2));
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as StoreConflictError).reason).toBe('stale_epoch');
  });

  it('close commits the writes still queued', async () => {
    const path = freshPath();
    const a = await openStore(path);
    await a.activate('g:q', 1);
    const pending = a.commit({ conv: 'g:q', epoch: 1, expectedLastSeq: 0, messages: [text('g:q', 1, 'a')], kind: 'group' });
    await a.close();
    await pending;
    const b = await openStore(path);
    expect((await b.activate('g:q', 1))?.lastSeq).toBe(1);
  });

  it('a closed store rejects every call with StoreUnavailableError', async () => {
    const s = await SqliteStore.open({ path: freshPath() });
    await s.close();
    await s.close();
    expect(await rejection(s.activate('g:x', 1))).toBeInstanceOf(StoreUnavailableError);
    expect(await rejection(s.messages('g:x', 0, 10, 10))).toBeInstanceOf(StoreUnavailableError);
    expect(await rejection(s.saveLastSeen([{ user: 'u', at: 1 }]))).toBeInstanceOf(StoreUnavailableError);
  });

  it('a write lock held by another connection gives StoreUnavailableError, then recovers', async () => {
    const path = freshPath();
    const s = await SqliteStore.open({ path, busyTimeoutMs: 50 });
    open.push(s);
    await s.activate('g:busy', 1);
    const other = new Database(path);
    try {
      other.exec('BEGIN IMMEDIATE');
      const err = await rejection(
        s.commit({ conv: 'g:busy', epoch: 1, expectedLastSeq: 0, messages: [text('g:busy', 1, 'a')], kind: 'group' }),
      );
      expect(err).toBeInstanceOf(StoreUnavailableError);
      // Reads of committed state still work under a concurrent writer (WAL).
      expect(await s.messages('g:busy', 0, 10, 10)).toEqual([]);
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
    expect(await s.activate('g:busy', 1)).toBeNull();
    await s.commit({ conv: 'g:busy', epoch: 1, expectedLastSeq: 0, messages: [text('g:busy', 1, 'a')], kind: 'group' });
    expect((await s.activate('g:busy', 1))?.lastSeq).toBe(1);
  });

  it('a write waiting for a lock does not block the event loop (writes run on the writer thread)', async () => {
    const path = freshPath();
    const s = await SqliteStore.open({ path, busyTimeoutMs: 400 });
    open.push(s);
    await s.activate('g:loop', 1);
    const other = new Database(path);
    try {
      other.exec('BEGIN IMMEDIATE');
      const started = performance.now();
      const pending = rejection(
        s.commit({ conv: 'g:loop', epoch: 1, expectedLastSeq: 0, messages: [text('g:loop', 1, 'a')], kind: 'group' }),
      );
      // The timer fires on time while the writer waits out its busy timeout.
      await new Promise((r) => setTimeout(r, 20));
      expect(performance.now() - started).toBeLessThan(300);
      expect(await s.messages('g:loop', 0, 10, 10)).toEqual([]);
      expect(await pending).toBeInstanceOf(StoreUnavailableError);
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
  });

  it('refusals keep their class, fields and message across the thread', async () => {
    const s = await openStore(freshPath());
    await s.activate('g:err', 2);
    await s.commit({ conv: 'g:err', epoch: 2, expectedLastSeq: 0, messages: [text('g:err', 1, 'a')], kind: 'group' });
    const stale = await rejection(s.commit({ conv: 'g:err', epoch: 1, expectedLastSeq: 1, messages: [text('g:err', 2, 'a')] }));
    expect(stale).toBeInstanceOf(StoreConflictError);
    expect(stale).toMatchObject({ reason: 'stale_epoch', code: 'unavailable', retryable: true, name: 'StoreConflictError' });
    expect((stale as Error).message).toBe('g:err: claimed at epoch 2, commit at epoch 1 refused');
    const head = await rejection(s.commit({ conv: 'g:err', epoch: 2, expectedLastSeq: 0, messages: [text('g:err', 1, 'a')] }));
    expect((head as Error).message).toBe('g:err: head is 1, commit expected 0');
    const dup = await rejection(
      s.commit({ conv: 'g:err', epoch: 2, expectedLastSeq: 1, messages: [{ ...text('g:err', 2, 'a'), cmid: 'c1' }] }),
    );
    expect(dup).toBeInstanceOf(DuplicateMessageError);
    expect((dup as DuplicateMessageError).existing).toEqual([{ from: 'a', cmid: 'c1', seq: 1 }]);
    expect((dup as Error).message).toBe('duplicate message keys: a/c1');
    const twice = await rejection(
      s.commit({ conv: 'g:err', epoch: 2, expectedLastSeq: 1, messages: [text('g:err', 2, 'a'), { ...text('g:err', 3, 'a'), cmid: 'c2' }] }),
    );
    expect(twice).toBeInstanceOf(TypeError);
    expect((twice as Error).message).toBe('commit to g:err carries a/c2 twice');
    expect((await s.activate('g:err', 2))?.lastSeq).toBe(1);
  });

  it('if the writer thread dies, pending and later writes reject with StoreUnavailableError; reads go on', async () => {
    const failures: Error[] = [];
    const s = await SqliteStore.open({ path: freshPath(), onFailure: (e) => failures.push(e) });
    open.push(s);
    await s.activate('g:dead', 1);
    await s.commit({ conv: 'g:dead', epoch: 1, expectedLastSeq: 0, messages: [text('g:dead', 1, 'a')], kind: 'group' });
    // Reach into the store to kill its writer, as a crash would.
    const worker = (s as unknown as { link: { worker: { terminate(): Promise<number> } } }).link.worker;
    const pending = rejection(s.commit({ conv: 'g:dead', epoch: 1, expectedLastSeq: 1, messages: [text('g:dead', 2, 'a')] }));
    await worker.terminate();
    expect(await pending).toBeInstanceOf(StoreUnavailableError);
    expect(await rejection(s.saveLastSeen([{ user: 'a', at: 1 }]))).toBeInstanceOf(StoreUnavailableError);
    expect(failures).toHaveLength(1);
    expect(s.writerFailure()).toBe(failures[0]);
    expect((await s.messages('g:dead', 0, 10, 10)).map((m) => m.seq)).toEqual([1]);
  });

  it('userConversations is ordered by the time of the last message, newest first', async () => {
    const s = await openStore(freshPath());
    const convs = ['g:a', 'g:b', 'g:c'];
    const ts = [T0 + 20, T0 + 30, T0 + 10];
    for (const [i, conv] of convs.entries()) {
      await s.activate(conv, 1);
      await s.commit({
        conv,
        epoch: 1,
        expectedLastSeq: 0,
        messages: [text(conv, 1, 'u', ts[i])],
        kind: 'group',
        members: [{ op: 'upsert', member: member('u') }],
      });
    }
    expect((await s.userConversations('u')).map((c) => c.conv)).toEqual(['g:b', 'g:a', 'g:c']);
    await s.commit({ conv: 'g:c', epoch: 1, expectedLastSeq: 1, messages: [text('g:c', 2, 'u', T0 + 40)] });
    expect((await s.userConversations('u')).map((c) => c.conv)).toEqual(['g:c', 'g:b', 'g:a']);
  });

  it('refuses a batch whose seqs do not follow the head, writing nothing', async () => {
    const s = await openStore(freshPath());
    await s.activate('g:gap', 1);
    await s.commit({ conv: 'g:gap', epoch: 1, expectedLastSeq: 0, messages: [text('g:gap', 1, 'a')], kind: 'group' });
    const err = await rejection(
      s.commit({ conv: 'g:gap', epoch: 1, expectedLastSeq: 1, messages: [text('g:gap', 2, 'a'), text('g:gap', 4, 'a')] }),
    );
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as StoreConflictError).reason).toBe('head_mismatch');
    expect((await s.messages('g:gap', 0, 10, 10)).map((m) => m.seq)).toEqual([1]);
  });

  it('refuses a first commit without a kind', async () => {
    const s = await openStore(freshPath());
    await s.activate('g:nokind', 1);
    expect(
      await rejection(s.commit({ conv: 'g:nokind', epoch: 1, expectedLastSeq: 0, messages: [text('g:nokind', 1, 'a')] })),
    ).toBeInstanceOf(TypeError);
    expect(await s.activate('g:nokind', 1)).toBeNull();
  });

  it('many commits issued in one tick all settle, each with its own outcome', async () => {
    const s = await openStore(freshPath());
    const n = 3000; // more than one group
    const convs = Array.from({ length: n }, (_, i) => `g:n${i}`);
    await Promise.all(convs.map((c) => s.activate(c, 1)));
    const results = await Promise.allSettled(
      convs.map((conv, i) =>
        s.commit({ conv, epoch: 1, expectedLastSeq: i % 7 === 0 ? 5 : 0, messages: [text(conv, 1, 'a')], kind: 'group' }),
      ),
    );
    results.forEach((r, i) => expect(r.status).toBe(i % 7 === 0 ? 'rejected' : 'fulfilled'));
    const heads = await Promise.all(convs.map((c) => s.activate(c, 1)));
    heads.forEach((h, i) => expect(h === null ? 0 : h.lastSeq).toBe(i % 7 === 0 ? 0 : 1));
  });
});

describe('sqlite migrations', () => {
  function tables(db: Database.Database): unknown[] {
    return db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").all();
  }

  it('bring a new database to the current version and are idempotent', () => {
    const db = new Database(freshPath());
    try {
      expect(schemaVersion(db)).toBe(0);
      expect(migrate(db)).toEqual({ from: 0, to: SQLITE_SCHEMA_VERSION });
      const schema = tables(db);
      expect(schema.length).toBeGreaterThan(0);
      expect(migrate(db)).toEqual({ from: SQLITE_SCHEMA_VERSION, to: SQLITE_SCHEMA_VERSION });
      expect(tables(db)).toEqual(schema);
      expect(schemaVersion(db)).toBe(SQLITE_SCHEMA_VERSION);
    } finally {
      db.close();
    }
  });

  it('reopening a store applies nothing again', async () => {
    const path = freshPath();
    await (await SqliteStore.open({ path })).close();
    const raw = new Database(path);
    const schema = tables(raw);
    expect(schemaVersion(raw)).toBe(SQLITE_SCHEMA_VERSION);
    raw.close();
    await (await SqliteStore.open({ path })).close();
    const again = new Database(path);
    try {
      expect(tables(again)).toEqual(schema);
      expect(schemaVersion(again)).toBe(SQLITE_SCHEMA_VERSION);
    } finally {
      again.close();
    }
  });

  it('apply later steps on top of earlier ones, each once', () => {
    const db = new Database(freshPath());
    try {
      let runs = 0;
      const steps = [
        { version: 1, description: 'a', up: (d: Database.Database) => void d.exec('CREATE TABLE a (x)') },
        { version: 2, description: 'b', up: (d: Database.Database) => void (runs++, d.exec('CREATE TABLE b (y)')) },
      ];
      expect(migrate(db, steps.slice(0, 1))).toEqual({ from: 0, to: 1 });
      expect(migrate(db, steps)).toEqual({ from: 1, to: 2 });
      expect(migrate(db, steps)).toEqual({ from: 2, to: 2 });
      expect(runs).toBe(1);
    } finally {
      db.close();
    }
  });

  it('a failing step leaves the previous version and no partial schema', () => {
    const db = new Database(freshPath());
    try {
      const steps = [
        { version: 1, description: 'a', up: (d: Database.Database) => void d.exec('CREATE TABLE a (x)') },
        {
          version: 2,
          description: 'broken',
          up: (d: Database.Database) => void d.exec('CREATE TABLE b (y); CREATE TABLE a (x)'),
        },
      ];
      expect(() => migrate(db, steps)).toThrow();
      expect(schemaVersion(db)).toBe(1);
      expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").all()).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('refuse a database written by a newer schema', async () => {
    const path = freshPath();
    const db = new Database(path);
    db.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    db.close();
    expect(await rejection(SqliteStore.open({ path }))).toBeInstanceOf(SchemaTooNewError);
  });
});
