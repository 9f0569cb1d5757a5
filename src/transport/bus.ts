/**
 * The Bus port: how commands reach the actor that owns a partition, and how frames reach
 * the node that holds a socket. `LocalBus` serves a single node in-process; the JetStream
 * bus implements the same interface for a cluster (durable commands, core-NATS pushes).
 * Every implementation passes test/contract/bus.contract.ts.
 */
import type { ConversationCommand, UserCommand } from '../actors/ports/index.js';
import type { ServerFrame } from '../protocol/frames.js';

export type ActorEnvelope =
  | { kind: 'conv'; key: string; cmd: ConversationCommand }
  | { kind: 'user'; key: string; cmd: UserCommand };

/** A frame for one socket on a node. */
export interface NodePush {
  conn: string;
  frame: ServerFrame;
}

/** Resolves when the command was handled; rejects to have it delivered again later. */
export type EnvelopeHandler = (env: ActorEnvelope) => Promise<void>;

export interface Subscription {
  stop(): Promise<void>;
}

export interface Bus {
  /**
   * Hand a command to the partition's consumer. Resolves once the bus holds it (durably,
   * where the bus is durable); per partition, commands reach the consumer in publish order.
   * A handler that rejects gets the command again after a backoff, up to a limit, after
   * which it is dead-lettered (logged and counted, never silent).
   */
  publish(partition: number, env: ActorEnvelope): Promise<void>;
  consume(partition: number, handler: EnvelopeHandler): Promise<Subscription>;
  /**
   * Resolves once no command of the partition is handed to a consumer and unacknowledged
   * (a dead consumer's commands are due again), or after `maxMs`: a new owner waits for this
   * so those commands come first, in order. Resolves at once when nothing is outstanding.
   */
  unackedSettled(partition: number, maxMs: number): Promise<void>;
  /** Best-effort push to the node holding a socket; per (sender, node) in order. */
  publishNode(node: string, push: NodePush): void;
  subscribeNode(node: string, handler: (push: NodePush) => void): Promise<Subscription>;
  close(): Promise<void>;
}

export class BusUnavailableError extends Error {
  readonly code = 'unavailable' as const;
  constructor(message: string) {
    super(message);
    this.name = 'BusUnavailableError';
  }
}
