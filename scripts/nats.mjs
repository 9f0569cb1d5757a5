#!/usr/bin/env node
// Start or stop a local 3-server NATS JetStream cluster from the project's nats.conf, for
// local trials ("Run a cluster" in the README). Tests start their own servers on free ports.
//   node scripts/nats.mjs start [--base 14322]   servers on base, base+1, base+2 (routes on base+100..)
//   node scripts/nats.mjs stop                   stops the servers this script started (by PID)
//   node scripts/nats.mjs status
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsServerPath } from './nats-server.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.cache', 'nats');
const stateFile = join(dir, 'cluster.json');

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const waitPort = (port, ms) =>
  new Promise((ok, fail) => {
    const until = Date.now() + ms;
    const attempt = () => {
      const s = createConnection({ port, host: '127.0.0.1' });
      s.once('connect', () => (s.destroy(), ok()));
      s.once('error', () => (s.destroy(), Date.now() > until ? fail(new Error(`port ${port} did not open`)) : setTimeout(attempt, 100)));
    };
    attempt();
  });

async function start(base) {
  if (existsSync(stateFile)) {
    const st = JSON.parse(readFileSync(stateFile, 'utf8'));
    if (st.servers.every((s) => alive(s.pid))) {
      console.log(st.servers.map((s) => `nats://127.0.0.1:${s.port}`).join(','));
      return;
    }
  }
  const bin = natsServerPath();
  mkdirSync(dir, { recursive: true });
  const routes = [0, 1, 2].map((i) => base + 100 + i);
  const env = Object.fromEntries(routes.map((r, i) => [`SB_NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${r}`]));
  const servers = [];
  for (let i = 0; i < 3; i++) {
    const name = `n${i + 1}`;
    const log = openSync(join(dir, `${name}.log`), 'a');
    const child = spawn(bin, ['-c', join(root, 'nats.conf')], {
      env: { ...process.env, ...env, SB_NATS_NAME: name, SB_NATS_PORT: String(base + i), SB_NATS_CLUSTER: String(routes[i]), SB_NATS_DIR: join(dir, name) },
      stdio: ['ignore', log, log],
      detached: true,
    });
    child.unref();
    servers.push({ name, pid: child.pid, port: base + i });
    process.stderr.write(`started ${name} (pid ${child.pid}) on 127.0.0.1:${base + i}\n`);
  }
  writeFileSync(stateFile, JSON.stringify({ servers }, null, 2));
  await Promise.all(servers.map((s) => waitPort(s.port, 20_000)));
  console.log(servers.map((s) => `nats://127.0.0.1:${s.port}`).join(','));
}

function stop() {
  if (!existsSync(stateFile)) return console.log('not running');
  const st = JSON.parse(readFileSync(stateFile, 'utf8'));
  for (const s of st.servers) {
    if (alive(s.pid)) {
      process.kill(s.pid, 'SIGTERM');
      process.stderr.write(`stopped ${s.name} (pid ${s.pid})\n`);
    }
  }
  rmSync(stateFile);
}

function status() {
  if (!existsSync(stateFile)) return console.log('not running'), process.exit(3);
  const st = JSON.parse(readFileSync(stateFile, 'utf8'));
  for (const s of st.servers) console.log(`${s.name} pid ${s.pid} port ${s.port} ${alive(s.pid) ? 'up' : 'down'}`);
}

const [cmd, ...rest] = process.argv.slice(2);
const baseIdx = rest.indexOf('--base');
const base = baseIdx >= 0 ? Number(rest[baseIdx + 1]) : 14322;
if (cmd === 'start') await start(base);
else if (cmd === 'stop') stop();
else if (cmd === 'status') status();
else {
  console.error('usage: node scripts/nats.mjs start [--base PORT] | stop | status');
  process.exit(2);
}
