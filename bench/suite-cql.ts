/**
 * The `cql` suite: one node on the CQL store (a real Cassandra; a fresh keyspace per run),
 * group commit on (`SB_COMMIT_BATCH=<n>`, default 256) against off (`SB_COMMIT_BATCH=1`),
 * alternated, medians. Two loads from the same load generator:
 *
 *   dm      DM pairs, each sender with a window of unacked sends (so a conversation has at
 *           most `window` messages in flight);
 *   groups  a few busy groups, many senders each (a group has up to senders × window in
 *           flight): the case group commit exists for.
 *
 * Reported: messages/s, send→push and send→ack p50/p99, the node's mean messages per commit
 * (`sb_commit_batch_messages` sum/count) and mean commit latency, CPU of the node, of
 * Cassandra and of the load generator, and the correctness checks of the load generator.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Child, spawnNode, stopChild } from './children.js';
import { BODY, type E2EResult, type GroupResult, runE2E, runGroups } from './loadgen.js';
import {
  GUARD,
  type GroupCpu,
  NODE_ENTRY,
  type NodeMetrics,
  ROOT,
  type Row,
  TMP_PREFIX,
  devToken,
  errText,
  fmt,
  groupCpuMeter,
  median,
  progress,
  ratio,
  ratioNum,
  scrape,
  waitHealthz,
} from './common.js';
import { type Cassandra, freshKeyspace, startCassandra } from './servers.js';
import { type ProfileSummary, summariseProfile } from './profile.js';
import type { Settings, SuiteContext, SuiteReport } from './suite.js';

export type CqlVariant = 'dm' | 'groups';

interface CqlRun {
  round: number;
  variant: CqlVariant;
  commitBatch: number;
  ok: boolean;
  error?: string;
  keyspace: string;
  startMs?: number;
  result?: E2EResult | GroupResult;
  cpu?: GroupCpu | null;
  metrics?: NodeMetrics | undefined;
  childExit?: { code: number | null; signal: string | null };
  profileDir?: string;
}

function variantLine(s: Settings, v: CqlVariant): string {
  return v === 'dm'
    ? `${s.pairs} DM pairs, window ${s.window} per sender (≤ ${s.window} in flight per conversation)`
    : `${s.groups} groups × ${s.groupSenders} senders + 1 reader, window ${s.window} per sender (≤ ${s.groupSenders * s.window} in flight per conversation; each message pushed to ${s.groupSenders} members)`;
}

async function cqlRun(s: Settings, cass: Cassandra, rec: CqlRun, label: string, profDir: string | null): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), TMP_PREFIX));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SB_CQL_CONTACT_POINTS: cass.contact,
    SB_CQL_KEYSPACE: rec.keyspace,
    SB_CQL_REPLICATION: 'simple:1',
    SB_CQL_CONSISTENCY: 'ONE',
    SB_COMMIT_BATCH: String(rec.commitBatch),
    SB_WEB: '0',
  };
  delete env.SB_NATS_URL; // the CQL store alone: one node, no NATS
  let child: Child | undefined;
  const started = Date.now();
  try {
    if (profDir) {
      rec.profileDir = join(profDir, `cql-${rec.variant}-b${rec.commitBatch}-r${rec.round}`);
      mkdirSync(rec.profileDir, { recursive: true });
    }
    child = await spawnNode({
      label: 'node',
      args: ['--import', GUARD, ...(rec.profileDir ? ['--cpu-prof', '--cpu-prof-dir', rec.profileDir] : []), NODE_ENTRY, ...s.nodeFlags, '--data-dir', dataDir],
      cwd: ROOT,
      env,
      ready: /Switchboard dev node on http:\/\/127\.0\.0\.1:(\d+)/,
      quiet: /^\s+(token|websocket|health|web app):/,
      timeoutMs: 120_000, // creating a keyspace and its tables takes a while on a busy Cassandra
    });
    const base = `http://127.0.0.1:${child.ready[1]}`;
    await waitHealthz(base, 30_000);
    rec.startMs = Date.now() - started;
    const meter = groupCpuMeter({ node: [child.pid], cassandra: [cass.pid] }, [child.pid]);
    const common = {
      url: `ws://127.0.0.1:${child.ready[1]}/ws`,
      encoding: s.encoding,
      window: s.window,
      warmupMs: s.warmupSeconds * 1000,
      measureMs: s.seconds * 1000,
      drainMs: s.drainSeconds * 1000,
      progress,
      onWindow: meter.onWindow,
      token: devToken(base),
    };
    rec.result =
      rec.variant === 'dm'
        ? await runE2E({ ...common, pairs: s.pairs }, label)
        : await runGroups({ ...common, groups: s.groups, senders: s.groupSenders }, label);
    rec.cpu = meter.get();
    rec.metrics = await scrape(base);
    rec.childExit = await stopChild(child, 15_000);
    child = undefined;
    rec.ok = true;
  } finally {
    if (child) await stopChild(child, 15_000);
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
    await cass.dropKeyspace(rec.keyspace);
  }
}

/** "socket:type ×n, …" over several runs, or "none". */
export function unexpectedText(results: E2EResult[]): string {
  const sums: Record<string, number> = {};
  for (const r of results) for (const [k, n] of Object.entries(r.unexpected)) sums[k] = (sums[k] ?? 0) + n;
  const parts = Object.entries(sums).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

const violationsOf = (r: E2EResult) => Object.values(r.violations).reduce((a, b) => a + b, 0);

function summarise(s: Settings, variant: CqlVariant, runs: CqlRun[]) {
  const on = runs.filter((r) => r.variant === variant && r.commitBatch !== 1 && r.ok && r.result);
  const off = runs.filter((r) => r.variant === variant && r.commitBatch === 1 && r.ok && r.result);
  const failed = runs.filter((r) => r.variant === variant && !r.ok).length;
  const m = (rs: CqlRun[], f: (r: CqlRun) => number | null | undefined) => median(rs.map((r) => f(r) ?? NaN));
  const both = (f: (r: CqlRun) => number | null | undefined) => ({ on: m(on, f), off: m(off, f) });
  const rowOf = (name: string, f: (r: CqlRun) => number | null | undefined, digits = 0, target = '—'): Row => {
    const x = both(f);
    return [name, fmt(x.on, digits), fmt(x.off, digits), ratio(x.on, x.off), target];
  };
  const res = (r: CqlRun) => r.result!;
  const viol = [...on, ...off].reduce((a, r) => a + violationsOf(res(r)), 0);
  const vDetail = (() => {
    const sums: Record<string, number> = {};
    for (const r of [...on, ...off]) for (const [k, n] of Object.entries(res(r).violations)) if (n > 0) sums[k] = (sums[k] ?? 0) + n;
    const parts = Object.entries(sums).map(([k, n]) => `${k} ${n}`);
    return parts.length ? `${viol} (${parts.join(', ')})` : String(viol);
  })();
  const codes: Record<string, number> = {};
  for (const r of [...on, ...off]) for (const [k, n] of Object.entries(res(r).errorCodes)) codes[k] = (codes[k] ?? 0) + n;
  const msgs = both((r) => res(r).msgsPerSec);
  // On and off run back to back in each round: the ratio within a round cancels slow drifts of a shared machine.
  const perRound = [...new Set(on.map((r) => r.round))].map((round) => {
    const a = on.find((r) => r.round === round);
    const b = off.find((r) => r.round === round);
    return a && b && res(b).msgsPerSec > 0 ? res(a).msgsPerSec / res(b).msgsPerSec : NaN;
  });
  const roundRatio = median(perRound);
  const rows: Row[] = [
    [`e2e msgs/s, group commit on (${s.commitBatch}) vs off (1)`, fmt(msgs.on), fmt(msgs.off), ratio(msgs.on, msgs.off), variant === 'groups' ? '> 1' : '—'],
    [`on/off msgs/s within each round: median (rounds: ${perRound.map((x) => fmt(x, 2)).join(', ')})`, fmt(roundRatio, 2), '—', '—', variant === 'groups' ? '> 1' : '—'],
    rowOf('send → push p50 ms (on vs off)', (r) => res(r).sendToMsg.p50, 2),
    rowOf('send → push p99 ms (on vs off)', (r) => res(r).sendToMsg.p99, 2),
    rowOf('send → ack p50 ms (on vs off)', (r) => res(r).sendToAck.p50, 2),
    rowOf('send → ack p99 ms (on vs off)', (r) => res(r).sendToAck.p99, 2),
    rowOf(variant === 'groups' ? 'send → group receipt p50 ms (aggregated ≤ 1/s)' : 'send → receipt p50 ms', (r) => res(r).sendToReceipt.p50, 2),
    ...(variant === 'groups' ? [rowOf('msg pushes/s to all members (on vs off)', (r) => (res(r) as GroupResult).pushesPerSec)] : []),
    rowOf('node /metrics: messages per commit, mean (sb_commit_batch_messages)', (r) => r.metrics?.messagesPerConvCommit, 2),
    rowOf('node /metrics: commits/s (approx.: whole run incl. warm-up and drain)', (r) => (r.metrics && r.result ? r.metrics.commits / (r.result.seconds + s.warmupSeconds + r.result.drainMs / 1000) : null)),
    rowOf('node /metrics: commit latency ms, mean (sb_commit_seconds)', (r) => r.metrics?.convCommitMeanMs, 2),
    rowOf('node /metrics: event-loop lag p99 ms', (r) => r.metrics?.eventLoopLagP99Ms, 2),
    rowOf('CPU % of one core: node', (r) => r.cpu?.groups.node),
    rowOf('CPU % of one core: Cassandra', (r) => r.cpu?.groups.cassandra),
    rowOf('CPU % of one core: load generator', (r) => r.cpu?.loadgenPct),
    rowOf(`CPU % of one core: all of these (the machine has ${availableParallelism() * 100})`, (r) => r.cpu?.totalPct),
    rowOf('node main thread: % of wall on a CPU', (r) => r.cpu?.mainOnCpuPct),
    rowOf('node main thread: % of wall waiting for a CPU', (r) => r.cpu?.mainRunqueuePct),
    ['violations (acks, msgs, receipts, errors; all runs)', vDetail, '—', '—', '0'],
    [`runs whose drain did not finish within ${s.drainSeconds} s`, String([...on, ...off].filter((r) => !res(r).drained).length), '—', '—', '0'],
    ['unexpected frames, socket:type (counted in violations)', unexpectedText([...on, ...off].map(res)), '—', '—', '0'],
    ['err codes seen', Object.keys(codes).length ? Object.entries(codes).map(([k, n]) => `${k} ${n}`).join(', ') : 'none', '—', '—', '—'],
    ['runs ok (on / off); failed runs', `${on.length} / ${off.length}`, '—', '—', `failed ${failed}`],
  ];
  const medians = {
    msgsPerSecOn: msgs.on,
    msgsPerSecOff: msgs.off,
    onOverOff: ratioNum(msgs.on, msgs.off),
    onOverOffPerRound: perRound,
    onOverOffPerRoundMedian: roundRatio,
    sendToMsgP50: both((r) => res(r).sendToMsg.p50),
    sendToMsgP99: both((r) => res(r).sendToMsg.p99),
    sendToAckP50: both((r) => res(r).sendToAck.p50),
    sendToAckP99: both((r) => res(r).sendToAck.p99),
    messagesPerCommit: both((r) => r.metrics?.messagesPerConvCommit),
    commitMeanMs: both((r) => r.metrics?.convCommitMeanMs),
    nodeCpuPct: both((r) => r.cpu?.groups.node),
    cassandraCpuPct: both((r) => r.cpu?.groups.cassandra),
    loadgenCpuPct: both((r) => r.cpu?.loadgenPct),
    totalCpuPct: both((r) => r.cpu?.totalPct),
    nodeStartMs: both((r) => r.startMs),
  };
  return { variant, rows, violations: viol + failed, medians, errorCodes: codes };
}

export async function runCqlSuite(ctx: SuiteContext): Promise<SuiteReport> {
  const s = ctx.settings;
  const variants: CqlVariant[] = ['dm', 'groups'];
  const batches = [s.commitBatch, 1];
  progress(`cql suite: ${variants.map((v) => `${v}: ${variantLine(s, v)}`).join('; ')}; SB_COMMIT_BATCH ${batches.join(' vs ')}, ${s.runs} alternated run(s)`);
  const cass = await startCassandra();
  const runs: CqlRun[] = [];
  try {
    const plan = s.runs * variants.length * batches.length;
    let n = 0;
    for (let r = 1; r <= s.runs; r++) {
      for (const variant of variants) {
        // Alternate which setting goes first, so a drift of the machine does not favour one.
        const order = r % 2 === 1 ? batches : [...batches].reverse();
        for (const commitBatch of order) {
          const label = `[cql ${++n}/${plan} ${variant} batch ${commitBatch}]`;
          const rec: CqlRun = { round: r, variant, commitBatch, ok: false, keyspace: freshKeyspace('cql') };
          try {
            await cqlRun(s, cass, rec, label, ctx.profDir);
            const e = rec.result!;
            progress(
              `${label} done: ${fmt(e.msgsPerSec)} msgs/s, push p50 ${e.sendToMsg.p50} ms p99 ${e.sendToMsg.p99} ms, ack p50 ${e.sendToAck.p50} ms, ` +
                `${rec.metrics?.messagesPerConvCommit ?? 'n/a'} msgs/commit, commit ${rec.metrics?.convCommitMeanMs ?? 'n/a'} ms, ` +
                `CPU node ${rec.cpu?.groups.node ?? 'n/a'} % cassandra ${rec.cpu?.groups.cassandra ?? 'n/a'} % loadgen ${rec.cpu?.loadgenPct ?? 'n/a'} %, violations ${violationsOf(e)}`,
            );
          } catch (err) {
            rec.error = errText(err);
            progress(`${label} FAILED: ${rec.error}`);
          }
          runs.push(rec);
        }
      }
    }
  } finally {
    await cass.stop();
  }
  const summaries = variants.map((v) => summarise(s, v, runs));
  const profiles: ProfileSummary[] = [];
  for (const r of runs) {
    if (!r.profileDir) continue;
    for (const f of readdirSync(r.profileDir).filter((x) => x.endsWith('.cpuprofile'))) profiles.push(summariseProfile(join(r.profileDir, f)));
  }
  const frameBytes = (v: CqlVariant) => runs.find((r) => r.variant === v && r.result)?.result?.frameBytes ?? '?';
  return {
    suite: 'cql',
    header:
      `cql — one node on the CQL store (Cassandra ${cass.version}, fresh keyspace per run, RF 1, consistency ONE), group commit on (SB_COMMIT_BATCH=${s.commitBatch}) vs off (1); ` +
      `${s.encoding}, ${Buffer.byteLength(BODY)}-byte bodies, ${s.seconds} s measured after ${s.warmupSeconds} s warm-up, medians of ${s.runs} alternated run(s)`,
    tables: summaries.map((x) => ({ title: `${x.variant.toUpperCase()}: ${variantLine(s, x.variant)}; send frame ${frameBytes(x.variant)} bytes — value: on, baseline: off`, rows: x.rows })),
    summary: summaries.map(({ variant, medians, violations, rows, errorCodes }) => ({ variant, medians, violations, errorCodes, table: rows })),
    runs,
    violations: summaries.reduce((a, b) => a + b.violations, 0),
    versions: { cassandra: cass.version },
    profiles,
  };
}

