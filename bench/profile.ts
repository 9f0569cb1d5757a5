/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time per function and per
 * area (a package under node_modules, a file of ours, node internals, GC, idle).
 * Also a CLI: `tsx bench/profile.ts FILE.cpuprofile [TOP]`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileRow {
  name: string;
  selfMs: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Total minus (idle): time the main thread was busy. */
  busyMs: number;
  functions: ProfileRow[];
  areas: ProfileRow[];
}

function area(url: string, fn: string): string {
  if (fn === '(garbage collector)' || fn === '(idle)' || fn === '(program)' || fn === '(root)') return fn;
  if (url === '') return '(native / builtins)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return `pkg:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return 'node internals';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `ours:${url.slice(dist + 6).split('/').slice(0, -1).join('/') || '.'}`;
  return url;
}

function label(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const name = functionName || '(anonymous)';
  if (!url) return name;
  const nm = url.lastIndexOf('node_modules/');
  const dist = url.indexOf('/dist/');
  const short = nm >= 0 ? url.slice(nm + 13) : dist >= 0 ? url.slice(dist + 1) : url.replace(/^file:\/\//, '');
  return `${name} ${short}:${lineNumber + 1}`;
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute each interval to the sample that ends it.
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, prof.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, number>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    if (n.callFrame.functionName === '(idle)') idle += us;
    const key = label(n);
    fns.set(key, (fns.get(key) ?? 0) + us);
    const a = area(n.callFrame.url, n.callFrame.functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const rows = (m: Map<string, number>, limit: number): ProfileRow[] =>
    [...m.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, pct: Math.round((1000 * us) / Math.max(1, total)) / 10 }));
  return { file, totalMs: Math.round(total / 1000), busyMs: Math.round((total - idle) / 1000), functions: rows(fns, top), areas: rows(areas, 20) };
}

export function formatProfile(s: ProfileSummary): string {
  const out = [`profile ${s.file}: ${s.totalMs} ms sampled, main thread busy ${s.busyMs} ms (${Math.round((100 * s.busyMs) / Math.max(1, s.totalMs))} %)`];
  out.push('  self time by area:');
  for (const r of s.areas) out.push(`    ${r.selfMs.toFixed(1).padStart(9)} ms ${r.pct.toFixed(1).padStart(5)} %  ${r.name}`);
  out.push('  top functions by self time:');
  for (const r of s.functions) out.push(`    ${r.selfMs.toFixed(1).padStart(9)} ms ${r.pct.toFixed(1).padStart(5)} %  ${r.name}`);
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/profile.ts FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(`${formatProfile(summariseProfile(file, Number(process.argv[3] ?? 25)))}\n`);
}
