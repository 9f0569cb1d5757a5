/** Test fixtures: a real node on a free 127.0.0.1 port with its own data dir, in-process or as a child process. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { buildConfig } from '../../src/config.js';
import { startNode, type RunningNode } from '../../src/node.js';
import { Auth } from '../../src/gateway/auth.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

export interface TestNode {
  node: RunningNode;
  url: string;
  port: number;
  dataDir: string;
  token(user: string): Promise<string>;
  stop(): Promise<void>;
}

export function tempDir(prefix = 'sb-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** With SB_TEST_STORE=cql the node keeps everything in a fresh keyspace on the run's CQL server. */
function storeSettings(): Record<string, string> {
  if (process.env.SB_TEST_STORE !== 'cql') return {};
  const contact = process.env.SB_TEST_CQL_CONTACT;
  if (!contact) throw new Error('SB_TEST_STORE=cql but no CQL server for this run (SB_TEST_CQL_CONTACT)');
  return {
    cqlContactPoints: contact,
    cqlKeyspace: `sbp_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 7)}`,
    cqlReplication: 'simple:1',
    cqlConsistency: 'ONE',
  };
}

/** `settings`: the node's settings by config key (strings, as from the environment); `dev` defaults to true. */
export async function startTestNode(settings: { [key: string]: string | boolean | undefined } = {}, dataDir = tempDir()): Promise<TestNode> {
  const { dev = true, ...rest } = settings;
  const config = buildConfig({
    ...storeSettings(),
    dev: dev === true,
    port: '0',
    host: '127.0.0.1',
    dataDir,
    jwtSecret: TEST_SECRET,
    logLevel: 'silent',
    sqliteSync: 'NORMAL',
    ...(rest as Record<string, string>),
  });
  const node = await startNode(config);
  const auth = new Auth(TEST_SECRET);
  return {
    node,
    url: node.url,
    port: node.port,
    dataDir,
    token: (user) => auth.sign(user, 3600),
    stop: async () => {
      await node.stop();
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A node as a separate process (`node dist/node.js`), for crash tests. */
export interface NodeProcess {
  child: ChildProcess;
  port: number;
  url: string;
  output(): string;
  /** SIGKILL and wait for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  terminate(): Promise<number | null>;
}

export async function spawnNode(dataDir: string, env: Record<string, string> = {}): Promise<NodeProcess> {
  const child = spawn(process.execPath, ['dist/node.js', '--port', '0', '--host', '127.0.0.1'], {
    env: { ...process.env, SB_JWT_SECRET: TEST_SECRET, SB_DATA_DIR: dataDir, SB_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start:\n${out}`)), 90_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /"msg":"node ready"/.test(out) ? /"port":(\d+)/.exec(out) : null;
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code}:\n${out}`));
    });
  });
  return {
    child,
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    output: () => out,
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    terminate: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
