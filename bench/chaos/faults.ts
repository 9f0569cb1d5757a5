/**
 * Fault injection: `kill -9` of a random node and its restart (same node id and port, a new
 * process), `kill -9` of a NATS server and its restart (same store dir), and SIGSTOP of a
 * node for longer than the failure timeout, then SIGCONT, so that it comes back as a zombie
 * owner of partitions the others have taken over. Faults run one after another on a
 * seeded plan spread over the run. Before a node fault the partition owners are read from
 * the cluster's epoch bucket (sb_epochs), to know which conversations it affects.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsCluster } from '../../test/helpers/nats.js';
import { convKey, partitionOf } from '../../src/cluster/partition.js';
import { ownersOf } from '../../src/cluster/ring.js';
import type { NodeProc } from './procs.js';

export type FaultKind = 'node-kill' | 'nats-kill' | 'pause';

export interface Fault {
  n: number;
  kind: FaultKind;
  target: string;
  /** ms since the run started */
  at: number;
  /** epoch ms of the kill / SIGSTOP */
  wall: number;
  /** How long the target stayed down (killed) or frozen (paused). */
  downMs: number;
  /** Node restart: ms from spawn to /healthz 200; NATS: ms to an open port. */
  restartMs?: number;
  /** Conversations whose partition the target owned (every conversation for a NATS server). */
  affected: string[];
  ownersFrom: 'epochs' | 'ring' | 'all';
  error?: string;
  /** Filled after the run: per affected conversation, ms from `wall` to the next ack (null: none came). */
  recovery?: Record<string, number | null>;
}

/** Mulberry32: a small seeded PRNG, so a plan can be replayed with --seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The order of the faults: node kills, with the NATS kills and pauses spread evenly among them. */
export function planFaults(counts: Record<FaultKind, number>, rng: () => number): FaultKind[] {
  const total = counts['node-kill'] + counts['nats-kill'] + counts.pause;
  const slots: Array<FaultKind | null> = Array.from({ length: total }, () => null);
  const place = (kind: FaultKind, c: number, offset: number) => {
    for (let j = 0; j < c; j++) {
      let pos = Math.min(total - 1, Math.floor(((j + offset) / c) * total));
      while (slots[pos] !== null) pos = (pos + 1) % total;
      slots[pos] = kind;
    }
  };
  place('nats-kill', counts['nats-kill'], 0.4 + rng() * 0.2);
  place('pause', counts.pause, 0.6 + rng() * 0.2);
  return slots.map((s) => s ?? 'node-kill');
}

/** Reads partition owners from the nodes' epoch bucket (falls back to the ring over the live nodes). */
export class Owners {
  private nc: NatsConnection | null = null;
  private kv: KV | null = null;

  constructor(
    private readonly urls: string[],
    private readonly partitions: number,
  ) {}

  private async bucket(): Promise<KV> {
    if (this.kv) return this.kv;
    this.nc ??= await connect({ servers: this.urls, name: 'chaos-observer', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    this.kv = await new Kvm(this.nc).open('sb_epochs');
    return this.kv;
  }

  async owners(live: string[]): Promise<{ owners: Array<string | undefined>; from: 'epochs' | 'ring' }> {
    try {
      const kv = await withTimeout(this.bucket(), 2000);
      const entries = await withTimeout(
        Promise.all(Array.from({ length: this.partitions }, (_, p) => kv.get(`p${p}`))),
        2000,
      );
      const owners = entries.map((e) => {
        if (!e || e.operation !== 'PUT') return undefined;
        const rec = e.json<{ node: string; released?: boolean }>();
        return rec.released ? undefined : rec.node;
      });
      if (owners.some((o) => o !== undefined)) return { owners, from: 'epochs' };
    } catch {
      /* fall back to the ring */
    }
    return { owners: ownersOf(live, this.partitions), from: 'ring' };
  }

  async close(): Promise<void> {
    await this.nc?.close().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export interface InjectorOptions {
  nodes: NodeProc[];
  nats: NatsCluster;
  owners: Owners;
  partitions: number;
  convs: () => string[];
  rng(): number;
  /** Node down time after a kill -9: uniform in [min, max] ms. */
  downMs: [number, number];
  pauseMs: number;
  natsDownMs: [number, number];
  t0: number;
  log(line: string): void;
  /** Ctrl-C: stop waiting (the caller kills everything). */
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class Injector {
  readonly faults: Fault[] = [];
  /** The fault in progress, for the progress line. */
  current: string = '';

  constructor(private readonly o: InjectorOptions) {}

  private pick<T>(xs: T[]): T {
    return xs[Math.floor(this.o.rng() * xs.length)]!;
  }

  private uniform([a, b]: [number, number]): number {
    return Math.round(a + this.o.rng() * (b - a));
  }

  private async affected(target: string): Promise<{ convs: string[]; from: 'epochs' | 'ring' }> {
    const live = this.o.nodes.filter((n) => n.state === 'up').map((n) => n.id);
    const { owners, from } = await this.o.owners.owners(live);
    const convs = this.o.convs().filter((c) => owners[partitionOf(convKey(c), this.o.partitions)] === target);
    return { convs, from };
  }

  async inject(kind: FaultKind): Promise<Fault> {
    const n = this.faults.length + 1;
    const fault: Fault = { n, kind, target: '', at: 0, wall: 0, downMs: 0, affected: [], ownersFrom: 'all' };
    this.faults.push(fault);
    try {
      if (kind === 'nats-kill') await this.natsKill(fault);
      else await this.nodeFault(fault, kind);
    } catch (err) {
      fault.error = err instanceof Error ? err.message : String(err);
      this.o.log(`fault #${n} ${kind} ${fault.target}: FAILED: ${fault.error}`);
    } finally {
      this.current = '';
    }
    return fault;
  }

  private mark(fault: Fault): void {
    fault.wall = Date.now();
    fault.at = fault.wall - this.o.t0;
  }

  private async nodeFault(fault: Fault, kind: 'node-kill' | 'pause'): Promise<void> {
    const up = this.o.nodes.filter((x) => x.state === 'up');
    if (up.length < 2) throw new Error('fewer than 2 nodes up: skipped');
    const node = this.pick(up);
    fault.target = node.id;
    const { convs, from } = await this.affected(node.id);
    fault.affected = convs;
    fault.ownersFrom = from;
    if (kind === 'node-kill') {
      this.current = `kill -9 ${node.id}`;
      this.mark(fault);
      const pid = node.pid;
      await node.kill9();
      fault.downMs = this.uniform(this.o.downMs);
      this.o.log(`fault #${fault.n}: kill -9 ${node.id} (pid ${pid}, ${convs.length} convs owned), restart in ${fault.downMs} ms`);
      await sleep(fault.downMs, this.o.signal);
      this.current = `restart ${node.id}`;
      fault.restartMs = await node.start();
      this.o.log(`fault #${fault.n}: ${node.id} back (pid ${node.pid}) after ${fault.restartMs} ms`);
    } else {
      this.current = `SIGSTOP ${node.id}`;
      this.mark(fault);
      node.pause();
      fault.downMs = this.o.pauseMs;
      this.o.log(`fault #${fault.n}: SIGSTOP ${node.id} (pid ${node.pid}, ${convs.length} convs owned) for ${fault.downMs} ms`);
      try {
        await sleep(fault.downMs, this.o.signal);
      } finally {
        node.resume();
      }
      this.o.log(`fault #${fault.n}: SIGCONT ${node.id}: it comes back as a zombie owner`);
    }
  }

  private async natsKill(fault: Fault): Promise<void> {
    const server = this.pick(this.o.nats.servers.filter((s) => s.proc !== null));
    fault.target = `nats-${server.name}`;
    fault.affected = this.o.convs();
    this.current = `kill -9 nats ${server.name}`;
    this.mark(fault);
    const pid = server.proc?.pid;
    await server.kill9();
    fault.downMs = this.uniform(this.o.natsDownMs);
    this.o.log(`fault #${fault.n}: kill -9 NATS server ${server.name} (pid ${pid}), restart in ${fault.downMs} ms`);
    await sleep(fault.downMs, this.o.signal);
    this.current = `restart nats ${server.name}`;
    const started = Date.now();
    await server.start();
    fault.restartMs = Date.now() - started;
    this.o.log(`fault #${fault.n}: NATS ${server.name} back (pid ${server.proc?.pid})`);
  }
}

/** Wait (bounded) until the NATS cluster answers JetStream API requests (its meta leader is elected). */
export async function waitJetStream(urls: string[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  const nc = await connect({ servers: urls, name: 'chaos-probe', maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  try {
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        await jsm.getAccountInfo();
        return Date.now() - started;
      } catch (err) {
        if (Date.now() - started > timeoutMs) throw new Error(`NATS JetStream not ready after ${timeoutMs} ms: ${err instanceof Error ? err.message : String(err)}`);
        await sleep(250);
      }
    }
  } finally {
    await nc.close().catch(() => {});
  }
}
