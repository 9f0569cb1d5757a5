/**
 * Ring changes under traffic (the CQL server of the run: cqlContact): a 4th node joins,
 * a node leaves gracefully (SIGTERM), a node is killed (-9). Each time: zero acked messages
 * lost, zero duplicates, seqs contiguous, per-connection order kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { Traffic } from '../helpers/traffic.js';
import { Auth } from '../../src/gateway/auth.js';
import { TEST_SECRET } from '../helpers/node.js';
import { CqlStore } from '../../src/storage/cql-store.js';

const auth = new Auth(TEST_SECRET);
let cluster: TestCluster;
let store: CqlStore;

beforeAll(async () => {
  cluster = await startCluster({ nats: 1 });
  for (const id of ['n1', 'n2', 'n3']) await cluster.add(id);
  store = await CqlStore.open({
    contactPoints: [cluster.cql],
    localDataCenter: 'datacenter1',
    keyspace: cluster.keyspace,
    replication: { class: 'SimpleStrategy', replication_factor: 1 },
    consistency: 'ONE',
  });
}, 180_000);
afterAll(async () => {
  await store?.close();
  await cluster?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const urls = (ids: string[]) => ids.map((id) => cluster.url(id));

function movedMs(log: string): number[] {
  return [...log.matchAll(/"partitions rebalanced".*?|"ms":(\d+)[^\n]*"msg":"partitions rebalanced"/g)].flatMap((m) => (m[1] ? [Number(m[1])] : []));
}

describe('cluster: ring changes under traffic', () => {
  it('a 4th node joins while clients send: nothing lost, duplicated or reordered', async () => {
    const t = new Traffic({ urls: urls(['n1', 'n2', 'n3']), token: (u) => auth.sign(u, 600), prefix: 'join' });
    await t.start();
    await sleep(2000);
    const before = t.ackedCount;
    const n4 = await cluster.add('n4');
    await sleep(3000);
    const report = await t.stop(store);
    console.log('scale-out', { ...report, sendErrors: report.sendErrors.slice(0, 5), moveMs: movedMs(n4.output()) });
    expect(report.violations).toEqual([]);
    expect(report.pending).toBe(0);
    expect(report.acked).toBe(report.sent);
    expect(report.acked).toBeGreaterThan(before);
  });

  it('a node leaves gracefully (SIGTERM) under traffic', async () => {
    const t = new Traffic({ urls: urls(['n2', 'n1', 'n3', 'n4']), token: (u) => auth.sign(u, 600), prefix: 'leave' });
    await t.start();
    await sleep(1500);
    expect(await cluster.nodes.get('n2')!.terminate()).toBe(0);
    cluster.nodes.delete('n2');
    await sleep(3000);
    const report = await t.stop(store);
    console.log('graceful leave', { ...report, sendErrors: report.sendErrors.slice(0, 5) });
    expect(report.violations).toEqual([]);
    expect(report.pending).toBe(0);
    expect(report.acked).toBe(report.sent);
  });

  it('a node is killed (-9) under traffic', async () => {
    const t = new Traffic({ urls: urls(['n3', 'n1', 'n4']), token: (u) => auth.sign(u, 600), prefix: 'kill' });
    await t.start();
    await sleep(1500);
    await cluster.nodes.get('n3')!.kill9();
    cluster.nodes.delete('n3');
    await sleep(6000);
    const report = await t.stop(store);
    console.log('kill -9', { ...report, sendErrors: report.sendErrors.slice(0, 5) });
    expect(report.violations).toEqual([]);
    expect(report.pending).toBe(0);
    expect(report.acked).toBe(report.sent);
  });
});
