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
 */
import type { Actor, Completion } from './registry.js';
import type { ChatMessage, ServerFrame } from '../protocol/frames.js';
import { msgFrame } from '../protocol/frames.js';
import { type ConnRef, type Courier, type Log, type Store, type UserCommand, sameConn } from './ports/index.js';
import { PresenceWatch, PresenceWindow } from './presence.js';
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

interface Connection {
  ref: ConnRef;
}

export class UserActor implements Actor<UserCommand> {
  private readonly conns = new Map<string, Connection>();
  private readonly watchers = new Map<string, ConnRef>();
  private readonly window: PresenceWindow;
  private readonly published = new PresenceWatch();
  /** Whether the stored last seen has been read (it is merged into `window` once). */
  private lastSeenLoaded = false;
  /** Fires when the online window lapses; set only while the user is online. */
  private lapseTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly user: string,
    private readonly deps: UserDeps,
  ) {
    this.window = new PresenceWindow(deps.onlineWindowMs);
  }

  canPassivate(): boolean {
    return this.conns.size === 0 && this.watchers.size === 0;
  }

  async passivate(): Promise<void> {
    this.clearLapse();
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  async handle(cmd: UserCommand, done: Completion): Promise<void> {
    switch (cmd.type) {
      case 'attach':
        await this.attach(cmd.conn, cmd.resume === true);
        break;
      case 'detach':
        this.conns.delete(connKey(cmd.conn));
        this.evaluate();
        break;
      case 'activity':
        if (this.window.touch(cmd.at)) this.deps.lastSeen.note(this.user, cmd.at);
        this.evaluate();
        break;
      case 'watch':
        await this.loadLastSeen();
        this.evaluate();
        this.watchers.set(connKey(cmd.watcher), cmd.watcher);
        this.deps.courier.toConnection(cmd.watcher, this.presenceFrame());
        break;
      case 'unwatch':
        this.watchers.delete(connKey(cmd.watcher));
        break;
      case 'deliver':
        this.deliver(cmd.msg, cmd.except);
        break;
      case 'push':
        for (const c of this.conns.values()) {
          if (!sameConn(c.ref, cmd.except)) this.deps.courier.toConnection(c.ref, cmd.frame);
        }
        break;
    }
    done.resolve();
  }

  /** Forget the connections and presence watchers of nodes that left the cluster (their sockets are gone). */
  dropNodes(nodes: ReadonlySet<string>): void {
    for (const [k, c] of this.conns) if (nodes.has(c.ref.node)) this.conns.delete(k);
    for (const [k, w] of this.watchers) if (nodes.has(w.node)) this.watchers.delete(k);
    this.evaluate();
  }

  private async attach(ref: ConnRef, resume: boolean): Promise<void> {
    this.conns.set(connKey(ref), { ref });
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
    for (const c of this.conns.values()) {
      if (!sameConn(c.ref, except)) this.deps.courier.toConnection(c.ref, frame);
    }
  }

  // ---------------------------------------------------------------- presence

  /** Merge the stored (or noted, not yet written) last seen once per activation. */
  private async loadLastSeen(): Promise<void> {
    if (this.lastSeenLoaded) return;
    const stored = (await this.deps.store.lastSeen([this.user])).get(this.user);
    this.window.touch(stored);
    this.window.touch(this.deps.lastSeen.pending(this.user));
    this.lastSeenLoaded = true;
  }

  /** The state as last published (what `evaluate` decided), so a new watcher and the others agree. */
  private presenceFrame(): ServerFrame {
    return { t: 'presence', user: this.user, online: this.published.online, lastSeen: this.window.lastSeen };
  }

  /**
   * Recompute `online`; push a change to the watchers; keep one timer while online. Runs in
   * a command or in the timer callback, never awaits, so it cannot interleave with itself.
   */
  private evaluate(): void {
    const now = this.deps.now();
    const connected = this.conns.size > 0;
    const online = this.window.online(now, connected);
    if (this.published.update(online) && this.watchers.size > 0) {
      const frame = this.presenceFrame();
      for (const w of this.watchers.values()) this.deps.courier.toConnection(w, frame);
    }
    if (!online) {
      this.clearLapse();
      return;
    }
    // An earlier timer re-evaluates and re-arms itself; activity never touches the timer.
    if (this.lapseTimer === null) {
      const due = this.window.lapsesAt(now, connected)!;
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
