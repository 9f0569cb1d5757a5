#!/usr/bin/env node
/**
 * A real CQL server for development and tests, without Docker: Apache Cassandra 5.0.x from
 * Maven Central (see REFERENCE.md, "A real CQL server without Docker").
 *
 *   node scripts/cassandra.mjs fetch                 jars into .cache/cassandra/lib (skipped when present)
 *   node scripts/cassandra.mjs start [--port N] [--timeout S] [--json] [--holder PID] [--keep-data]
 *                                                    start (or reuse) a node, print host:port
 *   node scripts/cassandra.mjs stop [--port N] [--holder PID] [--keep-data]
 *                                                    stop the node this script started (by pid file);
 *                                                    its data dirs are removed, its logs kept
 *   node scripts/cassandra.mjs status [--json]       exit 0 when a node answers CQL, 3 otherwise
 *
 * Everything lives under .cache/cassandra/: lib/ (jars), run-<port>/ (cassandra.yaml,
 * logback.xml, data, cassandra.pid, cassandra.out, system.log), current.json ({pid, port, dir}).
 *
 * Sharing: `start` reuses the node named by current.json when it is alive and answers CQL.
 * A caller that passes `--holder <pid>` takes a lease on it (leases/<pid>); `stop --holder
 * <pid>` drops that lease and stops the node only if the node was started by a holder
 * (not by hand) and no live holder remains. `stop` without `--holder` stops the node
 * unconditionally. Only the pid recorded by this script is ever signalled, after checking
 * that its command line is this node's CassandraDaemon.
 *
 * Also importable: `import { fetchJars, start, stop, status } from './cassandra.mjs'`.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, '.cache', 'cassandra');
const LIB = path.join(CACHE, 'lib');
const POM = path.join(ROOT, 'scripts', 'cassandra', 'pom.xml');
const CURRENT = path.join(CACHE, 'current.json');
const LOCK = path.join(CACHE, 'start.lock');
const HOST = '127.0.0.1';
const MAIN_CLASS = 'org.apache.cassandra.service.CassandraDaemon';
const HEAP = '1g';

/** conf/jvm17-server.options "JPMS" section of Cassandra 5.0, plus the two REFERENCE.md adds. */
const JPMS = [
  '-Djdk.attach.allowAttachSelf=true',
  '--add-exports', 'java.base/jdk.internal.misc=ALL-UNNAMED',
  '--add-exports', 'java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED',
  '--add-exports', 'java.rmi/sun.rmi.registry=ALL-UNNAMED',
  '--add-exports', 'java.rmi/sun.rmi.server=ALL-UNNAMED',
  '--add-exports', 'java.sql/java.sql=ALL-UNNAMED',
  '--add-exports', 'java.base/java.lang.ref=ALL-UNNAMED',
  '--add-exports', 'jdk.unsupported/sun.misc=ALL-UNNAMED',
  '--add-exports', 'jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED',
  '--add-exports', 'jdk.attach/sun.tools.attach=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang.module=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.loader=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.ref=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.reflect=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.math=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.module=ALL-UNNAMED',
  '--add-opens', 'java.base/jdk.internal.util.jar=ALL-UNNAMED',
  '--add-opens', 'jdk.management/com.sun.management.internal=ALL-UNNAMED',
  '--add-opens', 'java.base/sun.nio.ch=ALL-UNNAMED',
  '--add-opens', 'java.base/java.io=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang.reflect=ALL-UNNAMED',
  '--add-opens', 'jdk.compiler/com.sun.tools.javac=ALL-UNNAMED',
  '--add-opens', 'java.base/java.lang=ALL-UNNAMED',
  '--add-opens', 'java.base/java.util=ALL-UNNAMED',
  // REFERENCE.md: without these two the JVM dies at start.
  '--add-exports', 'java.management/com.sun.jmx.remote.security=ALL-UNNAMED',
  '--add-opens', 'java.management/com.sun.jmx.remote.security=ALL-UNNAMED',
  '--add-exports', 'java.base/java.nio=ALL-UNNAMED',
  '--add-opens', 'java.base/java.nio=ALL-UNNAMED',
];

const say = (quiet, line) => {
  if (!quiet) process.stderr.write(`[cassandra] ${line}\n`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const secs = (t0) => ((Date.now() - t0) / 1000).toFixed(1);

// ---------------------------------------------------------------------------------------
// fetch

function jarsPresent() {
  if (!fs.existsSync(path.join(LIB, '.complete'))) return false;
  const names = fs.readdirSync(LIB);
  return names.some((n) => /^cassandra-all-.*\.jar$/.test(n)) && names.some((n) => /^jamm-.*\.jar$/.test(n));
}

/** Copy cassandra-all and its runtime dependencies into .cache/cassandra/lib (once). */
export async function fetchJars({ quiet = false } = {}) {
  if (jarsPresent()) {
    say(quiet, `jars present in ${path.relative(ROOT, LIB)}`);
    return LIB;
  }
  const t0 = Date.now();
  fs.mkdirSync(CACHE, { recursive: true });
  const tmp = `${LIB}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  say(quiet, 'fetching cassandra-all and its dependencies with maven ...');
  const r = spawnSync(
    'mvn',
    ['-q', '-B', '-Dstyle.color=never', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${tmp}`, '-DincludeScope=runtime'],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: path.dirname(POM), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  // Maven prints colour resets even with -B -q; keep only real text.
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.replace(/\x1b\[[0-9;]*m/g, '').trim();
  if (text && (!quiet || r.status !== 0)) process.stderr.write(`${text}\n`);
  if (r.error) throw new Error(`mvn could not run: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`mvn dependency:copy-dependencies failed (exit ${r.status})`);
  fs.writeFileSync(path.join(tmp, '.complete'), new Date().toISOString() + '\n');
  fs.rmSync(LIB, { recursive: true, force: true });
  fs.renameSync(tmp, LIB);
  say(quiet, `fetched ${fs.readdirSync(LIB).filter((n) => n.endsWith('.jar')).length} jars in ${secs(t0)} s`);
  return LIB;
}

// ---------------------------------------------------------------------------------------
// process helpers

function alive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** True when `pid` is a CassandraDaemon whose config lives in `dir` (guards against pid reuse). */
function isOurDaemon(pid, dir) {
  if (!alive(pid)) return false;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes(MAIN_CLASS) && cmd.includes(path.join(dir, 'cassandra.yaml'));
  } catch {
    return false; // no /proc: trust the pid file only if the process is alive
  }
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

function writeJson(file, value) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** `SELECT release_version FROM system.local` through cassandra-driver; the version or null. */
async function cqlVersion(port, timeoutMs = 5000) {
  const { default: cassandra } = await import('cassandra-driver');
  const client = new cassandra.Client({
    contactPoints: [`${HOST}:${port}`],
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
    pooling: { warmup: false },
  });
  try {
    const rs = await client.execute('SELECT release_version FROM system.local');
    return String(rs.first()?.get('release_version') ?? '');
  } catch {
    return null;
  } finally {
    await client.shutdown().catch(() => {});
  }
}

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------
// config templates

function cassandraYaml({ dir, port, storagePort }) {
  const d = (name) => JSON.stringify(path.join(dir, name));
  return `# Written by scripts/cassandra.mjs: a single-node test server. Unknown keys are fatal.
cluster_name: switchboard-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: ${HOST}
rpc_address: ${HOST}
storage_port: ${storagePort}
native_transport_port: ${port}
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "${HOST}:${storagePort}"
data_file_directories:
  - ${d('data')}
commitlog_directory: ${d('commitlog')}
saved_caches_directory: ${d('saved_caches')}
hints_directory: ${d('hints')}
cdc_raw_directory: ${d('cdc_raw')}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
auto_snapshot: false
paxos_variant: v2
materialized_views_enabled: false
`;
}

function logbackXml(dir) {
  return `<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${path.join(dir, 'system.log')}</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE" />
    <appender-ref ref="STDOUT" />
  </root>
</configuration>
`;
}

function javaBin() {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

function checkJava(quiet) {
  const r = spawnSync(javaBin(), ['-version'], { encoding: 'utf8' });
  if (r.error) throw new Error(`java not found (${r.error.message}); Cassandra 5.0 needs Java 17`);
  const m = /version "(\d+)/.exec(r.stderr + r.stdout);
  const major = m ? Number(m[1]) : NaN;
  if (!(major >= 11 && major < 24)) throw new Error(`Java ${m?.[1] ?? '?'} cannot run Cassandra 5.0 (use 17)`);
  say(quiet, `java ${major}`);
}

// ---------------------------------------------------------------------------------------
// lock (serialises concurrent `start`s on one checkout)

async function withLock(fn, timeoutMs) {
  fs.mkdirSync(CACHE, { recursive: true });
  const t0 = Date.now();
  for (;;) {
    try {
      const fd = fs.openSync(LOCK, 'wx');
      fs.writeSync(fd, String(process.pid));
      fs.closeSync(fd);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let text = '';
      let ageMs = 0;
      try {
        text = fs.readFileSync(LOCK, 'utf8').trim();
        ageMs = Date.now() - fs.statSync(LOCK).mtimeMs;
      } catch {
        continue; // released meanwhile
      }
      const owner = Number(text || '0');
      // An empty lock is one being written right now, unless it is old (its writer died).
      if ((text && !alive(owner)) || (!text && ageMs > 5_000)) {
        fs.rmSync(LOCK, { force: true });
        continue;
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${LOCK} (held by pid ${owner})`);
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (fs.readFileSync(LOCK, 'utf8').trim() === String(process.pid)) fs.rmSync(LOCK, { force: true });
    } catch {
      /* already gone */
    }
  }
}

// ---------------------------------------------------------------------------------------
// leases

const leaseDir = (dir) => path.join(dir, 'leases');

function addLease(dir, holder) {
  if (!holder) return;
  fs.mkdirSync(leaseDir(dir), { recursive: true });
  fs.writeFileSync(path.join(leaseDir(dir), String(holder)), new Date().toISOString() + '\n');
}

/** Drop `holder`'s lease and the leases of dead holders; the live holders left. */
function dropLease(dir, holder) {
  const ld = leaseDir(dir);
  if (!fs.existsSync(ld)) return [];
  const left = [];
  for (const name of fs.readdirSync(ld)) {
    const pid = Number(name);
    if (String(pid) === String(holder) || !alive(pid)) fs.rmSync(path.join(ld, name), { force: true });
    else left.push(pid);
  }
  return left;
}

// ---------------------------------------------------------------------------------------
// start / stop / status

/** The node recorded in current.json if its process is ours and alive (not checked for CQL). */
function currentNode() {
  const cur = readJson(CURRENT);
  if (!cur || !isOurDaemon(cur.pid, cur.dir)) return null;
  return cur;
}

/**
 * Start a node, or reuse the live one recorded in current.json. Resolves to
 * `{ host, port, contact: 'host:port', pid, dir, reused, version, ms }`.
 */
export async function start({ port, timeoutMs = 120_000, holder, keepData = false, quiet = false } = {}) {
  const t0 = Date.now();
  return withLock(async () => {
    const cur = currentNode();
    if (cur && (port === undefined || cur.port === port)) {
      const version = await cqlVersion(cur.port);
      if (version) {
        addLease(cur.dir, holder);
        say(quiet, `reusing pid ${cur.pid} on ${HOST}:${cur.port} (Cassandra ${version})`);
        return { host: HOST, port: cur.port, contact: `${HOST}:${cur.port}`, pid: cur.pid, dir: cur.dir, reused: true, version, ms: Date.now() - t0 };
      }
      say(quiet, `pid ${cur.pid} on port ${cur.port} is alive but does not answer CQL; starting another node`);
    }

    await fetchJars({ quiet });
    checkJava(quiet);
    for (const other of liveNodes()) {
      say(quiet, `note: another node is running (pid ${other.pid}, port ${other.port}); stop it with: node scripts/cassandra.mjs stop --port ${other.port}`);
    }
    const nativePort = port ?? (await freePort());
    let storagePort = await freePort();
    while (storagePort === nativePort) storagePort = await freePort();
    const dir = path.join(CACHE, `run-${nativePort}`);
    const pidFile = path.join(dir, 'cassandra.pid');
    const old = readJson(path.join(dir, 'node.json'));
    if (old && isOurDaemon(old.pid, dir)) {
      throw new Error(`a node started by this script is already running on port ${nativePort} (pid ${old.pid}) but does not answer CQL; stop it first`);
    }
    if (await portOpen(nativePort, 300)) throw new Error(`port ${nativePort} is already in use`);
    if (!keepData) fs.rmSync(dir, { recursive: true, force: true });
    for (const sub of ['data', 'commitlog', 'saved_caches', 'hints', 'cdc_raw', 'triggers']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
    fs.writeFileSync(path.join(dir, 'cassandra.yaml'), cassandraYaml({ dir, port: nativePort, storagePort }));
    fs.writeFileSync(path.join(dir, 'logback.xml'), logbackXml(dir));

    const jars = fs.readdirSync(LIB).filter((n) => n.endsWith('.jar'));
    const jamm = jars.find((n) => /^jamm-.*\.jar$/.test(n));
    if (!jamm) throw new Error(`no jamm jar in ${LIB}`);
    const args = [
      `-Xms${HEAP}`,
      `-Xmx${HEAP}`,
      '-XX:+UseG1GC',
      '-XX:+ExitOnOutOfMemoryError',
      '-Xss512k',
      `-javaagent:${path.join(LIB, jamm)}`,
      ...JPMS,
      '-Dio.netty.tryReflectionSetAccessible=true',
      `-Dcassandra.config=${pathToFileURL(path.join(dir, 'cassandra.yaml')).href}`,
      `-Dlogback.configurationFile=${path.join(dir, 'logback.xml')}`,
      '-Dcassandra-foreground=yes',
      `-Dcassandra.storagedir=${dir}`,
      `-Dcassandra.logdir=${dir}`,
      '-Dcassandra.skip_wait_for_gossip_to_settle=0',
      '-Dcassandra.ring_delay_ms=1000',
      '-Dcassandra.superuser_setup_delay_ms=0',
      '-Dcassandra.unsafesystem=true',
      `-Dcassandra.triggers_dir=${path.join(dir, 'triggers')}`,
      '-cp',
      jars.map((n) => path.join(LIB, n)).join(path.delimiter),
      MAIN_CLASS,
    ];
    const out = fs.openSync(path.join(dir, 'cassandra.out'), 'a');
    const child = spawn(javaBin(), args, { cwd: dir, detached: true, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const pid = child.pid;
    if (!pid) throw new Error('java did not start');
    let exited = null;
    child.once('exit', (code, signal) => (exited = { code, signal }));
    child.unref();
    fs.writeFileSync(pidFile, `${pid}\n`);
    const node = { pid, port: nativePort, storagePort, dir, startedBy: holder ? 'holder' : 'hand', startedAt: new Date().toISOString() };
    writeJson(path.join(dir, 'node.json'), node);
    writeJson(CURRENT, { pid, port: nativePort, dir });
    say(quiet, `started pid ${pid}, native port ${nativePort}, storage port ${storagePort}, dir ${path.relative(ROOT, dir)}`);

    let stage = 'native port';
    let lastSay = 0;
    for (;;) {
      if (exited || !alive(pid)) {
        throw new Error(`Cassandra exited during start (${JSON.stringify(exited)}); last output:\n${tail(path.join(dir, 'cassandra.out'))}`);
      }
      if (Date.now() - t0 > timeoutMs) {
        await stopPid(pid, dir, { quiet });
        throw new Error(`Cassandra did not answer CQL within ${timeoutMs / 1000} s (stopped it); see ${path.join(dir, 'system.log')}`);
      }
      if (stage === 'native port' && (await portOpen(nativePort))) {
        stage = 'CQL';
        say(quiet, `native port open after ${secs(t0)} s`);
      }
      if (stage === 'CQL') {
        const version = await cqlVersion(nativePort);
        if (version) {
          addLease(dir, holder);
          say(quiet, `Cassandra ${version} answers CQL on ${HOST}:${nativePort} after ${secs(t0)} s`);
          return { host: HOST, port: nativePort, contact: `${HOST}:${nativePort}`, pid, dir, reused: false, version, ms: Date.now() - t0 };
        }
      }
      if (Date.now() - lastSay > 5000) {
        lastSay = Date.now();
        say(quiet, `waiting for ${stage} ... ${secs(t0)} s`);
      }
      await sleep(500);
    }
  }, timeoutMs);
}

async function stopPid(pid, dir, { quiet = false, graceMs = 20_000 } = {}) {
  if (!isOurDaemon(pid, dir)) {
    say(quiet, `pid ${pid} is not running (or is not our node); nothing to stop`);
    return false;
  }
  const t0 = Date.now();
  say(quiet, `stopping pid ${pid} (SIGTERM)`);
  process.kill(pid, 'SIGTERM');
  while (alive(pid) && Date.now() - t0 < graceMs) await sleep(200);
  if (alive(pid)) {
    say(quiet, `pid ${pid} still alive after ${graceMs / 1000} s: SIGKILL`);
    process.kill(pid, 'SIGKILL');
    while (alive(pid) && Date.now() - t0 < graceMs + 10_000) await sleep(100);
  }
  say(quiet, `stopped pid ${pid} in ${secs(t0)} s`);
  return true;
}

/**
 * Stop the node on `port` (default: the one in current.json). With `holder`, only drop that
 * holder's lease, and stop only a node started by a holder once no live holder remains.
 * Resolves to `{ stopped, pid?, port?, holders? }`.
 */
export async function stop(opts = {}) {
  // Under the start lock, so a concurrent `start --holder` cannot lease a node being stopped.
  return withLock(() => stopUnlocked(opts), 60_000);
}

async function stopUnlocked({ port, holder, keepData = false, quiet = false, graceMs = 20_000 } = {}) {
  const cur = readJson(CURRENT);
  const dir = port !== undefined ? path.join(CACHE, `run-${port}`) : cur?.dir;
  if (!dir) {
    say(quiet, 'no node recorded');
    return { stopped: false };
  }
  const node = readJson(path.join(dir, 'node.json'));
  const pidFile = path.join(dir, 'cassandra.pid');
  const pid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : (node?.pid ?? NaN);
  if (holder !== undefined) {
    const left = dropLease(dir, holder);
    if (left.length > 0 || node?.startedBy !== 'holder') {
      say(quiet, left.length > 0 ? `leaving pid ${pid} running for holders ${left.join(', ')}` : `leaving pid ${pid} running (started by hand)`);
      return { stopped: false, pid, port: node?.port, holders: left };
    }
  }
  const stopped = await stopPid(pid, dir, { quiet, graceMs });
  fs.rmSync(pidFile, { force: true });
  if (!keepData && !isOurDaemon(pid, dir)) {
    // Test data is disposable; the logs (system.log, cassandra.out) stay for a post-mortem.
    for (const sub of ['data', 'commitlog', 'saved_caches', 'hints', 'cdc_raw', 'triggers', 'leases']) {
      fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
    }
  }
  if (cur?.dir === dir) fs.rmSync(CURRENT, { force: true });
  return { stopped, pid, port: node?.port };
}

/** Every node this script started that is still alive (from the run-<port>/node.json files). */
function liveNodes() {
  if (!fs.existsSync(CACHE)) return [];
  return fs
    .readdirSync(CACHE)
    .filter((n) => /^run-\d+$/.test(n))
    .map((n) => readJson(path.join(CACHE, n, 'node.json')))
    .filter((node) => node && isOurDaemon(node.pid, node.dir));
}

/**
 * `{ running, pid?, port?, dir?, contact?, version?, others }` for the node in current.json;
 * `others` lists any other live node this script started (e.g. with an explicit --port).
 */
export async function status() {
  const cur = readJson(CURRENT);
  const others = liveNodes()
    .filter((n) => n.pid !== cur?.pid)
    .map((n) => ({ pid: n.pid, port: n.port, dir: n.dir }));
  if (!cur) return { running: false, others };
  if (!isOurDaemon(cur.pid, cur.dir)) return { running: false, ...cur, stale: true, others };
  const version = await cqlVersion(cur.port);
  return { running: version !== null, ...cur, contact: `${HOST}:${cur.port}`, version, others };
}

// ---------------------------------------------------------------------------------------
// CLI

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--port') opts.port = Number(next());
    else if (a === '--timeout') opts.timeoutMs = Number(next()) * 1000;
    else if (a === '--holder') opts.holder = Number(next());
    else if (a === '--json') opts.json = true;
    else if (a === '--quiet') opts.quiet = true;
    else if (a === '--keep-data') opts.keepData = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port > 0 && opts.port < 65536)) throw new Error('--port: a port number');
  return opts;
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  const { json, ...opts } = parseArgs(rest);
  switch (cmd) {
    case 'fetch': {
      const t0 = Date.now();
      await fetchJars(opts);
      if (json) console.log(JSON.stringify({ lib: LIB, ms: Date.now() - t0 }));
      return 0;
    }
    case 'start': {
      const r = await start(opts);
      console.log(json ? JSON.stringify(r) : r.contact);
      return 0;
    }
    case 'stop': {
      const r = await stop(opts);
      if (json) console.log(JSON.stringify(r));
      return 0;
    }
    case 'status': {
      const s = await status();
      if (json) console.log(JSON.stringify(s));
      else if (s.running) console.log(`running: pid ${s.pid}, ${s.contact}, Cassandra ${s.version}, dir ${s.dir}`);
      else console.log(s.pid ? `not running (recorded pid ${s.pid}, port ${s.port})` : 'not running');
      for (const o of s.others ?? []) console.log(`also running: pid ${o.pid}, port ${o.port}, dir ${o.dir} (stop with --port ${o.port})`);
      return s.running ? 0 : 3;
    }
    default:
      console.error(
        'usage: node scripts/cassandra.mjs fetch | start [--port N] [--timeout S] [--json] [--holder PID] [--keep-data] | stop [--port N] [--holder PID] [--keep-data] | status [--json]',
      );
      return 2;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      console.error(`[cassandra] ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
