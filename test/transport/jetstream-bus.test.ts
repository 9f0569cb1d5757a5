import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busContract } from '../contract/bus.contract.js';
import { JetStreamBus } from '../../src/transport/jetstream-bus.js';
import { silentLog } from '../../src/actors/ports/index.js';
import type { ActorEnvelope } from '../../src/transport/bus.js';
import { startNats, type NatsCluster } from '../helpers/nats.js';

let nats: NatsCluster;
beforeAll(async () => {
  nats = await startNats(1);
});
afterAll(async () => {
  await nats?.stop();
});

let streams = 0;
const open = async (stream: string, deadLetters: ActorEnvelope[] = []) =>
  JetStreamBus.connect({
    servers: nats.urls,
    log: silentLog,
    partitions: 8,
    stream,
    prefix: stream.toLowerCase(),
    ackWaitMs: 400,
    maxDeliver: 3,
    onDeadLetter: (e) => {
      if (e) deadLetters.push(e);
    },
  });

busContract('JetStreamBus', async () => {
  const deadLetters: ActorEnvelope[] = [];
  const bus = await open(`T${++streams}`, deadLetters);
  return { bus, deadLetters, redeliveryMs: 2000, close: () => bus.close() };
});

describe('JetStreamBus', () => {
  it('keeps commands published while no consumer runs and hands them to the next one', async () => {
    const a = await open('KEEP');
    for (let i = 0; i < 10; i++) await a.publish(1, { kind: 'user', key: 'k', cmd: { type: 'detach', user: 'k', conn: { node: 'n', conn: `c${i}` } } });
    await a.close();
    const b = await open('KEEP');
    const got: string[] = [];
    const sub = await b.consume(1, async (e) => {
      got.push((e.cmd as { conn: { conn: string } }).conn.conn);
    });
    for (let i = 0; i < 100 && got.length < 10; i++) await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
    await sub.stop();
    await b.close();
  });

  it('a command unacked by a consumer that went away is redelivered to the next one', async () => {
    const a = await open('TAKEOVER');
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    await a.consume(2, () => blocked); // never completes before the close
    await a.publish(2, { kind: 'user', key: 'k', cmd: { type: 'detach', user: 'k', conn: { node: 'n', conn: 'x' } } });
    await new Promise((r) => setTimeout(r, 200));
    a.nc.close(); // like a crash: no ack, no drain
    const b = await open('TAKEOVER');
    const got: string[] = [];
    const sub = await b.consume(2, async (e) => {
      got.push((e.cmd as { conn: { conn: string } }).conn.conn);
    });
    for (let i = 0; i < 100 && got.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(['x']);
    release();
    await sub.stop();
    await b.close();
  });

  it('a new owner waits for a dead consumer\'s unacked commands only while there are some', async () => {
    const a = await open('SETTLE');
    const t0 = performance.now();
    await a.unackedSettled(3, 5000); // no consumer, nothing outstanding
    await a.consume(4, async () => {});
    await a.publish(4, { kind: 'user', key: 'k', cmd: { type: 'detach', user: 'k', conn: { node: 'n', conn: 'y' } } });
    await new Promise((r) => setTimeout(r, 200));
    await a.unackedSettled(4, 5000); // consumed and acked
    expect(performance.now() - t0).toBeLessThan(2000);

    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    await a.consume(5, () => blocked);
    await a.publish(5, { kind: 'user', key: 'k', cmd: { type: 'detach', user: 'k', conn: { node: 'n', conn: 'z' } } });
    await new Promise((r) => setTimeout(r, 200));
    a.nc.close(); // a crash with the command unacked
    const b = await open('SETTLE');
    const t1 = performance.now();
    await b.unackedSettled(5, 5000);
    const waited = performance.now() - t1;
    // Outstanding until its ack wait (400 ms) lapsed; bounded by it, not by maxMs.
    expect(waited).toBeGreaterThan(100);
    expect(waited).toBeLessThan(3000);
    release();
    await b.close();
  });
});
