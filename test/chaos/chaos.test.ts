/**
 * The chaos run, shortened (`npm run chaos -- --quick`, bench/chaos): a 3-server NATS
 * cluster, 3 nodes as processes on the run's CQL server (cqlContact, from the vitest global
 * setup, or SB_TEST_CQL_CONTACT), about 200 SDK clients (direct pairs, small groups, a
 * group at the size cap, a group whose members come and go) sending with retries and
 * fail-over while the run kills -9 and restarts nodes, kills -9 and restarts a NATS server
 * and freezes a node (SIGSTOP past the failure timeout, then SIGCONT: a zombie owner).
 * The independent checker must find no violation, and every planned fault must have
 * happened. Needs dist/ (npm test builds it). Node and NATS logs of a failed run stay in
 * the temp dir printed with the table.
 */
import { describe, expect, inject, it } from 'vitest';
import { runChaos } from '../../bench/chaos/chaos.js';
import { formatReport } from '../../bench/chaos/report.js';

const cql = inject('cqlContact') || process.env.SB_TEST_CQL_CONTACT || '';

describe('chaos (quick)', () => {
  it.skipIf(!cql)(
    'node kills, a NATS server kill and a zombie pause under traffic: nothing acked is lost, duplicated or reordered',
    async () => {
      const started = Date.now();
      const report = await runChaos({
        quick: true,
        cql,
        removeLogsWhenClean: true,
        // Events only; the per-second progress line would flood the test output.
        progress: (line) => {
          if (!/\] sent \d+\+\d+ acked/.test(line)) process.stderr.write(`${line}\n`);
        },
      });
      console.log(formatReport(report));
      console.log(`chaos (quick) took ${((Date.now() - started) / 1000).toFixed(0)} s`);
      expect(report.faults.failed).toBe(0);
      expect(report.faults.done).toEqual(report.faults.planned);
      expect(report.faults.done['node-kill']).toBeGreaterThanOrEqual(3);
      expect(report.faults.done['nats-kill']).toBeGreaterThanOrEqual(1);
      expect(report.faults.done.pause).toBeGreaterThanOrEqual(1);
      expect(report.messages.acked).toBeGreaterThan(100);
      expect(report.violations).toEqual([]);
      expect(report.messages.acked).toBe(report.messages.sent);
      expect(report.messages.stored).toBe(report.messages.sent);
    },
    420_000,
  );
});
