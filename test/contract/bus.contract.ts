/**
 * The Bus contract, written once and run against every implementation (LocalBus,
 * JetStreamBus): per-partition order, completion before ack, redelivery of failed commands,
 * dead-lettering after the delivery limit, and node pushes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ActorEnvelope, Bus } from '../../src/transport/bus.js';

export interface BusFixture {
  bus: Bus;
  deadLetters: ActorEnvelope[];
  /** How long a failed command may take to come back. */
  redeliveryMs: number;
  close(): Promise<void>;
}

const env = (key: string, n: number): ActorEnvelope => ({
  kind: 'user',
  key,
  cmd: { type: 'push', user: key, frame: { t: 'typing', conv: `c${n}`, user: key, on: n % 2 === 0 } },
});
const nOf = (e: ActorEnvelope) => Number(((e.cmd as { frame: { conv: string } }).frame.conv).slice(1));

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

let partitionCounter = 0;

export function busContract(name: string, make: () => Promise<BusFixture>): void {
  describe(`bus contract: ${name}`, () => {
    let fx: BusFixture | undefined;
    afterEach(async () => {
      await fx?.close();
      fx = undefined;
    });
    const partition = () => (partitionCounter++ % 8) + 0;

    it('delivers a partition\'s commands in publish order, each once when handled', async () => {
      fx = await make();
      const p = partition();
      const got: number[] = [];
      const sub = await fx.bus.consume(p, async (e) => {
        got.push(nOf(e));
      });
      for (let i = 0; i < 200; i++) await fx.bus.publish(p, env('u-order', i));
      await until(() => got.length >= 200, 10_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i));
      await sub.stop();
    });

    it('a command whose handler fails comes back, without holding up the others', async () => {
      fx = await make();
      const p = partition();
      const attempts = new Map<number, number>();
      const done: number[] = [];
      const sub = await fx.bus.consume(p, async (e) => {
        const n = nOf(e);
        const a = (attempts.get(n) ?? 0) + 1;
        attempts.set(n, a);
        if (n === 3 && a === 1) throw new Error('transient');
        done.push(n);
      });
      for (let i = 0; i < 6; i++) await fx.bus.publish(p, env('u-retry', i));
      await until(() => done.length >= 6, fx.redeliveryMs + 10_000);
      expect(done.slice(0, 5)).toEqual([0, 1, 2, 4, 5]);
      expect(done[5]).toBe(3);
      expect(attempts.get(3)).toBe(2);
      await sub.stop();
    });

    it('a command that always fails is dead-lettered after the delivery limit, never silently', async () => {
      fx = await make();
      const p = partition();
      let calls = 0;
      const sub = await fx.bus.consume(p, async () => {
        calls++;
        throw new Error('permanent');
      });
      await fx.bus.publish(p, env('u-dead', 7));
      const f = fx;
      await until(() => f.deadLetters.length === 1, fx.redeliveryMs * 6 + 10_000);
      expect(calls).toBeGreaterThan(1);
      expect(nOf(fx.deadLetters[0]!)).toBe(7);
      await sub.stop();
    });

    it('stop waits for handlers in flight to finish', async () => {
      fx = await make();
      const p = partition();
      let finished = false;
      const sub = await fx.bus.consume(p, async () => {
        await new Promise((r) => setTimeout(r, 300));
        finished = true;
      });
      await fx.bus.publish(p, env('u-stop', 1));
      await new Promise((r) => setTimeout(r, 100));
      await sub.stop();
      expect(finished).toBe(true);
    });

    it('pushes reach the subscribed node in order', async () => {
      fx = await make();
      const got: string[] = [];
      const sub = await fx.bus.subscribeNode('node-x', (push) => got.push(push.conn));
      for (let i = 0; i < 50; i++) fx.bus.publishNode('node-x', { conn: `c${i}`, frame: { t: 'synced' } });
      fx.bus.publishNode('node-y', { conn: 'elsewhere', frame: { t: 'synced' } });
      await until(() => got.length >= 50, 5000);
      await new Promise((r) => setTimeout(r, 100));
      expect(got).toEqual(Array.from({ length: 50 }, (_, i) => `c${i}`));
      await sub.stop();
    });
  });
}
