/** The pure presence window (src/actors/presence.ts) and the batched last-seen writer, on a real SQLite store. */
import { afterEach, describe, expect, it } from 'vitest';
import { PresenceWatch, PresenceWindow } from '../../src/actors/presence.js';
import { LastSeenWriter } from '../../src/actors/last-seen.js';
import { SqliteStore } from '../../src/storage/sqlite-store.js';
import { silentLog } from '../../src/actors/ports/index.js';

describe('presence window', () => {
  it('is online only while connected and within the window after the last activity', () => {
    const w = new PresenceWindow(1000);
    expect(w.online(0, true)).toBe(false);
    expect(w.lastSeen).toBeNull();
    expect(w.touch(5000)).toBe(true);
    expect(w.online(5000, true)).toBe(true);
    expect(w.online(5999, true)).toBe(true);
    expect(w.online(6000, true)).toBe(false);
    expect(w.online(5500, false)).toBe(false);
    expect(w.lapsesAt(5500, true)).toBe(6000);
    expect(w.lapsesAt(5500, false)).toBeNull();
  });

  it('keeps the latest time: an older or missing one changes nothing', () => {
    const w = new PresenceWindow(1000);
    w.touch(200);
    expect(w.touch(100)).toBe(false);
    expect(w.touch(undefined)).toBe(false);
    expect(w.touch(null)).toBe(false);
    expect(w.lastSeen).toBe(200);
  });

  it('PresenceWatch reports only changes', () => {
    const p = new PresenceWatch();
    expect(p.update(false)).toBe(false);
    expect(p.update(true)).toBe(true);
    expect(p.update(true)).toBe(false);
    expect(p.online).toBe(true);
    expect(p.update(false)).toBe(true);
  });
});

describe('last seen writer', () => {
  let store: SqliteStore | undefined;
  afterEach(async () => {
    await store?.close();
  });

  it('batches notes into one write per flush, keeps the latest per user, and shows what is pending', async () => {
    store = await SqliteStore.open({ path: ':memory:' });
    const writer = new LastSeenWriter({ store, log: silentLog, flushMs: 60_000 });
    writer.note('u1', 100);
    writer.note('u1', 50);
    writer.note('u2', 300);
    expect(writer.pending('u1')).toBe(100);
    expect(await store.lastSeen(['u1', 'u2'])).toEqual(new Map());
    await writer.flush();
    expect(writer.pending('u1')).toBeUndefined();
    expect(await store.lastSeen(['u1', 'u2'])).toEqual(new Map([['u1', 100], ['u2', 300]]));
    writer.note('u1', 400);
    await writer.close();
    expect((await store.lastSeen(['u1'])).get('u1')).toBe(400);
  });

  it('writes by itself after flushMs', async () => {
    store = await SqliteStore.open({ path: ':memory:' });
    const writer = new LastSeenWriter({ store, log: silentLog, flushMs: 30 });
    writer.note('u', 7);
    await new Promise((r) => setTimeout(r, 120));
    expect((await store.lastSeen(['u'])).get('u')).toBe(7);
    await writer.close();
  });
});
