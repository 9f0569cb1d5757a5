/**
 * The `group` suite: one group of M members (default 200 = SB_MAX_GROUP's default), a few
 * members sending back to back (W unacked sends each); every message is pushed to the M − 1
 * other members' connections and each push counts as a delivery. The baseline: a raw `ws`
 * server (bench/raw-server.ts broadcast) sending every received frame to all its sockets (the
 * sender's own copy is its "ack"), with the same M clients, senders, window and frame. Then
 * at a fixed 50 sends/s (senders in turn): send → the last member's push, p99. Runs
 * alternate (raw, node, ...); medians. Checks: every delivery arrives, no duplicates.
 */
import type WebSocket from 'ws';
import { BODY, type Encoding, Samples, codec, pool, round } from './loadgen.js';
import { type Row, errText, fmt, median, progress, ratio, sleep } from './common.js';
import { type Server, connectFrom, decode, hello, sourceAddress, startNode, startRaw } from './extra.js';
import type { SuiteContext, SuiteReport } from './suite.js';

interface GroupRun {
  round: number;
  kind: 'raw' | 'node';
  ok: boolean;
  error?: string;
  deliveriesPerSec?: number;
  sendsPerSec?: number;
  lat?: { p50: number | null; p99: number | null; max: number | null; n: number };
  latSends?: number;
  missing?: number;
  duplicated?: number;
  errors?: number;
}

const LAT_RATE = 50;
const cmidOf = (k: number, n: number) => `s${String(k).padStart(2, '0')}n${String(n).padStart(9, '0')}`;
const senderOf = (cmid: string) => Number(cmid.slice(1, 3));

async function oneRun(kind: 'raw' | 'node', ctx: SuiteContext, label: string): Promise<Omit<GroupRun, 'round' | 'kind' | 'ok'>> {
  const s = ctx.settings;
  const M = s.groupMembers;
  const S = Math.min(s.groupSenders2, M);
  const c = codec(s.encoding as Encoding);
  const server: Server = kind === 'node' ? await startNode(s) : await startRaw('broadcast');
  const socks: WebSocket[] = [];
  try {
    const users = Array.from({ length: M }, (_, i) => `gm${String(i).padStart(4, '0')}`);
    await pool(users, 25, async (u) => {
      const i = users.indexOf(u);
      const ws = await connectFrom(server.url, c.protocol, sourceAddress(i, 8), 20_000);
      socks[i] = ws;
      if (kind === 'node') await hello(ws, c, u, server.token(u), 20_000);
    });
    let conv = 'g:raw-broadcast-baseline';
    if (kind === 'node') {
      // Member 0 creates the group; wait until every member has the create (seq 1).
      let got = 0;
      const created = new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('group.create: not pushed to every member within 30 s')), 30_000);
        let id: string | null = null;
        socks.forEach((ws, i) =>
          ws.on('message', function first(data: Buffer, isBinary: boolean) {
            const f = decode(c, data, isBinary);
            if (f.t === 'err') {
              clearTimeout(timer);
              reject(new Error(`group.create: ${String(f.code)} ${String(f.msg)}`));
            }
            if (i === 0 && f.t === 'ok' && f.re === 'create') id = f.conv as string;
            if (f.t === 'msg' && f.kind === 'system') {
              ws.off('message', first);
              if (++got === M) {
                clearTimeout(timer);
                resolve(id ?? (f.conv as string));
              }
            }
          }),
        );
      });
      socks[0]!.send(c.encode({ t: 'group.create', id: 'create', cmid: 'create', title: 'bench group', members: users.slice(1) }));
      conv = await created;
    }

    // Every member: count deliveries (and check duplicates); senders: their acks.
    const seen: Array<Set<string>> = users.map(() => new Set());
    const maxSeq = new Array<number>(M).fill(0);
    let deliveries = 0;
    let duplicated = 0;
    let errors = 0;
    let inWindow = false;
    let winDeliveries = 0;
    let winSends = 0;
    let stopped = false;
    let latMode = false;
    const lat = new Samples();
    const latPending = new Map<string, { t: number; left: number }>();
    const unacked = new Array<number>(S).fill(0);
    const sentBy = new Array<number>(S).fill(0);
    let totalSent = 0;
    const send = (k: number) => {
      const n = ++sentBy[k]!;
      const cmid = cmidOf(k, n);
      unacked[k]!++;
      totalSent++;
      if (latMode) latPending.set(cmid, { t: performance.now(), left: M - 1 });
      socks[k]!.send(c.encode({ t: 'send', id: n, conv, cmid, body: BODY }));
      if (inWindow) winSends++;
    };
    const onAck = (k: number) => {
      unacked[k]!--;
      if (!stopped && !latMode) send(k);
    };
    socks.forEach((ws, i) => {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const f = decode(c, data, isBinary);
        if (kind === 'node') {
          if (f.t === 'ack') return onAck(i);
          if (f.t === 'err') return void errors++;
          if (f.t !== 'msg' || f.kind === 'system') return;
          maxSeq[i] = Math.max(maxSeq[i]!, f.seq as number);
        } else if (senderOf(f.cmid as string) === i) return onAck(i);
        const cmid = f.cmid as string;
        const key = kind === 'node' ? `${String(f.from)}/${cmid}` : cmid;
        if (seen[i]!.has(key)) return void duplicated++;
        seen[i]!.add(key);
        deliveries++;
        if (inWindow) winDeliveries++;
        const p = latPending.get(cmid);
        if (p && --p.left === 0) {
          lat.add(performance.now() - p.t);
          latPending.delete(cmid);
        }
      });
    });
    // Members acknowledge what they got (coalesced), as a client would.
    const recvTimer =
      kind === 'node'
        ? setInterval(() => {
            const sent = new Array<number>(M).fill(0);
            socks.forEach((ws, i) => {
              if (maxSeq[i]! > sent[i]!) ws.send(c.encode({ t: 'recv', conv, seq: maxSeq[i]! }));
              sent[i] = maxSeq[i]!;
            });
          }, 500)
        : null;
    try {
      // Throughput: back to back.
      for (let k = 0; k < S; k++) for (let w = 0; w < s.window; w++) send(k);
      await sleep(s.warmupSeconds * 1000);
      inWindow = true;
      const t0 = performance.now();
      for (let sec = 0; sec < s.seconds; sec++) {
        await sleep(1000);
        progress(`${label} ${fmt(winDeliveries / ((performance.now() - t0) / 1000))} deliveries/s`);
      }
      inWindow = false;
      const wall = (performance.now() - t0) / 1000;
      stopped = true;
      const drain = async () => {
        const until = performance.now() + s.drainSeconds * 1000;
        while (deliveries < totalSent * (M - 1) || unacked.some((u) => u > 0)) {
          if (performance.now() > until) break;
          await sleep(20);
        }
      };
      await drain();
      // Latency: a fixed rate, senders in turn.
      latMode = true;
      stopped = false;
      const latSends = Math.max(10, Math.round(LAT_RATE * s.seconds));
      const start = performance.now();
      for (let j = 0; j < latSends; j++) {
        const due = start + (j * 1000) / LAT_RATE;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        send(j % S);
      }
      stopped = true;
      await drain();
      const missing = totalSent * (M - 1) - deliveries;
      return {
        deliveriesPerSec: round(winDeliveries / wall),
        sendsPerSec: round(winSends / wall),
        lat: lat.summary(),
        latSends,
        missing,
        duplicated,
        errors: errors + unacked.reduce((a, b) => a + b, 0),
      };
    } finally {
      if (recvTimer) clearInterval(recvTimer);
    }
  } finally {
    for (const ws of socks) ws?.terminate();
    await server.stop();
  }
}

export async function runGroupSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const M = s.groupMembers;
  const S = Math.min(s.groupSenders2, M);
  progress(`group suite: ${M} members, ${S} senders × window ${s.window}, ${s.seconds} s after ${s.warmupSeconds} s warm-up, then ${LAT_RATE} sends/s; ${s.runs} run(s), ${s.encoding}`);
  const runs: GroupRun[] = [];
  const plan = s.runs * 2;
  let k = 0;
  for (let r = 1; r <= s.runs; r++) {
    for (const kind of ['raw', 'node'] as const) {
      const label = `[group ${++k}/${plan} ${kind}]`;
      const rec: GroupRun = { round: r, kind, ok: false };
      try {
        Object.assign(rec, await oneRun(kind, ctx, label));
        rec.ok = rec.missing === 0 && rec.duplicated === 0 && rec.errors === 0;
        progress(`${label} done: ${fmt(rec.deliveriesPerSec)} deliveries/s (${fmt(rec.sendsPerSec)} sends/s), at ${LAT_RATE}/s: send → last member p50 ${rec.lat?.p50} ms p99 ${rec.lat?.p99} ms; missing ${rec.missing}, duplicated ${rec.duplicated}, errors ${rec.errors}`);
      } catch (err) {
        rec.error = errText(err);
        progress(`${label} FAILED: ${rec.error}`);
      }
      runs.push(rec);
    }
  }
  const ok = (kind: string) => runs.filter((r) => r.kind === kind && r.ok);
  const m = (kind: string, f: (r: GroupRun) => number | null | undefined) => median(ok(kind).map((r) => f(r) ?? NaN));
  const dN = m('node', (r) => r.deliveriesPerSec);
  const dR = m('raw', (r) => r.deliveriesPerSec);
  const p99N = m('node', (r) => r.lat?.p99);
  const p99R = m('raw', (r) => r.lat?.p99);
  const sum = (f: (r: GroupRun) => number | undefined) => runs.reduce((a, r) => a + (f(r) ?? 0), 0);
  const failed = runs.filter((r) => !r.ok).length;
  const rows: Row[] = [
    [`deliveries/s (msg pushes to ${M - 1} members) vs raw broadcast`, fmt(dN), fmt(dR), ratio(dN, dR), '≥ 0.50'],
    ['sends/s (back to back)', fmt(m('node', (r) => r.sendsPerSec)), fmt(m('raw', (r) => r.sendsPerSec)), ratio(m('node', (r) => r.sendsPerSec), m('raw', (r) => r.sendsPerSec)), '—'],
    [`send → last member p50 ms at ${LAT_RATE} sends/s`, fmt(m('node', (r) => r.lat?.p50), 2), fmt(m('raw', (r) => r.lat?.p50), 2), ratio(m('node', (r) => r.lat?.p50), m('raw', (r) => r.lat?.p50)), '—'],
    [`send → last member p99 ms at ${LAT_RATE} sends/s`, fmt(p99N, 2), fmt(p99R, 2), ratio(p99N, p99R), '≤ 2.00'],
    ['violations: deliveries missing / duplicated / errors (node)', `${sum((r) => (r.kind === 'node' ? r.missing : 0))} / ${sum((r) => (r.kind === 'node' ? r.duplicated : 0))} / ${sum((r) => (r.kind === 'node' ? r.errors : 0))}`, `${sum((r) => (r.kind === 'raw' ? r.missing : 0))} / ${sum((r) => (r.kind === 'raw' ? r.duplicated : 0))} / ${sum((r) => (r.kind === 'raw' ? r.errors : 0))}`, '—', '0 / 0 / 0'],
    ['runs ok (node / raw); failed runs', `${ok('node').length} / ${ok('raw').length}`, '—', '—', `failed ${failed}`],
  ];
  return {
    suite: 'group',
    header: `group — ${M}-member group, ${S} senders × ${s.window} unacked, ${s.seconds} s window after ${s.warmupSeconds} s warm-up, then ${LAT_RATE} sends/s for ${s.seconds} s; vs a raw ws broadcast server; ${s.encoding}; medians of ${s.runs} alternated run(s)`,
    tables: [{ title: `group fan-out (${M} members)`, rows }],
    summary: { nodeDeliveriesPerSec: dN, rawDeliveriesPerSec: dR, nodeP99: p99N, rawP99: p99R },
    runs,
    violations: failed,
    versions: {},
    profiles: [],
  };
}
