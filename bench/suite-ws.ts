/**
 * The `ws` suite: the node's end-to-end rate (embedded SQLite store, one process) against a
 * raw `ws` echo baseline measured in the same run with the same load generator and frame size.
 *
 * Every run starts a fresh child process (the echo server, or `node dist/node.js` on a temp
 * data dir), drives it from this process (warm-up, a fixed measuring window, a bounded
 * drain), checks correctness, and kills the child by PID. Runs alternate (echo, node, echo,
 * node, ...); the table reports medians.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { type Child, cpuSeconds, mainThreadSched, spawnNode, stopChild } from './children.js';
import { BODY, type E2EResult, type EchoResult, type Encoding, round, runE2E, runEcho } from './loadgen.js';
import { GUARD, NODE_ENTRY, type NodeMetrics, ROOT, type Row, TMP_PREFIX, devToken, errText, fmt, median, progress, ratio, scrape, waitHealthz } from './common.js';
import { summariseProfile } from './profile.js';
import type { Settings, SuiteContext, SuiteReport } from './suite.js';

interface Cpu {
  /** % of one core over the measuring window (all threads of the server process). */
  childPct: number | null;
  /** The server's main thread, % of the window: on a CPU, and runnable but waiting for one (a busy machine). */
  mainOnCpuPct: number | null;
  mainRunqueuePct: number | null;
  loadgenPct: number;
}

/** Samples the child's and our own CPU time at the window's edges. */
function cpuMeter(pid: number) {
  let start: { child: number | null; sched: [number, number] | null; self: NodeJS.CpuUsage; t: number } | null = null;
  let result: Cpu | null = null;
  return {
    onWindow(edge: 'start' | 'end') {
      if (edge === 'start') start = { child: cpuSeconds(pid), sched: mainThreadSched(pid), self: process.cpuUsage(), t: performance.now() };
      else if (start) {
        const wall = (performance.now() - start.t) / 1000;
        const child = cpuSeconds(pid);
        const sched = mainThreadSched(pid);
        const self = process.cpuUsage(start.self);
        const pct = (ns: number) => round(ns / 1e7 / wall);
        result = {
          childPct: child !== null && start.child !== null ? round((100 * (child - start.child)) / wall) : null,
          mainOnCpuPct: sched && start.sched ? pct(sched[0] - start.sched[0]) : null,
          mainRunqueuePct: sched && start.sched ? pct(sched[1] - start.sched[1]) : null,
          loadgenPct: round((100 * (self.user + self.system)) / 1e6 / wall),
        };
      }
    },
    get: () => result,
  };
}

interface RunRecord {
  round: number;
  kind: 'echo' | 'node';
  encoding: Encoding;
  ok: boolean;
  error?: string;
  cpu: Cpu | null;
  echo?: EchoResult;
  node?: E2EResult;
  childExit?: { code: number | null; signal: string | null };
  metrics?: NodeMetrics | undefined;
}

async function echoRun(s: Settings, encoding: Encoding, label: string): Promise<Pick<RunRecord, 'echo' | 'cpu' | 'childExit'>> {
  const child = await spawnNode({
    label: 'echo',
    args: ['--import', 'tsx', '--import', GUARD, join(ROOT, 'bench', 'echo-server.ts'), '0'],
    cwd: ROOT,
    ready: /^\{"port":(\d+)\}$/,
    timeoutMs: 20_000,
  });
  let stopped = false;
  try {
    const meter = cpuMeter(child.pid);
    const echo = await runEcho(
      {
        url: `ws://127.0.0.1:${child.ready[1]}/ws`,
        encoding,
        connections: s.pairs,
        window: s.window,
        warmupMs: s.warmupSeconds * 1000,
        measureMs: s.seconds * 1000,
        drainMs: s.drainSeconds * 1000,
        progress,
        onWindow: meter.onWindow,
      },
      label,
    );
    const childExit = await stopChild(child);
    stopped = true;
    return { echo, cpu: meter.get(), childExit };
  } finally {
    if (!stopped) await stopChild(child);
  }
}

async function nodeRun(s: Settings, encoding: Encoding, label: string, profDir: string | null): Promise<Pick<RunRecord, 'node' | 'cpu' | 'childExit' | 'metrics'>> {
  const dataDir = mkdtempSync(join(tmpdir(), TMP_PREFIX));
  let child: Child | undefined;
  // The embedded store: whatever SB_* the bench inherits, no cluster and no CQL here.
  const env = { ...process.env };
  delete env.SB_NATS_URL;
  delete env.SB_CQL_CONTACT_POINTS;
  try {
    child = await spawnNode({
      label: 'node',
      args: ['--import', GUARD, ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), NODE_ENTRY, ...s.nodeFlags, '--data-dir', dataDir],
      cwd: ROOT,
      env,
      ready: /Switchboard dev node on http:\/\/127\.0\.0\.1:(\d+)/,
      quiet: /^\s+(token|websocket|health|web app):/,
      timeoutMs: 30_000,
    });
    const base = `http://127.0.0.1:${child.ready[1]}`;
    await waitHealthz(base, 10_000);
    const meter = cpuMeter(child.pid);
    const node = await runE2E(
      {
        url: `ws://127.0.0.1:${child.ready[1]}/ws`,
        encoding,
        pairs: s.pairs,
        window: s.window,
        warmupMs: s.warmupSeconds * 1000,
        measureMs: s.seconds * 1000,
        drainMs: s.drainSeconds * 1000,
        progress,
        onWindow: meter.onWindow,
        token: devToken(base),
      },
      label,
    );
    const metrics = await scrape(base);
    const childExit = await stopChild(child);
    child = undefined;
    return { node, cpu: meter.get(), childExit, metrics };
  } finally {
    if (child) await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function summarise(encoding: Encoding, runs: RunRecord[]) {
  const echo = runs.filter((r) => r.kind === 'echo' && r.encoding === encoding && r.ok && r.echo).map((r) => r as RunRecord & { echo: EchoResult });
  const node = runs.filter((r) => r.kind === 'node' && r.encoding === encoding && r.ok && r.node).map((r) => r as RunRecord & { node: E2EResult });
  const me = (f: (r: EchoResult) => number | null) => median(echo.map((r) => f(r.echo) ?? NaN));
  const mn = (f: (r: E2EResult) => number | null) => median(node.map((r) => f(r.node) ?? NaN));
  const cpuE = (f: (c: Cpu) => number | null) => median(echo.map((r) => (r.cpu ? f(r.cpu) ?? NaN : NaN)));
  const cpuN = (f: (c: Cpu) => number | null) => median(node.map((r) => (r.cpu ? f(r.cpu) ?? NaN : NaN)));
  const sumV = (keys: Array<keyof E2EResult['violations']>) => {
    const parts = keys.map((k) => [k, node.reduce((s, r) => s + r.node.violations[k], 0)] as const);
    const total = parts.reduce((s, [, n]) => s + n, 0);
    const detail = parts.filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
    return { total, text: detail.length ? `${total} (${detail.join(', ')})` : String(total) };
  };
  const echoViol = echo.reduce((s, r) => s + r.echo.violations.lost + r.echo.violations.unexpected, 0);
  const failed = runs.filter((r) => r.encoding === encoding && !r.ok).length;

  const m = {
    msgsPerSec: mn((r) => r.msgsPerSec),
    rtPerSec: me((r) => r.roundTripsPerSec),
    framesPerSec: mn((r) => r.framesPerSec),
    echoFramesPerSec: me((r) => r.framesPerSec),
  };
  const lat = (name: string, f: (r: E2EResult) => number | null, g: (r: EchoResult) => number | null): Row => {
    const a = mn(f);
    const b = me(g);
    return [name, fmt(a, 2), fmt(b, 2), ratio(a, b), '—'];
  };
  const v = {
    acks: sumV(['ackSeqRepeated', 'ackSeqGaps', 'ackDup', 'ackExtra']),
    msgs: sumV(['msgMissing', 'msgDuplicated', 'msgOutOfOrder', 'msgMismatch']),
    receipts: sumV(['receiptBad', 'receiptRepeated']),
    errors: sumV(['errors']),
  };
  const violations = v.acks.total + v.msgs.total + v.receipts.total + v.errors.total + echoViol + failed;
  const rows: Row[] = [
    ['e2e msgs/s (send → recipient push) vs echo round trips/s', fmt(m.msgsPerSec), fmt(m.rtPerSec), ratio(m.msgsPerSec, m.rtPerSec), '≥ 0.50'],
    ['frames/s through the node vs echo frames/s (2 per round trip)', fmt(m.framesPerSec), fmt(m.echoFramesPerSec), ratio(m.framesPerSec, m.echoFramesPerSec), '—'],
    ['frames per message (send, ack, msg, recv, receipt)', fmt(mn((r) => r.framesPerMsg), 2), '2.00', '—', '5'],
    ['acks/s', fmt(mn((r) => r.acksPerSec)), '—', '—', '—'],
    ['receipts/s', fmt(mn((r) => r.receiptsPerSec)), '—', '—', '—'],
    lat('send → push p50 ms (echo: RTT p50)', (r) => r.sendToMsg.p50, (r) => r.rtt.p50),
    lat('send → push p99 ms (echo: RTT p99)', (r) => r.sendToMsg.p99, (r) => r.rtt.p99),
    lat('send → ack p50 ms', (r) => r.sendToAck.p50, (r) => r.rtt.p50),
    lat('send → ack p99 ms', (r) => r.sendToAck.p99, (r) => r.rtt.p99),
    lat('send → receipt p50 ms', (r) => r.sendToReceipt.p50, (r) => r.rtt.p50),
    lat('send → receipt p99 ms', (r) => r.sendToReceipt.p99, (r) => r.rtt.p99),
    ['node /metrics: messages per conversation commit (mean)', fmt(median(node.map((r) => r.metrics?.messagesPerConvCommit ?? NaN)), 2), '—', '—', '—'],
    ['node /metrics: conversation commit latency ms (mean)', fmt(median(node.map((r) => r.metrics?.convCommitMeanMs ?? NaN)), 2), '—', '—', '—'],
    ['node /metrics: event-loop lag p99 ms', fmt(median(node.map((r) => r.metrics?.eventLoopLagP99Ms ?? NaN)), 2), '—', '—', '—'],
    ['CPU of the server process, % of one core (node vs echo server)', fmt(cpuN((c) => c.childPct)), fmt(cpuE((c) => c.childPct)), '—', '—'],
    ['server main thread: % of wall on a CPU (node vs echo server)', fmt(cpuN((c) => c.mainOnCpuPct)), fmt(cpuE((c) => c.mainOnCpuPct)), '—', '—'],
    ['server main thread: % of wall waiting for a CPU (busy machine)', fmt(cpuN((c) => c.mainRunqueuePct)), fmt(cpuE((c) => c.mainRunqueuePct)), '—', '—'],
    ['CPU of the load generator, % of one core', fmt(cpuN((c) => c.loadgenPct)), fmt(cpuE((c) => c.loadgenPct)), '—', '—'],
    ['violations: acks (seq repeated, seq gaps, dup:true, acked twice)', v.acks.text, '—', '—', '0'],
    ['violations: msgs (missing, duplicated, out of order, mismatch)', v.msgs.text, '—', '—', '0'],
    ['violations: receipts (wrong, last one missing, repeated)', v.receipts.text, '—', '—', '0'],
    ['violations: errors (err frames, unacked sends) / echo lost', v.errors.text, String(echoViol), '—', '0'],
    ['acks out of seq order (info; the protocol does not require order)', String(node.reduce((s, r) => s + r.node.acksOutOfOrder, 0)), '—', '—', '—'],
    ['runs ok (node / echo); failed runs', `${node.length} / ${echo.length}`, '—', '—', `failed ${failed}`],
  ];
  return {
    encoding,
    rows,
    violations,
    medians: {
      ...m,
      e2eOverEcho: m.msgsPerSec !== null && m.rtPerSec ? round(m.msgsPerSec / m.rtPerSec, 3) : null,
      framesOverEchoFrames: m.framesPerSec !== null && m.echoFramesPerSec ? round(m.framesPerSec / m.echoFramesPerSec, 3) : null,
      sendToMsgP50: mn((r) => r.sendToMsg.p50),
      sendToMsgP99: mn((r) => r.sendToMsg.p99),
      sendToAckP50: mn((r) => r.sendToAck.p50),
      sendToAckP99: mn((r) => r.sendToAck.p99),
      sendToReceiptP50: mn((r) => r.sendToReceipt.p50),
      sendToReceiptP99: mn((r) => r.sendToReceipt.p99),
      echoRttP50: me((r) => r.rtt.p50),
      echoRttP99: me((r) => r.rtt.p99),
      nodeCpuPct: cpuN((c) => c.childPct),
      echoServerCpuPct: cpuE((c) => c.childPct),
      nodeMainOnCpuPct: cpuN((c) => c.mainOnCpuPct),
      nodeMainRunqueuePct: cpuN((c) => c.mainRunqueuePct),
      echoMainOnCpuPct: cpuE((c) => c.mainOnCpuPct),
      echoMainRunqueuePct: cpuE((c) => c.mainRunqueuePct),
      loadgenCpuPctNode: cpuN((c) => c.loadgenPct),
      loadgenCpuPctEcho: cpuE((c) => c.loadgenPct),
    },
  };
}

export async function runWsSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const profDir = ctx.profDir ? join(ctx.profDir, 'ws') : null;
  if (profDir) mkdirSync(profDir, { recursive: true });
  progress(
    `ws suite: ${s.pairs} pairs, window ${s.window}, ${s.seconds} s window after ${s.warmupSeconds} s warm-up, ` +
      `${s.runs} run(s) × [${s.encodings.join(', ')}], ${availableParallelism()} cores, node ${process.version}`,
  );
  const runs: RunRecord[] = [];
  const plan = s.runs * s.encodings.length * 2;
  let n = 0;
  for (let r = 1; r <= s.runs; r++) {
    for (const encoding of s.encodings) {
      for (const kind of ['echo', 'node'] as const) {
        const label = `[ws ${++n}/${plan} ${kind} ${encoding}]`;
        const rec: RunRecord = { round: r, kind, encoding, ok: false, cpu: null };
        try {
          Object.assign(rec, kind === 'echo' ? await echoRun(s, encoding, label) : await nodeRun(s, encoding, label, profDir));
          rec.ok = true;
          if (rec.echo) {
            const e = rec.echo;
            progress(`${label} done: ${fmt(e.roundTripsPerSec)} round trips/s, RTT p50 ${e.rtt.p50} ms p99 ${e.rtt.p99} ms, server CPU ${rec.cpu?.childPct ?? 'n/a'} % (main thread on CPU ${rec.cpu?.mainOnCpuPct ?? 'n/a'} %, waiting for CPU ${rec.cpu?.mainRunqueuePct ?? 'n/a'} %)`);
          } else if (rec.node) {
            const e = rec.node;
            const bad = Object.values(e.violations).reduce((x, y) => x + y, 0);
            progress(
              `${label} done: ${fmt(e.msgsPerSec)} msgs/s, ${fmt(e.framesPerSec)} frames/s, push p50 ${e.sendToMsg.p50} ms p99 ${e.sendToMsg.p99} ms, ` +
                `ack p50 ${e.sendToAck.p50} ms, node CPU ${rec.cpu?.childPct ?? 'n/a'} % (main thread on CPU ${rec.cpu?.mainOnCpuPct ?? 'n/a'} %, waiting for CPU ${rec.cpu?.mainRunqueuePct ?? 'n/a'} %), violations ${bad}`,
            );
          }
        } catch (err) {
          rec.error = errText(err);
          progress(`${label} FAILED: ${rec.error}`);
        }
        runs.push(rec);
      }
    }
  }
  const summaries = s.encodings.map((e) => summarise(e, runs));
  const profiles = profDir ? readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => summariseProfile(join(profDir, f))) : [];
  return {
    suite: 'ws',
    header:
      `ws — node (embedded SQLite store) vs raw ws echo: ${s.pairs} DM pairs (echo: ${s.pairs} connections), window ${s.window}, ` +
      `${Buffer.byteLength(BODY)}-byte bodies, ${s.seconds} s measured after ${s.warmupSeconds} s warm-up, medians of ${s.runs} alternated run(s)`,
    tables: summaries.map((x) => ({
      title: `${x.encoding.toUpperCase()} (send frame ${runs.find((r) => r.encoding === x.encoding && r.node)?.node?.frameBytes ?? '?'} bytes)`,
      rows: x.rows,
    })),
    summary: summaries.map(({ encoding, medians, violations, rows }) => ({ encoding, medians, violations, table: rows })),
    runs,
    violations: summaries.reduce((x, y) => x + y.violations, 0),
    versions: {},
    profiles,
  };
}
