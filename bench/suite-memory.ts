/**
 * The `memory` suite: resident memory per signed-in idle connection. A fresh node: RSS, then
 * N connections (spread over several loopback source addresses) each hello → synced, a
 * settle, RSS again: (after − before) ÷ N. The baseline: a raw `ws` server (bench/raw-server.ts
 * idle: one frame in, one out per socket) holding N sockets the same way. Runs alternate
 * (raw, node, ...); medians. Also checks that all N stayed connected through the settle.
 */
import { type Encoding, codec, pool, round } from './loadgen.js';
import { type Row, errText, fmt, median, progress, ratio, sleep } from './common.js';
import { type Server, connectFrom, hello, rssBytes, sourceAddress, startNode, startRaw } from './extra.js';
import type { SuiteContext, SuiteReport } from './suite.js';
import type WebSocket from 'ws';

interface MemRun {
  round: number;
  kind: 'raw' | 'node';
  ok: boolean;
  error?: string;
  conns: number;
  rssBefore?: number;
  rssAfter?: number;
  bytesPerConn?: number;
  connectSeconds?: number;
  stayed?: number;
  metricsRss?: number | null;
}

const SPREAD = 8;

async function metricsRss(base: string): Promise<number | null> {
  try {
    const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text());
    const m = text.match(/^sb_process_resident_memory_bytes(?:\{[^}]*\})? ([0-9.eE+-]+)$/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function oneRun(kind: 'raw' | 'node', n: number, encoding: Encoding, settleMs: number, ctx: SuiteContext, label: string): Promise<Omit<MemRun, 'round' | 'kind' | 'ok'>> {
  const c = codec(encoding);
  const server: Server = kind === 'node' ? await startNode(ctx.settings) : await startRaw('idle');
  const all: WebSocket[] = [];
  let closed = 0;
  try {
    await sleep(1000);
    const rssBefore = rssBytes(server.child.pid)!;
    const t0 = performance.now();
    const ids = Array.from({ length: n }, (_, i) => i);
    let done = 0;
    const tick = setInterval(() => progress(`${label} ${done}/${n} signed in`), 2000);
    try {
      await pool(ids, 64, async (i) => {
        const ws = await connectFrom(server.url, c.protocol, sourceAddress(i, SPREAD), 30_000);
        all.push(ws);
        ws.once('close', () => closed++);
        const user = `m${String(i).padStart(6, '0')}`;
        await hello(ws, c, user, server.token(user), 30_000);
        done++;
      });
    } finally {
      clearInterval(tick);
    }
    const connectSeconds = (performance.now() - t0) / 1000;
    await sleep(settleMs);
    const rssAfter = rssBytes(server.child.pid)!;
    const stayed = Math.min(all.filter((ws) => ws.readyState === 1).length, n - closed);
    const mRss = server.base ? await metricsRss(server.base) : null;
    return { conns: n, rssBefore, rssAfter, bytesPerConn: round((rssAfter - rssBefore) / n, 0), connectSeconds: round(connectSeconds, 2), stayed, metricsRss: mRss };
  } finally {
    for (const ws of all) ws.terminate();
    await server.stop();
  }
}

export async function runMemorySuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const n = s.memConns;
  const settleMs = s.quick ? 1000 : 3000;
  progress(`memory suite: ${n} signed-in idle connections over ${SPREAD} source addresses, ${s.runs} run(s), ${s.encoding}`);
  const runs: MemRun[] = [];
  const plan = s.runs * 2;
  let k = 0;
  for (let r = 1; r <= s.runs; r++) {
    for (const kind of ['raw', 'node'] as const) {
      const label = `[memory ${++k}/${plan} ${kind}]`;
      const rec: MemRun = { round: r, kind, ok: false, conns: n };
      try {
        Object.assign(rec, await oneRun(kind, n, s.encoding, settleMs, ctx, label));
        rec.ok = rec.stayed === n;
        progress(`${label} done: ${fmt(rec.bytesPerConn)} B/conn (RSS ${fmt((rec.rssBefore ?? 0) / 2 ** 20, 1)} → ${fmt((rec.rssAfter ?? 0) / 2 ** 20, 1)} MiB), ${rec.stayed}/${n} connected, signed in in ${rec.connectSeconds} s`);
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
      }
      runs.push(rec);
    }
  }
  const ok = (kind: string) => runs.filter((r) => r.kind === kind && r.ok);
  const m = (kind: string, f: (r: MemRun) => number | null | undefined) => median(ok(kind).map((r) => f(r) ?? NaN));
  const node = m('node', (r) => r.bytesPerConn);
  const raw = m('raw', (r) => r.bytesPerConn);
  const failed = runs.filter((r) => !r.ok).length;
  const stayedN = runs.filter((r) => r.kind === 'node').map((r) => `${r.stayed ?? 0}/${n}`).join(', ');
  const stayedR = runs.filter((r) => r.kind === 'raw').map((r) => `${r.stayed ?? 0}/${n}`).join(', ');
  const rows: Row[] = [
    ['RSS per signed-in idle connection, KiB (node vs raw ws)', fmt(node === null ? null : node / 1024, 2), fmt(raw === null ? null : raw / 1024, 2), ratio(node, raw), '≤ 1.20'],
    ['RSS before, MiB', fmt((m('node', (r) => r.rssBefore) ?? NaN) / 2 ** 20, 1), fmt((m('raw', (r) => r.rssBefore) ?? NaN) / 2 ** 20, 1), '—', '—'],
    [`RSS after ${fmt(n)} connections, MiB`, fmt((m('node', (r) => r.rssAfter) ?? NaN) / 2 ** 20, 1), fmt((m('raw', (r) => r.rssAfter) ?? NaN) / 2 ** 20, 1), '—', '—'],
    ['node /metrics sb_process_resident_memory_bytes after, MiB', fmt((m('node', (r) => r.metricsRss) ?? NaN) / 2 ** 20, 1), '—', '—', '—'],
    ['connect + hello → synced for all N, s', fmt(m('node', (r) => r.connectSeconds), 2), fmt(m('raw', (r) => r.connectSeconds), 2), '—', '—'],
    ['still connected after the settle (per run)', stayedN, stayedR, '—', `${fmt(n)}`],
    ['runs ok (node / raw); failed runs', `${ok('node').length} / ${ok('raw').length}`, '—', '—', `failed ${failed}`],
  ];
  return {
    suite: 'memory',
    header: `memory — RSS growth per signed-in idle connection, ${fmt(n)} connections over ${SPREAD} loopback source addresses, ${s.encoding}, settle ${settleMs / 1000} s; medians of ${s.runs} alternated run(s) (RSS from /proc VmRSS of the server process)`,
    tables: [{ title: `memory per connection (${fmt(n)} idle, signed in)`, rows }],
    summary: { nodeBytesPerConn: node, rawBytesPerConn: raw, ratio: node !== null && raw ? round(node / raw, 3) : null },
    runs,
    violations: failed,
    versions: {},
    profiles: [],
  };
}
