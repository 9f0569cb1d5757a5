import { describe, expect, it } from 'vitest';
import { Emitter } from '../../src/client/emitter.js';

type Ev = { a: [number]; b: [] };

describe('Emitter', () => {
  it('delivers, unsubscribes and supports once', () => {
    const e = new Emitter<Ev>();
    const got: number[] = [];
    const off = e.on('a', (n) => got.push(n));
    e.once('a', (n) => got.push(n * 10));
    e.emit('a', 1);
    e.emit('a', 2);
    off();
    e.emit('a', 3);
    expect(got).toEqual([1, 10, 2]);
    expect(e.listenerCount('a')).toBe(0);
  });

  it('a throwing listener does not stop the others nor the caller', () => {
    const errors: unknown[] = [];
    const e = new Emitter<Ev>((err) => errors.push(err));
    let ran = false;
    e.on('b', () => {
      throw new Error('boom');
    });
    e.on('b', () => {
      ran = true;
    });
    expect(() => e.emit('b')).not.toThrow();
    expect(ran).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it('the same function added twice is two listeners; each off removes one', () => {
    const e = new Emitter<Ev>();
    let n = 0;
    const fn = (): void => {
      n++;
    };
    const off1 = e.on('b', fn);
    e.on('b', fn);
    e.emit('b');
    off1();
    e.emit('b');
    expect(n).toBe(3);
  });
});
