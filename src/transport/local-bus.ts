/**
 * The in-process bus of a single node: a publish calls the partition's handler at once (so
 * per-partition order is the publish order), and a rejected handler is retried with backoff
 * up to `maxDeliver` times, then dead-lettered.
 */
import type { Log } from '../actors/ports/index.js';
import { type ActorEnvelope, type Bus, type EnvelopeHandler, type NodePush, type Subscription, BusUnavailableError } from './bus.js';

export interface LocalBusOptions {
  log: Log;
  maxDeliver?: number;
  backoffMs?: number[];
  onDeadLetter?(env: ActorEnvelope, err: unknown): void;
  onRedeliver?(): void;
}

export class LocalBus implements Bus {
  private readonly consumers = new Map<number, EnvelopeHandler>();
  /** Handlers in flight per partition (stopping a consumer waits until none is), and who waits. */
  private readonly running = new Map<number, number>();
  private readonly idle = new Map<number, Array<() => void>>();
  private readonly nodes = new Map<string, (push: NodePush) => void>();
  private readonly maxDeliver: number;
  private readonly backoff: number[];
  private closed = false;

  constructor(private readonly opts: LocalBusOptions) {
    this.maxDeliver = opts.maxDeliver ?? 5;
    this.backoff = opts.backoffMs ?? [50, 200, 1000, 3000];
  }

  publish(partition: number, env: ActorEnvelope): Promise<void> {
    if (this.closed || !this.consumers.has(partition)) {
      return Promise.reject(new BusUnavailableError(`no consumer for partition ${partition}`));
    }
    this.run(partition, env, 1);
    return Promise.resolve();
  }

  private run(partition: number, env: ActorEnvelope, attempt: number): void {
    const handler = this.consumers.get(partition);
    const result = handler ? handler(env) : Promise.reject(new BusUnavailableError(`no consumer for partition ${partition}`));
    this.running.set(partition, (this.running.get(partition) ?? 0) + 1);
    result.then(
      () => this.finished(partition),
      (err: unknown) => {
        this.finished(partition);
        if (attempt >= this.maxDeliver || this.closed) {
          this.opts.log.error({ kind: env.kind, key: env.key, type: env.cmd.type, attempt, err: String(err) }, 'dead letter');
          this.opts.onDeadLetter?.(env, err);
          return;
        }
        this.opts.onRedeliver?.();
        const delay = this.backoff[Math.min(attempt - 1, this.backoff.length - 1)] ?? 1000;
        setTimeout(() => this.run(partition, env, attempt + 1), delay).unref();
      },
    );
  }

  private finished(partition: number): void {
    const n = (this.running.get(partition) ?? 1) - 1;
    if (n > 0) {
      this.running.set(partition, n);
      return;
    }
    this.running.delete(partition);
    const waiters = this.idle.get(partition);
    this.idle.delete(partition);
    waiters?.forEach((w) => w());
  }

  /** Resolves when no handler of the partition is running. */
  private whenIdle(partition: number): Promise<void> {
    if (!this.running.has(partition)) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.idle.get(partition);
      if (list) list.push(resolve);
      else this.idle.set(partition, [resolve]);
    });
  }

  async consume(partition: number, handler: EnvelopeHandler): Promise<Subscription> {
    this.consumers.set(partition, handler);
    return {
      stop: async () => {
        if (this.consumers.get(partition) === handler) this.consumers.delete(partition);
        await this.whenIdle(partition);
      },
    };
  }

  /** In-process commands die with the process: nothing is ever outstanding for a new owner. */
  async unackedSettled(): Promise<void> {}

  publishNode(node: string, push: NodePush): void {
    this.nodes.get(node)?.(push);
  }

  async subscribeNode(node: string, handler: (push: NodePush) => void): Promise<Subscription> {
    this.nodes.set(node, handler);
    return {
      stop: async () => {
        if (this.nodes.get(node) === handler) this.nodes.delete(node);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.consumers.clear();
    this.nodes.clear();
  }
}
