/**
 * The `backlog` suite: backlog drain after reconnect. A fresh node; one user sends N DMs to a
 * recipient that is offline (acked, window 100); then the recipient connects and says hello:
 * hello → `synced` time, and N ÷ that time = msgs/s drained (every message checked: all of
 * them, in seq order, no duplicates). The baseline: a raw `ws` server (bench/raw-server.ts
 * burst) asked to push N frames of the same size (the node's `msg` frame, same encoding) to
 * one socket, then one small frame: request → last frame. Runs alternate; medians.
 */
import { BODY, codec, round } from './loadgen.js';
import { type Row, errText, fmt, median, progress, ratio, sleep } from './common.js';
import { connectFrom, decode, hello, startNode, startRaw } from './extra.js';
import type { SuiteContext, SuiteReport } from './suite.js';

interface BacklogRun {
  round: number;
  kind: 'raw' | 'node';
  ok: boolean;
  error?: string;
  n: number;
  received?: number;
  drainMs?: number;
  msgsPerSec?: number;
  fillSeconds?: number;
  outOfOrder?: number;
  frameBytes?: number;
}

const FROM = 'bk-sender';
const TO = 'bk-recipient';
const CONV = `dm:${[FROM, TO].sort().join(':')}`;
const cmidOf = (n: number) => `c${String(n).padStart(9, '0')}`;

async function oneRun(kind: 'raw' | 'node', ctx: SuiteContext, label: string): Promise<Omit<BacklogRun, 'round' | 'kind' | 'ok' | 'n'>> {
  const s = ctx.settings;
  const N = s.backlogMsgs;
  const c = codec(s.encoding);
  const sample = c.encode({ t: 'msg', conv: CONV, seq: N, from: FROM, cmid: cmidOf(N), ts: Date.now(), kind: 'text', body: BODY });
  const frameBytes = Buffer.byteLength(sample);
  if (kind === 'raw') {
    const server = await startRaw('burst');
    try {
      const ws = await connectFrom(server.url, c.protocol, '127.0.0.1', 10_000);
      try {
        let received = 0;
        const t0 = performance.now();
        const done = new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('raw burst: not done within 120 s')), 120_000);
          ws.on('message', (data: Buffer, isBinary: boolean) => {
            const f = decode(c, data, isBinary);
            if (f.t === 'synced') {
              clearTimeout(timer);
              resolve(performance.now() - t0);
            } else received++;
          });
        });
        ws.send(JSON.stringify({ n: N, frame: Buffer.from(sample).toString('base64'), binary: typeof sample !== 'string' }));
        const drainMs = await done;
        return { received, drainMs: round(drainMs, 2), msgsPerSec: round(received / (drainMs / 1000)), outOfOrder: 0, frameBytes };
      } finally {
        ws.terminate();
      }
    } finally {
      await server.stop();
    }
  }
  const server = await startNode(s);
  try {
    // Fill: the sender sends N messages, window 100, every one acked; the recipient is offline.
    const t0 = performance.now();
    const snd = await connectFrom(server.url, c.protocol, '127.0.0.2', 10_000);
    try {
      await hello(snd, c, FROM, server.token(FROM), 10_000);
      await new Promise<void>((resolve, reject) => {
        let next = 1;
        let acked = 0;
        const timer = setTimeout(() => reject(new Error(`fill: ${acked}/${N} acked within 300 s`)), 300_000);
        const sendOne = () => {
          const n = next++;
          snd.send(c.encode({ t: 'send', id: n, to: TO, cmid: cmidOf(n), body: BODY }));
        };
        snd.on('message', (data: Buffer, isBinary: boolean) => {
          const f = decode(c, data, isBinary);
          if (f.t === 'err') {
            clearTimeout(timer);
            reject(new Error(`fill: err ${String(f.code)} ${String(f.msg)}`));
          } else if (f.t === 'ack') {
            if (++acked === N) {
              clearTimeout(timer);
              resolve();
            } else if (next <= N) sendOne();
          }
        });
        for (let w = 0; w < Math.min(100, N); w++) sendOne();
      });
    } finally {
      snd.terminate();
    }
    const fillSeconds = round((performance.now() - t0) / 1000, 2);
    progress(`${label} ${N} messages waiting (filled in ${fillSeconds} s); the recipient says hello`);
    await sleep(500);
    const ws = await connectFrom(server.url, c.protocol, '127.0.0.3', 10_000);
    try {
      let received = 0;
      let last = 0;
      let outOfOrder = 0;
      const seqs = new Set<number>();
      const drainMs = await hello(ws, c, TO, server.token(TO), 120_000, (f) => {
        if (f.t !== 'msg' || f.conv !== CONV) return;
        const seq = f.seq as number;
        if (seq <= last || seqs.has(seq) || f.body !== BODY) outOfOrder++;
        seqs.add(seq);
        last = seq;
        received++;
      });
      return { received, drainMs: round(drainMs, 2), msgsPerSec: round(received / (drainMs / 1000)), fillSeconds, outOfOrder, frameBytes };
    } finally {
      ws.terminate();
    }
  } finally {
    await server.stop();
  }
}

export async function runBacklogSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const N = s.backlogMsgs;
  progress(`backlog suite: ${N} messages waiting for one offline user, ${s.runs} run(s), ${s.encoding}`);
  const runs: BacklogRun[] = [];
  const plan = s.runs * 2;
  let k = 0;
  for (let r = 1; r <= s.runs; r++) {
    for (const kind of ['raw', 'node'] as const) {
      const label = `[backlog ${++k}/${plan} ${kind}]`;
      const rec: BacklogRun = { round: r, kind, ok: false, n: N };
      try {
        Object.assign(rec, await oneRun(kind, ctx, label));
        rec.ok = rec.received === N && rec.outOfOrder === 0;
        progress(`${label} done: ${rec.received}/${N} in ${rec.drainMs} ms = ${fmt(rec.msgsPerSec)} msgs/s${rec.outOfOrder ? `, ${rec.outOfOrder} out of order/duplicated/mismatched` : ''}`);
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
      }
      runs.push(rec);
    }
  }
  const ok = (kind: string) => runs.filter((r) => r.kind === kind && r.ok);
  const m = (kind: string, f: (r: BacklogRun) => number | null | undefined) => median(ok(kind).map((r) => f(r) ?? NaN));
  const rN = m('node', (r) => r.msgsPerSec);
  const rR = m('raw', (r) => r.msgsPerSec);
  const failed = runs.filter((r) => !r.ok).length;
  const rows: Row[] = [
    ['backlog drained, msgs/s (hello → synced) vs raw push of N frames', fmt(rN), fmt(rR), ratio(rN, rR), '≥ 0.50'],
    [`hello → synced ms (raw: request → last frame), ${fmt(N)} msgs`, fmt(m('node', (r) => r.drainMs), 1), fmt(m('raw', (r) => r.drainMs), 1), ratio(m('node', (r) => r.drainMs), m('raw', (r) => r.drainMs)), '—'],
    ['frame bytes (msg push)', fmt(m('node', (r) => r.frameBytes)), fmt(m('raw', (r) => r.frameBytes)), '—', '—'],
    ['fill: N sends acked (window 100), s', fmt(m('node', (r) => r.fillSeconds), 2), '—', '—', '—'],
    ['received / expected (per node run)', runs.filter((r) => r.kind === 'node').map((r) => `${r.received ?? 0}/${N}`).join(', '), '—', '—', `${fmt(N)}`],
    ['violations: out of order / duplicated / mismatched', String(runs.reduce((a, r) => a + (r.outOfOrder ?? 0), 0)), '—', '—', '0'],
    ['runs ok (node / raw); failed runs', `${ok('node').length} / ${ok('raw').length}`, '—', '—', `failed ${failed}`],
  ];
  return {
    suite: 'backlog',
    header: `backlog — ${fmt(N)} messages waiting for one offline user, drained at hello, vs a raw ws server pushing ${fmt(N)} same-size frames to one socket; ${s.encoding}; medians of ${s.runs} alternated run(s)`,
    tables: [{ title: `backlog drain (${fmt(N)} messages)`, rows }],
    summary: { nodeMsgsPerSec: rN, rawMsgsPerSec: rR },
    runs,
    violations: failed,
    versions: {},
    profiles: [],
  };
}
