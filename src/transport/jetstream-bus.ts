/**
 * The Bus over NATS: actor commands go through one JetStream stream (subjects
 * `sb.p.<partition>`, publishes carry `Nats-Msg-Id`), consumed by one durable pull consumer
 * per partition with explicit acks: a command is acked only after its handler completed,
 * so a command whose node dies is redelivered to the partition's next owner. Failed
 * commands are not nak'ed (that reorders): they come back after the ack wait with backoff,
 * and after `maxDeliver` attempts are dead-lettered (logged, counted, terminated).
 * Pushes to the node holding a socket go over core NATS (`sb.n.<node>`).
 */
import { connect, type NatsConnection, type Subscription as NatsSub } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { nuid } from '@nats-io/nuid';
import type { Log } from '../actors/ports/index.js';
import { type ActorEnvelope, type Bus, type EnvelopeHandler, type NodePush, type Subscription, BusUnavailableError } from './bus.js';
import { packEnvelope, packPush, unpackEnvelope, unpackPush } from './envelope.js';

export interface JetStreamBusOptions {
  servers: string[];
  log: Log;
  stream?: string;
  /** Subject prefix: commands on `<prefix>.p.<partition>`, pushes on `<prefix>.n.<node>`. */
  prefix?: string;
  /** Stream and consumer replicas: 3 on a 3-server cluster, 1 on a single server. */
  replicas?: number;
  partitions: number;
  ackWaitMs?: number;
  maxDeliver?: number;
  maxAckPending?: number;
  name?: string;
  onDeadLetter?(env: ActorEnvelope | null, err: unknown): void;
  onRedeliver?(): void;
}

/** The oldest server whose features the bus relies on (filtered consumers, backoff, max_consumers). */
export const MIN_SERVER_VERSION = '2.10.0';

const nanos = (ms: number) => ms * 1_000_000;

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

interface Inflight {
  msg: JsMsg;
  since: number;
}

export class JetStreamBus implements Bus {
  private readonly stream: string;
  private readonly prefix: string;
  private readonly ackWaitMs: number;
  private readonly maxDeliver: number;
  private readonly inflight = new Set<Inflight>();
  private readonly ticker: NodeJS.Timeout;
  private closed = false;

  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly opts: JetStreamBusOptions,
  ) {
    this.stream = opts.stream ?? 'SB_CMDS';
    this.prefix = opts.prefix ?? 'sb';
    this.ackWaitMs = opts.ackWaitMs ?? 5000;
    this.maxDeliver = opts.maxDeliver ?? 20;
    // One timer for every command in flight: long handlers report progress so they are not redelivered.
    this.ticker = setInterval(() => this.keepAlive(), Math.max(100, Math.floor(this.ackWaitMs / 3)));
    this.ticker.unref();
  }

  static async connect(opts: JetStreamBusOptions): Promise<JetStreamBus> {
    let nc: NatsConnection;
    try {
      // noAsyncTraces: no Error objects with stack traces created per request (about a tenth of a node's CPU).
      nc = await connect({ servers: opts.servers, name: opts.name ?? 'switchboard', maxReconnectAttempts: -1, reconnectTimeWait: 250, noAsyncTraces: true });
    } catch (err) {
      throw new BusUnavailableError(`cannot reach NATS at ${opts.servers.join(',')}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const version = nc.info?.version ?? '0.0.0';
    if (compareVersions(version, MIN_SERVER_VERSION) < 0) {
      await nc.close();
      throw new BusUnavailableError(`nats-server ${version} is too old: Switchboard needs ${MIN_SERVER_VERSION} or newer`);
    }
    if (nc.info?.jetstream !== true) {
      await nc.close();
      throw new BusUnavailableError('the NATS server has JetStream disabled (start it with -js)');
    }
    const jsm = await jetstreamManager(nc);
    const bus = new JetStreamBus(nc, jetstream(nc), jsm, opts);
    await bus.ensureStream();
    return bus;
  }

  private async ensureStream(): Promise<void> {
    const config = {
      name: this.stream,
      subjects: [`${this.prefix}.p.*`],
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
      num_replicas: this.opts.replicas ?? 1,
      duplicate_window: nanos(120_000),
      max_consumers: this.opts.partitions + 64,
      max_age: nanos(7 * 24 * 3600 * 1000),
    };
    try {
      await this.jsm.streams.info(this.stream);
    } catch {
      try {
        await this.jsm.streams.add(config);
      } catch (err) {
        // Another node created it at the same time.
        await this.jsm.streams.info(this.stream).catch(() => {
          throw err;
        });
      }
    }
    // Right after an R3 stream is created its leader may not be elected yet.
    for (let i = 0; i < 100; i++) {
      const info = await this.jsm.streams.info(this.stream).catch(() => null);
      if (info?.cluster?.leader || (this.opts.replicas ?? 1) === 1) return;
      await sleep(100);
    }
  }

  async publish(partition: number, env: ActorEnvelope): Promise<void> {
    if (this.closed) throw new BusUnavailableError('bus closed');
    const data = packEnvelope(env);
    const msgID = nuid.next();
    let lastErr: unknown;
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        await this.js.publish(`${this.prefix}.p.${partition}`, data, { msgID, timeout: 5000 });
        return;
      } catch (err) {
        lastErr = err;
        if (this.closed) break;
        await sleep(Math.min(2000, 50 * 2 ** attempt));
      }
    }
    throw new BusUnavailableError(`publish to partition ${partition} failed: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`);
  }

  /** Create (or update) the partition's durable consumer and handle its commands in order. */
  async consume(partition: number, handler: EnvelopeHandler): Promise<Subscription> {
    const durable = `p${partition}`;
    const config = {
      durable_name: durable,
      filter_subject: `${this.prefix}.p.${partition}`,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.ackWaitMs),
      max_deliver: this.maxDeliver,
      backoff: [nanos(this.ackWaitMs), nanos(this.ackWaitMs * 2), nanos(this.ackWaitMs * 4)],
      max_ack_pending: this.opts.maxAckPending ?? 1000,
    };
    try {
      await this.jsm.consumers.info(this.stream, durable);
    } catch {
      await this.jsm.consumers.add(this.stream, config).catch(async (err) => {
        await this.jsm.consumers.info(this.stream, durable).catch(() => {
          throw err;
        });
      });
    }
    const consumer = await this.js.consumers.get(this.stream, durable);
    const messages: ConsumerMessages = await consumer.consume({ max_messages: 256, expires: 3000 });
    const pending = new Set<Promise<void>>();
    const loop = (async () => {
      for await (const m of messages) {
        const entry: Inflight = { msg: m, since: Date.now() };
        let env: ActorEnvelope;
        try {
          env = unpackEnvelope(m.data);
        } catch (err) {
          this.opts.log.error({ partition, err: String(err) }, 'dead letter: undecodable command');
          this.opts.onDeadLetter?.(null, err);
          m.term('undecodable');
          continue;
        }
        if (m.info.deliveryCount > 1) this.opts.onRedeliver?.();
        this.inflight.add(entry);
        const done = handler(env).then(
          () => m.ack(),
          (err: unknown) => {
            if (m.info.deliveryCount >= this.maxDeliver) {
              this.opts.log.error({ partition, kind: env.kind, key: env.key, type: env.cmd.type, err: String(err) }, 'dead letter');
              this.opts.onDeadLetter?.(env, err);
              m.term('max deliveries');
            }
            // Otherwise no nak: the ack wait brings it back (after the backoff) without reordering the rest.
          },
        );
        const tracked = done.finally(() => {
          this.inflight.delete(entry);
          pending.delete(tracked);
        });
        pending.add(tracked);
      }
    })();
    return {
      stop: async () => {
        messages.stop();
        await loop.catch(() => {});
        // Finish what was handed to the actors before giving the partition away.
        await Promise.allSettled([...pending]);
      },
    };
  }

  /**
   * Settled when nothing is pending, or when the ack wait has passed since the consumer's last
   * delivery: every unacked command was delivered by then, so all of them are due again. The
   * last delivery time is the server's clock: skew between the node and the server (NTP keeps
   * it to milliseconds) shifts the wait by as much; `maxMs` bounds it.
   */
  async unackedSettled(partition: number, maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      // No consumer yet (a new cluster): nothing outstanding. An unanswered call: try again until maxMs.
      const due = await this.jsm.consumers.info(this.stream, `p${partition}`).then(
        (info) => {
          if (info.num_ack_pending === 0) return 0;
          const last = lastActiveMs(info.delivered.last_active as unknown);
          return Number.isFinite(last) ? Math.max(0, last + this.ackWaitMs - Date.now()) : null;
        },
        (err: unknown) => (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound ? 0 : null),
      );
      if (due === 0 || this.closed || Date.now() >= deadline) return;
      await sleep(Math.min(due ?? 100, Math.max(1, deadline - Date.now())));
    }
  }

  private keepAlive(): void {
    const cutoff = Date.now() - this.ackWaitMs / 3;
    for (const e of this.inflight) {
      if (e.since < cutoff) {
        e.msg.working();
        e.since = Date.now();
      }
    }
  }

  publishNode(node: string, push: NodePush): void {
    if (this.closed) return;
    this.nc.publish(`${this.prefix}.n.${node}`, packPush(push));
  }

  async subscribeNode(node: string, handler: (push: NodePush) => void): Promise<Subscription> {
    const sub: NatsSub = this.nc.subscribe(`${this.prefix}.n.${node}`, {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler(unpackPush(msg.data));
        } catch (e) {
          this.opts.log.warn({ err: String(e) }, 'bad push dropped');
        }
      },
    });
    return {
      stop: async () => {
        sub.unsubscribe();
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ticker);
    await this.nc.drain().catch(() => this.nc.close());
  }
}

/** The server sends `last_active` as an RFC 3339 time (typed as nanos by the client library). */
function lastActiveMs(v: unknown): number {
  if (typeof v === 'string') return Date.parse(v);
  if (typeof v === 'number' && v > 1e15) return v / 1e6;
  return NaN;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
