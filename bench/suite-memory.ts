/**
 * The `memory` suite: resident memory per signed-in idle connection. A fresh node: RSS, then
 * N connections (spread over several loopback source addresses) each hello → synced, a
 * settle, RSS again: (after − before) ÷ N. The baseline: a raw `ws` server (bench/raw-server.ts
 * idle: one frame in, one out per socket) holding N sockets the same way. Runs alternate
 * (raw, node, ...); medians. Also checks that all N stayed connected through the settle.
 *
 * Then the same at 100,000 connections, if the open-file limits allow: every socket takes a
 * descriptor on both sides (the server and this process). The servers start with their soft
 * limit raised to the hard one (bench/extra.ts); the count attempted is clamped to what the
 * limits of both sides allow (checked up front, and again from /proc/<pid>/limits of the
 * started server), and the table says so: "100,000 not attempted: hard limit N".
 */
import { type Encoding, codec, pool, round } from './loadgen.js';
import { type Row, errText, fmt, median, progress, ratio, sleep } from './common.js';
import { type Server, connectFrom, hello, nofileLimits, rssBytes, sourceAddress, startNode, startRaw } from './extra.js';
import type { SuiteContext, SuiteReport } from './suite.js';
import type WebSocket from 'ws';

interface MemRun {
  round: number;
  kind: 'raw' | 'node';
  /** main: the --mem-conns runs; large: the 100,000 attempt (possibly clamped). */
  size: 'main' | 'large';
  ok: boolean;
  error?: string;
  conns: number;
  /** The server's open-file limits once started. */
  serverNofile?: { soft: number; hard: number } | null;
  rssBefore?: number;
  rssAfter?: number;
  bytesPerConn?: number;
  connectSeconds?: number;
  stayed?: number;
  metricsRss?: number | null;
}

const SPREAD = 8;
/**
 * Source addresses of the large attempt: at least SPREAD, and about 1,000 sockets per address
 * (a client socket bound to an address takes a port of that address, and the earlier runs
 * leave theirs in TIME_WAIT: fewer per address keeps connects from stalling on ports).
 */
const largeSpread = (n: number) => Math.max(SPREAD, Math.ceil(n / 1000));
/** The large attempt. */
const LARGE = 100_000;
/** Descriptors each side needs besides the sockets (stdio, the store, pipes, the event loop). */
const FD_RESERVE = 200;

/** Sockets the limits of this process and a server with these limits allow. */
function fdRoom(server: { soft: number } | null): number {
  const self = nofileLimits('self');
  return Math.min(self?.soft ?? Infinity, server?.soft ?? Infinity) - FD_RESERVE;
}

const limitText = (l: { soft: number; hard: number } | null) => (l ? `soft ${fmt(l.soft)} / hard ${fmt(l.hard)}` : 'unknown');

async function metricsRss(base: string): Promise<number | null> {
  try {
    const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text());
    const m = text.match(/^sb_process_resident_memory_bytes(?:\{[^}]*\})? ([0-9.eE+-]+)$/m);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function oneRun(kind: 'raw' | 'node', wanted: number, large: boolean, encoding: Encoding, settleMs: number, ctx: SuiteContext, label: string): Promise<Omit<MemRun, 'round' | 'kind' | 'ok' | 'size'>> {
  const c = codec(encoding);
  const server: Server = kind === 'node' ? await startNode(ctx.settings) : await startRaw('idle');
  const all: WebSocket[] = [];
  let closed = 0;
  try {
    // The server's own limit, as started (its soft limit raised to the hard one, if it could).
    const serverNofile = nofileLimits(server.child.pid);
    const n = Math.min(wanted, fdRoom(serverNofile));
    if (n < wanted) progress(`${label} clamped to ${fmt(n)} connections: open-file limits (server ${limitText(serverNofile)}, bench ${limitText(nofileLimits('self'))})`);
    if (n < 1) throw new Error(`no room for connections: open-file limits (server ${limitText(serverNofile)}, bench ${limitText(nofileLimits('self'))})`);
    const spread = large ? largeSpread(n) : SPREAD;
    await sleep(1000);
    const rssBefore = rssBytes(server.child.pid)!;
    const t0 = performance.now();
    const ids = Array.from({ length: n }, (_, i) => i);
    let done = 0;
    const tick = setInterval(() => progress(`${label} ${done}/${n} signed in`), 2000);
    try {
      await pool(ids, 64, async (i) => {
        const ws = await connectFrom(server.url, c.protocol, sourceAddress(i, spread), 30_000);
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
    return { conns: n, serverNofile, rssBefore, rssAfter, bytesPerConn: round((rssAfter - rssBefore) / n, 0), connectSeconds: round(connectSeconds, 2), stayed, metricsRss: mRss };
  } finally {
    for (const ws of all) ws.terminate();
    await server.stop();
  }
}

async function runSize(size: 'main' | 'large', n: number, ctx: SuiteContext, settleMs: number, runs: MemRun[], step: { k: number; plan: number }): Promise<void> {
  const s = ctx.settings;
  for (let r = 1; r <= s.runs; r++) {
    for (const kind of ['raw', 'node'] as const) {
      const label = `[memory ${++step.k}/${step.plan} ${kind}${size === 'large' ? ' large' : ''}]`;
      const rec: MemRun = { round: r, kind, size, ok: false, conns: n };
      try {
        Object.assign(rec, await oneRun(kind, n, size === 'large', s.encoding, settleMs, ctx, label));
        rec.ok = rec.stayed === rec.conns;
        progress(`${label} done: ${fmt(rec.bytesPerConn)} B/conn (RSS ${fmt((rec.rssBefore ?? 0) / 2 ** 20, 1)} → ${fmt((rec.rssAfter ?? 0) / 2 ** 20, 1)} MiB), ${rec.stayed}/${rec.conns} connected, signed in in ${rec.connectSeconds} s`);
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
      }
      runs.push(rec);
    }
  }
}

export async function runMemorySuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const settleMs = s.quick ? 1000 : 3000;
  // Up front: the servers inherit this process's hard limit and raise their soft limit to it.
  const self = nofileLimits('self');
  const expectedServer = self ? { soft: self.hard, hard: self.hard } : null;
  const room = fdRoom(expectedServer);
  const n = Math.min(s.memConns, room);
  if (n < s.memConns) progress(`memory suite: ${fmt(s.memConns)} connections do not fit the open-file limits (bench ${limitText(self)}): ${fmt(n)} attempted`);
  // The large attempt: 100,000, or as many as the limits allow (if that is more than the main runs).
  const large = s.quick ? 0 : Math.min(LARGE, room);
  const largeNote = s.quick
    ? `${fmt(LARGE)} not attempted: --quick`
    : room >= LARGE
      ? `${fmt(LARGE)} attempted`
      : `${fmt(LARGE)} not attempted: hard limit ${fmt(self?.hard ?? NaN)} (open files, both the server and this process; ${fmt(room)} connections fit)${large > n ? `; ${fmt(large)} attempted instead` : ''}`;
  const doLarge = large > n;
  progress(`memory suite: ${fmt(n)} signed-in idle connections over ${SPREAD} source addresses, ${s.runs} run(s), ${s.encoding}; open files: bench ${limitText(self)}; ${largeNote}`);
  const runs: MemRun[] = [];
  const step = { k: 0, plan: s.runs * 2 * (doLarge ? 2 : 1) };
  await runSize('main', n, ctx, settleMs, runs, step);
  if (doLarge) await runSize('large', large, ctx, settleMs, runs, step);

  const ok = (kind: string, size: string) => runs.filter((r) => r.kind === kind && r.size === size && r.ok);
  const m = (kind: string, f: (r: MemRun) => number | null | undefined, size = 'main') => median(ok(kind, size).map((r) => f(r) ?? NaN));
  const node = m('node', (r) => r.bytesPerConn);
  const raw = m('raw', (r) => r.bytesPerConn);
  const failed = runs.filter((r) => !r.ok).length;
  const stayed = (kind: string, size: string) =>
    runs
      .filter((r) => r.kind === kind && r.size === size)
      .map((r) => `${r.stayed ?? 0}/${r.conns}`)
      .join(', ');
  const serverLimits = [...new Set(runs.filter((r) => r.serverNofile).map((r) => `${r.kind} ${limitText(r.serverNofile!)}`))].join('; ');
  const rows: Row[] = [
    ['RSS per signed-in idle connection, KiB (node vs raw ws)', fmt(node === null ? null : node / 1024, 2), fmt(raw === null ? null : raw / 1024, 2), ratio(node, raw), '≤ 1.20'],
    ['RSS before, MiB', fmt((m('node', (r) => r.rssBefore) ?? NaN) / 2 ** 20, 1), fmt((m('raw', (r) => r.rssBefore) ?? NaN) / 2 ** 20, 1), '—', '—'],
    [`RSS after ${fmt(n)} connections, MiB`, fmt((m('node', (r) => r.rssAfter) ?? NaN) / 2 ** 20, 1), fmt((m('raw', (r) => r.rssAfter) ?? NaN) / 2 ** 20, 1), '—', '—'],
    ['node /metrics sb_process_resident_memory_bytes after, MiB', fmt((m('node', (r) => r.metricsRss) ?? NaN) / 2 ** 20, 1), '—', '—', '—'],
    ['connect + hello → synced for all N, s', fmt(m('node', (r) => r.connectSeconds), 2), fmt(m('raw', (r) => r.connectSeconds), 2), '—', '—'],
    ['still connected after the settle (per run)', stayed('node', 'main'), stayed('raw', 'main'), '—', `${fmt(n)}`],
    ['runs ok (node / raw); failed runs', `${ok('node', 'main').length} / ${ok('raw', 'main').length}`, '—', '—', `failed ${failed}`],
  ];
  const largeNode = m('node', (r) => r.bytesPerConn, 'large');
  const largeRaw = m('raw', (r) => r.bytesPerConn, 'large');
  const largeRows: Row[] = [
    [`${fmt(LARGE)} connections`, largeNote, '—', '—', '—'],
    ['open-file limits (soft / hard)', `bench ${limitText(self)}`, serverLimits || '—', '—', '—'],
  ];
  if (doLarge) {
    largeRows.push(
      [`RSS per signed-in idle connection at ${fmt(large)}, KiB`, fmt(largeNode === null ? null : largeNode / 1024, 2), fmt(largeRaw === null ? null : largeRaw / 1024, 2), ratio(largeNode, largeRaw), '≤ 1.20'],
      [`RSS after ${fmt(large)} connections, MiB`, fmt((m('node', (r) => r.rssAfter, 'large') ?? NaN) / 2 ** 20, 1), fmt((m('raw', (r) => r.rssAfter, 'large') ?? NaN) / 2 ** 20, 1), '—', '—'],
      ['connect + hello → synced for all, s', fmt(m('node', (r) => r.connectSeconds, 'large'), 2), fmt(m('raw', (r) => r.connectSeconds, 'large'), 2), '—', '—'],
      ['still connected after the settle (per run)', stayed('node', 'large'), stayed('raw', 'large'), '—', `${fmt(large)}`],
    );
  }
  return {
    suite: 'memory',
    header: `memory — RSS growth per signed-in idle connection, ${fmt(n)} connections over ${SPREAD} loopback source addresses (the large attempt: ${largeSpread(large)}), ${s.encoding}, settle ${settleMs / 1000} s; medians of ${s.runs} alternated run(s) (RSS from /proc VmRSS of the server process); ${largeNote}`,
    tables: [
      { title: `memory per connection (${fmt(n)} idle, signed in)`, rows },
      { title: `the ${fmt(LARGE)} attempt`, rows: largeRows },
    ],
    summary: {
      nodeBytesPerConn: node,
      rawBytesPerConn: raw,
      ratio: node !== null && raw ? round(node / raw, 3) : null,
      largeTarget: LARGE,
      largeAttempted: doLarge ? large : 0,
      largeNote,
      largeNodeBytesPerConn: largeNode,
      largeRawBytesPerConn: largeRaw,
      largeRatio: largeNode !== null && largeRaw ? round(largeNode / largeRaw, 3) : null,
      benchNofile: self,
    },
    runs,
    violations: failed,
    versions: {},
    profiles: [],
  };
}
