/**
 * `npm run bench [-- flags]`: the node's end-to-end rate against a raw `ws` echo baseline
 * measured in the same run with the same load generator and frame size.
 *
 * Every run starts a fresh child process (the echo server, or `node dist/node.js` on a temp
 * data dir), drives it from this process (warm-up, a fixed measuring window, a bounded
 * drain), checks correctness, and kills the child by PID. Runs alternate (echo, node, echo,
 * node, ...); the table reports medians. Progress goes to stderr, the table to stdout, and
 * everything to bench/results/bench-<timestamp>.json.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Child, cpuSeconds, mainThreadSched, spawnNode, stopChild } from './children.js';
import { BODY, type E2EResult, type EchoResult, type Encoding, round, runE2E, runEcho } from './loadgen.js';
import { formatProfile, summariseProfile, type ProfileSummary } from './profile.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(ROOT, 'bench', 'results');
const GUARD = pathToFileURL(join(ROOT, 'bench', 'guard.mjs')).href;
const NODE_ENTRY = join(ROOT, 'dist', 'node.js');
const BODY_NOTE = `${Buffer.byteLength(BODY)}-byte bodies`;

// ------------------------------------------------------------------------------ flags

const posInt = (max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`an integer from 1 to ${max}`);
  return n;
};
const seconds = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0.2 || n > 120) throw new InvalidArgumentError('seconds from 0.2 to 120');
  return n;
};

const program = new Command('bench')
  .description('Switchboard end-to-end throughput vs a raw ws echo baseline')
  .option('--pairs <n>', 'sender→recipient pairs (the echo baseline uses as many connections)', posInt(2000), 50)
  .option('--window <n>', 'unacked sends per sender (echo: frames in flight per connection)', posInt(1000), 10)
  .option('--seconds <s>', 'measuring window of each run', seconds, 5)
  .option('--runs <n>', 'alternated runs per encoding (medians are reported)', posInt(20), 3)
  .addOption(new Option('--encoding <e>', 'frame encoding (both: JSON rows, then MessagePack rows)').choices(['json', 'msgpack', 'both']).default('both'))
  .option('--quick', 'harness check: 1 s window, 4 pairs, window 4, 1 run, both encodings', false)
  .option('--cpu-prof', 'also write a V8 CPU profile of each node run to bench/results/ and summarise it', false)
  .allowExcessArguments(false);
program.parse(process.argv.slice(2), { from: 'user' });
const raw = program.opts<{ pairs: number; window: number; seconds: number; runs: number; encoding: string; quick: boolean; cpuProf: boolean }>();
const given = (k: string) => program.getOptionValueSource(k) === 'cli';
const quick = raw.quick;
const settings = {
  pairs: quick && !given('pairs') ? 4 : raw.pairs,
  window: quick && !given('window') ? 4 : raw.window,
  seconds: quick && !given('seconds') ? 1 : raw.seconds,
  runs: quick && !given('runs') ? 1 : raw.runs,
  encodings: (raw.encoding === 'both' || (quick && !given('encoding')) ? ['json', 'msgpack'] : [raw.encoding]) as Encoding[],
  warmupSeconds: quick ? 0.5 : 2,
  drainSeconds: 10,
  quick,
  cpuProf: raw.cpuProf,
  echoConnections: 'pairs (the same number of in-flight units: pairs × window)',
  nodeFlags: ['--dev', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', '--rate', '1000000', '--node-id', 'bench'],
  /** SB_* settings inherited by the node from this environment (secrets redacted). */
  nodeEnv: Object.fromEntries(
    Object.entries(process.env)
      .filter(([k]) => k.startsWith('SB_'))
      .map(([k, v]) => [k, /SECRET|TOKEN|PASSWORD/.test(k) ? '(set)' : v]),
  ),
};

// ------------------------------------------------------------------------------ helpers

const t0 = performance.now();
const LOAD_AT_START = loadavg().map((x) => round(x, 2));
const progress = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
const median = (xs: number[]): number | null => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

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

/** Remove data dirs left by benches that were killed outright (their PID is gone). */
function sweepStaleDataDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = name.match(/^sb-bench-(\d+)-/);
    if (!m || Number(m[1]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) rmSync(join(tmpdir(), name), { recursive: true, force: true, maxRetries: 3 });
  }
}

function checkBuild(): void {
  if (!existsSync(NODE_ENTRY)) throw new Error(`${relative(ROOT, NODE_ENTRY)} is missing: run \`npm run build\` first`);
  const built = statSync(NODE_ENTRY).mtimeMs;
  let newer = 0;
  const walk = (dir: string, depth: number) => {
    if (depth > 8) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.name.endsWith('.ts') && statSync(p).mtimeMs > built) newer++;
    }
  };
  walk(join(ROOT, 'src'), 0);
  if (newer > 0) progress(`warning: ${newer} file(s) under src/ are newer than dist/node.js: \`npm run build\` to measure them`);
}

// ------------------------------------------------------------------------------ one run each

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

interface NodeMetrics {
  committed: number;
  messagesPerConvCommit: number | null;
  convCommitMeanMs: number | null;
  eventLoopLagP99Ms: number | null;
  eventLoopLagMeanMs: number | null;
}

async function echoRun(encoding: Encoding, label: string): Promise<Pick<RunRecord, 'echo' | 'cpu' | 'childExit'>> {
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
        connections: settings.pairs,
        window: settings.window,
        warmupMs: settings.warmupSeconds * 1000,
        measureMs: settings.seconds * 1000,
        drainMs: settings.drainSeconds * 1000,
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

/** A few of the node's own figures from /metrics, read after the drain (whole run, warm-up included). */
async function scrape(base: string): Promise<NodeMetrics | undefined> {
  try {
    const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
    const val = (name: string) => {
      const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm'));
      return m ? Number(m[1]) : NaN;
    };
    const div = (a: number, b: number, k = 1) => (b > 0 && Number.isFinite(a) ? round((a / b) * k, 3) : null);
    return {
      committed: val('sb_messages_committed_total'),
      messagesPerConvCommit: div(val('sb_commit_batch_messages_sum'), val('sb_commit_batch_messages_count')),
      convCommitMeanMs: div(val('sb_commit_seconds_sum'), val('sb_commit_seconds_count'), 1000),
      eventLoopLagP99Ms: div(val('sb_nodejs_eventloop_lag_p99_seconds'), 1, 1000),
      eventLoopLagMeanMs: div(val('sb_nodejs_eventloop_lag_mean_seconds'), 1, 1000),
    };
  } catch {
    return undefined;
  }
}

async function nodeRun(encoding: Encoding, label: string, profDir: string | null): Promise<Pick<RunRecord, 'node' | 'cpu' | 'childExit' | 'metrics'>> {
  const dataDir = mkdtempSync(join(tmpdir(), `sb-bench-${process.pid}-`));
  let child: Child | undefined;
  try {
    child = await spawnNode({
      label: 'node',
      args: ['--import', GUARD, ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : []), NODE_ENTRY, ...settings.nodeFlags, '--data-dir', dataDir],
      cwd: ROOT,
      ready: /Switchboard dev node on http:\/\/127\.0\.0\.1:(\d+)/,
      quiet: /^\s+(token|websocket|health):/,
      timeoutMs: 30_000,
    });
    const base = `http://127.0.0.1:${child.ready[1]}`;
    for (let i = 0; ; i++) {
      const ok = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (i >= 100) throw new Error('node: /healthz not 200 within 10 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const meter = cpuMeter(child.pid);
    const node = await runE2E(
      {
        url: `ws://127.0.0.1:${child.ready[1]}/ws`,
        encoding,
        pairs: settings.pairs,
        window: settings.window,
        warmupMs: settings.warmupSeconds * 1000,
        measureMs: settings.seconds * 1000,
        drainMs: settings.drainSeconds * 1000,
        progress,
        onWindow: meter.onWindow,
        token: async (user) => {
          const r = await fetch(`${base}/dev/token?user=${encodeURIComponent(user)}`, { signal: AbortSignal.timeout(10_000) });
          if (!r.ok) throw new Error(`/dev/token: HTTP ${r.status}`);
          return ((await r.json()) as { token: string }).token;
        },
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

// ------------------------------------------------------------------------------ summary

type Row = [metric: string, value: string, baseline: string, ratio: string, target: string];

const fmt = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? 'n/a' : (a / b).toFixed(2));

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
    acks: sumV(['ackSeqRepeated', 'ackSeqGaps', 'ackDup']),
    msgs: sumV(['msgMissing', 'msgDuplicated', 'msgOutOfOrder', 'msgMismatch']),
    receipts: sumV(['receiptBad']),
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
    ['violations: acks (seq repeated, seq gaps, dup:true)', v.acks.text, '—', '—', '0'],
    ['violations: msgs (missing, duplicated, out of order, mismatch)', v.msgs.text, '—', '—', '0'],
    ['violations: receipts (not increasing, last one missing)', v.receipts.text, '—', '—', '0'],
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

function table(rows: Row[]): string {
  const head: Row = ['metric', 'value', 'baseline', 'ratio', 'target'];
  const all = [head, ...rows];
  const width = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: Row) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join(' | ')} |`;
  return [line(head), `|${width.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

// ------------------------------------------------------------------------------ main

async function main(): Promise<number> {
  checkBuild();
  sweepStaleDataDirs();
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
  const profDir = settings.cpuProf ? join(RESULTS, `prof-${stamp}`) : null;
  if (profDir) mkdirSync(profDir, { recursive: true });
  const perRun = settings.warmupSeconds + settings.seconds + settings.drainSeconds + 30 + 10;
  const budgetS = Math.ceil(settings.runs * settings.encodings.length * 2 * perRun + 60);
  setTimeout(() => {
    process.stderr.write(`bench: over its time budget of ${budgetS} s: stopping (children are killed)\n`);
    process.exit(1);
  }, budgetS * 1000).unref();

  progress(
    `bench: ${settings.pairs} pairs, window ${settings.window}, ${settings.seconds} s window after ${settings.warmupSeconds} s warm-up, ` +
      `${settings.runs} run(s) × [${settings.encodings.join(', ')}], ${availableParallelism()} cores, node ${process.version}`,
  );
  if (Object.keys(settings.nodeEnv).length > 0) progress(`the node inherits ${Object.entries(settings.nodeEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const runs: RunRecord[] = [];
  const plan = settings.runs * settings.encodings.length * 2;
  let n = 0;
  for (let r = 1; r <= settings.runs; r++) {
    for (const encoding of settings.encodings) {
      for (const kind of ['echo', 'node'] as const) {
        const label = `[${++n}/${plan} ${kind} ${encoding}]`;
        const rec: RunRecord = { round: r, kind, encoding, ok: false, cpu: null };
        try {
          Object.assign(rec, kind === 'echo' ? await echoRun(encoding, label) : await nodeRun(encoding, label, profDir));
          rec.ok = true;
          if (rec.echo) {
            const e = rec.echo;
            progress(`${label} done: ${fmt(e.roundTripsPerSec)} round trips/s, RTT p50 ${e.rtt.p50} ms p99 ${e.rtt.p99} ms, server CPU ${rec.cpu?.childPct ?? 'n/a'} % (main thread on CPU ${rec.cpu?.mainOnCpuPct ?? 'n/a'} %, waiting for CPU ${rec.cpu?.mainRunqueuePct ?? 'n/a'} %)`);
          } else if (rec.node) {
            const e = rec.node;
            const bad = Object.values(e.violations).reduce((s, x) => s + x, 0);
            progress(
              `${label} done: ${fmt(e.msgsPerSec)} msgs/s, ${fmt(e.framesPerSec)} frames/s, push p50 ${e.sendToMsg.p50} ms p99 ${e.sendToMsg.p99} ms, ` +
                `ack p50 ${e.sendToAck.p50} ms, node CPU ${rec.cpu?.childPct ?? 'n/a'} % (main thread on CPU ${rec.cpu?.mainOnCpuPct ?? 'n/a'} %, waiting for CPU ${rec.cpu?.mainRunqueuePct ?? 'n/a'} %), violations ${bad}`,
            );
          }
        } catch (err) {
          rec.error = err instanceof Error ? err.message : String(err);
          progress(`${label} FAILED: ${rec.error}`);
        }
        runs.push(rec);
      }
    }
  }

  const summaries = settings.encodings.map((e) => summarise(e, runs));
  let profiles: ProfileSummary[] = [];
  if (profDir) {
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(profDir, f));
    profiles = files.map((f) => summariseProfile(f));
    for (const p of profiles.slice(0, 1)) process.stderr.write(`\n${formatProfile(p)}\n`);
  }

  const header = `Switchboard bench — ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}; ` +
    `${settings.pairs} pairs (echo: ${settings.pairs} connections), window ${settings.window}, ${BODY_NOTE}, ` +
    `${settings.seconds} s measured after ${settings.warmupSeconds} s warm-up, medians of ${settings.runs} alternated run(s); ` +
    `load average at start ${LOAD_AT_START.join(' ')}, at end ${loadavg().map((x) => round(x, 2)).join(' ')}`;
  const out = [header];
  for (const s of summaries) {
    const bytes = runs.find((r) => r.encoding === s.encoding && r.node)?.node?.frameBytes;
    out.push('', `${s.encoding.toUpperCase()} (send frame ${bytes ?? '?'} bytes)`, table(s.rows));
  }
  process.stdout.write(`${out.join('\n')}\n`);

  const file = join(RESULTS, `bench-${stamp}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        timestamp: new Date().toISOString(),
        machine: { cores: availableParallelism(), loadavgAtStart: LOAD_AT_START, loadavgAtEnd: loadavg().map((x) => round(x, 2)), cpuModel: cpus()[0]?.model ?? null, totalMemGiB: round(totalmem() / 2 ** 30, 1), platform: `${process.platform}-${process.arch}`, node: process.version },
        settings,
        summary: summaries.map(({ encoding, medians, violations, rows }) => ({ encoding, medians, violations, table: rows })),
        runs,
        profiles,
      },
      null,
      2,
    )}\n`,
  );
  progress(`results: ${relative(ROOT, file)}`);
  const bad = summaries.reduce((s, x) => s + x.violations, 0);
  if (bad > 0) progress(`FAIL: ${bad} violation(s) or failed run(s)`);
  return bad > 0 ? 1 : 0;
}


main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
