/**
 * The user actor: knows the user's connections across the cluster and pushes to them.
 * On attach it registers the connection, then tells the connection's gateway which seqs it
 * is owed (every message above the user's delivered watermark, per conversation); the
 * gateway reads them from the store at the socket's pace and sends `synced`, holding back
 * live pushes until then. The gateway keeps the per-connection order (never seq n+1
 * before n, never the same seq twice) and fills gaps from the store.
 *
 * It also owns the user's presence (PROTOCOL.md §4.6): the last activity (forwarded by the
 * gateways, throttled), the connections that watch it (`presence.sub`), and while the user
 * is online ONE timer for the moment the online window lapses. Watchers get the current
 * state when they subscribe and then every change of `online`. Last seen goes to the store
 * through the node's LastSeenWriter (batched, at most `flushMs` late).
 *
 * Memory: an actor stays loaded while its user has a connection, so an idle user must be
 * cheap: the connections are a small array (usually one), the watchers a map made at the
 * first watch, presence two fields, and the deps one object shared by every user actor of
 * the node.
 */
import type { Actor, Completion } from './registry.js';
import type { ChatMessage, ServerFrame } from '../protocol/frames.js';
import { msgFrame } from '../protocol/frames.js';
import { type ConnRef, type Courier, type Log, type Store, type UserCommand, sameConn } from './ports/index.js';
import { isOnline, lapsesAt, later } from './presence.js';
import type { LastSeenWriter } from './last-seen.js';

export interface UserDeps {
  store: Store;
  courier: Courier;
  log: Log;
  /** The online window (SB_ONLINE_WINDOW_MS). */
  onlineWindowMs: number;
  lastSeen: LastSeenWriter;
  now(): number;
}

/** The connections of a user with none (shared: replaced, never changed). */
const NO_CONNS: readonly ConnRef[] = Object.freeze([]);

export class UserActor implements Actor<UserCommand> {
  /** The user's connections, each once (replaced, never grown in place: usually one element). */
  private conns: readonly ConnRef[] = NO_CONNS;
  /** Presence watchers by connection; null while there are none. */
  private watchers: Map<string, ConnRef> | null = null;
  /** The last activity (ms since the epoch), null if never. */
  private lastSeen: number | null = null;
  /** The online state last pushed to the watchers (what `evaluate` decided). */
  private published = false;
  /** Whether the stored last seen has been read (it is merged into `lastSeen` once). */
  private lastSeenLoaded = false;
  /** Fires when the online window lapses; set only while the user is online. */
  private lapseTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly user: string,
    private readonly deps: UserDeps,
  ) {}

  canPassivate(): boolean {
    return this.conns.length === 0 && this.watchers === null;
  }

  async passivate(): Promise<void> {
    this.clearLapse();
  }

  get connectionCount(): number {
    return this.conns.length;
  }

  get watcherCount(): number {
    return this.watchers?.size ?? 0;
  }

  async handle(cmd: UserCommand, done: Completion): Promise<void> {
    switch (cmd.type) {
      case 'attach':
        await this.attach(cmd.conn, cmd.resume === true);
        break;
      case 'detach':
        this.removeConn(cmd.conn);
        this.evaluate();
        break;
      case 'activity':
        if (this.touch(cmd.at)) this.deps.lastSeen.note(this.user, cmd.at);
        this.evaluate();
        break;
      case 'watch':
        await this.loadLastSeen();
        this.evaluate();
        (this.watchers ??= new Map()).set(connKey(cmd.watcher), cmd.watcher);
        this.deps.courier.toConnection(cmd.watcher, this.presenceFrame());
        break;
      case 'unwatch':
        if (this.watchers?.delete(connKey(cmd.watcher)) && this.watchers.size === 0) this.watchers = null;
        break;
      case 'deliver':
        this.deliver(cmd.msg, cmd.except);
        break;
      case 'push':
        for (const c of this.conns) {
          if (!sameConn(c, cmd.except)) this.deps.courier.toConnection(c, cmd.frame);
        }
        break;
    }
    done.resolve();
  }

  /** Forget the connections and presence watchers of nodes that left the cluster (their sockets are gone). */
  dropNodes(nodes: ReadonlySet<string>): void {
    if (this.conns.some((c) => nodes.has(c.node))) this.conns = this.conns.filter((c) => !nodes.has(c.node));
    if (this.watchers) {
      for (const [k, w] of this.watchers) if (nodes.has(w.node)) this.watchers.delete(k);
      if (this.watchers.size === 0) this.watchers = null;
    }
    this.evaluate();
  }

  private removeConn(ref: ConnRef): void {
    if (this.conns.some((c) => sameConn(c, ref))) this.conns = this.conns.filter((c) => !sameConn(c, ref));
  }

  private async attach(ref: ConnRef, resume: boolean): Promise<void> {
    // Replaces an earlier registration of the same connection (a resume), keeping one entry.
    const others = this.conns.filter((c) => !sameConn(c, ref));
    this.conns = others.length === 0 ? [ref] : others.concat([ref]);
    // A reconnect within the window makes the user online again (its last activity counts).
    await this.loadLastSeen();
    this.evaluate();
    // A resumed connection (its user's partition moved) gets no backlog: its gateway catches it up.
    if (resume) return;
    // Registered first, then the heads read: whatever commits later is delivered live.
    const convs = await this.deps.store.userConversations(this.user);
    const backlog: Record<string, { from: number; to: number }> = {};
    for (const c of convs) backlog[c.conv] = { from: c.delivered + 1, to: c.lastSeq };
    // The gateway holding the socket drains the backlog from the store at the socket's pace
    // (flow control a push from here could not have), then sends `synced`.
    this.deps.courier.toConnection(ref, { t: 'synced', backlog });
  }

  /**
   * Forward a committed message to every connection but the sending one. Per-connection
   * order (no repeat, no gap) is kept by the gateway that holds the socket, which sees
   * every push whichever node or actor incarnation sent it.
   */
  private deliver(msg: ChatMessage, except: ConnRef | undefined): void {
    const frame = msgFrame(msg);
    for (const c of this.conns) {
      if (!sameConn(c, except)) this.deps.courier.toConnection(c, frame);
    }
  }

  // ---------------------------------------------------------------- presence

  /** Merge the stored (or noted, not yet written) last seen once per activation. */
  private async loadLastSeen(): Promise<void> {
    if (this.lastSeenLoaded) return;
    const stored = (await this.deps.store.lastSeen([this.user])).get(this.user);
    this.touch(stored);
    this.touch(this.deps.lastSeen.pending(this.user));
    this.lastSeenLoaded = true;
  }

  /** Record activity at `at` (or merge a stored last seen); returns true when the last seen moved. */
  private touch(at: number | null | undefined): boolean {
    const next = later(this.lastSeen, at);
    if (next === this.lastSeen) return false;
    this.lastSeen = next;
    return true;
  }

  /** The state as last published (what `evaluate` decided), so a new watcher and the others agree. */
  private presenceFrame(): ServerFrame {
    return { t: 'presence', user: this.user, online: this.published, lastSeen: this.lastSeen };
  }

  /**
   * Recompute `online`; push a change to the watchers; keep one timer while online. Runs in
   * a command or in the timer callback, never awaits, so it cannot interleave with itself.
   */
  private evaluate(): void {
    const now = this.deps.now();
    const connected = this.conns.length > 0;
    const windowMs = this.deps.onlineWindowMs;
    const online = isOnline(this.lastSeen, windowMs, now, connected);
    const changed = online !== this.published;
    this.published = online;
    if (changed && this.watchers) {
      const frame = this.presenceFrame();
      for (const w of this.watchers.values()) this.deps.courier.toConnection(w, frame);
    }
    if (!online) {
      this.clearLapse();
      return;
    }
    // An earlier timer re-evaluates and re-arms itself; activity never touches the timer.
    if (this.lapseTimer === null) {
      const due = lapsesAt(this.lastSeen, windowMs, now, connected)!;
      this.lapseTimer = setTimeout(() => {
        this.lapseTimer = null;
        this.evaluate();
      }, Math.max(0, due - now) + 1);
      this.lapseTimer.unref();
    }
  }

  private clearLapse(): void {
    if (this.lapseTimer) clearTimeout(this.lapseTimer);
    this.lapseTimer = null;
  }
}

function connKey(ref: ConnRef): string {
  return `${ref.node}/${ref.conn}`;
}
