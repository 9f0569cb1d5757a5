/** The pure presence window (src/actors/presence.ts) and the batched last-seen writer, on a real SQLite store. */
import { afterEach, describe, expect, it } from 'vitest';
import { isOnline, lapsesAt, later } from '../../src/actors/presence.js';
import { LastSeenWriter } from '../../src/actors/last-seen.js';
import { SqliteStore } from '../../src/storage/sqlite-store.js';
import { silentLog } from '../../src/actors/ports/index.js';

describe('presence window', () => {
  it('is online only while connected and within the window after the last activity', () => {
    expect(isOnline(null, 1000, 0, true)).toBe(false);
    const last = later(null, 5000);
    expect(last).toBe(5000);
    expect(isOnline(last, 1000, 5000, true)).toBe(true);
    expect(isOnline(last, 1000, 5999, true)).toBe(true);
    expect(isOnline(last, 1000, 6000, true)).toBe(false);
    expect(isOnline(last, 1000, 5500, false)).toBe(false);
    expect(lapsesAt(last, 1000, 5500, true)).toBe(6000);
    expect(lapsesAt(last, 1000, 5500, false)).toBeNull();
  });

  it('keeps the latest time: an older or missing one changes nothing', () => {
    expect(later(200, 100)).toBe(200);
    expect(later(200, undefined)).toBe(200);
    expect(later(200, null)).toBe(200);
    expect(later(200, Number.NaN)).toBe(200);
    expect(later(200, 300)).toBe(300);
    expect(later(null, null)).toBeNull();
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
