/**
 * The bench's picture (hand-written SVG, no dependency): throughput of the node beside its
 * raw baseline (rows 1, 3, 4, 7, drawn as ratios with the absolute rates written on), memory
 * per idle connection (row 2), the group's fan-out latency (row 3) and the recovery times
 * (rows 5 and 6), targets marked. Written by bench/run.ts to bench/results/bench-<stamp>.svg,
 * and with --update-docs to docs/bench.svg (embedded in the README).
 */
import { fmt } from './common.js';
import { type ChartData, type Met, machineLine } from './report.js';

const W = 1000;
const C = {
  node: '#2563eb',
  base: '#b6bfcc',
  ok: '#15803d',
  bad: '#dc2626',
  na: '#6b7280',
  target: '#dc2626',
  text: '#111827',
  muted: '#4b5563',
  grid: '#e5e7eb',
  panel: '#f9fafb',
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const text = (x: number, y: number, s: string, o: { size?: number; anchor?: 'start' | 'middle' | 'end'; fill?: string; weight?: number | string; italic?: boolean } = {}) =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${o.size ?? 12}" text-anchor="${o.anchor ?? 'start'}" fill="${o.fill ?? C.text}"${o.weight ? ` font-weight="${o.weight}"` : ''}${o.italic ? ' font-style="italic"' : ''}>${esc(s)}</text>`;
const rect = (x: number, y: number, w: number, h: number, fill: string, extra = '') => `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(0, w).toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}"${extra}/>`;
const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, o: { dash?: boolean; width?: number } = {}) =>
  `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${stroke}" stroke-width="${o.width ?? 1}"${o.dash ? ' stroke-dasharray="5 4"' : ''}/>`;
const metColor = (m: Met) => (m === '✓' ? C.ok : m === '✗' ? C.bad : C.na);
const badge = (x: number, y: number, m: Met) => text(x, y, m === '✓' ? '✓ met' : m === '✗' ? '✗ missed' : m, { size: 12, fill: metColor(m), weight: 700 });
const compact = (x: number | null) => {
  if (x === null) return 'n/a';
  if (x >= 1e6) return `${fmt(x / 1e6, 2)} M`;
  if (x >= 1e4) return `${fmt(x / 1e3, 1)} k`;
  return fmt(x, x < 10 ? 2 : 0);
};

function panel(x: number, y: number, w: number, h: number, title: string, sub: string): string {
  return [
    rect(x, y, w, h, C.panel, ` rx="8" stroke="${C.grid}"`),
    text(x + 14, y + 22, title, { size: 15, weight: 700 }),
    sub ? text(x + 14, y + 40, sub, { size: 11, fill: C.muted }) : '',
  ].join('\n');
}

/** Rows 1, 3, 4, 7: baseline = 1 (gray), node = its ratio (blue), target ≥ 0.5 dashed. */
function throughput(d: ChartData, x: number, y: number, w: number): { svg: string; h: number } {
  const rows = d.throughput;
  const rowH = 54;
  const h = 64 + Math.max(1, rows.length) * rowH + 26;
  const out = [panel(x, y, w, h, 'Throughput — Switchboard beside a raw baseline on the same machine', 'bar length = rate ÷ the baseline\'s rate (gray = baseline = 1×); target: at least half the baseline')];
  const labelW = 230;
  const x0 = x + labelW;
  const barW = w - labelW - 240;
  // The axis stops at 2× (a longer bar is cut, marked » and its ratio written on).
  const maxR = Math.min(2, Math.max(1, ...rows.map((r) => (r.node !== null && r.base ? r.node / r.base : 0))));
  const sx = (r: number) => x0 + (Math.min(r, maxR) / maxR) * barW;
  const top = y + 58;
  // Grid: 0, 0.25 … 1 (and beyond when a ratio passes 1).
  for (let g = 0; g <= maxR + 1e-9; g += 0.25) {
    out.push(line(sx(g), top, sx(g), top + rows.length * rowH, C.grid));
    out.push(text(sx(g), top + rows.length * rowH + 14, `${g.toFixed(2).replace(/\.?0+$/, '')}×`, { size: 10, anchor: 'middle', fill: C.muted }));
  }
  if (rows.length === 0) out.push(text(x0, top + 30, 'no throughput suite run', { italic: true, fill: C.muted }));
  rows.forEach((r, i) => {
    const ry = top + i * rowH + 6;
    const ratio = r.node !== null && r.base ? r.node / r.base : null;
    out.push(text(x + 14, ry + 16, `${r.row}. ${r.label}`, { size: 12, weight: 600 }));
    out.push(text(x + 14, ry + 32, r.unit, { size: 11, fill: C.muted }));
    out.push(rect(x0, ry + 4, sx(1) - x0, 16, C.base, ' rx="2"'));
    out.push(text(sx(1) + 6, ry + 16, `${r.baseLabel}: ${compact(r.base)}`, { size: 11, fill: C.muted }));
    if (ratio !== null) {
      out.push(rect(x0, ry + 23, sx(ratio) - x0, 16, C.node, ' rx="2"'));
      if (ratio > maxR) out.push(text(sx(ratio) - 4, ry + 36, '»', { size: 14, anchor: 'end', fill: '#ffffff', weight: 700 }));
      out.push(text(sx(ratio) + 6, ry + 36, `Switchboard: ${compact(r.node)} (${ratio.toFixed(2)}×)`, { size: 11, weight: 600, fill: C.node }));
    } else out.push(text(x0 + 4, ry + 36, 'not measured', { size: 11, italic: true, fill: C.muted }));
    out.push(badge(x + w - 80, ry + 28, r.met));
  });
  const t = sx(0.5);
  out.push(line(t, top - 4, t, top + rows.length * rowH, C.target, { dash: true, width: 1.5 }));
  out.push(text(t + 4, top - 6, 'target ≥ 0.5×', { size: 10, fill: C.target }));
  return { svg: out.join('\n'), h };
}

/** Row 2: KiB per idle connection, node vs raw, per connection count; 1.2 × raw marked. */
function memory(d: ChartData, x: number, y: number, w: number, h: number): string {
  const out = [panel(x, y, w, h, 'Memory per signed-in idle connection', 'KiB of RSS per connection; target ≤ 1.2× raw, all held')];
  const rows = d.memory;
  if (rows.length === 0) {
    out.push(text(x + 14, y + 80, 'memory suite not run', { italic: true, fill: C.muted }));
    return out.join('\n');
  }
  const top = y + 70;
  const bottom = y + h - 52;
  const maxV = Math.max(1, ...rows.flatMap((r) => [r.nodeKiB ?? 0, (r.rawKiB ?? 0) * 1.25]));
  const sy = (v: number) => bottom - (v / maxV) * (bottom - top);
  const groupW = (w - 60) / rows.length;
  const bw = Math.min(60, groupW / 3.2);
  out.push(line(x + 40, bottom, x + w - 20, bottom, C.muted));
  rows.forEach((r, i) => {
    const gx = x + 40 + i * groupW + groupW / 2;
    const bars: Array<[string, number | null, string]> = [
      ['Switchboard', r.nodeKiB, C.node],
      ['raw ws', r.rawKiB, C.base],
    ];
    bars.forEach(([name, v, col], j) => {
      const bx = gx - bw - 4 + j * (bw + 8);
      if (v !== null) {
        out.push(rect(bx, sy(v), bw, bottom - sy(v), col, ' rx="2"'));
        const inside = bottom - sy(v) > 22;
        out.push(text(bx + bw / 2, inside ? sy(v) + 15 : sy(v) - 5, fmt(v, 1), { size: 11, anchor: 'middle', weight: 700, fill: inside ? (j === 0 ? '#ffffff' : C.text) : C.text }));
      }
      out.push(text(bx + bw / 2, bottom + 14, name, { size: 10, anchor: 'middle', fill: C.muted }));
    });
    if (r.rawKiB !== null) {
      const ty = sy(r.rawKiB * 1.2);
      out.push(line(gx - bw - 12, ty, gx + bw + 12, ty, C.target, { dash: true, width: 1.5 }));
      out.push(text(gx + bw + 14, ty + 4, '1.2× raw', { size: 10, fill: C.target }));
    }
    out.push(text(gx, bottom + 30, `${fmt(r.conns)} conns`, { size: 12, anchor: 'middle', weight: 600 }));
    out.push(badge(gx - 24, bottom + 46, r.met));
  });
  return out.join('\n');
}

/** Horizontal bars on one axis with optional per-group target lines. */
function hbars(
  x: number,
  y: number,
  w: number,
  title: string,
  unit: string,
  groups: Array<{ label: string; bars: Array<{ label: string; v: number | null; color: string }>; target?: { v: number; label: string }; met?: Met; note?: string }>,
): { svg: string; h: number } {
  const out: string[] = [text(x, y + 12, title, { size: 13, weight: 700 })];
  const labelW = 110;
  const x0 = x + labelW;
  const barW = w - labelW - 120;
  const all = groups.flatMap((g) => [...g.bars.map((b) => b.v ?? 0), (g.target?.v ?? 0) * 1.15]);
  const maxV = Math.max(1e-9, ...all);
  const sx = (v: number) => x0 + (Math.min(v, maxV) / maxV) * barW;
  let cy = y + 24;
  const barH = 13;
  for (const g of groups) {
    const gTop = cy;
    out.push(text(x, cy + 11, g.label, { size: 11, weight: 600 }));
    if (g.met) out.push(badge(x, cy + 25, g.met));
    for (const b of g.bars) {
      if (b.v !== null) {
        out.push(rect(x0, cy, sx(b.v) - x0, barH, b.color, ' rx="2"'));
        const label = `${b.label} ${fmt(b.v, b.v < 10 ? 2 : b.v < 100 ? 1 : 0)} ${unit}`;
        // Inside a long bar (clear of the target line), else after it.
        if (sx(b.v) - x0 > label.length * 6 + 12) out.push(text(x0 + 5, cy + 10.5, label, { size: 10.5, fill: b.color === C.node ? '#ffffff' : C.text, weight: 600 }));
        else out.push(text(sx(b.v) + 5, cy + 10.5, label, { size: 10.5, fill: b.color === C.base ? C.muted : C.text }));
      } else out.push(text(x0 + 4, cy + 10.5, `${b.label}: not measured`, { size: 10.5, italic: true, fill: C.muted }));
      cy += barH + 4;
    }
    if (g.target) {
      const tx = sx(g.target.v);
      out.push(line(tx, gTop - 3, tx, cy - 1, C.target, { dash: true, width: 1.5 }));
      out.push(text(tx + 3, gTop - 4, g.target.label, { size: 10, fill: C.target }));
    }
    if (g.note) {
      out.push(text(x0, cy + 9, g.note, { size: 10, fill: C.muted, italic: true }));
      cy += 12;
    }
    cy += 16;
  }
  return { svg: out.join('\n'), h: cy - y };
}

function latency(d: ChartData, x: number, y: number, w: number, h: number): string {
  const out = [panel(x, y, w, h, 'Latency and recovery', 'group: send → last member at 50 sends/s; recovery: kill -9 → next ack, join → serving')];
  const g = d.groupLatency;
  const a = hbars(x + 14, y + 56, w - 28, 'Group fan-out latency', 'ms', [
    {
      label: 'p50',
      bars: [
        { label: 'Switchboard', v: g?.nodeP50 ?? null, color: C.node },
        { label: 'raw', v: g?.rawP50 ?? null, color: C.base },
      ],
    },
    {
      label: 'p99',
      bars: [
        { label: 'Switchboard', v: g?.nodeP99 ?? null, color: C.node },
        { label: 'raw', v: g?.rawP99 ?? null, color: C.base },
      ],
      ...(g?.rawP99 ? { target: { v: g.rawP99 * 2, label: '≤ 2× raw p99' } } : {}),
      ...(g ? { met: g.met } : {}),
    },
  ]);
  out.push(a.svg);
  const f = d.failover;
  const j = d.join;
  const b = hbars(x + 14, y + 56 + a.h + 6, w - 28, 'Recovery', 's', [
    {
      label: 'kill -9 → ack',
      bars: [
        { label: 'p50', v: f?.p50 == null ? null : f.p50 / 1000, color: C.node },
        { label: 'p99', v: f?.p99 == null ? null : f.p99 / 1000, color: C.node },
        { label: 'max', v: f?.max == null ? null : f.max / 1000, color: '#93c5fd' },
      ],
      target: { v: 3, label: '≤ 3 s' },
      ...(f ? { met: f.met, note: `${f.kills} kills; ${f.settings}` } : { note: 'failover suite not run' }),
    },
    {
      label: '4th node joins',
      bars: [
        { label: 'ring → serving', v: j?.fromRingMs == null ? null : j.fromRingMs / 1000, color: C.node },
        { label: 'spawn → serving', v: j?.fromStartMs == null ? null : j.fromStartMs / 1000, color: '#93c5fd' },
      ],
      target: { v: 2, label: '≤ 2 s' },
      ...(j ? { met: j.met, note: `${j.errors ?? '?'} client-visible errors (target 0)` } : { note: 'join suite not run' }),
    },
  ]);
  out.push(b.svg);
  return out.join('\n');
}

export function renderChart(d: ChartData): string {
  const m = d.machine;
  const head = [
    text(20, 32, 'Switchboard performance vs raw baselines', { size: 22, weight: 700 }),
    text(20, 52, machineLine(m), { size: 11, fill: C.muted }),
    text(W - 20, 32, m.stamp, { size: 12, anchor: 'end', fill: C.muted }),
    m.quick ? text(20, 72, 'QUICK RUN — a harness check with tiny sizes: these numbers are not a measurement', { size: 13, fill: C.bad, weight: 700 }) : '',
  ];
  const y1 = m.quick ? 86 : 68;
  const tp = throughput(d, 20, y1, W - 40);
  const y2 = y1 + tp.h + 14;
  const h2 = 330;
  const memW = 400;
  const body = [tp.svg, memory(d, 20, y2, memW, h2), latency(d, 20 + memW + 14, y2, W - 40 - memW - 14, h2)];
  const H = y2 + h2 + 36;
  const foot = text(20, H - 14, 'Medians of alternated runs (failover: all kills pooled). Generated by `npm run bench` (bench/chart.ts).', { size: 10.5, fill: C.muted });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif">`,
    rect(0, 0, W, H, '#ffffff'),
    ...head,
    ...body,
    foot,
    '</svg>',
    '',
  ].join('\n');
}
