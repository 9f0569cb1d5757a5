/**
 * Resolves actors by key on this node: spawns a nact actor on first use, respawns it after
 * passivation, and passivates idle ones. Every delivery resolves when the actor reports the
 * command complete (not when it was enqueued), so a bus can ack after the work is done.
 *
 * nact drops dispatches to stopped actors and, by default, stops an actor and drops its
 * mailbox on an exception; so passivation is ours (an actor is stopped only when nothing is
 * in flight for it and it agrees), and handler errors reject the delivery instead of crashing.
 *
 * Commands wait in the entry's run queue; the nact actor receives one "run" message whenever
 * the queue becomes non-empty and handles what is queued then, one command after the other
 * (each `handle` awaited before the next, as nact does between messages), at most RUN_BATCH
 * per nact message. nact handles every message in its own `setImmediate`: one message per
 * command cost a macrotask per command and let a busy conversation see one send per event-loop
 * turn, so its commits carried one message each.
 *
 * Parking (`parkAfterMs`, for the user actors): an actor that must stay loaded but has had
 * nothing to do for a while (the user of an idle open connection) keeps its state in the
 * registry, and only its nact actor (mailbox, path, children maps, context: about a kilobyte)
 * is stopped. The next command spawns a fresh nact actor for the same state. An actor is
 * parked only when no command is in flight and no handler runs, so commands still run one
 * at a time and in order. When an actor's commands are sparse (the last one came more than
 * `parkAfterMs` before), it is parked as soon as it is done, so its nact actor dies young
 * (cheap for the GC, never promoted to the old generation); when they are frequent, it stays
 * until `parkAfterMs` without a command: at most one spawn per `parkAfterMs` per actor.
 */
import { dispatch, spawn, stop, type Ref } from 'nact';

export interface Completion {
  resolve(): void;
  reject(err: unknown): void;
}

export interface Actor<C> {
  /** Handle one command. Call `done` when its work is complete (possibly later). */
  handle(cmd: C, done: Completion): Promise<void> | void;
  /** True when the actor holds nothing that cannot be reloaded from the store. */
  canPassivate(): boolean;
  /** Called before the actor is stopped for idleness. */
  passivate(): Promise<void>;
}

export interface RegistryOptions {
  /** An actor unused this long (ms) is passivated. */
  idleMs: number;
  /** An actor unused this long (ms) that cannot passivate is parked (see above); absent: never. */
  parkAfterMs?: number;
  onError?: (key: string, err: unknown) => void;
}

interface Envelope<C> {
  cmd: C;
  done: Completion;
}

/** The only nact message: "handle what is queued". */
const RUN = 'run' as const;
/** Most commands handled per nact message (then the actor yields to the event loop). */
const RUN_BATCH = 64;

interface Entry<C> {
  /** The nact actor; null while parked. */
  ref: Ref<typeof RUN> | null;
  queue: Array<Envelope<C>>;
  /** A RUN message is in the nact mailbox or being handled (so also: a handler may be running). */
  scheduled: boolean;
  actor: Actor<C>;
  inflight: number;
  /** ms since the registry started (a small integer, not a boxed double per entry). */
  lastUsed: number;
  /** Its commands are sparse: park it as soon as it is idle. */
  eager: boolean;
}

export class ActorRegistry<C> {
  private readonly entries = new Map<string, Entry<C>>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly epoch = Date.now();
  private spawned = 0;
  /** Entries whose nact actor went idle without being parked at once (checked by `parker`). */
  private readonly unparked = new Set<Entry<C>>();
  private readonly parker: NodeJS.Timeout | null = null;

  constructor(
    private readonly parent: Ref<unknown>,
    private readonly kind: string,
    private readonly factory: (key: string) => Actor<C>,
    private readonly opts: RegistryOptions,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), Math.max(50, Math.floor(opts.idleMs / 2)));
    this.sweeper.unref();
    if (opts.parkAfterMs !== undefined) {
      this.parker = setInterval(() => this.park(), Math.max(20, Math.floor(opts.parkAfterMs / 2)));
      this.parker.unref();
    }
  }

  private now(): number {
    return Date.now() - this.epoch;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Deliver a command; resolves when the actor completes it, rejects if it failed. */
  deliver(key: string, cmd: C): Promise<void> {
    const entry = this.entries.get(key) ?? this.addEntry(key);
    const now = this.now();
    if (this.parker) entry.eager = now - entry.lastUsed > this.opts.parkAfterMs!;
    entry.inflight++;
    entry.lastUsed = now;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        if (settled) return false;
        settled = true;
        entry.inflight--;
        entry.lastUsed = this.now();
        this.idle(entry);
        return true;
      };
      entry.queue.push({
        cmd,
        done: {
          resolve: () => settle() && resolve(),
          reject: (err) => settle() && reject(err),
        },
      });
      if (!entry.scheduled) {
        entry.scheduled = true;
        dispatch(entry.ref ?? this.spawnRef(key, entry), RUN);
      }
    });
  }

  /** The live actor for a key, if one is active (for tests and metrics). */
  peek(key: string): Actor<C> | undefined {
    return this.entries.get(key)?.actor;
  }

  /** Passivate the actors whose key matches, once nothing is in flight for them (partition hand-off). */
  async evict(match: (key: string) => boolean): Promise<void> {
    const victims = [...this.entries.entries()].filter(([key]) => match(key));
    await Promise.all(
      victims.map(async ([key, entry]) => {
        for (let i = 0; entry.inflight > 0 && i < 600; i++) await new Promise((r) => setTimeout(r, 50));
        if (this.entries.get(key) === entry) this.entries.delete(key);
        try {
          await entry.actor.passivate();
        } catch (err) {
          this.opts.onError?.(key, err);
        }
        this.stopRef(entry);
      }),
    );
  }

  /** Every live actor (e.g. to tell user actors that a node died). */
  forEach(fn: (actor: Actor<C>, key: string) => void): void {
    for (const [key, entry] of this.entries) fn(entry.actor, key);
  }

  /** Passivate every actor (shutdown). */
  async stopAll(): Promise<void> {
    clearInterval(this.sweeper);
    if (this.parker) clearInterval(this.parker);
    const all = [...this.entries.entries()];
    this.entries.clear();
    for (const [key, entry] of all) {
      try {
        await entry.actor.passivate();
      } catch (err) {
        this.opts.onError?.(key, err);
      }
      this.stopRef(entry);
    }
  }

  /** How many actors have a nact actor now (not parked); for tests and metrics. */
  get unparkedCount(): number {
    let n = 0;
    for (const entry of this.entries.values()) if (entry.ref) n++;
    return n;
  }

  private addEntry(key: string): Entry<C> {
    // Used long enough ago that its first command counts as sparse.
    const lastUsed = this.now() - (this.opts.parkAfterMs ?? 0) - 1;
    const entry: Entry<C> = { ref: null, queue: [], scheduled: false, actor: this.factory(key), inflight: 0, lastUsed, eager: false };
    this.entries.set(key, entry);
    return entry;
  }

  private stopRef(entry: Entry<C>): void {
    this.unparked.delete(entry);
    if (entry.ref) stop(entry.ref);
    entry.ref = null;
  }

  /**
   * Nothing in flight or running: an actor whose commands are sparse is parked at once, one
   * with frequent commands once it has been quiet for `parkAfterMs`.
   */
  private idle(entry: Entry<C>): void {
    if (!this.parker || entry.inflight > 0 || entry.scheduled || !entry.ref) return;
    if (entry.eager) this.stopRef(entry);
    else this.unparked.add(entry);
  }

  /** Stop the nact actors of the entries idle for `parkAfterMs`, with nothing in flight or running. */
  private park(): void {
    const cutoff = this.now() - this.opts.parkAfterMs!;
    for (const entry of this.unparked) {
      if (!entry.ref) this.unparked.delete(entry);
      else if (entry.inflight === 0 && !entry.scheduled && entry.lastUsed <= cutoff) this.stopRef(entry);
      // Still busy or recently used: checked again next time (idle() adds it back when it is done).
      else if (entry.inflight > 0 || entry.scheduled) this.unparked.delete(entry);
    }
  }

  private spawnRef(key: string, entry: Entry<C>): Ref<typeof RUN> {
    const onError = this.opts.onError;
    const ref = spawn(
      this.parent,
      async (state: null) => {
        for (let n = 0; n < RUN_BATCH; n++) {
          const env = entry.queue.shift();
          if (env === undefined) break;
          try {
            await entry.actor.handle(env.cmd, env.done);
          } catch (err) {
            onError?.(key, err);
            env.done.reject(err);
          }
        }
        if (entry.queue.length > 0) dispatch(ref, RUN);
        else {
          entry.scheduled = false;
          this.idle(entry);
        }
        return state;
      },
      `${this.kind}-${(this.spawned++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
      {
        initialState: null,
        onCrash: (_msg, err, ctx) => {
          onError?.(key, err);
          return ctx.resume;
        },
      },
    ) as Ref<typeof RUN>;
    entry.ref = ref;
    return ref;
  }

  private async sweep(): Promise<void> {
    const cutoff = this.now() - this.opts.idleMs;
    for (const [key, entry] of this.entries) {
      if (entry.inflight > 0 || entry.lastUsed > cutoff || !entry.actor.canPassivate()) continue;
      // Remove first: a delivery from now on spawns a fresh actor (which reloads from the store).
      this.entries.delete(key);
      try {
        await entry.actor.passivate();
      } catch (err) {
        this.opts.onError?.(key, err);
      }
      this.stopRef(entry);
    }
  }
}
