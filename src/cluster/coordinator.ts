/**
 * Places partitions on nodes and moves them when membership changes. Planned hand-off: the
 * old owner stops consuming, finishes what is in flight, passivates the partition's actors
 * and marks the epoch released; the new owner waits for that (up to `handoffWaitMs`), claims
 * the next epoch and starts consuming. Takeover after a crash: the new owner claims the
 * epoch, then, if the dead owner left commands unacked, waits (at most the consumer's ack
 * wait) until they are due again, so they come back first, in order, before it pulls.
 */
import type { Log } from '../actors/ports/index.js';
import type { Membership, MemberRecord } from './membership.js';
import type { Epochs } from './epochs.js';
import { ownersOf } from './ring.js';

export interface PartitionHost {
  acquire(partition: number): Promise<void>;
  /** Resolves when the partition's previous consumer has no unacked commands left, or after maxMs. */
  unackedSettled(partition: number, maxMs: number): Promise<void>;
  /** Stop consuming, finish in-flight work and passivate the partition's actors. */
  release(partition: number): Promise<void>;
}

export interface CoordinatorOptions {
  node: string;
  boot: string;
  partitions: number;
  membership: Membership;
  epochs: Epochs;
  host: PartitionHost;
  ackWaitMs: number;
  handoffWaitMs: number;
  log: Log;
  /** Called with the previous and new owner of every partition (index = partition). */
  onOwnersChanged?(prev: string[], next: string[], gone: MemberRecord[]): void;
  onMoved?(partition: number, ms: number): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Coordinator {
  private readonly owned = new Map<number, number>();
  private owners: string[] = [];
  private chain: Promise<void> = Promise.resolve();
  private stopping = false;
  private settledWaiters: Array<() => void> = [];

  constructor(private readonly opts: CoordinatorOptions) {}

  /** The epoch this node holds for a partition, or undefined when it does not own it. */
  epochOf(partition: number): number | undefined {
    return this.owned.get(partition);
  }

  ownerOf(partition: number): string | undefined {
    return this.owners[partition];
  }

  get ownedCount(): number {
    return this.owned.size;
  }

  async start(): Promise<void> {
    this.opts.membership.onChange((live, gone) => this.schedule(live, gone));
    this.schedule(this.opts.membership.members, []);
    await this.chain;
  }

  /** Resolves once every rebalance scheduled so far has completed. */
  settled(): Promise<void> {
    return this.chain;
  }

  private schedule(live: string[], gone: MemberRecord[]): void {
    this.chain = this.chain.then(() => this.rebalance(live, gone)).catch((err) => {
      // (A partition whose acquire failed, e.g. a NATS timeout, is tried again: nothing else would.)
      this.opts.log.error({ err: String(err) }, 'rebalance failed; trying again');
      setTimeout(() => this.schedule(this.opts.membership.members, []), 500).unref();
    });
  }

  private async rebalance(_live: string[], gone: MemberRecord[]): Promise<void> {
    if (this.stopping) return;
    // The members as they are now: a rebalance queued behind a slow one must not apply a stale view.
    const next = ownersOf(this.opts.membership.members, this.opts.partitions);
    const prev = this.owners;
    this.owners = next;
    this.opts.onOwnersChanged?.(prev, next, gone);
    const lose = [...this.owned.keys()].filter((p) => next[p] !== this.opts.node);
    const gain = next.flatMap((owner, p) => (owner === this.opts.node && !this.owned.has(p) ? [p] : []));
    if (lose.length === 0 && gain.length === 0) return;
    const started = Date.now();
    await Promise.all(lose.map((p) => this.release(p)));
    await Promise.all(gain.map((p) => this.acquire(p)));
    this.opts.log.info({ lost: lose.length, gained: gain.length, owned: this.owned.size, ms: Date.now() - started }, 'partitions rebalanced');
  }

  private async release(p: number): Promise<void> {
    const epoch = this.owned.get(p);
    // The epoch stays ours while the host drains: commands already handed to the partition's
    // actors commit with it (they would fail as "moving" otherwise). It stops consuming first.
    await this.opts.host.release(p);
    this.owned.delete(p);
    if (epoch !== undefined) await this.opts.epochs.release(p, epoch);
  }

  private async acquire(p: number): Promise<void> {
    const started = Date.now();
    const deadline = started + this.opts.handoffWaitMs;
    let waitAck = false;
    for (;;) {
      if (this.owners[p] !== this.opts.node || this.stopping) return;
      const cur = await this.opts.epochs.get(p);
      if (!cur || cur.rec.released) break;
      if (cur.rec.node === this.opts.node && cur.rec.boot === this.opts.boot) break;
      const alive = this.opts.membership.members.includes(cur.rec.node) && this.opts.membership.bootOf(cur.rec.node) === cur.rec.boot;
      if (!alive || Date.now() > deadline) {
        // Crashed (or did not hand off in time): fence it with a higher epoch, let its unacked commands come back.
        waitAck = true;
        break;
      }
      await sleep(50);
    }
    const epoch = await this.opts.epochs.claim(p);
    if (waitAck) await this.opts.host.unackedSettled(p, this.opts.ackWaitMs);
    if (this.owners[p] !== this.opts.node || this.stopping) {
      await this.opts.epochs.release(p, epoch);
      return;
    }
    this.owned.set(p, epoch);
    await this.opts.host.acquire(p);
    this.opts.onMoved?.(p, Date.now() - started);
  }

  /**
   * Another node claimed a partition this node holds (this node was fenced, e.g. while it was
   * frozen or its view of the members was wrong): stop serving it with the stale epoch and,
   * if the ring still gives it to this node, take it back (hand-off rules as usual).
   */
  fenced(p: number): void {
    this.chain = this.chain
      .then(async () => {
        const epoch = this.owned.get(p);
        if (this.stopping || epoch === undefined) return;
        const cur = await this.opts.epochs.get(p);
        if (cur && cur.rec.node === this.opts.node && cur.rec.boot === this.opts.boot && cur.rec.epoch === epoch) return;
        this.opts.log.warn({ partition: p, epoch, claimedBy: cur?.rec.node, claimedEpoch: cur?.rec.epoch }, 'partition fenced by another node');
        this.owned.delete(p);
        await this.opts.host.release(p);
        if (this.owners[p] === this.opts.node) await this.acquire(p);
      })
      .catch((err) => {
        this.opts.log.warn({ partition: p, err: String(err) }, 'fenced partition not recovered yet; trying again');
        setTimeout(() => {
          this.fenced(p);
          this.schedule(this.opts.membership.members, []);
        }, 500).unref();
      });
  }

  /** Graceful leave: hand every partition off (the others take them as they see us go). */
  async stop(): Promise<void> {
    await this.chain;
    this.stopping = true;
    await this.opts.membership.leave();
    await Promise.all([...this.owned.keys()].map((p) => this.release(p)));
  }
}
