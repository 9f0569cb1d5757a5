/**
 * What the suites share: paths, progress lines, medians, the report table, CPU meters over
 * several processes, a node's /metrics and /healthz, the sweep of what killed benches left.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cpuSeconds, mainThreadSched } from './children.js';
import { round } from './loadgen.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS = join(ROOT, 'bench', 'results');
export const GUARD = pathToFileURL(join(ROOT, 'bench', 'guard.mjs')).href;
export const NODE_ENTRY = join(ROOT, 'dist', 'node.js');
/** Temp dirs of this bench: `sb-bench-<our pid>-…` (swept once our pid is gone). */
export const TMP_PREFIX = `sb-bench-${process.pid}-`;

const t0 = performance.now();
export const progress = (line: string): void => {
  process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
};
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export const median = (xs: Array<number | null | undefined>): number | null => {
  const s = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const fmt = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
export const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? 'n/a' : (a / b).toFixed(2));
export const ratioNum = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b, 3));

export type Row = [metric: string, value: string, baseline: string, ratio: string, target: string];

export function table(rows: Row[]): string {
  const head: Row = ['metric', 'value', 'baseline', 'ratio', 'target'];
  const all = [head, ...rows];
  const width = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: Row) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join(' | ')} |`;
  return [line(head), `|${width.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

export const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

// ------------------------------------------------------------------------------ CPU

/** % of one core per process group over the measuring window, and the bench's own. */
export interface GroupCpu {
  /** label → % of one core (all threads of all the group's processes). */
  groups: Record<string, number | null>;
  /** Main threads of the Node processes in `mainThreads`: % of the window on a CPU / waiting for one (summed). */
  mainOnCpuPct: number | null;
  mainRunqueuePct: number | null;
  loadgenPct: number;
  /** Everything above plus the bench, % of one core (the machine has `cores` × 100). */
  totalPct: number | null;
}

/**
 * Samples the CPU time of labelled process groups (e.g. nodes, nats-servers, cassandra) and
 * of this process at the window's edges; `mainThreads` are Node pids whose main thread is
 * sampled too.
 */
export function groupCpuMeter(groups: Record<string, number[]>, mainThreads: number[] = []) {
  const sum = (pids: number[]) => {
    let s = 0;
    for (const p of pids) {
      const c = cpuSeconds(p);
      if (c === null) return null;
      s += c;
    }
    return s;
  };
  const sched = () => {
    let run = 0;
    let wait = 0;
    for (const p of mainThreads) {
      const x = mainThreadSched(p);
      if (!x) return null;
      run += x[0];
      wait += x[1];
    }
    return [run, wait] as const;
  };
  let start: { g: Record<string, number | null>; sched: readonly [number, number] | null; self: NodeJS.CpuUsage; t: number } | null = null;
  let result: GroupCpu | null = null;
  return {
    onWindow(edge: 'start' | 'end') {
      if (edge === 'start') {
        start = { g: Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, sum(pids)])), sched: sched(), self: process.cpuUsage(), t: performance.now() };
      } else if (start) {
        const wall = (performance.now() - start.t) / 1000;
        const self = process.cpuUsage(start.self);
        const out: Record<string, number | null> = {};
        let total: number | null = 0;
        for (const [k, pids] of Object.entries(groups)) {
          const now = sum(pids);
          const before = start.g[k];
          out[k] = now !== null && before !== null && before !== undefined ? round((100 * (now - before)) / wall) : null;
          total = total === null || out[k] === null ? null : total + out[k]!;
        }
        const s = sched();
        const loadgenPct = round((100 * (self.user + self.system)) / 1e6 / wall);
        result = {
          groups: out,
          mainOnCpuPct: s && start.sched && mainThreads.length ? round((s[0] - start.sched[0]) / 1e7 / wall) : null,
          mainRunqueuePct: s && start.sched && mainThreads.length ? round((s[1] - start.sched[1]) / 1e7 / wall) : null,
          loadgenPct,
          totalPct: total === null ? null : round(total + loadgenPct),
        };
      }
    },
    get: () => result,
  };
}

// ------------------------------------------------------------------------------ a node over HTTP

export async function waitHealthz(base: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > until) throw new Error(`${base}/healthz: not 200 within ${Math.round(timeoutMs / 1000)} s`);
    await sleep(100);
  }
}

/** A node's own figures from /metrics (read after the drain: the whole run, warm-up included). */
export interface NodeMetrics {
  committed: number;
  commits: number;
  messagesPerConvCommit: number | null;
  convCommitMeanMs: number | null;
  eventLoopLagP99Ms: number | null;
  eventLoopLagMeanMs: number | null;
  redeliveries: number;
  deadLetters: number;
  /** err frames sent, by code. */
  errors: Record<string, number>;
}

export async function scrape(base: string): Promise<NodeMetrics | undefined> {
  try {
    const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
    const val = (name: string) => {
      const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm'));
      return m ? Number(m[1]) : NaN;
    };
    const div = (a: number, b: number, k = 1) => (b > 0 && Number.isFinite(a) ? round((a / b) * k, 3) : null);
    const errors: Record<string, number> = {};
    for (const m of text.matchAll(/^sb_errors_total\{code="([^"]+)"\} ([0-9.eE+-]+)$/gm)) errors[m[1]!] = Number(m[2]);
    return {
      committed: val('sb_messages_committed_total'),
      commits: val('sb_commit_batch_messages_count'),
      messagesPerConvCommit: div(val('sb_commit_batch_messages_sum'), val('sb_commit_batch_messages_count')),
      convCommitMeanMs: div(val('sb_commit_seconds_sum'), val('sb_commit_seconds_count'), 1000),
      eventLoopLagP99Ms: div(val('sb_nodejs_eventloop_lag_p99_seconds'), 1, 1000),
      eventLoopLagMeanMs: div(val('sb_nodejs_eventloop_lag_mean_seconds'), 1, 1000),
      redeliveries: val('sb_bus_redeliveries_total'),
      deadLetters: val('sb_bus_dead_letters_total'),
      errors,
    };
  } catch {
    return undefined;
  }
}

/** Several nodes' metrics as one: sums, and means weighted by commits. */
export function mergeMetrics(ms: Array<NodeMetrics | undefined>): NodeMetrics | undefined {
  const xs = ms.filter((m): m is NodeMetrics => m !== undefined);
  if (xs.length === 0) return undefined;
  const sum = (f: (m: NodeMetrics) => number) => xs.reduce((s, m) => s + (Number.isFinite(f(m)) ? f(m) : 0), 0);
  const commits = sum((m) => m.commits);
  const weighted = (f: (m: NodeMetrics) => number | null) =>
    commits > 0 ? round(xs.reduce((s, m) => s + (f(m) ?? 0) * (Number.isFinite(m.commits) ? m.commits : 0), 0) / commits, 3) : null;
  const errors: Record<string, number> = {};
  for (const m of xs) for (const [k, v] of Object.entries(m.errors)) errors[k] = (errors[k] ?? 0) + v;
  return {
    committed: sum((m) => m.committed),
    commits,
    messagesPerConvCommit: weighted((m) => m.messagesPerConvCommit),
    convCommitMeanMs: weighted((m) => m.convCommitMeanMs),
    eventLoopLagP99Ms: median(xs.map((m) => m.eventLoopLagP99Ms)),
    eventLoopLagMeanMs: median(xs.map((m) => m.eventLoopLagMeanMs)),
    redeliveries: sum((m) => m.redeliveries),
    deadLetters: sum((m) => m.deadLetters),
    errors,
  };
}

/** A token from a --dev node's /dev/token. */
export function devToken(base: string) {
  return async (user: string): Promise<string> => {
    const r = await fetch(`${base}/dev/token?user=${encodeURIComponent(user)}`, { signal: AbortSignal.timeout(10_000) });
    if (!r.ok) throw new Error(`/dev/token: HTTP ${r.status}`);
    return ((await r.json()) as { token: string }).token;
  };
}

// ------------------------------------------------------------------------------ housekeeping

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Remove temp dirs left by benches that were killed outright (their PID is gone). A dir may
 * hold `pids.json` ([{pid, marker}]): servers (nats-server) the dead bench started; each is
 * killed if it is still alive and its environment still carries the marker (no PID reuse).
 */
export function sweepStale(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = name.match(/^sb-bench-(\d+)-/);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const dir = join(tmpdir(), name);
    try {
      const list = JSON.parse(readFileSync(join(dir, 'pids.json'), 'utf8')) as Array<{ pid: number; marker: string }>;
      for (const { pid, marker } of list) {
        let env = '';
        try {
          env = readFileSync(`/proc/${pid}/environ`, 'utf8');
        } catch {
          continue;
        }
        if (env.includes(marker)) {
          progress(`sweep: killing pid ${pid} left by a killed bench (${name})`);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    } catch {
      /* no pids.json */
    }
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

/** What the nodes run: dist/node.js's time and a hash of the .js files under dist/ but web/ (other engineers may rebuild between runs). */
export function buildFingerprint(): { distBuiltAt: string | null; distSha1: string | null; srcNewerFiles: number } {
  try {
    const h = createHash('sha1');
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const p = join(dir, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'web') walk(p);
        } else if (e.name.endsWith('.js')) h.update(e.name).update(readFileSync(p));
      }
    };
    walk(dirname(NODE_ENTRY));
    return { distBuiltAt: new Date(statSync(NODE_ENTRY).mtimeMs).toISOString(), distSha1: h.digest('hex').slice(0, 12), srcNewerFiles: srcNewer() };
  } catch {
    return { distBuiltAt: null, distSha1: null, srcNewerFiles: 0 };
  }
}

function srcNewer(): number {
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
  return newer;
}

export function checkBuild(): void {
  if (!existsSync(NODE_ENTRY)) throw new Error(`${relative(ROOT, NODE_ENTRY)} is missing: run \`npm run build\` first`);
  const newer = srcNewer();
  if (newer > 0) progress(`warning: ${newer} file(s) under src/ are newer than dist/node.js: \`npm run build\` to measure them`);
}
