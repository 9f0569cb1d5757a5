import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SwitchboardError } from '../../src/client/errors.js';
import { classifyError, Outbox, type OutboxItem } from '../../src/client/outbox.js';

type F = { t: string; cmid: string };

function setup(opts: { connected?: boolean } = {}) {
  const wire: string[] = [];
  const state = { connected: opts.connected ?? true };
  const retries: number[] = [];
  const box = new Outbox<F, string>({
    transmit: (item: OutboxItem<F>) => {
      if (!state.connected) return false;
      wire.push(item.frame.cmid);
      return true;
    },
    retry: { minMs: 100, maxMs: 1_000, random: () => 1 },
    onRetry: (_item, delay) => retries.push(delay),
  });
  return { box, wire, state, retries };
}

const err = (code: string, retryMs?: number) =>
  new SwitchboardError(code as never, code, retryMs === undefined ? {} : { retryMs });

describe('Outbox', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes at once when connected and settles on the reply', async () => {
    const { box, wire } = setup();
    const p = box.add('k1', { t: 'send', cmid: 'a' });
    expect(wire).toEqual(['a']);
    expect(box.get('k1')?.state).toBe('inflight');
    expect(box.settle('k1', 'ack-a')).toBe(true);
    await expect(p).resolves.toBe('ack-a');
    expect(box.size).toBe(0);
    expect(box.settle('k1', 'again')).toBe(false);
  });

  it('holds items while disconnected and writes them in order on flush', () => {
    const { box, wire, state } = setup({ connected: false });
    void box.add('k1', { t: 'send', cmid: 'a' });
    void box.add('k2', { t: 'send', cmid: 'b' });
    expect(wire).toEqual([]);
    expect(box.items().map((i) => i.state)).toEqual(['queued', 'queued']);
    state.connected = true;
    box.flush();
    expect(wire).toEqual(['a', 'b']);
    expect(box.items().map((i) => i.attempts)).toEqual([1, 1]);
  });

  it('never has two copies of one key in flight on one connection', () => {
    const { box, wire } = setup();
    const p1 = box.add('k1', { t: 'send', cmid: 'a' });
    const p2 = box.add('k1', { t: 'send', cmid: 'a' });
    expect(p2).toBe(p1);
    box.flush();
    box.flush();
    expect(wire).toEqual(['a']);
    // After the connection closes, it goes out again (same cmid) once.
    box.disconnected();
    box.flush();
    box.flush();
    expect(wire).toEqual(['a', 'a']);
    expect(box.get('k1')?.attempts).toBe(2);
  });

  it('refuses a pending key with a different frame when sameFrame is given', async () => {
    const wire: string[] = [];
    const box = new Outbox<F, string>({
      transmit: (item) => (wire.push(item.frame.cmid), true),
      sameFrame: (a, b) => JSON.stringify(a) === JSON.stringify(b),
    });
    const p1 = box.add('k', { t: 'send', cmid: 'a' });
    expect(box.add('k', { t: 'send', cmid: 'a' })).toBe(p1);
    await expect(box.add('k', { t: 'other', cmid: 'a' })).rejects.toMatchObject({ code: 'bad_request' });
    expect(wire).toEqual(['a']);
  });

  it('honours retryMs of rate_limited', () => {
    const { box, wire, retries } = setup();
    void box.add('k1', { t: 'send', cmid: 'a' });
    expect(box.fail('k1', err('rate_limited', 750))).toBe('retry');
    expect(retries).toEqual([750]);
    expect(box.get('k1')?.state).toBe('waiting');
    box.flush();
    vi.advanceTimersByTime(749);
    expect(wire).toEqual(['a']);
    vi.advanceTimersByTime(1);
    expect(wire).toEqual(['a', 'a']);
    expect(box.get('k1')?.state).toBe('inflight');
  });

  it('backs off on unavailable and internal, growing up to the cap', () => {
    const { box, wire, retries } = setup();
    void box.add('k1', { t: 'send', cmid: 'a' });
    for (let i = 0; i < 6; i++) {
      expect(box.fail('k1', err(i % 2 ? 'internal' : 'unavailable'))).toBe('retry');
      vi.advanceTimersByTime(retries[i] as number);
    }
    expect(retries).toEqual([200, 400, 800, 1_000, 1_000, 1_000]);
    expect(wire).toHaveLength(7);
  });

  it('a retry that comes due while disconnected waits for the next connection', () => {
    const { box, wire, state } = setup();
    void box.add('k1', { t: 'send', cmid: 'a' });
    box.fail('k1', err('unavailable'));
    box.disconnected();
    state.connected = false;
    vi.advanceTimersByTime(10_000);
    expect(wire).toEqual(['a']);
    expect(box.get('k1')?.state).toBe('queued');
    state.connected = true;
    box.flush();
    expect(wire).toEqual(['a', 'a']);
  });

  it.each(['bad_request', 'not_found', 'forbidden', 'too_large', 'limit'])('rejects on %s', async (code) => {
    const { box, wire } = setup();
    const p = box.add('k1', { t: 'send', cmid: 'a' });
    expect(box.fail('k1', err(code))).toBe('rejected');
    await expect(p).rejects.toMatchObject({ code });
    expect(box.size).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(wire).toEqual(['a']);
  });

  it('unauthorized leaves the item for the next connection', () => {
    const { box, wire } = setup();
    void box.add('k1', { t: 'send', cmid: 'a' });
    expect(box.fail('k1', err('unauthorized'))).toBe('wait');
    box.flush();
    expect(wire).toEqual(['a']);
    box.disconnected();
    box.flush();
    expect(wire).toEqual(['a', 'a']);
  });

  it('rejectAll rejects everything and cancels retries', async () => {
    const { box, wire } = setup();
    const p1 = box.add('k1', { t: 'send', cmid: 'a' });
    const p2 = box.add('k2', { t: 'send', cmid: 'b' });
    box.fail('k1', err('unavailable'));
    box.rejectAll(new SwitchboardError('closed', 'bye'));
    await expect(p1).rejects.toMatchObject({ code: 'closed' });
    await expect(p2).rejects.toMatchObject({ code: 'closed' });
    vi.advanceTimersByTime(60_000);
    expect(wire).toEqual(['a', 'b']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('classifies codes', () => {
    expect(['unavailable', 'internal', 'rate_limited'].map(classifyError)).toEqual(['retry', 'retry', 'retry']);
    expect(['bad_request', 'not_found', 'forbidden', 'too_large', 'limit', 'weird'].map(classifyError)).toEqual(
      Array(6).fill('rejected'),
    );
    expect(classifyError('unauthorized')).toBe('wait');
  });
});
