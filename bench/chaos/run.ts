/**
 * `npm run chaos [-- flags]`: a Switchboard cluster under faults while clients keep
 * sending, then an independent check of everything that was acked, stored and delivered.
 *
 *   npm run chaos                 ~2.5 min: 12 node kills, 2 NATS kills, 1 zombie pause
 *   npm run chaos -- --quick      ~35 s: 3 node kills, 1 NATS kill, 1 pause
 *   npm run chaos -- --help       every flag
 *
 * Starts a 3-server NATS cluster (nats.conf), uses the CQL server given (--cql or
 * SB_TEST_CQL_CONTACT) or scripts/cassandra.mjs's (reused when running, else started and
 * stopped after), and N nodes (`node dist/node.js`; `npm run chaos` builds first). Progress
 * goes to stderr every second; the table to stdout; everything to
 * bench/results/chaos-<timestamp>.json. Node and NATS output stay in a temp dir (printed).
 * Exit code: 0 with no violation, 1 with violations, 2 on a failed run, 130 on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Aborted, DEFAULTS, QUICK, ROOT, runChaos, type ChaosOptions } from './chaos.js';
import { formatReport } from './report.js';
import { killAllNodes } from './procs.js';

const int = (min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`an integer from ${min} to ${max}`);
  return n;
};
const ratio = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('a number from 0 to 1');
  return n;
};
const range = (v: string): [number, number] => {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError('ms or min-max ms, e.g. 500-3000');
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (b < a || b > 600_000) throw new InvalidArgumentError('min-max with min <= max <= 600000');
  return [a, b];
};
const kv = (v: string, prev: Record<string, string>) => {
  const m = /^(SB_[A-Z0-9_]+)=(.*)$/.exec(v);
  if (!m) throw new InvalidArgumentError('SB_NAME=value');
  return { ...prev, [m[1]!]: m[2]! };
};
const D = DEFAULTS;
const q = (k: keyof ChaosOptions) => (QUICK[k] !== undefined ? `; --quick: ${JSON.stringify(QUICK[k])}` : '');

const program = new Command('chaos')
  .description('Kill, restart and freeze Switchboard nodes and NATS servers under client traffic; check that nothing acked is lost, duplicated or reordered')
  .option('--quick', `a short run (${QUICK.duration} s, ${QUICK.nodeKills} node kills, ${QUICK.natsKills} NATS kill, ${QUICK.pauses} pause)`, false)
  .option('--duration <s>', `seconds of traffic (default ${D.duration}${q('duration')})`, int(10, 3600))
  .option('--nodes <n>', `nodes (default ${D.nodes})`, int(2, 9))
  .option('--node-kills <n>', `kill -9 + restart of a random node (default ${D.nodeKills}${q('nodeKills')})`, int(0, 200))
  .option('--nats-kills <n>', `kill -9 + restart of a random NATS server (default ${D.natsKills}${q('natsKills')})`, int(0, 50))
  .option('--pauses <n>', `SIGSTOP of a random node past the failure timeout, then SIGCONT (default ${D.pauses}${q('pauses')})`, int(0, 50))
  .option('--users <n>', `active users in direct pairs and small groups (default ${D.users}${q('users')})`, int(2, 1000))
  .option('--group-size <n>', `members of each small group (default ${D.groupSize})`, int(2, 50))
  .option('--big-group <n>', `members of the group at the cap, creator included; 0: none (default ${D.bigGroup})`, int(0, 1000))
  .option('--big-senders <n>', `members of the big group that send (default ${D.bigSenders}${q('bigSenders')})`, int(0, 1000))
  .option('--interval-ms <ms>', `each active user sends every ~ms (default ${D.intervalMs})`, int(50, 60_000))
  .option('--big-interval-ms <ms>', `each big-group sender sends every ~ms (default ${D.bigIntervalMs})`, int(50, 60_000))
  .option('--resend-ratio <r>', `share of acked messages sent again with the same cmid (default ${D.resendRatio})`, ratio)
  .option('--churn-every-ms <ms>', `add or remove a member of the churn group every ms; 0: off (default ${D.churnEveryMs}${q('churnEveryMs')})`, int(0, 600_000))
  .option('--churn-joins <n>', `users the churn group adds over the run (default ${D.churnJoins}${q('churnJoins')})`, int(0, 1000))
  .option('--partitions <n>', `SB_PARTITIONS (default ${D.partitions})`, int(1, 4096))
  .option('--heartbeat-ms <ms>', `SB_HEARTBEAT_MS (default ${D.heartbeatMs})`, int(50, 60_000))
  .option('--failure-ms <ms>', `SB_FAILURE_MS (default ${D.failureMs})`, int(100, 600_000))
  .option('--ack-wait-ms <ms>', `SB_ACK_WAIT_MS (default ${D.ackWaitMs})`, int(100, 600_000))
  .option('--handoff-ms <ms>', `SB_HANDOFF_MS (default ${D.handoffMs})`, int(0, 600_000))
  .option('--pause-ms <ms>', 'SIGSTOP length (default: failure + ack wait + 1500)', int(100, 600_000))
  .option('--down-ms <range>', `node down time after a kill, ms or min-max (default ${D.downMs.join('-')})`, range)
  .option('--nats-down-ms <range>', `NATS server down time, ms or min-max (default ${D.natsDownMs.join('-')})`, range)
  .option('--drain-ms <ms>', `wait for unanswered sends after the traffic stops (default ${D.drainMs})`, int(0, 600_000))
  .option('--seed <n>', 'seed of the fault plan and traffic (default: random, printed)', int(1, 2 ** 31))
  .option('--cql <host:port>', 'CQL server to use (default: SB_TEST_CQL_CONTACT, else scripts/cassandra.mjs)')
  .option('--dist <dir>', 'run this build of the node instead of dist/ (e.g. a patched copy)')
  .option('--log-dir <dir>', 'where node and NATS output goes (default: a new temp dir)')
  .option('--node-env <SB_X=v>', 'extra node setting (repeatable)', kv, {})
  .option('--keep-keyspace', 'keep the keyspace of a clean run (a run with violations always keeps it)', false)
  .option('--no-json', 'do not write bench/results/chaos-<timestamp>.json')
  .allowExcessArguments(false);
program.parse(process.argv.slice(2), { from: 'user' });
const flags = program.opts<Partial<ChaosOptions> & { json: boolean; nodeEnv: Record<string, string> }>();

const controller = new AbortController();
let interrupted = 0;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupted++;
    if (interrupted === 1) {
      process.stderr.write(`\nchaos: ${sig}: stopping every process started (again to kill at once)\n`);
      controller.abort();
      // Whatever happens, do not outlive a stuck cleanup by much.
      setTimeout(() => {
        killAllNodes();
        process.exit(130);
      }, 30_000).unref();
    } else {
      killAllNodes();
      process.exit(130);
    }
  });
}

const { json, ...opts } = flags;
try {
  const report = await runChaos({ ...opts, signal: controller.signal });
  let jsonPath: string | undefined;
  if (json) {
    const dir = join(ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const stamp = report.startedAt.replace(/[:]/g, '-').replace(/\..*$/, '').replace('T', '_');
    jsonPath = join(dir, `chaos-${stamp}.json`);
    writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
    jsonPath = relative(process.cwd(), jsonPath) || jsonPath;
  }
  process.stdout.write(formatReport(report, jsonPath));
  process.exitCode = report.ok ? 0 : 1;
} catch (err) {
  if (err instanceof Aborted || controller.signal.aborted) {
    process.stderr.write('chaos: aborted; every process it started is stopped\n');
    process.exitCode = 130;
  } else {
    process.stderr.write(`chaos: the run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 2;
  }
}
// Client sockets, timers of the SDK and the NATS observer are closed; exit promptly anyway.
setTimeout(() => process.exit(), 2000).unref();
