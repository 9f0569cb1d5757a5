/**
 * What the memory, group and backlog suites share: a node or a raw baseline server as a child
 * (stopped by PID), local HS256 tokens (the node gets the secret), clients bound to several
 * loopback source addresses, RSS and open-file limits from /proc, hello → synced.
 *
 * Both servers start with their soft open-file limit raised to the hard one: the node through
 * scripts/start.sh (what operators run), the raw server through the same `ulimit` in a shell.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { type Child, spawnNode, stopChild } from './children.js';
import { GUARD, ROOT, TMP_PREFIX, waitHealthz } from './common.js';
import { connect } from './loadgen.js';
import type { Settings } from './suite.js';

// hello → synced and frame decoding live in loadgen.ts; the suites import them from here too.
export { decode, hello } from './loadgen.js';

export interface Server {
  kind: 'node' | 'raw';
  child: Child;
  url: string;
  base: string | null;
  token(user: string): string;
  stop(): Promise<{ code: number | null; signal: string | null }>;
}

const b64u = (b: Buffer | string) => Buffer.from(b).toString('base64url');
export function signer(secret: string) {
  const head = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  return (user: string) => {
    const body = b64u(JSON.stringify({ sub: user, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 }));
    return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
  };
}

const START_SH = join(ROOT, 'scripts', 'start.sh');

export async function startNode(s: Settings, extraEnv: Record<string, string> = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), TMP_PREFIX));
  const secret = randomBytes(32).toString('hex');
  const env: NodeJS.ProcessEnv = { ...process.env, ...extraEnv, SB_JWT_SECRET: secret, NODE: process.execPath };
  // scripts/start.sh runs dist/node.js; the guard comes in through NODE_OPTIONS.
  env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${GUARD}`.trim();
  delete env.SB_NATS_URL;
  delete env.SB_CQL_CONTACT_POINTS;
  let child: Child;
  try {
    child = await spawnNode({
      label: 'node',
      command: '/bin/sh',
      args: [START_SH, ...s.nodeFlags, '--data-dir', dataDir],
      cwd: ROOT,
      env,
      ready: /Switchboard dev node on http:\/\/127\.0\.0\.1:(\d+)/,
      quiet: /^\s+(token|websocket|health|web app):|open-file limit \(nofile\)/,
      timeoutMs: 30_000,
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
  const base = `http://127.0.0.1:${child.ready[1]}`;
  const stop = async () => {
    const r = await stopChild(child, 10_000);
    rmSync(dataDir, { recursive: true, force: true, maxRetries: 3 });
    return r;
  };
  try {
    await waitHealthz(base, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { kind: 'node', child, url: `ws://127.0.0.1:${child.ready[1]}/ws`, base, token: signer(secret), stop };
}

export async function startRaw(mode: 'idle' | 'broadcast' | 'burst'): Promise<Server> {
  const child = await spawnNode({
    label: `raw-${mode}`,
    command: '/bin/sh',
    args: ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, '--import', 'tsx', '--import', GUARD, join(ROOT, 'bench', 'raw-server.ts'), mode],
    cwd: ROOT,
    ready: /^\{"port":(\d+)\}$/,
    timeoutMs: 20_000,
  });
  return { kind: 'raw', child, url: `ws://127.0.0.1:${child.ready[1]}/ws`, base: null, token: () => 'x', stop: () => stopChild(child) };
}

/** Resident set size of a process in bytes (/proc/<pid>/status VmRSS). */
export function rssBytes(pid: number): number | null {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Open-file limits (soft, hard) of a process (/proc/<pid>/limits; 'self': this one); null off Linux. */
export function nofileLimits(pid: number | 'self'): { soft: number; hard: number } | null {
  try {
    const m = readFileSync(`/proc/${pid}/limits`, 'utf8').match(/^Max open files\s+(\S+)\s+(\S+)/m);
    if (!m) return null;
    const n = (v: string) => (v === 'unlimited' ? Infinity : Number(v));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return null;
  }
}

/** Source address of client i: 127.0.0.1 … 127.0.0.<spread>. */
export const sourceAddress = (i: number, spread: number) => `127.0.0.${1 + (i % spread)}`;

export function connectFrom(url: string, protocol: string, localAddress: string, timeoutMs: number): Promise<WebSocket> {
  return connect(url, protocol, timeoutMs, localAddress);
}

