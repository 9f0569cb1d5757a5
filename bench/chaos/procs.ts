/**
 * The processes of a chaos run: Switchboard nodes (`node dist/node.js`, one fixed port per
 * node id so a restarted node comes back where its clients look for it), the 3-server NATS
 * cluster (test/helpers/nats.ts, from the repo's nats.conf) and the CQL server
 * (scripts/cassandra.mjs, or one given). Every process is tracked by PID and killed at the
 * end, on errors, on Ctrl-C and when this process exits; each node also preloads
 * guard.mjs, which ends it if this process dies without cleaning up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, openSync, rmSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE_ENTRY = join(ROOT, 'dist', 'node.js');
const GUARD = pathToFileURL(join(ROOT, 'bench', 'chaos', 'guard.mjs')).href;

const live = new Set<ChildProcess>();

/** SIGKILL (by PID) every node process still running. Synchronous: safe in an 'exit' handler. */
export function killAllNodes(): number {
  let n = 0;
  for (const c of live) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
        n++;
      } catch {
        /* already gone */
      }
    }
  }
  return n;
}
process.on('exit', () => killAllNodes());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type NodeState = 'down' | 'starting' | 'up' | 'paused';

/** One node id: a process at a time, always on the same port, its output appended to one log file. */
export class NodeProc {
  child: ChildProcess | null = null;
  state: NodeState = 'down';
  starts = 0;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly id: string,
    readonly port: number,
    readonly dataDir: string,
    readonly logFile: string,
    private readonly env: Record<string, string>,
    /** The node's entry point (a snapshot of dist/node.js, so a rebuild during the run changes nothing). */
    private readonly entry: string = NODE_ENTRY,
  ) {}

  get url(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Start a new process for this node id and wait (bounded) until /healthz answers 200. Resolves with the ms it took. */
  async start(timeoutMs = 90_000): Promise<number> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) throw new Error(`${this.id} is already running`);
    if (!existsSync(this.entry)) throw new Error(`${this.entry} is missing: run npm run build`);
    const started = Date.now();
    this.starts++;
    const fd = openSync(this.logFile, 'a');
    writeSync(fd, `\n===== chaos: start #${this.starts} of ${this.id} at ${new Date().toISOString()} =====\n`);
    // Only our SB_* settings reach the node, not whatever the calling shell has set.
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SB_')));
    const child = spawn(process.execPath, ['--import', GUARD, this.entry, '--port', String(this.port), '--host', '127.0.0.1'], {
      cwd: ROOT,
      env: { ...base, ...this.env, SB_NODE_ID: this.id, SB_DATA_DIR: this.dataDir },
      stdio: ['pipe', fd, fd],
    });
    closeSync(fd);
    child.stdin?.on('error', () => {});
    live.add(child);
    this.child = child;
    this.state = 'starting';
    let gone = false;
    this.exited = new Promise<void>((r) =>
      child.once('exit', () => {
        gone = true;
        live.delete(child);
        if (this.child === child) this.state = 'down';
        r();
      }),
    );
    const until = started + timeoutMs;
    for (;;) {
      if (gone) throw new Error(`${this.id} exited during start (exit ${child.exitCode ?? child.signalCode}); see ${this.logFile}`);
      if (Date.now() > until) {
        await this.kill9();
        throw new Error(`${this.id} did not become healthy within ${timeoutMs / 1000} s; see ${this.logFile}`);
      }
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    this.state = 'up';
    return Date.now() - started;
  }

  /** SIGKILL by PID and wait for the exit. */
  async kill9(): Promise<void> {
    const c = this.child;
    if (!c || c.pid === undefined) return;
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await this.exited;
    this.state = 'down';
  }

  /** SIGSTOP: the process freezes with its sockets open (a zombie owner once it is continued). */
  pause(): void {
    const pid = this.child?.pid;
    if (pid === undefined || this.state !== 'up') throw new Error(`${this.id} is not up`);
    process.kill(pid, 'SIGSTOP');
    this.state = 'paused';
  }

  resume(): void {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    if (this.state === 'paused') this.state = 'up';
  }
}

export interface CqlServer {
  contact: string;
  /** Where it came from: given (option or SB_TEST_CQL_CONTACT), reused (a running node of scripts/cassandra.mjs) or started. */
  source: 'given' | 'reused' | 'started';
  release(): Promise<void>;
}

interface CassandraScript {
  start(o: { holder?: number; quiet?: boolean; timeoutMs?: number }): Promise<{ contact: string; port: number; reused: boolean }>;
  stop(o: { port?: number; holder?: number; quiet?: boolean }): Promise<unknown>;
}

/**
 * The CQL server: the one given, else scripts/cassandra.mjs `start` with this process as a
 * lease holder (it reuses a running node; a node it starts is stopped by `release` unless
 * another holder still uses it).
 */
export async function cqlServer(given: string | undefined, log: (line: string) => void): Promise<CqlServer> {
  const contact = given || process.env.SB_TEST_CQL_CONTACT;
  if (contact) return { contact, source: 'given', release: async () => {} };
  const url = pathToFileURL(join(ROOT, 'scripts', 'cassandra.mjs')).href;
  const script = (await import(url)) as CassandraScript;
  log('CQL: scripts/cassandra.mjs start (reuses a running node)');
  const r = await script.start({ holder: process.pid, timeoutMs: 180_000 });
  return {
    contact: r.contact,
    source: r.reused ? 'reused' : 'started',
    release: async () => {
      await script.stop({ port: r.port, holder: process.pid, quiet: true });
    },
  };
}

/**
 * A private copy of dist/ for one run (under .cache/chaos/, inside the repo so packages and
 * package.json resolve as from dist/): other engineers rebuilding dist/ mid-run cannot make
 * a restarted node run different code from the others.
 */
export function snapshotDist(from = join(ROOT, 'dist')): { entry: string; remove(): void } {
  if (!existsSync(join(from, 'node.js'))) throw new Error(`${join(from, 'node.js')} is missing: run npm run build`);
  const dir = join(ROOT, '.cache', 'chaos', `dist-${process.pid}-${Date.now().toString(36)}`);
  cpSync(from, join(dir, 'dist'), { recursive: true });
  const entry = join(dir, 'dist', 'node.js');
  if (!existsSync(entry)) throw new Error(`copying dist/ failed (no ${entry}); is a build running?`);
  return { entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
