import { describe, expect, it } from 'vitest';
import { SeqDedup } from '../../src/client/dedup.js';
import { SeqLog } from '../../src/client/received.js';

describe('SeqDedup', () => {
  it('advances the contiguous floor and drops repeats', () => {
    const d = new SeqDedup();
    expect(d.add('c', 1)).toBe(true);
    expect(d.add('c', 2)).toBe(true);
    expect(d.add('c', 2)).toBe(false);
    expect(d.add('c', 1)).toBe(false);
    expect(d.floor('c')).toBe(2);
    expect(d.above('c')).toEqual([]);
  });

  it('holds out-of-order seqs above the floor and folds them in when the gap fills', () => {
    const d = new SeqDedup();
    expect(d.add('c', 1)).toBe(true);
    expect(d.add('c', 4)).toBe(true);
    expect(d.add('c', 3)).toBe(true);
    expect(d.add('c', 4)).toBe(false);
    expect(d.floor('c')).toBe(1);
    expect(d.above('c')).toEqual([3, 4]);
    expect(d.add('c', 2)).toBe(true);
    expect(d.floor('c')).toBe(4);
    expect(d.above('c')).toEqual([]);
    expect(d.has('c', 3)).toBe(true);
    expect(d.has('c', 5)).toBe(false);
  });

  it('keeps conversations apart', () => {
    const d = new SeqDedup();
    expect(d.add('a', 1)).toBe(true);
    expect(d.add('b', 1)).toBe(true);
    expect(d.add('a', 1)).toBe(false);
    expect(d.floor('b')).toBe(1);
    expect(d.floor('zzz')).toBe(0);
  });

  it('bounds the memory above the floor (a late group join never fills seqs 1..56)', () => {
    const d = new SeqDedup({ window: 8 });
    for (let s = 57; s < 57 + 100; s++) {
      expect(d.add('g:x', s)).toBe(true);
      expect(d.above('g:x').length).toBeLessThanOrEqual(8);
    }
    // The floor jumped past the gap, the tail is contiguous from there.
    expect(d.floor('g:x')).toBe(156);
    expect(d.above('g:x')).toEqual([]);
    for (let s = 57; s < 157; s++) expect(d.add('g:x', s)).toBe(false);
    expect(d.add('g:x', 157)).toBe(true);
  });

  it('bounds sparse seqs: memory never passes the window, newest are kept', () => {
    const d = new SeqDedup({ window: 4 });
    d.add('c', 1);
    for (const s of [10, 20, 30, 40, 50, 60]) expect(d.add('c', s)).toBe(true);
    expect(d.above('c').length).toBeLessThanOrEqual(4);
    expect(d.add('c', 60)).toBe(false);
    expect(d.add('c', 50)).toBe(false);
    expect(d.floor('c')).toBeGreaterThanOrEqual(20);
  });

  it('bounds the number of conversations (least recently used go first)', () => {
    const d = new SeqDedup({ maxConvs: 3 });
    d.add('a', 1);
    d.add('b', 1);
    d.add('c', 1);
    d.add('a', 2); // touch a
    d.add('d', 1); // evicts b
    expect(d.size).toBe(3);
    expect(d.has('b', 1)).toBe(false);
    expect(d.has('a', 2)).toBe(true);
  });

  it('seed raises the floor, never lowers it', () => {
    const d = new SeqDedup();
    d.add('c', 12);
    d.seed('c', 10);
    expect(d.floor('c')).toBe(10);
    expect(d.add('c', 11)).toBe(true);
    expect(d.floor('c')).toBe(12);
    d.seed('c', 5);
    expect(d.floor('c')).toBe(12);
  });
});

describe('SeqLog', () => {
  it('keeps sorted unique seqs, bounded per conversation', () => {
    const l = new SeqLog(5);
    for (const s of [1, 2, 4, 3, 3, 6, 5, 7]) l.add('c', s);
    expect(l.get('c')).toEqual([3, 4, 5, 6, 7]);
    expect(l.get('other')).toEqual([]);
  });
});
