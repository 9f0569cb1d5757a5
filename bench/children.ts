/**
 * Child processes of the bench (the echo server, the node under test): spawned with piped
 * output that is always drained, waited for with a deadline, and killed by PID — on a normal
 * stop, on errors (callers use try/finally) and when this process exits for any reason.
 * Each child also loads bench/guard.mjs, which ends it if our pipe to its stdin closes (so a
 * SIGKILLed bench leaves no orphans either).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const live = new Set<ChildProcess>();

function killAll(signal: NodeJS.Signals): void {
  for (const c of live) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, signal);
      } catch {
        /* already gone */
      }
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    process.stderr.write(`bench: ${sig}: killing ${live.size} child process(es)\n`);
    killAll('SIGKILL');
    process.exit(130);
  });
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** The first stdout line that matched `ready`, with its groups. */
  ready: RegExpMatchArray;
}

export interface SpawnOptions {
  label: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** A stdout line that says the child is ready. */
  ready: RegExp;
  timeoutMs: number;
  /** At most this many unmatched output lines are forwarded to our stderr. */
  maxForwarded?: number;
  /** Output lines not worth forwarding. */
  quiet?: RegExp;
  /** Every output line (stdout and stderr), also after ready (e.g. to follow a node's log). */
  onLine?(line: string): void;
  /** The executable (default: this Node binary). */
  command?: string;
  /** Which stream carries the ready line (default stdout). */
  readyOn?: 'stdout' | 'stderr';
}

/** Start `node <args>` (or `command <args>`) and wait (bounded) for its ready line. */
export function spawnNode(o: SpawnOptions): Promise<Child> {
  const proc = spawn(o.command ?? process.execPath, o.args, { cwd: o.cwd, env: o.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  proc.stdin?.on('error', () => {});
  let forwarded = 0;
  const maxForwarded = o.maxForwarded ?? 40;
  const forward = (line: string) => {
    if (line.trim() === '' || o.quiet?.test(line)) return;
    if (forwarded < maxForwarded) process.stderr.write(`  [${o.label}] ${line}\n`);
    else if (forwarded === maxForwarded) process.stderr.write(`  [${o.label}] (further output suppressed)\n`);
    forwarded++;
  };
  return new Promise<Child>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | null, m?: RegExpMatchArray) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        if (proc.pid !== undefined && proc.exitCode === null) {
          try {
            process.kill(proc.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        reject(err);
      } else resolve({ proc, pid: proc.pid!, ready: m! });
    };
    const timer = setTimeout(() => finish(new Error(`${o.label}: not ready within ${o.timeoutMs} ms`)), o.timeoutMs);
    const watch = (line: string) => {
      o.onLine?.(line);
      const m = done ? null : line.match(o.ready);
      if (m) finish(null, m);
      else forward(line);
    };
    const plain = (line: string) => {
      o.onLine?.(line);
      forward(line);
    };
    const readyOnStderr = o.readyOn === 'stderr';
    lines(proc.stdout!, readyOnStderr ? plain : watch);
    lines(proc.stderr!, readyOnStderr ? watch : plain);
    proc.once('error', (err) => finish(err));
    proc.once('exit', (code, signal) => finish(new Error(`${o.label} exited before ready (code ${code}, signal ${signal})`)));
  });
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    if (buf.length > 65536) buf = buf.slice(-65536);
  });
}

/** SIGTERM, wait up to `graceMs` for the exit, then SIGKILL (and wait a little for that). */
export async function stopChild(c: Child, graceMs = 5000): Promise<{ code: number | null; signal: string | null }> {
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) resolve({ code: c.proc.exitCode, signal: c.proc.signalCode });
    else c.proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const wait = (ms: number) => new Promise<null>((r) => setTimeout(() => r(null), ms).unref());
  try {
    process.kill(c.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  const first = await Promise.race([exited, wait(graceMs)]);
  if (first) return first;
  process.stderr.write(`bench: pid ${c.pid} ignored SIGTERM for ${graceMs} ms: SIGKILL\n`);
  try {
    process.kill(c.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  return (await Promise.race([exited, wait(2000)])) ?? { code: null, signal: 'SIGKILL' };
}

let clockTicks: number | undefined;

/** CPU seconds (user + system) used so far by a process, from /proc; null where unavailable. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return null;
  }
}

/** The main thread's [ns on CPU, ns runnable but waiting for a CPU] from /proc; null where unavailable. */
export function mainThreadSched(pid: number): [number, number] | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
    return run !== undefined && wait !== undefined && Number.isFinite(run) && Number.isFinite(wait) ? [run, wait] : null;
  } catch {
    return null;
  }
}
