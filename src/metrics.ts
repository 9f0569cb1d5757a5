/** Prometheus metrics of one node (a registry per node, so several nodes can share a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'sb_connections', help: 'open client WebSockets', registers: [this.registry] });
  // Frames are counted in plain numbers on the hot path (countFrameIn/Out) and added to these
  // counters at each scrape: prom-client's inc() hashes its labels on every call.
  private framesOutPending = 0;
  private readonly framesInPending = new Map<string, number>();
  readonly framesIn = new Counter({
    name: 'sb_frames_in_total',
    help: 'client frames received',
    labelNames: ['t'],
    registers: [this.registry],
    collect: () => {
      for (const [t, n] of this.framesInPending) this.framesIn.inc({ t }, n);
      this.framesInPending.clear();
    },
  });
  readonly framesOut = new Counter({
    name: 'sb_frames_out_total',
    help: 'frames pushed to clients',
    registers: [this.registry],
    collect: () => {
      if (this.framesOutPending > 0) this.framesOut.inc(this.framesOutPending);
      this.framesOutPending = 0;
    },
  });
  readonly badFrames = new Counter({ name: 'sb_bad_frames_total', help: 'client frames refused as bad_request', registers: [this.registry] });
  readonly errors = new Counter({ name: 'sb_errors_total', help: 'err frames sent', labelNames: ['code'], registers: [this.registry] });
  readonly closes = new Counter({ name: 'sb_closes_total', help: 'sockets closed by the node', labelNames: ['code'], registers: [this.registry] });
  readonly committed = new Counter({ name: 'sb_messages_committed_total', help: 'messages committed to the store', registers: [this.registry] });
  readonly commitBatch = new Histogram({
    name: 'sb_commit_batch_messages',
    help: 'messages per store commit of one conversation',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'sb_commit_seconds',
    help: 'store commit latency',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly redeliveries = new Counter({ name: 'sb_bus_redeliveries_total', help: 'bus commands delivered again after a failure', registers: [this.registry] });
  readonly deadLetters = new Counter({ name: 'sb_bus_dead_letters_total', help: 'bus commands given up after max deliveries', registers: [this.registry] });
  readonly partitionMoves = new Histogram({
    name: 'sb_partition_move_seconds',
    help: 'time from a membership change to a gained partition serving on this node',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly collectors: Array<() => void> = [];
  readonly actors = new Gauge({
    name: 'sb_actors',
    help: 'live actors',
    labelNames: ['kind'],
    registers: [this.registry],
    collect: () => this.collectors.forEach((c) => c()),
  });

  countFrameOut(): void {
    this.framesOutPending++;
  }

  countFrameIn(t: string): void {
    this.framesInPending.set(t, (this.framesInPending.get(t) ?? 0) + 1);
  }

  /** Run `fn` before each scrape (gauges read from live state). */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry, prefix: 'sb_' });
  }
}
