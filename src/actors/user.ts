/**
 * The user actor: knows the user's connections across the cluster and pushes to them.
 * On attach it drains the backlog (every message above the user's delivered watermark, per
 * conversation in order) and then `synced`; live messages queue in its mailbox meanwhile,
 * so a connection never gets seq n+1 of a conversation before n, nor the same seq twice.
 * A gap (a live message above what the connection has) is filled from the store first.
 */
import type { Actor, Completion } from './registry.js';
import type { ChatMessage } from '../protocol/frames.js';
import { msgFrame } from '../protocol/frames.js';
import { type ConnRef, type Courier, type Log, type Store, type UserCommand, sameConn } from './ports/index.js';

export interface UserDeps {
  store: Store;
  courier: Courier;
  log: Log;
  /** Messages read from the store per page while draining a backlog. */
  backlogPage: number;
}

interface Connection {
  ref: ConnRef;
  /** The highest seq this connection has of each conversation. */
  last: Map<string, number>;
}

export class UserActor implements Actor<UserCommand> {
  private readonly conns = new Map<string, Connection>();

  constructor(
    readonly user: string,
    private readonly deps: UserDeps,
  ) {}

  canPassivate(): boolean {
    return this.conns.size === 0;
  }

  async passivate(): Promise<void> {}

  get connectionCount(): number {
    return this.conns.size;
  }

  async handle(cmd: UserCommand, done: Completion): Promise<void> {
    switch (cmd.type) {
      case 'attach':
        await this.attach(cmd.conn);
        break;
      case 'detach':
        this.conns.delete(connKey(cmd.conn));
        break;
      case 'deliver':
        await this.deliver(cmd.msg, cmd.except);
        break;
      case 'push':
        for (const c of this.conns.values()) {
          if (!sameConn(c.ref, cmd.except)) this.deps.courier.toConnection(c.ref, cmd.frame);
        }
        break;
    }
    done.resolve();
  }

  private async attach(ref: ConnRef): Promise<void> {
    const conn: Connection = { ref, last: new Map() };
    this.conns.set(connKey(ref), conn);
    const convs = await this.deps.store.userConversations(this.user);
    for (const c of convs) {
      let from = c.delivered + 1;
      while (from <= c.lastSeq) {
        const page = await this.deps.store.messages(c.conv, from, c.lastSeq, this.deps.backlogPage);
        if (page.length === 0) break;
        for (const m of page) this.deps.courier.toConnection(ref, msgFrame(m));
        from = page[page.length - 1]!.seq + 1;
      }
      conn.last.set(c.conv, Math.max(c.lastSeq, from - 1));
    }
    this.deps.courier.toConnection(ref, { t: 'synced' });
  }

  private async deliver(msg: ChatMessage, except: ConnRef | undefined): Promise<void> {
    const joined = msg.sys?.op === 'add' && msg.sys.users.includes(this.user);
    const left = (msg.sys?.op === 'remove' || msg.sys?.op === 'leave') && msg.sys.users.includes(this.user);
    const gaps = new Map<number, ChatMessage[]>();
    for (const c of this.conns.values()) {
      const have = joined ? undefined : c.last.get(msg.conv);
      if (have !== undefined && msg.seq <= have) continue;
      if (!sameConn(c.ref, except)) {
        if (have !== undefined && msg.seq > have + 1) {
          let gap = gaps.get(have);
          if (!gap) {
            gap = await this.deps.store.messages(msg.conv, have + 1, msg.seq - 1, msg.seq - 1 - have);
            gaps.set(have, gap);
          }
          for (const m of gap) this.deps.courier.toConnection(c.ref, msgFrame(m));
        }
        this.deps.courier.toConnection(c.ref, msgFrame(msg));
      }
      if (left) c.last.delete(msg.conv);
      else c.last.set(msg.conv, msg.seq);
    }
  }
}

function connKey(ref: ConnRef): string {
  return `${ref.node}/${ref.conn}`;
}
