#!/usr/bin/env node
/**
 * The S3-compatible server of the media tests: Versity S3 Gateway (versitygw, Apache-2.0),
 * a real S3 API server over a POSIX directory that verifies SigV4 signatures, presigned URL
 * expiry and signed headers (content-length, content-type). Built from the Go module proxy
 * into .cache/bin, pinned; nothing is downloaded at test time once it is there.
 *
 *   node scripts/versitygw.mjs install     build it if .cache/bin lacks this version; print its path
 *   node scripts/versitygw.mjs path        print its path; exit 3 when it is not installed
 *
 * Also importable: `import { ensureVersitygw, versitygwPath } from './versitygw.mjs'`.
 * Set SB_TEST_S3_BIN to use another binary instead.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const VERSITYGW_MODULE = 'github.com/versity/versitygw/cmd/versitygw';
export const VERSITYGW_VERSION = 'v1.8.0';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN_DIR = path.join(ROOT, '.cache', 'bin');
const BIN = path.join(BIN_DIR, 'versitygw');
const STAMP = path.join(BIN_DIR, 'versitygw.version');

/** The installed binary of the pinned version, or null. */
export function versitygwPath() {
  if (process.env.SB_TEST_S3_BIN) return process.env.SB_TEST_S3_BIN;
  try {
    if (fs.readFileSync(STAMP, 'utf8').trim() === VERSITYGW_VERSION && fs.statSync(BIN).isFile()) return BIN;
  } catch {
    // not installed
  }
  return null;
}

/** Build (about 3 minutes on 2 cores with an empty Go cache) unless present; resolves with the path. */
export async function ensureVersitygw({ quiet = false } = {}) {
  const have = versitygwPath();
  if (have) return have;
  fs.mkdirSync(BIN_DIR, { recursive: true });
  if (!quiet) process.stderr.write(`[versitygw] go install ${VERSITYGW_MODULE}@${VERSITYGW_VERSION} into ${BIN_DIR}\n`);
  const started = Date.now();
  await new Promise((resolve, reject) => {
    const child = spawn('go', ['install', `${VERSITYGW_MODULE}@${VERSITYGW_VERSION}`], {
      env: { ...process.env, GOBIN: BIN_DIR },
      stdio: ['ignore', quiet ? 'ignore' : 'inherit', quiet ? 'pipe' : 'inherit'],
    });
    let err = '';
    child.stderr?.on('data', (d) => (err += d.toString()));
    child.once('error', (e) => reject(new Error(`go install failed to start (is Go installed?): ${e.message}`)));
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`go install exited with ${code}\n${err.slice(-2000)}`))));
  });
  fs.writeFileSync(STAMP, `${VERSITYGW_VERSION}\n`);
  if (!quiet) process.stderr.write(`[versitygw] built in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  return BIN;
}

async function main(argv) {
  const cmd = argv[0];
  if (cmd === 'install') {
    process.stdout.write(`${await ensureVersitygw()}\n`);
    return 0;
  }
  if (cmd === 'path') {
    const p = versitygwPath();
    if (!p) {
      process.stderr.write('versitygw is not installed: node scripts/versitygw.mjs install\n');
      return 3;
    }
    process.stdout.write(`${p}\n`);
    return 0;
  }
  process.stderr.write('usage: node scripts/versitygw.mjs install|path\n');
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
