/**
 * A real S3-compatible server for tests: versitygw (scripts/versitygw.mjs builds it into
 * .cache/bin if missing) over a temporary directory, on a free 127.0.0.1 port, with one
 * bucket. `stop()` ends it by its PID (SIGTERM, then SIGKILL) and removes the directory;
 * it is also killed if the test process exits first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
// @ts-expect-error -- a plain ESM script without types
import { ensureVersitygw } from '../../scripts/versitygw.mjs';
import { removeDir, tempDir } from './node.js';
import { freePort } from './ports.js';

export interface S3Server {
  endpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
  pid: number;
  /** Object keys in the bucket under `prefix`. */
  keys(prefix?: string): Promise<string[]>;
  stop(): Promise<void>;
}


async function waitUp(endpoint: string, child: ChildProcess, output: () => string): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`versitygw exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    try {
      await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {
      if (Date.now() > until) throw new Error(`versitygw did not answer on ${endpoint}:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startS3Server(bucket = 'sb-media'): Promise<S3Server> {
  const bin = (await ensureVersitygw({ quiet: true })) as string;
  const dir = tempDir('sb-s3-');
  const port = await freePort();
  const accessKey = 'sbtestaccess';
  const secretKey = 'sbtestsecret0123456789';
  const region = 'us-east-1';
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['--port', `127.0.0.1:${port}`, '--region', region, '--quiet', 'posix', dir], {
    env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKey, ROOT_SECRET_ACCESS_KEY: secretKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  };
  process.once('exit', killOnExit);

  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
    client.destroy();
    removeDir(dir);
  };

  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    await waitUp(endpoint, child, () => out);
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint,
    region,
    bucket,
    accessKey,
    secretKey,
    pid: child.pid!,
    keys: async (prefix = '') => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    stop,
  };
}
