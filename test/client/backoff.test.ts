import { describe, expect, it } from 'vitest';
import { Backoff, backoffCeiling, backoffDelay } from '../../src/client/backoff.js';

describe('backoff', () => {
  const o = { minMs: 100, maxMs: 5_000 };

  it('stays within [minMs, maxMs] for every attempt', () => {
    for (let attempt = 0; attempt < 60; attempt++) {
      for (let i = 0; i < 50; i++) {
        const d = backoffDelay(attempt, o);
        expect(d).toBeGreaterThanOrEqual(100);
        expect(d).toBeLessThanOrEqual(5_000);
      }
    }
    expect(backoffDelay(1e6, o)).toBeLessThanOrEqual(5_000);
  });

  it('grows exponentially up to the cap', () => {
    expect(backoffCeiling(0, o)).toBe(200);
    expect(backoffCeiling(1, o)).toBe(400);
    expect(backoffCeiling(2, o)).toBe(800);
    expect(backoffCeiling(10, o)).toBe(5_000);
    for (let a = 1; a < 20; a++) expect(backoffCeiling(a, o)).toBeGreaterThanOrEqual(backoffCeiling(a - 1, o));
  });

  it('jitters between the floor and the ceiling', () => {
    expect(backoffDelay(3, { ...o, random: () => 0 })).toBe(100);
    expect(backoffDelay(3, { ...o, random: () => 0.999999 })).toBe(1_600);
    expect(backoffDelay(3, { ...o, random: () => 0.5 })).toBe(850);
    const seen = new Set(Array.from({ length: 200 }, () => backoffDelay(5, o)));
    expect(seen.size).toBeGreaterThan(20);
  });

  it('counts attempts and resets', () => {
    const b = new Backoff({ ...o, random: () => 1 });
    expect([b.next(), b.next(), b.next()]).toEqual([200, 400, 800]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(200);
  });

  it('copes with odd settings', () => {
    expect(backoffDelay(2, { minMs: 0, maxMs: 0 })).toBe(0);
    expect(backoffDelay(2, { minMs: 500, maxMs: 100 })).toBe(500);
  });
});
