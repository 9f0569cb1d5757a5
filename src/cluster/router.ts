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
import type { PartitionHost } from './coordinator.js';

export interface RouterOptions {
  node: string;
  partitions: number;
  bus: Bus;
  conversations: ActorRegistry<ConversationCommand>;
  users: ActorRegistry<UserCommand>;
  /** Push a frame to a socket held by this node. */
  localPush(conn: string, frame: ServerFrame): void;
}

export class Router implements Courier, PartitionHost {
  private readonly consumers = new Map<number, Subscription>();
  private pushes: Subscription | null = null;
  private readonly handler = (env: ActorEnvelope): Promise<void> =>
    env.kind === 'conv' ? this.opts.conversations.deliver(env.key, env.cmd) : this.opts.users.deliver(env.key, env.cmd);

  constructor(private readonly opts: RouterOptions) {}

  /** Listen for pushes to this node's sockets. */
  async start(): Promise<void> {
    this.pushes = await this.opts.bus.subscribeNode(this.opts.node, (push) => this.opts.localPush(push.conn, push.frame));
  }

  /** Start consuming a partition this node now owns. */
  async acquire(partition: number): Promise<void> {
    if (this.consumers.has(partition)) return;
    this.consumers.set(partition, await this.opts.bus.consume(partition, this.handler));
  }

  unackedSettled(partition: number, maxMs: number): Promise<void> {
    return this.opts.bus.unackedSettled(partition, maxMs);
  }

  /** Stop consuming a partition, finish its in-flight commands and passivate its actors. */
  async release(partition: number): Promise<void> {
    const sub = this.consumers.get(partition);
    this.consumers.delete(partition);
    await sub?.stop();
    const P = this.opts.partitions;
    await Promise.all([
      this.opts.conversations.evict((conv) => partitionOf(convKey(conv), P) === partition),
      this.opts.users.evict((user) => partitionOf(userKey(user), P) === partition),
    ]);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.consumers.keys()].map((p) => this.release(p)));
    await this.pushes?.stop();
    this.pushes = null;
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
