/**
 * The router: turns a conversation or user key into its partition and hands the command to
 * the bus; consumes the partitions this node owns into the local actor registries; delivers
 * pushes for sockets on this node locally and sends the rest to their node.
 * The actors see it only as the Courier port.
 */
import type { ConversationCommand, ConnRef, Courier, UserCommand } from '../actors/ports/index.js';
import type { ServerFrame } from '../protocol/frames.js';
import type { ActorRegistry } from '../actors/registry.js';
import type { ActorEnvelope, Bus, Subscription } from '../transport/bus.js';
import { convKey, partitionOf, userKey } from './partition.js';

export interface RouterOptions {
  node: string;
  partitions: number;
  bus: Bus;
  conversations: ActorRegistry<ConversationCommand>;
  users: ActorRegistry<UserCommand>;
  /** Push a frame to a socket held by this node. */
  localPush(conn: string, frame: ServerFrame): void;
}

export class Router implements Courier {
  private readonly subs: Subscription[] = [];

  constructor(private readonly opts: RouterOptions) {}

  /** Consume the partitions this node owns (all of them, on a single node) and its push channel. */
  async start(owned: Iterable<number>): Promise<void> {
    const handler = (env: ActorEnvelope): Promise<void> =>
      env.kind === 'conv' ? this.opts.conversations.deliver(env.key, env.cmd) : this.opts.users.deliver(env.key, env.cmd);
    for (const p of owned) this.subs.push(await this.opts.bus.consume(p, handler));
    this.subs.push(await this.opts.bus.subscribeNode(this.opts.node, (push) => this.opts.localPush(push.conn, push.frame)));
  }

  async stop(): Promise<void> {
    const subs = this.subs.splice(0);
    await Promise.all(subs.map((s) => s.stop()));
  }

  toConversation(cmd: ConversationCommand): Promise<void> {
    return this.opts.bus.publish(partitionOf(convKey(cmd.conv), this.opts.partitions), { kind: 'conv', key: cmd.conv, cmd });
  }

  toUser(cmd: UserCommand): Promise<void> {
    return this.opts.bus.publish(partitionOf(userKey(cmd.user), this.opts.partitions), { kind: 'user', key: cmd.user, cmd });
  }

  toConnection(conn: ConnRef, frame: ServerFrame): void {
    if (conn.node === this.opts.node) this.opts.localPush(conn.conn, frame);
    else this.opts.bus.publishNode(conn.node, { conn: conn.conn, frame });
  }
}
