/**
 * Cluster membership: each node writes a heartbeat to its key in a KV bucket; every node
 * watches the bucket and counts a member alive while its heartbeats keep arriving (judged by
 * the local clock of arrival, so clock skew between nodes does not matter). A member whose
 * heartbeats stop for `failureMs` is dead; a graceful leave deletes the key at once.
 * KV TTL expiry produces no watch event, so failure detection never relies on it.
 */
import type { KV } from '@nats-io/kv';
import type { Log } from '../actors/ports/index.js';

export interface MemberRecord {
  node: string;
  /** A fresh id per process start: a restarted node is a new incarnation. */
  boot: string;
  state: 'up' | 'leaving';
  ts: number;
}

export interface MembershipOptions {
  kv: KV;
  node: string;
  boot: string;
  heartbeatMs: number;
  failureMs: number;
  log: Log;
}

interface Seen {
  rec: MemberRecord;
  at: number;
}

export class Membership {
  private readonly seen = new Map<string, Seen>();
  private live: string[] = [];
  private listeners: Array<(live: string[], gone: MemberRecord[]) => void> = [];
  private timers: NodeJS.Timeout[] = [];
  private watcher: { stop(): void } | null = null;
  private stopped = false;
  /** When this node last saw its own heartbeat come back through the watch (it can see the bucket). */
  private lastEcho = Date.now();
  private lastEval = Date.now();
  private wasBlind = false;
  private resyncListeners: Array<() => void> = [];

  constructor(private readonly opts: MembershipOptions) {}

  /** Members currently alive and up, sorted. */
  get members(): string[] {
    return this.live;
  }

  /** The incarnation of a member as last heard. */
  bootOf(node: string): string | undefined {
    return this.seen.get(node)?.rec.boot;
  }

  onChange(fn: (live: string[], gone: MemberRecord[]) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Called when this node comes back from a stall or from not seeing the bucket: the others
   * may have taken it for dead meanwhile (and forgotten its connections).
   */
  onResync(fn: () => void): void {
    this.resyncListeners.push(fn);
  }

  async start(): Promise<void> {
    await this.beat();
    const iter = await this.opts.kv.watch({ key: '>' });
    this.watcher = iter;
    void (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') {
          this.seen.delete(e.key);
        } else {
          try {
            const rec = e.json<MemberRecord>();
            if (e.key === this.opts.node && rec.boot === this.opts.boot) this.lastEcho = Date.now();
            const prev = this.seen.get(e.key);
            if (prev && prev.rec.boot !== rec.boot) {
              // A restart within the failure window: the old incarnation is gone.
              this.seen.delete(e.key);
              this.evaluate([prev.rec]);
            }
            this.seen.set(e.key, { rec, at: Date.now() });
          } catch {
            this.opts.log.warn({ key: e.key }, 'bad membership record ignored');
          }
        }
        this.evaluate();
      }
    })();
    this.timers.push(setInterval(() => void this.beat(), this.opts.heartbeatMs));
    this.timers.push(setInterval(() => this.evaluate(), Math.max(50, Math.floor(this.opts.heartbeatMs / 2))));
    for (const t of this.timers) t.unref();
    // Let the watcher deliver the current members before the first ring is built.
    await new Promise((r) => setTimeout(r, Math.min(200, this.opts.heartbeatMs)));
    this.evaluate();
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    const rec: MemberRecord = { node: this.opts.node, boot: this.opts.boot, state: 'up', ts: Date.now() };
    try {
      await this.opts.kv.put(this.opts.node, JSON.stringify(rec));
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, 'heartbeat failed');
    }
  }

  private evaluate(extraGone: MemberRecord[] = []): void {
    const now = Date.now();
    // Silence of the others means something only while this node itself is running and sees
    // the bucket: after a local stall (frozen process, blocked loop) or while its own
    // heartbeats do not come back (NATS trouble), give every member a fresh grace period.
    const stalled = now - this.lastEval > this.opts.failureMs / 2;
    const blind = now - this.lastEcho > this.opts.failureMs / 2;
    this.lastEval = now;
    if (stalled || blind) for (const s of this.seen.values()) s.at = Math.max(s.at, now);
    const resync = stalled || (this.wasBlind && !blind);
    this.wasBlind = blind;
    if (resync && !this.stopped) {
      this.opts.log.warn({ stalled, blind }, 'membership: back from a stall or a blind spot; resyncing');
      for (const fn of this.resyncListeners) fn();
    }
    const gone: MemberRecord[] = [...extraGone];
    const live: string[] = [];
    for (const [node, s] of this.seen) {
      if (node === this.opts.node && !this.stopped) {
        live.push(node);
        continue;
      }
      if (s.rec.state === 'up' && now - s.at <= this.opts.failureMs) live.push(node);
    }
    if (!this.stopped && !live.includes(this.opts.node)) live.push(this.opts.node);
    live.sort();
    for (const node of this.live) if (!live.includes(node)) gone.push(this.seen.get(node)?.rec ?? { node, boot: '', state: 'up', ts: 0 });
    if (live.join(',') === this.live.join(',') && gone.length === 0) return;
    this.live = live;
    this.opts.log.info({ members: live, gone: gone.map((g) => g.node) }, 'membership changed');
    for (const fn of this.listeners) fn(live, gone);
  }

  /** Leave the cluster: mark leaving, then delete the key so others rebalance at once. */
  async leave(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    try {
      await this.opts.kv.delete(this.opts.node);
    } catch (err) {
      this.opts.log.warn({ err: String(err) }, 'could not delete membership key');
    }
    this.watcher?.stop();
  }

  /** Stop without telling anyone (tests of failure detection). */
  halt(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.watcher?.stop();
  }
}
