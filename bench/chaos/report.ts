/** The table of a chaos run (stdout) from its report. */
import type { ChaosReport, Dist } from './chaos.js';
import type { FaultKind } from './faults.js';

const LABEL: Record<FaultKind, string> = {
  'node-kill': 'node kill -9 + restart',
  'nats-kill': 'NATS server kill -9 + restart',
  pause: 'node SIGSTOP/SIGCONT (zombie)',
};

const ms = (x: number | null) => (x === null ? '-' : x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);
const pad = (s: string | number, n: number) => String(s).padEnd(n);
const lpad = (s: string | number, n: number) => String(s).padStart(n);

function row(cells: Array<string | number>, widths: number[], right: boolean[]): string {
  return cells.map((c, i) => (right[i] ? lpad(c, widths[i]!) : pad(c, widths[i]!))).join('  ');
}

function table(head: string[], rows: Array<Array<string | number>>, right: boolean[]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  return [row(head, widths, right), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((r) => row(r, widths, right))];
}

const d = (x: Dist) => `${ms(x.p50)} / ${ms(x.p99)} / ${ms(x.max)}`;

export function formatReport(r: ChaosReport, jsonPath?: string): string {
  const out: string[] = [];
  const o = r.options;
  out.push('');
  out.push(`Switchboard chaos run — ${r.startedAt}, seed ${r.seed}${o.quick ? ' (--quick)' : ''}`);
  out.push(
    `cluster: ${o.nodes} nodes (partitions ${o.partitions}, heartbeat ${o.heartbeatMs} ms, failure ${o.failureMs} ms, ack wait ${o.ackWaitMs} ms), ` +
      `3 NATS servers (R3), CQL ${r.cql.contact} (${r.cql.source})`,
  );
  out.push(
    `clients: ${r.clients} connections; conversations: ${Object.entries(r.convs)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}; traffic ${r.seconds} s; load average ${r.loadavg.join(' ')}`,
  );
  out.push('');
  const m = r.messages;
  out.push(
    ...table(
      ['messages', 'count'],
      [
        ['sent (distinct cmids)', m.sent],
        ['acked', m.acked],
        ['resent after ack (same cmid)', m.resends],
        ['  acked as dup, same seq', m.resendsAcked],
        ['not acked after the drain', m.pending],
        ['failed for good', m.failed],
        ['stored (user messages)', m.stored],
        ['ack latency p50 / p99 / max', d(m.ackLatencyMs)],
        ['group members added / removed', `${r.churn.add} / ${r.churn.remove}`],
        ['client reconnects', r.reconnects],
        ['filled by the final sync', r.check.filledBySync],
      ],
      [false, true],
    ),
  );
  out.push('');
  const kinds: FaultKind[] = ['node-kill', 'nats-kill', 'pause'];
  out.push(
    ...table(
      ['fault', 'done/planned', 'affected convs', 'kill → next ack p50', 'p99', 'max', 'no ack'],
      kinds.map((k) => {
        const rec = r.recovery[k];
        return [LABEL[k], `${r.faults.done[k]}/${r.faults.planned[k]}`, rec.n + rec.noAck, ms(rec.p50), ms(rec.p99), ms(rec.max), rec.noAck];
      }),
      [false, true, true, true, true, true, true],
    ),
  );
  if (r.faults.failed > 0) out.push(`faults that failed to inject: ${r.faults.failed} (see the JSON)`);
  out.push('');
  out.push(
    ...table(
      ['#', 'at', 'fault', 'target', 'down', 'restart', 'convs', 'max to next ack'],
      r.faults.list.map((f) => {
        const vals = Object.values(f.recovery ?? {});
        const got = vals.filter((x): x is number => x !== null);
        const worst = got.length ? Math.max(...got) : null;
        return [
          f.n,
          `${(f.at / 1000).toFixed(1)} s`,
          f.kind,
          f.target,
          ms(f.downMs),
          f.restartMs === undefined ? '-' : ms(f.restartMs),
          f.affected.length,
          f.error ? `FAILED: ${f.error}` : `${ms(worst)}${vals.length > got.length ? ` (${vals.length - got.length} without ack)` : ''}`,
        ];
      }),
      [true, true, false, false, true, true, true, false],
    ),
  );
  out.push('');
  const logs = Object.entries(r.nodeLogs)
    .map(([id, l]) => `${id}: ${l.starts} starts, ${l.errors} errors, ${l.warnings} warnings, ${l.deadLetters} dead letters, ${l.commitFailed} refused/failed commits`)
    .join('; ');
  out.push(`node logs (${r.logDir}): ${logs}`);
  out.push('');
  const vkinds = new Map<string, number>();
  for (const v of r.violations) {
    const k = /^([a-z]+):/.exec(v)?.[1] ?? 'other';
    vkinds.set(k, (vkinds.get(k) ?? 0) + 1);
  }
  const byKind = [...vkinds].map(([k, n]) => `${k} ${n}`).join(', ');
  out.push(`VIOLATIONS: ${r.violationCount}${byKind ? ` (${byKind}${r.violationCount > r.violations.length ? ', of the first 1000' : ''})` : ''}`);
  for (const v of r.violations.slice(0, 40)) out.push(`  - ${v}`);
  if (r.violationCount > 40) out.push(`  ... and ${r.violationCount - 40} more (see the JSON)`);
  if (!r.ok) out.push(`keyspace kept for inspection: ${r.cql.keyspace} on ${r.cql.contact}`);
  if (jsonPath) out.push(`JSON: ${jsonPath}`);
  out.push('');
  return out.join('\n');
}
