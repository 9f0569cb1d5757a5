#!/usr/bin/env node
// Ensures a current nats-server binary in .cache/bin (built from the Go module proxy once,
// about 40 s) and prints its path. Used by the tests' fixtures and scripts/nats.mjs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NATS_SERVER_VERSION = 'v2.15.3';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, '.cache', 'bin');

export function natsServerPath() {
  const path = process.env.SB_NATS_SERVER_BIN || join(bin, 'nats-server');
  if (existsSync(path)) return path;
  mkdirSync(bin, { recursive: true });
  process.stderr.write(`nats-server ${NATS_SERVER_VERSION}: building from the Go module proxy into ${bin} (about a minute, once)\n`);
  execFileSync('go', ['install', `github.com/nats-io/nats-server/v2@${NATS_SERVER_VERSION}`], {
    env: { ...process.env, GOBIN: bin },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return path;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${natsServerPath()}\n`);
}
