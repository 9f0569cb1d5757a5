/**
 * The actors' view of the outside world: typed commands between actors and the Courier
 * port that carries them. The router (src/cluster) implements Courier; actors never learn
 * whether the target runs on this node or another one.
 */
import type { ChatMessage, MediaRef, ReqId, ServerFrame } from '../../protocol/frames.js';

/** A client connection somewhere in the cluster: the node holding the socket and its id there. */
export interface ConnRef {
  node: string;
  conn: string;
}

/** Where a request came from, so that its reply (ack, ok, err) finds the socket. */
export interface Origin extends ConnRef {
  re?: ReqId;
}

export function sameConn(a: ConnRef | undefined, b: ConnRef | undefined): boolean {
  return a !== undefined && b !== undefined && a.conn === b.conn && a.node === b.node;
}

export type ConversationCommand =
  | {
      type: 'send';
      conv: string;
      from: string;
      origin: Origin;
      cmid: string;
      /** Set when the client addressed a user (`to`): a direct conversation may be created. */
      to?: string;
      body?: string;
      media?: MediaRef;
      reply?: { seq: number };
    }
  | { type: 'recv' | 'read'; conv: string; user: string; origin: Origin; seq: number }
  | { type: 'typing'; conv: string; user: string; origin: Origin; on: boolean }
  | { type: 'group.create'; conv: string; by: string; origin: Origin; cmid: string; title: string; members: string[] }
  | { type: 'group.add' | 'group.remove'; conv: string; by: string; origin: Origin; users: string[] }
  | { type: 'group.leave' | 'group.info'; conv: string; by: string; origin: Origin }
  | { type: 'info'; conv: string; by: string; origin: Origin; seq: number };

export type UserCommand =
  /** A connection signed in: push the backlog, then `synced`, then live messages. */
  | {
      type: 'attach';
      user: string;
      conn: ConnRef;
      /**
       * The connection was already signed in and its user's partition moved to another
       * node: register it again without a backlog (its gateway catches up from the store).
       */
      resume?: boolean;
    }
  | { type: 'detach'; user: string; conn: ConnRef }
  /** A committed message for one of the user's conversations. */
  | { type: 'deliver'; user: string; msg: ChatMessage; except?: ConnRef }
  /** A frame for every connection of the user (receipts, typing), except one. */
  | { type: 'push'; user: string; frame: ServerFrame; except?: ConnRef }
  /**
   * The user did something that counts for presence (send, read, typing, active) on `conn`
   * at `at` (ms since the epoch, the gateway's clock). Gateways forward it at most about
   * once a second per connection, so it never costs one command per message.
   */
  | { type: 'activity'; user: string; conn: ConnRef; at: number }
  /** `watcher` subscribed to this user's presence: push the current state now, then changes. */
  | { type: 'watch'; user: string; watcher: ConnRef }
  | { type: 'unwatch'; user: string; watcher: ConnRef };

export interface Courier {
  /** Hand a command to the user's actor (durable in cluster mode). */
  toUser(cmd: UserCommand): Promise<void>;
  /** Push a frame to one connection (best effort: a closed socket drops it). */
  toConnection(conn: ConnRef, frame: ServerFrame): void;
}
