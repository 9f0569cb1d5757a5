/**
 * `npm run bench [-- flags]`: Switchboard's end-to-end rates beside baselines measured in the
 * same run, in suites (`--suite ws,cql,cluster`; default all):
 *
 *   ws       a node on its embedded store vs a raw `ws` echo server (bench/suite-ws.ts);
 *   cql      a node on the CQL store (real Cassandra), group commit on vs off, DM pairs and
 *            busy groups (bench/suite-cql.ts);
 *   cluster  raw JetStream publish+consume vs Switchboard with 1 and 3 nodes on a 3-server
 *            NATS cluster and Cassandra (bench/suite-cluster.ts);
 *   memory   RSS per signed-in idle connection vs a raw `ws` server holding as many sockets
 *            (bench/suite-memory.ts);
 *   group    a 200-member group's fan-out (deliveries/s, p99 to the last member at 50 sends/s)
 *            vs a raw `ws` broadcast server (bench/suite-group.ts);
 *   backlog  backlog drain at hello → synced vs a raw `ws` server pushing as many frames
 *            (bench/suite-backlog.ts);
 *   failover kill -9 of a node of 3 (≥ 10 times, in rotation) → the next ack in each
 *            conversation it affected (bench/suite-failover.ts);
 *   join     a 4th node joining 3 under load → every partition it gains serving on it, and
 *            the client-visible errors meanwhile (bench/suite-join.ts).
 *
 * Every process the bench starts is stopped by PID, also on errors (bench/children.ts,
 * bench/servers.ts); runs alternate and the tables report medians. The suites on Cassandra
 * run last and share one Cassandra. Progress goes to stderr; to stdout the per-suite tables,
 * then, last, "Switchboard performance targets" (one line per row of the performance issue,
 * bench/report.ts); everything to bench/results/bench-<timestamp>.json and a picture to
 * bench/results/bench-<timestamp>.svg (bench/chart.ts; with --update-docs also docs/bench.svg).
 * `--quick` keeps every suite but makes it tiny: a harness check for CI (exit 1 on failed runs
 * and violations, never on missed targets).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Encoding, round } from './loadgen.js';
import { RESULTS, ROOT, buildFingerprint, checkBuild, errText, progress, sweepStale, table } from './common.js';
import { formatProfile } from './profile.js';
import { SUITES, type Settings, type SuiteName, type SuiteReport } from './suite.js';
import { runWsSuite } from './suite-ws.js';
import { runCqlSuite } from './suite-cql.js';
import { runClusterSuite } from './suite-cluster.js';
import { runMemorySuite } from './suite-memory.js';
import { runGroupSuite } from './suite-group.js';
import { runBacklogSuite } from './suite-backlog.js';
import { runFailoverSuite } from './suite-failover.js';
import { runJoinSuite } from './suite-join.js';
import { holdCassandra, natsServerVersion } from './servers.js';
import { type Machine, buildTargets, formatTargets } from './report.js';
import { renderChart } from './chart.js';

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
const suiteList = (v: string): SuiteName[] => {
  const xs = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = xs.filter((x) => !(SUITES as readonly string[]).includes(x));
  if (bad.length || xs.length === 0) throw new InvalidArgumentError(`a comma-separated list of ${SUITES.join(', ')}`);
  return SUITES.filter((x) => xs.includes(x));
};

const program = new Command('bench')
  .description('Switchboard end-to-end throughput beside baselines measured in the same run (ws echo, CQL group commit off, raw JetStream)')
  .addOption(new Option('--suite <list>', `suites to run, comma-separated: ${SUITES.join(', ')}`).argParser(suiteList).default([...SUITES], SUITES.join(',')))
  .option('--pairs <n>', 'sender→recipient DM pairs (the echo baseline uses as many connections)', posInt(2000), 50)
  .option('--window <n>', 'unacked sends per sender (echo: frames in flight per connection)', posInt(1000), 10)
  .option('--seconds <s>', 'measuring window of each run', seconds, 5)
  .option('--runs <n>', 'alternated runs per configuration (medians are reported)', posInt(20), 3)
  .addOption(new Option('--encoding <e>', 'frame encoding: ws suite: both = JSON rows, then MessagePack rows; cql and cluster suites: msgpack unless json').choices(['json', 'msgpack', 'both']).default('both'))
  .option('--groups <n>', 'cql suite, busy variant: groups', posInt(100), 4)
  .option('--group-senders <n>', 'cql suite, busy variant: senders per group (plus one reader)', posInt(199), 8)
  .option('--commit-batch <n>', 'cql suite: SB_COMMIT_BATCH of the group-commit-on runs (off: 1)', posInt(100_000), 256)
  .option('--partitions <n>', 'cluster suite: SB_PARTITIONS (R3 consumers: each costs the NATS cluster CPU)', posInt(1024), 64)
  .option('--raw-window <n>', 'cluster suite: unacked JetStream publishes of the raw baseline', posInt(100_000), 1000)
  .option('--raw-payload <bytes>', 'cluster suite: payload of the raw baseline', posInt(65_536), 200)
  .option('--mem-conns <n>', 'memory suite: signed-in idle connections', posInt(18_000), 10_000)
  .option('--group-members <n>', 'group suite: members of the group (SB_MAX_GROUP, default 200, caps it)', posInt(1000), 200)
  .option('--group-fanout-senders <n>', 'group suite: members sending back to back', posInt(99), 4)
  .option('--backlog-msgs <n>', 'backlog suite: messages waiting for the offline user', posInt(1_000_000), 10_000)
  .option('--failover-kills <n>', 'failover suite: kill -9 + restart of a node, in rotation (the samples)', posInt(100), 10)
  .option('--heartbeat-ms <ms>', 'failover and join suites: SB_HEARTBEAT_MS of the nodes', posInt(60_000), 250)
  .option('--failure-ms <ms>', 'failover and join suites: SB_FAILURE_MS (≥ 2 × heartbeat)', posInt(600_000), 1000)
  .option('--ack-wait-ms <ms>', 'failover and join suites: SB_ACK_WAIT_MS', posInt(600_000), 1000)
  .option('--ha-partitions <n>', 'failover and join suites: SB_PARTITIONS', posInt(1024), 64)
  .option('--ha-pairs <n>', 'failover and join suites: DM pairs of SDK clients (both users send)', posInt(500), 12)
  .option('--ha-interval-ms <ms>', 'failover and join suites: each user sends every this many ms', posInt(60_000), 100)
  .option('--update-docs', 'also write the picture to docs/bench.svg (the README embeds it)', false)
  .option('--quick', 'harness check: every suite, tiny (1 s window, 4 pairs, window 4, 1 run, small groups, 8 partitions, 2 kills)', false)
  .option('--cpu-prof', 'also write V8 CPU profiles of the nodes to bench/results/prof-<timestamp>/ and summarise them', false)
  .allowExcessArguments(false);
program.parse(process.argv.slice(2), { from: 'user' });
const raw = program.opts<{
  suite: SuiteName[];
  pairs: number;
  window: number;
  seconds: number;
  runs: number;
  encoding: string;
  groups: number;
  groupSenders: number;
  commitBatch: number;
  partitions: number;
  rawWindow: number;
  rawPayload: number;
  memConns: number;
  groupMembers: number;
  groupFanoutSenders: number;
  backlogMsgs: number;
  failoverKills: number;
  heartbeatMs: number;
  failureMs: number;
  ackWaitMs: number;
  haPartitions: number;
  haPairs: number;
  haIntervalMs: number;
  updateDocs: boolean;
  quick: boolean;
  cpuProf: boolean;
}>();
const given = (k: string) => program.getOptionValueSource(k) === 'cli';
const quick = raw.quick;
const q = <T>(k: string, quickValue: T, value: T): T => (quick && !given(k) ? quickValue : value);
const settings: Settings = {
  suites: raw.suite,
  pairs: q('pairs', 4, raw.pairs),
  window: q('window', 4, raw.window),
  seconds: q('seconds', 1, raw.seconds),
  runs: q('runs', 1, raw.runs),
  encodings: (raw.encoding === 'both' || (quick && !given('encoding')) ? ['json', 'msgpack'] : [raw.encoding]) as Encoding[],
  encoding: raw.encoding === 'json' ? 'json' : 'msgpack',
  warmupSeconds: quick ? 0.5 : 2,
  clusterWarmupSeconds: quick ? 1 : 3,
  drainSeconds: 10,
  clusterDrainSeconds: 30,
  quick,
  cpuProf: raw.cpuProf,
  groups: q('groups', 2, raw.groups),
  groupSenders: q('groupSenders', 3, raw.groupSenders),
  commitBatch: raw.commitBatch,
  partitions: q('partitions', 8, raw.partitions),
  nodesMax: 3,
  rawWindow: raw.rawWindow,
  rawPayload: raw.rawPayload,
  rawPullBatch: 256,
  memConns: q('memConns', 1000, raw.memConns),
  groupMembers: q('groupMembers', 20, raw.groupMembers),
  groupSenders2: q('groupFanoutSenders', 2, raw.groupFanoutSenders),
  backlogMsgs: q('backlogMsgs', 1000, raw.backlogMsgs),
  failoverKills: q('failoverKills', 2, raw.failoverKills),
  heartbeatMs: raw.heartbeatMs,
  failureMs: raw.failureMs,
  ackWaitMs: raw.ackWaitMs,
  haPartitions: q('haPartitions', 8, raw.haPartitions),
  haPairs: q('haPairs', 6, raw.haPairs),
  haIntervalMs: raw.haIntervalMs,
  haWarmupSeconds: quick ? 1 : 3,
  nodeFlags: ['--dev', '--host', '127.0.0.1', '--port', '0', '--log-level', 'warn', '--rate', '1000000', '--node-id', 'bench'],
  nodeEnv: Object.fromEntries(
    Object.entries(process.env)
      .filter(([k]) => k.startsWith('SB_'))
      .map(([k, v]) => [k, /SECRET|TOKEN|PASSWORD/.test(k) ? '(set)' : v]),
  ),
};
if (settings.commitBatch === 1) throw new InvalidArgumentError('--commit-batch: the "on" setting must be above 1');
if (settings.failureMs < 2 * settings.heartbeatMs) throw new InvalidArgumentError('--failure-ms: at least twice --heartbeat-ms (the node refuses less)');

/** A generous bound on a suite's wall time: after it the bench stops (children are killed). */
function budgetSeconds(suite: SuiteName): number {
  const s = settings;
  const run = (warm: number, drain = s.drainSeconds) => warm + s.seconds + drain;
  switch (suite) {
    case 'ws':
      return s.runs * s.encodings.length * 2 * (run(s.warmupSeconds) + 40);
    case 'cql':
      return 240 + s.runs * 4 * (run(s.warmupSeconds) + 150);
    case 'cluster':
      return 300 + s.runs * (run(s.clusterWarmupSeconds) + 60 + 2 * (run(s.clusterWarmupSeconds, s.clusterDrainSeconds) + 300));
    case 'memory':
      return s.runs * 2 * (60 + s.memConns / 50);
    case 'group':
      return s.runs * 2 * (60 + 2 * run(s.warmupSeconds));
    case 'backlog':
      return s.runs * 2 * (60 + s.backlogMsgs / 100);
    case 'failover':
      return 300 + s.failoverKills * (90 + (s.failureMs + s.ackWaitMs) / 250);
    case 'join':
      return 300 + s.runs * 240;
  }
}

// ------------------------------------------------------------------------------ main

async function main(): Promise<number> {
  checkBuild();
  sweepStale();
  mkdirSync(RESULTS, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
  const profDir = settings.cpuProf ? join(RESULTS, `prof-${stamp}`) : null;
  if (profDir) mkdirSync(profDir, { recursive: true });
  const budgetS = Math.ceil(settings.suites.reduce((a, x) => a + budgetSeconds(x), 60));
  setTimeout(() => {
    process.stderr.write(`bench: over its time budget of ${budgetS} s: stopping (children are killed)\n`);
    process.exit(1);
  }, budgetS * 1000).unref();
  const loadAtStart = loadavg().map((x) => round(x, 2));
  progress(`bench: suites ${settings.suites.join(', ')}${settings.quick ? ' (quick)' : ''}, ${availableParallelism()} cores, node ${process.version}, time budget ${budgetS} s`);
  if (Object.keys(settings.nodeEnv).length > 0) progress(`the nodes inherit ${Object.entries(settings.nodeEnv).map(([k, v]) => `${k}=${v}`).join(' ')}`);

  const buildAtStart = buildFingerprint();
  progress(`dist: built ${buildAtStart.distBuiltAt ?? '?'}, sha1 ${buildAtStart.distSha1 ?? '?'}`);
  const reports: SuiteReport[] = [];
  const runners = {
    ws: runWsSuite,
    cql: runCqlSuite,
    cluster: runClusterSuite,
    memory: runMemorySuite,
    group: runGroupSuite,
    backlog: runBacklogSuite,
    failover: runFailoverSuite,
    join: runJoinSuite,
  } as const;
  const durations: Record<string, number> = {};
  // One Cassandra for every suite that needs one (they run back to back, last).
  const releaseCassandra = holdCassandra();
  try {
    for (const [i, suite] of settings.suites.entries()) {
      const t = Date.now();
      progress(`suite ${i + 1}/${settings.suites.length}: ${suite}`);
      try {
        reports.push(await runners[suite]({ settings, profDir }));
      } catch (err) {
        progress(`suite ${suite} FAILED: ${errText(err)}`);
        reports.push({ suite, header: `${suite} — failed: ${errText(err)}`, tables: [], summary: null, runs: [], violations: 1, versions: {}, profiles: [], error: errText(err) });
      }
      durations[suite] = Math.round((Date.now() - t) / 1000);
      progress(`suite ${suite}: ${durations[suite]} s`);
    }
  } finally {
    await releaseCassandra();
  }

  // One profile summary per suite and configuration on stderr (all of them are in the JSON).
  const shown = new Set<string>();
  for (const r of reports) {
    for (const p of r.profiles) {
      const key = relative(profDir ?? ROOT, p.file).split('/').slice(0, -1).join('/').replace(/-r\d+$/, '');
      if (shown.has(key)) continue;
      shown.add(key);
      process.stderr.write(`\n[${key}] ${formatProfile(p)}\n`);
    }
  }

  const versions: Record<string, string> = { node: process.version };
  for (const r of reports) Object.assign(versions, r.versions);
  if (!versions.natsServer && settings.suites.some((x) => x === 'cluster' || x === 'failover' || x === 'join')) versions.natsServer = natsServerVersion();
  const loadAtEnd = loadavg().map((x) => round(x, 2));
  const buildAtEnd = buildFingerprint();
  const rebuilt = buildAtEnd.distSha1 !== buildAtStart.distSha1;
  if (rebuilt) progress(`warning: dist/ changed during the bench (sha1 ${buildAtStart.distSha1} → ${buildAtEnd.distSha1}): later runs measured another build`);
  const out = [
    `Switchboard bench — ${availableParallelism()} cores (${cpus()[0]?.model ?? '?'}), ${round(totalmem() / 2 ** 30, 1)} GiB; ` +
      Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ') +
      `; dist sha1 ${buildAtStart.distSha1 ?? '?'}${rebuilt ? ` (CHANGED during the bench to ${buildAtEnd.distSha1})` : ''}` +
      `; load average at start ${loadAtStart.join(' ')}, at end ${loadAtEnd.join(' ')}${settings.quick ? '; QUICK (harness check, not a measurement)' : ''}`,
  ];
  for (const r of reports) {
    out.push('', `## ${r.header}`);
    for (const t of r.tables) out.push('', t.title, table(t.rows));
  }
  const machine: Machine = {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model?.trim() ?? '?',
    memGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    natsServer: versions.natsServer ?? null,
    cassandra: versions.cassandra ?? null,
    loadStart: loadAtStart,
    loadEnd: loadAtEnd,
    quick: settings.quick,
    stamp: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    distSha1: buildAtStart.distSha1,
  };
  const targets = buildTargets(reports, settings, machine);
  // Last on stdout: the one table a person reads first.
  out.push('', '', formatTargets(targets.lines, machine));
  process.stdout.write(`${out.join('\n')}\n`);

  const svg = renderChart(targets.chart);
  const svgFile = join(RESULTS, `bench-${stamp}.svg`);
  writeFileSync(svgFile, svg);
  progress(`picture: ${relative(ROOT, svgFile)}`);
  if (raw.updateDocs) {
    mkdirSync(join(ROOT, 'docs'), { recursive: true });
    writeFileSync(join(ROOT, 'docs', 'bench.svg'), svg);
    progress('picture: docs/bench.svg updated');
  }

  const file = join(RESULTS, `bench-${stamp}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        timestamp: new Date().toISOString(),
        machine: { cores: availableParallelism(), loadavgAtStart: loadAtStart, loadavgAtEnd: loadAtEnd, cpuModel: cpus()[0]?.model ?? null, totalMemGiB: round(totalmem() / 2 ** 30, 1), platform: `${process.platform}-${process.arch}` },
        versions,
        build: { atStart: buildAtStart, atEnd: buildAtEnd },
        settings,
        durationsSeconds: durations,
        targets: targets.lines,
        chart: targets.chart,
        suites: reports.map((r) => ({ suite: r.suite, header: r.header, error: r.error, violations: r.violations, tables: r.tables, summary: r.summary, runs: r.runs, profiles: r.profiles })),
      },
      null,
      2,
    )}\n`,
  );
  progress(`results: ${relative(ROOT, file)}`);
  const bad = reports.reduce((a, r) => a + r.violations, 0);
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
