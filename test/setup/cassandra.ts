/**
 * Vitest global setup: a real CQL server for the CQL tests.
 *
 * - `SB_TEST_CQL=off`: nothing is started; CQL tests skip themselves.
 * - `SB_TEST_CQL_CONTACT=host:port`: use that server as is (never stopped here).
 * - Otherwise: `node scripts/cassandra.mjs start --holder <vitest pid>` starts Apache
 *   Cassandra 5 from Maven Central (or reuses the node recorded in .cache/cassandra/current.json
 *   when it answers CQL) and takes a lease on it; teardown drops the lease and stops the node
 *   only if a test run (a holder) started it and no other live test run holds it. A node
 *   started by hand (`node scripts/cassandra.mjs start`) is never stopped by the tests.
 *
 * Tests read the contact point with `inject('cqlContact')` (empty string: no CQL server);
 * `SB_TEST_CQL_CONTACT` is also set in this process, so forked workers inherit it. The
 * server is started only when a test file of the run mentions `cqlContact` (or
 * `SB_TEST_CQL=on`), so runs of unrelated files do not start a JVM.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** "host:port" of the CQL server, or "" when SB_TEST_CQL=off. */
    cqlContact: string;
  }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCRIPT = path.join(ROOT, 'scripts', 'cassandra.mjs');

function runScript(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`scripts/cassandra.mjs ${args[0]} exited with ${code}: ${out.trim()}`)),
    );
  });
}

/**
 * Whether any test file of this run reads `cqlContact` (so a run of unrelated files does not
 * pay for a JVM). `SB_TEST_CQL=on` forces the server; on any doubt the answer is yes.
 */
async function runNeedsCql(project: TestProject): Promise<boolean> {
  if (process.env.SB_TEST_CQL === 'on') return true;
  try {
    // The CLI file filters of this run (not a typed API; absent means "all files").
    const filters = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
    const specs = await project.vitest.globTestSpecifications(filters);
    return specs.some((s) => readFileSync(s.moduleId, 'utf8').includes('cqlContact'));
  } catch {
    return true;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  if (process.env.SB_TEST_CQL === 'off') {
    project.provide('cqlContact', '');
    return;
  }
  const given = process.env.SB_TEST_CQL_CONTACT;
  if (given) {
    project.provide('cqlContact', given);
    return;
  }
  if (!(await runNeedsCql(project))) {
    project.provide('cqlContact', '');
    return;
  }
  const holder = String(process.pid);
  const out = await runScript(['start', '--json', '--holder', holder]);
  const line = out.trim().split('\n').pop() ?? '';
  const info = JSON.parse(line) as { contact: string; port: number; pid: number; reused: boolean; ms: number };
  process.env.SB_TEST_CQL_CONTACT = info.contact;
  project.provide('cqlContact', info.contact);
  return async () => {
    await runScript(['stop', '--port', String(info.port), '--holder', holder]);
    delete process.env.SB_TEST_CQL_CONTACT;
  };
}
