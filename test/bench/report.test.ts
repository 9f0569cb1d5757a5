/**
 * The bench's summary (bench/report.ts) and picture (bench/chart.ts) from suite reports shaped
 * like the suites' own: every row of the performance issue gets a line, targets are judged
 * from the figures, suites not run say so, and the SVG is well-formed with the targets drawn.
 * (The suites themselves run in `npm run bench -- --quick`, .ci/run.)
 */
import { describe, expect, it } from 'vitest';
import { buildTargets, formatTargets, type Machine } from '../../bench/report.js';
import { renderChart } from '../../bench/chart.js';
import type { Settings, SuiteReport } from '../../bench/suite.js';

const settings = {
  suites: ['ws', 'memory', 'group', 'backlog', 'cluster', 'failover', 'join'],
  encoding: 'msgpack',
  memConns: 10_000,
  groupMembers: 200,
  backlogMsgs: 10_000,
  heartbeatMs: 250,
  failureMs: 1000,
  ackWaitMs: 1000,
  quick: false,
} as unknown as Settings;

const machine: Machine = {
  cores: 2,
  cpuModel: 'Test CPU',
  memGiB: 8,
  node: 'v20.0.0',
  natsServer: 'v2.10.0',
  cassandra: '5.0.0',
  loadStart: [0.5, 0.4, 0.3],
  loadEnd: [1, 0.8, 0.5],
  quick: false,
  stamp: '2025-01-01 00:00 UTC',
  distSha1: 'abc',
};

const report = (suite: SuiteReport['suite'], summary: unknown, runs: unknown[] = []): SuiteReport => ({
  suite,
  header: suite,
  tables: [],
  summary,
  runs,
  violations: 0,
  versions: {},
  profiles: [],
});

const reports: SuiteReport[] = [
  report('ws', [
    { encoding: 'json', medians: { framesPerSec: 10_000, echoFramesPerSec: 40_000 } },
    { encoding: 'msgpack', medians: { framesPerSec: 30_000, echoFramesPerSec: 50_000 } },
  ]),
  report('memory', { nodeBytesPerConn: 11 * 1024, rawBytesPerConn: 10 * 1024, ratio: 1.1 }, [
    { kind: 'node', conns: 10_000, stayed: 10_000, ok: true },
    { kind: 'raw', conns: 10_000, stayed: 10_000, ok: true },
  ]),
  report('group', { nodeDeliveriesPerSec: 20_000, rawDeliveriesPerSec: 100_000, nodeP99: 30, rawP99: 10 }, [
    { kind: 'node', ok: true, lat: { p50: 8 } },
    { kind: 'raw', ok: true, lat: { p50: 3 } },
  ]),
  report('backlog', { nodeMsgsPerSec: 60_000, rawMsgsPerSec: 100_000 }),
  report('cluster', { medians: { e2eMsgsPerSec3: 4000, rawPipelinePerSec: 10_000 } }),
  report('failover', { medians: { p50Ms: 1800, p99Ms: 2600, maxMs: 2900, kills: 10, noAck: 0 } }),
  report('join', { medians: { fromRingMs: 600, fromStartMs: 2500 }, clientErrors: 3, failedSends: 0 }),
];

describe('bench summary', () => {
  it('has a line per row, judged from the figures', () => {
    const { lines } = buildTargets(reports, settings, machine);
    const met = Object.fromEntries(lines.map((l) => [l.row, l.met]));
    expect(lines.map((l) => l.row)).toEqual(['1', '2', '3a', '3b', '4', '5', '6', '7']);
    expect(met).toEqual({ '1': '✓', '2': '✓', '3a': '✗', '3b': '✗', '4': '✗', '5': '✓', '6': '✗', '7': '✓' });
    expect(lines[0]!.value).toBe('30,000'); // the msgpack rows (the suites' encoding)
    const text = formatTargets(lines, machine);
    expect(text.split('\n')[0]).toBe('Switchboard performance targets');
    expect(text).toContain('2 cores (Test CPU)');
    expect(text).toContain('nats-server v2.10.0, Cassandra 5.0.0');
    expect(text).toContain('4 of 8 judged targets met');
  });

  it('says which suites did not run, and draws the picture anyway', () => {
    const only = reports.filter((r) => r.suite === 'ws');
    const { lines, chart } = buildTargets(only, settings, machine);
    expect(lines.filter((l) => l.met === 'not run')).toHaveLength(7);
    const svg = renderChart(chart);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('not run');
  });

  it('renders a well-formed SVG with targets marked', () => {
    const { chart } = buildTargets(reports, settings, machine);
    const svg = renderChart(chart);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    // Every element opened is closed (self-closing or paired).
    const opens = (svg.match(/<(text|svg)\b/g) ?? []).length;
    const closes = (svg.match(/<\/(text|svg)>/g) ?? []).length;
    expect(opens).toBe(closes);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
    for (const t of ['target ≥ 0.5×', '≤ 3 s', '≤ 2 s', '1.2× raw', '≤ 2× raw p99']) expect(svg).toContain(t);
  });
});
