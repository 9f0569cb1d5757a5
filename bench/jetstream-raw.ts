/**
 * The raw JetStream baseline of the cluster suite, on one connection (as a node has), a
 * work-queue file stream with the cluster's replicas (as the nodes' SB_CMDS) and a durable
 * pull consumer with explicit acks, fixed-size payloads. Three phases on the same stream:
 *
 *   publish   async publishes, a window of unacked publishes, no consumer: publish acks/s;
 *   consume   the consumer drains that backlog, acking each message: consumed/s;
 *   pipeline  publisher and consumer together, at most `window` messages published but not
 *             yet consumed (closed loop, like the clients' window of unacked sends): the
 *             end-to-end rate and publish→consume latency the Switchboard rows compare with.
 *
 * The stream is deleted after. Sequence numbers in the payloads check that every message
 * is consumed exactly once.
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type Phases, Samples, Window, drive, round } from './loadgen.js';
import { natsConnect } from './servers.js';
import { errText, sleep } from './common.js';

export interface RawOptions extends Phases {
  urls: string[];
  replicas: number;
  /** Unacked publishes (publish phase), messages published but not consumed (pipeline). */
  window: number;
  payloadBytes: number;
  /** The consumer's pull batch (the node's consumers pull 256). */
  pullBatch: number;
}

export interface RawResult {
  /** Pipeline: messages consumed and acked per second while the publisher runs. */
  pipelinePerSec: number;
  /** Pipeline: publish → the consumer has it. */
  pipelineLatency: ReturnType<Samples['summary']>;
  /** Pipeline: publish → its PubAck. */
  pipelinePublishAck: ReturnType<Samples['summary']>;
  /** Publish phase: publish acks per second, no consumer. */
  publishPerSec: number;
  publishAck: ReturnType<Samples['summary']>;
  /** Consume phase: backlog consumed and acked per second. */
  consumePerSec: number;
  consumeBacklog: number;
  seconds: number;
  drainMs: number;
  totals: { published: number; consumed: number };
  /** Failed publishes, messages consumed twice or never. */
  violations: { publishErrors: number; duplicates: number; lost: number };
  streamLeaderWaitMs: number;
}

const STREAM = 'BENCH_RAW';
const SUBJECT = 'bench.raw.x';
const SEEN = 1 << 24;

export async function runRawJetStream(o: RawOptions, label: string): Promise<RawResult> {
  const nc = await natsConnect(o.urls, 'bench-raw');
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const seen = new Uint8Array(SEEN);
  let nextSeq = 0;
  let published = 0;
  let consumed = 0;
  let inflight = 0;
  let publishErrors = 0;
  let duplicates = 0;
  let broken: string | null = null;
  let stopped = false;
  // What the current phase counts (set per phase).
  let win = new Window();
  let pubLat = new Samples();
  let e2eLat = new Samples();
  let pubInWin = 0;
  let consumedInWin = 0;
  let limit: () => boolean = () => inflight < o.window;
  let publishing = false;

  const template = Buffer.alloc(o.payloadBytes, 0x61);
  const pump = () => {
    while (publishing && limit()) {
      const data = Buffer.from(template);
      const t = performance.now();
      data.writeDoubleLE(t, 0);
      data.writeUInt32LE(nextSeq++, 8);
      inflight++;
      js.publish(SUBJECT, data).then(
        () => {
          inflight--;
          published++;
          const ta = performance.now();
          if (win.in(ta)) {
            pubInWin++;
            pubLat.add(ta - t);
          }
          pump();
        },
        (err: unknown) => {
          inflight--;
          publishErrors++;
          if (publishErrors > 100) broken ??= `publish: ${errText(err)}`;
          if (publishing) setTimeout(pump, 50);
        },
      );
    }
  };

  try {
    await jsm.streams.delete(STREAM).catch(() => false);
    await jsm.streams.add({
      name: STREAM,
      subjects: ['bench.raw.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
      num_replicas: o.replicas,
    });
    // Right after an R3 stream is created its leader may not be elected yet (REFERENCE.md).
    const t0 = Date.now();
    for (let i = 0; ; i++) {
      const info = await jsm.streams.info(STREAM).catch(() => null);
      if (info?.cluster?.leader || o.replicas === 1) break;
      if (i > 300) throw new Error('raw stream: no leader within 30 s');
      await sleep(100);
    }
    const streamLeaderWaitMs = Date.now() - t0;
    await jsm.consumers.add(STREAM, {
      durable_name: 'raw',
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 20_000,
      ack_wait: 60_000_000_000,
    });

    // 1. publish only
    win = new Window();
    publishing = true;
    limit = () => inflight < o.window;
    pump();
    await drive(
      `${label} publish`,
      { ...o, warmupMs: Math.min(1000, o.warmupMs), onWindow: undefined },
      win,
      () => ({ done: published, inflight }),
      'publish acks',
      () => (publishing = false),
      () => inflight === 0,
      () => broken,
    );
    const publishPerSec = round(pubInWin / win.seconds);
    const publishAck = pubLat.summary();

    // 2. consume the backlog
    const backlog = published;
    const consumer = await js.consumers.get(STREAM, 'raw');
    const messages = await consumer.consume({ max_messages: o.pullBatch });
    const loop = (async () => {
      for await (const m of messages) {
        const t = performance.now();
        const view = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength);
        const seq = view.getUint32(8, true);
        if (seq < SEEN) {
          if (seen[seq]) duplicates++;
          seen[seq] = 1;
        }
        consumed++;
        if (win.in(t)) {
          consumedInWin++;
          e2eLat.add(t - view.getFloat64(0, true));
        }
        m.ack();
        if (publishing) pump(); // pipeline: a consumed message frees a slot of the window
      }
    })().catch((err) => {
      if (!stopped) broken ??= `consumer: ${errText(err)}`;
    });
    const tc = performance.now();
    const capMs = Math.max(o.measureMs, 1000) * 2;
    let lastLine = tc;
    while (consumed < backlog && performance.now() - tc < capMs && broken === null) {
      await sleep(5);
      if (performance.now() - lastLine >= 1000) {
        lastLine = performance.now();
        o.progress(`${label} consume ${((lastLine - tc) / 1000).toFixed(1).padStart(5)}s ${consumed.toLocaleString('en-US')} of ${backlog.toLocaleString('en-US')} consumed`);
      }
    }
    const consumePerSec = round((consumed * 1000) / (performance.now() - tc));
    // Whatever is left is consumed before the pipeline starts.
    const until = performance.now() + 60_000;
    while (consumed < published && performance.now() < until && broken === null) await sleep(10);

    // 3. pipeline
    win = new Window();
    pubLat = new Samples();
    e2eLat = new Samples();
    pubInWin = 0;
    consumedInWin = 0;
    publishing = true;
    limit = () => inflight < o.window && nextSeq - consumed < o.window;
    pump();
    const d = await drive(
      `${label} pipeline`,
      o,
      win,
      () => ({ done: consumed, inflight: nextSeq - consumed }),
      'consumed',
      () => (publishing = false),
      () => inflight === 0 && consumed >= published,
      () => broken,
    );
    stopped = true;
    messages.stop();
    await loop;
    let lost = 0;
    for (let s = 0; s < Math.min(nextSeq, SEEN); s++) if (!seen[s]) lost++;
    // A failed publish was never stored (or, if stored after all, consumed: then seen).
    lost = Math.max(0, lost - publishErrors);
    return {
      pipelinePerSec: round(consumedInWin / win.seconds),
      pipelineLatency: e2eLat.summary(),
      pipelinePublishAck: pubLat.summary(),
      publishPerSec,
      publishAck,
      consumePerSec,
      consumeBacklog: backlog,
      seconds: win.seconds,
      drainMs: d.drainMs,
      totals: { published, consumed },
      violations: { publishErrors, duplicates, lost },
      streamLeaderWaitMs,
    };
  } finally {
    publishing = false;
    stopped = true;
    await jsm.streams.delete(STREAM).catch(() => false);
    await nc.close().catch(() => {});
  }
}
