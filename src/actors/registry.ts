/**
 * Resolves actors by key on this node: spawns a nact actor on first use, respawns it after
 * passivation, and passivates idle ones. Every delivery resolves when the actor reports the
 * command complete (not when it was enqueued), so a bus can ack after the work is done.
 *
 * Commands wait in the entry's run queue; the nact actor receives one "run" message whenever
 * the queue becomes non-empty and handles what is queued then, one command after the other
 * (each `handle` awaited before the next, as nact does between messages), at most RUN_BATCH
 * per nact message. nact handles every message in its own `setImmediate`: one message per
 * command cost a macrotask per command and let a busy conversation see one send per event-loop
 * turn, so its commits carried one message each.
 *
 * nact drops dispatches to stopped actors and, by default, stops an actor and drops its
 * mailbox on an exception; so passivation is ours (an actor is stopped only when nothing is
 * in flight for it and it agrees), and handler errors reject the delivery instead of crashing.
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
  ref: Ref<typeof RUN>;
  actor: Actor<C>;
  inflight: number;
  lastUsed: number;
  queue: Array<Envelope<C>>;
  /** A RUN message is in the nact mailbox or being handled. */
  scheduled: boolean;
}

export class ActorRegistry<C> {
  private readonly entries = new Map<string, Entry<C>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly parent: Ref<unknown>,
    private readonly kind: string,
    private readonly factory: (key: string) => Actor<C>,
    private readonly opts: RegistryOptions,
  ) {
    this.sweeper = setInterval(() => void this.sweep(), Math.max(50, Math.floor(opts.idleMs / 2)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Deliver a command; resolves when the actor completes it, rejects if it failed. */
  deliver(key: string, cmd: C): Promise<void> {
    const entry = this.entries.get(key) ?? this.spawnEntry(key);
    entry.inflight++;
    entry.lastUsed = Date.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        if (settled) return false;
        settled = true;
        entry.inflight--;
        entry.lastUsed = Date.now();
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
        dispatch(entry.ref, RUN);
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
        stop(entry.ref);
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
    const all = [...this.entries.entries()];
    this.entries.clear();
    for (const [key, entry] of all) {
      try {
        await entry.actor.passivate();
      } catch (err) {
        this.opts.onError?.(key, err);
      }
      stop(entry.ref);
    }
  }

  private spawnEntry(key: string): Entry<C> {
    const actor = this.factory(key);
    const onError = this.opts.onError;
    // Assigned below, before any command can be queued.
    let entry!: Entry<C>;
    const ref = spawn(
      this.parent,
      async (state: null) => {
        for (let n = 0; n < RUN_BATCH; n++) {
          const env = entry.queue.shift();
          if (env === undefined) break;
          try {
            await actor.handle(env.cmd, env.done);
          } catch (err) {
            onError?.(key, err);
            env.done.reject(err);
          }
        }
        if (entry.queue.length > 0) dispatch(entry.ref, RUN);
        else entry.scheduled = false;
        return state;
      },
      `${this.kind}-${this.entries.size}-${Math.random().toString(36).slice(2, 10)}`,
      {
        initialState: null,
        onCrash: (_msg, err, ctx) => {
          onError?.(key, err);
          return ctx.resume;
        },
      },
    ) as Ref<typeof RUN>;
    entry = { ref, actor, inflight: 0, lastUsed: Date.now(), queue: [], scheduled: false };
    this.entries.set(key, entry);
    return entry;
  }

  private async sweep(): Promise<void> {
    const cutoff = Date.now() - this.opts.idleMs;
    for (const [key, entry] of this.entries) {
      if (entry.inflight > 0 || entry.lastUsed > cutoff || !entry.actor.canPassivate()) continue;
      // Remove first: a delivery from now on spawns a fresh actor (which reloads from the store).
      this.entries.delete(key);
      try {
        await entry.actor.passivate();
      } catch (err) {
        this.opts.onError?.(key, err);
      }
      stop(entry.ref);
    }
  }
}
