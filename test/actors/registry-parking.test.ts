/** The actor registry (src/actors/registry.ts) with parking: one command at a time per key, passivation, parked nact actors. */
import { afterEach, describe, expect, it } from 'vitest';
import { start, stop } from 'nact';
import { type Actor, type Completion, ActorRegistry } from '../../src/actors/registry.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records the commands it handles; `slow` commands take a while (to see one-at-a-time). */
class Recorder implements Actor<{ n: number; slow?: boolean }> {
  readonly seen: number[] = [];
  running = 0;
  maxRunning = 0;
  loaded = true;
  async handle(cmd: { n: number; slow?: boolean }, done: Completion): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    if (cmd.slow) await sleep(5);
    this.seen.push(cmd.n);
    this.running--;
    done.resolve();
  }
  canPassivate(): boolean {
    return !this.loaded;
  }
  async passivate(): Promise<void> {}
}

describe('actor registry', () => {
  const systems: Array<ReturnType<typeof start>> = [];
  const registries: Array<{ stopAll(): Promise<void> }> = [];
  afterEach(async () => {
    for (const r of registries.splice(0)) await r.stopAll();
    for (const s of systems.splice(0)) stop(s);
  });
  function make(opts: { idleMs: number; parkAfterMs?: number }) {
    const system = start();
    systems.push(system);
    const actors = new Map<string, Recorder>();
    const registry = new ActorRegistry<{ n: number; slow?: boolean }>(
      system,
      'test',
      (key) => {
        const a = new Recorder();
        actors.set(key, a);
        return a;
      },
      opts,
    );
    registries.push(registry);
    return { registry, actors };
  }

  it('parks an actor with sparse commands as soon as it is done, keeping its state; the next command runs on it', async () => {
    const { registry, actors } = make({ idleMs: 60_000, parkAfterMs: 200 });
    await registry.deliver('u1', { n: 1 });
    await sleep(0);
    expect(registry.size).toBe(1);
    expect(registry.unparkedCount).toBe(0);
    await registry.deliver('u1', { n: 2 });
    expect(actors.size).toBe(1);
    expect(actors.get('u1')!.seen).toEqual([1, 2]);
    expect(registry.peek('u1')).toBe(actors.get('u1'));
  });

  it('keeps commands one at a time and in order across parking, and keeps an actor with frequent commands until it is idle', async () => {
    const { registry, actors } = make({ idleMs: 60_000, parkAfterMs: 100 });
    const all: Array<Promise<void>> = [];
    for (let i = 0; i < 20; i++) all.push(registry.deliver('u', { n: i, slow: i % 3 === 0 }));
    await Promise.all(all);
    const a = actors.get('u')!;
    expect(a.seen).toEqual([...Array(20).keys()]);
    expect(a.maxRunning).toBe(1);
    // Frequent: a command shortly after the last one keeps the nact actor until parkAfterMs of quiet.
    await registry.deliver('u', { n: 20 });
    await sleep(0);
    expect(registry.unparkedCount).toBe(1);
    await sleep(250);
    expect(registry.unparkedCount).toBe(0);
    await registry.deliver('u', { n: 21, slow: true });
    expect(a.seen.slice(-2)).toEqual([20, 21]);
  });

  it('without parkAfterMs keeps its nact actors; passivates idle ones that agree', async () => {
    const { registry, actors } = make({ idleMs: 100 });
    await registry.deliver('a', { n: 1 });
    await registry.deliver('b', { n: 1 });
    expect(registry.unparkedCount).toBe(2);
    actors.get('b')!.loaded = false;
    await sleep(300);
    expect(registry.size).toBe(1);
    expect(registry.peek('a')).toBe(actors.get('a'));
  });

  it('a handler error rejects that delivery only; the actor goes on', async () => {
    const system = start();
    systems.push(system);
    let calls = 0;
    const registry = new ActorRegistry<{ n: number }>(
      system,
      'err',
      () => ({
        handle: async (cmd, done) => {
          calls++;
          if (cmd.n === 1) throw new Error('boom');
          done.resolve();
        },
        canPassivate: () => false,
        passivate: async () => {},
      }),
      { idleMs: 60_000, parkAfterMs: 50 },
    );
    registries.push(registry);
    await expect(registry.deliver('k', { n: 1 })).rejects.toThrow('boom');
    await registry.deliver('k', { n: 2 });
    expect(calls).toBe(2);
  });
});
