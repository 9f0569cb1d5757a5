/**
 * The actor registry over nact: commands to one actor run one after the other in delivery
 * order (also past one run batch), a delivery settles when the actor completes it, a failing
 * command rejects only its own delivery, and idle actors are passivated and respawned.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { start, stop } from 'nact';
import { type Actor, type Completion, ActorRegistry } from '../../src/actors/registry.js';

type Cmd = { n: number; fail?: boolean; later?: boolean };

class Recorder implements Actor<Cmd> {
  seen: number[] = [];
  running = 0;
  maxRunning = 0;
  passivated = 0;
  async handle(cmd: Cmd, done: Completion): Promise<void> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    await Promise.resolve();
    this.seen.push(cmd.n);
    this.running--;
    if (cmd.fail) throw new Error(`fail ${cmd.n}`);
    if (cmd.later) setTimeout(() => done.resolve(), 20);
    else done.resolve();
  }
  canPassivate(): boolean {
    return true;
  }
  async passivate(): Promise<void> {
    this.passivated++;
  }
}

describe('ActorRegistry', () => {
  let system: ReturnType<typeof start>;
  let actors: Map<string, Recorder[]>;
  let registry: ActorRegistry<Cmd>;
  let errors: unknown[];

  beforeEach(() => {
    system = start();
    actors = new Map();
    errors = [];
    registry = new ActorRegistry<Cmd>(
      system,
      'test',
      (key) => {
        const a = new Recorder();
        actors.set(key, [...(actors.get(key) ?? []), a]);
        return a;
      },
      { idleMs: 100, onError: (_k, err) => errors.push(err) },
    );
  });

  afterEach(async () => {
    await registry.stopAll();
    stop(system);
  });

  it('runs 500 commands to one actor one at a time, in delivery order', async () => {
    await Promise.all(Array.from({ length: 500 }, (_, n) => registry.deliver('a', { n })));
    const a = actors.get('a')![0]!;
    expect(a.seen).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(a.maxRunning).toBe(1);
  });

  it('keeps actors apart: each sees only its own commands, in order', async () => {
    const keys = ['x', 'y', 'z'];
    await Promise.all(Array.from({ length: 300 }, (_, n) => registry.deliver(keys[n % 3]!, { n })));
    keys.forEach((k, i) => expect(actors.get(k)![0]!.seen).toEqual(Array.from({ length: 100 }, (_, j) => j * 3 + i)));
  });

  it('settles a delivery when the actor completes it, not when it was handled', async () => {
    let settled = false;
    const p = registry.deliver('a', { n: 1, later: true }).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(actors.get('a')![0]!.seen).toEqual([1]);
    expect(settled).toBe(false);
    await p;
    expect(settled).toBe(true);
  });

  it('rejects only the failing delivery; the commands after it still run', async () => {
    const results = await Promise.allSettled([0, 1, 2].map((n) => registry.deliver('a', { n, fail: n === 1 })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(actors.get('a')![0]!.seen).toEqual([0, 1, 2]);
    expect(errors).toHaveLength(1);
  });

  it('passivates an idle actor and respawns a fresh one on the next delivery', async () => {
    await registry.deliver('a', { n: 1 });
    for (let i = 0; i < 50 && registry.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(registry.size).toBe(0);
    expect(actors.get('a')![0]!.passivated).toBe(1);
    await registry.deliver('a', { n: 2 });
    expect(actors.get('a')).toHaveLength(2);
    expect(actors.get('a')![1]!.seen).toEqual([2]);
  });
});
