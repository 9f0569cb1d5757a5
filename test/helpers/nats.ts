/**
 * A real nats-server for tests (a current one, built once from the Go module proxy into
 * .cache/bin): one server, or a 3-server JetStream cluster from the project's nats.conf, on
 * free ports with their own store dirs. Every server is stopped by PID, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './ports.js';
// @ts-expect-error a plain .mjs script shared with the command line
import { natsServerPath } from '../../scripts/nats-server.mjs';

export interface NatsServer {
  name: string;
  port: number;
  url: string;
  proc: ChildProcess | null;
  start(): Promise<void>;
  kill9(): Promise<void>;
}

export interface NatsCluster {
  servers: NatsServer[];
  urls: string[];
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function waitPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolvePromise, reject) => {
    const attempt = () => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => {
        s.destroy();
        resolvePromise();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`nats-server did not open port ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

export interface StartNatsOptions {
  /** When set, each server's output is appended to `<logDir>/nats-<name>.log` (kept after stop). */
  logDir?: string;
}

function server(name: string, port: number, args: string[], env: NodeJS.ProcessEnv, logDir?: string): NatsServer {
  const s: NatsServer = {
    name,
    port,
    url: `nats://127.0.0.1:${port}`,
    proc: null,
    async start() {
      let fd: number | null = null;
      if (logDir) {
        fd = openSync(join(logDir, `nats-${name}.log`), 'a');
        writeSync(fd, `\n===== start of ${name} at ${new Date().toISOString()} =====\n`);
      }
      const stdio = fd === null ? ('ignore' as const) : (['ignore', fd, fd] as ['ignore', number, number]);
      const proc = spawn(natsServerPath() as string, args, { env: { ...process.env, ...env }, stdio });
      if (fd !== null) closeSync(fd);
      live.add(proc);
      proc.once('exit', () => live.delete(proc));
      s.proc = proc;
      await waitPort(port, 15_000);
    },
    async kill9() {
      const proc = s.proc;
      s.proc = null;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    },
  };
  return s;
}

/** One server with JetStream, or a 3-server cluster (nats.conf) when `size` is 3. */
export async function startNats(size: 1 | 3 = 1, opts: StartNatsOptions = {}): Promise<NatsCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-nats-'));
  const servers: NatsServer[] = [];
  if (size === 1) {
    const port = await freePort();
    servers.push(server('n1', port, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'n1'), '-n', 'n1'], {}, opts.logDir));
  } else {
    const ports = await Promise.all([0, 1, 2].map(() => freePort()));
    const routes = await Promise.all([0, 1, 2].map(() => freePort()));
    const env = Object.fromEntries(routes.map((r, i) => [`SB_NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${r}`]));
    for (let i = 0; i < 3; i++) {
      const name = `n${i + 1}`;
      servers.push(
        server(name, ports[i]!, ['-c', resolve('nats.conf')], {
          ...env,
          SB_NATS_NAME: name,
          SB_NATS_PORT: String(ports[i]),
          SB_NATS_CLUSTER: String(routes[i]),
          SB_NATS_DIR: join(dir, name),
        }, opts.logDir),
      );
    }
  }
  try {
    await Promise.all(servers.map((s) => s.start()));
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill9()));
    throw err;
  }
  return {
    servers,
    urls: servers.map((s) => s.url),
    stop: async () => {
      await Promise.all(servers.map((s) => s.kill9()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
